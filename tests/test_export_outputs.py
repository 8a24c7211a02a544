"""Detection outputs (sectionseg.export): MagC pair, .magc, CSV, overlay, report; stage order."""

import csv
import json

import numpy as np
import pytest

from sectionseg.export import CSV_COLUMNS, path_length, stage_order, write_detection_outputs
from sectionseg.formats import read_magc, read_sections
from sectionseg.geometry import Section, canonical_section, part_direction
from sectionseg.simulation import random_layout


def _detections(seed=0):
    rng = np.random.default_rng(seed)
    layout = random_layout(rng, 900, 700, n_sections=12, dummy_probability=0.0)
    sections = [
        Section(s.tissue, s.magnet, score=0.95, extra={"tissue_score": 0.97, "magnet_score": 0.95}) for s in layout[:10]
    ]
    unpaired = [
        Section(layout[10].tissue, None, score=0.91, extra={"tissue_score": 0.91}),
        Section(None, layout[11].magnet, score=0.93, extra={"magnet_score": 0.93}),
    ]
    return sections, unpaired


def test_outputs_read_back(tmp_path):
    sections, unpaired = _detections()
    image = np.full((700, 900), 180, np.uint8)
    serial = list(range(len(sections)))[::-1]
    paths = write_detection_outputs(
        tmp_path / "out",
        sections,
        unpaired,
        overlay_image=image,
        report={"model": "fake", "counts": {"dropped_dummies": 2}},
        serial_order=serial,
        image_path=tmp_path / "wafer.tif",
    )
    assert set(paths) == {"tissue", "magnet", "magc", "labelme", "coco", "csv", "overlay", "report"}
    assert all(p.exists() for p in paths.values())
    canonical = [canonical_section(s) for s in sections]

    pair = read_sections(paths["tissue"])
    assert len(pair) == len(sections)
    for got, want in zip(pair, canonical):
        assert np.allclose(got.tissue.polygon, want.tissue.polygon, atol=1e-3)
        assert np.allclose(got.magnet.polygon, want.magnet.polygon, atol=1e-3)

    magc = read_magc(paths["magc"])
    assert len(magc.sections) == len(sections) and magc.dialect == "magfinder"
    assert np.allclose(magc.sections[3].tissue.polygon, canonical[3].tissue.polygon, atol=1e-3)
    assert magc.serial_order == serial
    assert sorted(magc.stage_order) == list(range(len(sections)))

    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(sections) + len(unpaired)
    assert [r["paired"] for r in rows] == ["1"] * 10 + ["0", "0"]
    assert float(rows[2]["tissue_x"]) == pytest.approx(sections[2].tissue.centre[0], abs=1e-3)
    # angles: the parts' directions (first edge of the canonical order), magnet-to-tissue
    assert float(rows[2]["magnet_angle"]) == pytest.approx(part_direction(canonical[2].magnet), abs=1e-3)
    assert float(rows[2]["tissue_angle"]) == pytest.approx(part_direction(canonical[2].tissue), abs=1e-3)
    assert rows[10]["magnet_x"] == "" and rows[10]["tissue_score"] == "0.9100"
    assert rows[11]["tissue_x"] == "" and rows[11]["magnet_score"] == "0.9300"

    # labelme and COCO: every part (unpaired too), the image relative to the file and its true size
    labelme = json.loads(paths["labelme"].read_text())
    assert labelme["imagePath"] == "../wafer.tif"
    assert (labelme["imageWidth"], labelme["imageHeight"]) == (900, 700)
    assert len(read_sections(paths["labelme"])) == len(sections) + len(unpaired)
    coco = json.loads(paths["coco"].read_text())
    assert coco["images"][0] == {"id": 1, "file_name": "../wafer.tif", "width": 900, "height": 700}
    assert all(a["score"] > 0.9 for a in coco["annotations"])
    assert len(coco["annotations"]) == 2 * len(sections) + len(unpaired)

    report = json.loads(paths["report"].read_text())
    assert report["model"] == "fake"
    assert report["counts"] == {"dropped_dummies": 2, "sections": 10, "unpaired_tissue": 1, "unpaired_magnet": 1}


def test_pair_scale_and_integers(tmp_path):
    sections, _ = _detections()
    paths = write_detection_outputs(
        tmp_path, sections, [], overlay_image=None, report={}, pair_scale=3.0, pair_integers=True
    )
    text = paths["tissue"].read_text()
    assert "." not in text  # whole pixels, as in the original full-resolution MagC files
    back = read_sections(paths["tissue"], scale=1 / 3)
    for got, want in zip(back, sections):
        want = canonical_section(want)
        assert np.abs(got.tissue.polygon - want.tissue.polygon).max() <= 0.5 / 3 + 1e-9
    # the other files stay in image px
    assert np.allclose(
        read_magc(paths["magc"]).sections[0].tissue.polygon, canonical_section(sections[0]).tissue.polygon, atol=1e-3
    )


def test_sbemimage_dialect_and_no_overlay(tmp_path):
    sections, _ = _detections(1)
    paths = write_detection_outputs(tmp_path, sections, [], overlay_image=None, report={}, magc_dialect="sbemimage")
    assert "overlay" not in paths and not (tmp_path / "overlay.png").exists()
    assert read_magc(paths["magc"]).dialect == "sbemimage"


def test_given_orders_entries_and_rejected_reasons(tmp_path):
    from sectionseg.formats import MagcEntry

    sections, unpaired = _detections(2)
    n = len(sections)
    rejected = [
        Section(unpaired[0].tissue, None, score=0.4, extra={"rejected": "low score"}),
        Section(None, unpaired[1].magnet, score=0.9, extra={"rejected": "duplicate"}),
    ]
    paths = write_detection_outputs(
        tmp_path,
        sections,
        [],
        overlay_image=None,
        report={},
        serial_order=list(range(n))[::-1],
        stage_order=[1, 0] + list(range(2, n)),
        magc_entries=[MagcEntry("focus", [("x", "1")])],
        rejected=rejected,
    )
    magc = read_magc(paths["magc"])
    assert magc.serial_order == list(range(n))[::-1] and magc.stage_order[:3] == [1, 0, 2]
    assert [(e.header, e.items) for e in magc.entries] == [("focus", [("x", "1")])]
    report = json.loads(paths["report"].read_text())
    assert [(r["part"], r["reason"]) for r in report["rejected_parts"]] == [
        ("tissue", "low score"),
        ("magnet", "duplicate"),
    ]


def test_half_sections_are_refused_as_paired(tmp_path):
    sections, unpaired = _detections()
    with pytest.raises(ValueError):
        write_detection_outputs(tmp_path, sections + unpaired[:1], [], overlay_image=None, report={})


def test_stage_order_is_a_short_permutation():
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(9), np.arange(7)), -1).reshape(-1, 2) * 150.0
    points = grid[rng.permutation(len(grid))] + rng.normal(0, 5, grid.shape)
    order = stage_order(points)
    assert sorted(order) == list(range(len(points)))
    best = path_length(points, order)
    random_len = np.median([path_length(points, rng.permutation(len(points))) for _ in range(5)])
    assert best < 0.3 * random_len
    assert best < 1.15 * (len(points) - 1) * 150.0  # near the snake path through the grid
    assert order[0] == int(np.argmin(points.sum(axis=1)))
    assert stage_order(points) == order  # deterministic


def test_stage_order_small_inputs():
    assert stage_order(np.zeros((0, 2))) == []
    assert stage_order([[3.0, 4.0]]) == [0]
    assert stage_order([[5.0, 5.0], [0.0, 0.0], [9.0, 9.0]]) == [1, 0, 2]
    assert sorted(stage_order([[0, 0], [10, 0], [0, 10], [10, 10]])) == [0, 1, 2, 3]
