"""The classical baseline detector (sectionseg.detection.classical) on small simulated wafers."""

import numpy as np
import pytest
import shapely
from scipy.optimize import linear_sum_assignment

from sectionseg.detection.classical import detect_classical, detect_classical_parts
from sectionseg.formats import read_sections
from sectionseg.io.images import read_image
from sectionseg.simulation import simulate_wafer


def _iou(a, b) -> float:
    pa, pb = shapely.Polygon(a), shapely.Polygon(b)
    union = pa.union(pb).area
    return pa.intersection(pb).area / union if union else 0.0


def _recall(truth, found, name) -> float:
    """Fraction of true parts matched one-to-one (Hungarian) at polygon IoU >= 0.5."""
    t = [getattr(s, name).polygon for s in truth]
    f = [getattr(s, name).polygon for s in found if getattr(s, name) is not None]
    if not f:
        return 0.0
    iou = np.array([[_iou(a, b) for b in f] for a in t])
    rows, cols = linear_sum_assignment(-iou)
    return float((iou[rows, cols] >= 0.5).sum()) / len(t)


@pytest.fixture(scope="module")
def sparse_wafers(tmp_path_factory):
    out = []
    for seed in (5, 6):
        folder = tmp_path_factory.mktemp(f"sparse{seed}")
        simulate_wafer(folder, seed=seed, width=800, height=800, n_sections=12, style="sparse")
        out.append(
            (
                np.asarray(read_image(folder / "gray.tif")),
                np.asarray(read_image(folder / "fluo.tif")),
                read_sections(folder / "sections.labelme.json"),
            )
        )
    return out


def test_finds_most_sections_of_sparse_wafers(sparse_wafers):
    recalls = {"tissue": [], "magnet": []}
    for gray, fluo, truth in sparse_wafers:
        found = detect_classical(gray, fluo)
        assert found and all(s.tissue is not None and s.magnet is not None for s in found)
        assert len(found) <= len(truth) + 2
        for name in recalls:
            recalls[name].append(_recall(truth, found, name))
    assert np.mean(recalls["tissue"]) >= 0.7, recalls
    assert np.mean(recalls["magnet"]) >= 0.7, recalls


def test_paired_parts_belong_to_one_section(sparse_wafers):
    """A found section's tissue and magnet match the tissue and magnet of the same true section."""
    gray, fluo, truth = sparse_wafers[0]
    found, unpaired = detect_classical_parts(gray, fluo)
    assert all((s.tissue is None) != (s.magnet is None) for s in unpaired)
    good = 0
    for s in found:
        k = int(np.argmax([_iou(s.tissue.polygon, t.tissue.polygon) for t in truth]))
        good += _iou(s.magnet.polygon, truth[k].magnet.polygon) >= 0.5
    assert good >= 0.8 * len(found)


def test_works_without_fluorescence_and_checks_shapes(sparse_wafers):
    gray, _, truth = sparse_wafers[0]
    found = detect_classical(gray, None)
    assert _recall(truth, found, "tissue") >= 0.5
    with pytest.raises(ValueError):
        detect_classical(gray, np.zeros((10, 10), np.uint16))
    assert detect_classical(np.full((300, 300), 200, np.uint8), None) == []
