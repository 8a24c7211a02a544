"""The scale estimate's candidate search (:func:`sectionseg.detection.scale.estimate_scale`), with the
model's view of the sample tiles scripted."""

from __future__ import annotations

import numpy as np
import pytest

from sectionseg.detection import scale as scale_module
from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import WaferSource


def scripted_trials(monkeypatch, truth: float = 2.0):
    """Sections that look their training size at scale ``truth``. Below 1.5 the model pairs whole
    neighbouring sections with each other: they look about the training size there too, but only 40 %
    of its detections pair (as on the held-debris benchmark wafer gray alone)."""
    tried = []

    def trial(source, centres, cand, predictor, **kwargs):
        tried.append(round(cand, 3))
        if cand < 1.5:
            detections, paired, rel = 63, 25, 1.1 * cand
        else:
            detections, paired, rel = 64, 60, cand / truth
        return {
            "scale": cand,
            "detections": detections,
            "pairs": paired // 2,
            "paired": paired,
            "sections_seen": True,
            "per_megapixel": float(detections),
            "relative_size": rel,
        }

    monkeypatch.setattr(scale_module, "scale_trial", trial)
    return tried


def test_a_candidate_pairing_few_detections_does_not_end_the_search(monkeypatch):
    tried = scripted_trials(monkeypatch)
    source = WaferSource(np.zeros((64, 64), np.uint8))
    scale, info = scale_module.estimate_scale(source, None)
    assert scale == pytest.approx(2.0, rel=0.05), info
    assert tried[:3] == [1.0, 0.5, 2.0]  # 1.0 looked right but paired 40 %: 0.5 and 2.0 tried too
    # accepting any candidate that shows sections of about the training size (as before) stops at 1.0
    tried.clear()
    scale, _ = scale_module.estimate_scale(source, None, settings=RepairSettings(scale_accept_paired_share=0.0))
    assert tried[0] == 1.0 and 0.5 not in tried and scale < 1.5  # half the truth


def scripted_bracket(monkeypatch, counts: dict[float, tuple[int, int, int]]):
    """Trials scripted per scale: ``{scale: (detections, paired, pairs)}`` on tiles of a fixed area."""
    tried = []

    def trial(source, centres, cand, predictor, **kwargs):
        tried.append(round(cand, 3))
        detections, paired, pairs = counts[round(cand, 3)]
        return {
            "scale": cand,
            "detections": detections,
            "pairs": pairs,
            "paired": paired,
            "sections_seen": pairs >= 3,
            "per_megapixel": float(detections),
            "relative_size": 0.5,
        }

    monkeypatch.setattr(scale_module, "scale_trial", trial)
    return tried


# a model adapted to the alien benchmark wafer, on its sample tiles at the labelled size, 1.15 x and / 1.15
ALIEN = {1.0: (88, 46, 29), 1.15: (94, 57, 35), 0.87: (39, 18, 10)}


def test_a_given_scale_is_bracketed_where_the_model_pairs_more_per_wafer_area(monkeypatch):
    tried = scripted_bracket(monkeypatch, ALIEN)
    source = WaferSource(np.zeros((64, 64), np.uint8))
    scale, info = scale_module.bracket_scale(source, None, 1.0)
    # 52 % -> 61 % paired (short of the share gain), 1.6 x the pairs per source area: taken
    assert scale == pytest.approx(1.15) and info["method"] == "model_file, bracketed"
    assert tried == [1.0, 1.15, 0.87] and len(info["trials"]) == 3
    scale, info = scale_module.bracket_scale(source, None, 1.0, settings=RepairSettings(scale_bracket_pairs_gain=2.0))
    assert scale == 1.0 and info["method"] == "model_file"


def test_a_scale_where_the_model_pairs_most_of_its_detections_is_kept(monkeypatch):
    tried = scripted_bracket(monkeypatch, {1.0: (80, 72, 36), 1.15: (90, 81, 45), 0.87: (70, 60, 30)})
    scale, info = scale_module.bracket_scale(WaferSource(np.zeros((64, 64), np.uint8)), None, 1.0)
    assert scale == 1.0 and tried == [1.0]  # 90 % paired: nothing else tried


def test_the_bracket_after_an_estimate_can_be_switched_off(monkeypatch):
    scripted_trials(monkeypatch)
    calls = []
    monkeypatch.setattr(scale_module, "_bracket", lambda scale, *a, **k: (calls.append(scale), (scale, "model"))[1])
    source = WaferSource(np.zeros((64, 64), np.uint8))
    scale_module.estimate_scale(source, None)
    assert len(calls) == 1
    scale, info = scale_module.estimate_scale(source, None, settings=RepairSettings().without("scale_bracket"))
    assert len(calls) == 1 and info["method"] == "model" and scale == pytest.approx(2.0, rel=0.05)
