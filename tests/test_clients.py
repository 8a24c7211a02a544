"""Our outputs read by the clients' own reader logic (ports in magc_clients.py): SBEMimage, MagFinder,
napari-mass, MagC's EM_Imaging, pycocotools as COCO results, labelme's path and size rules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conventions import angle_gap, assert_convention, magnet_to_tissue, screen_angle
from magc_clients import (
    NapariMassMagcFile,
    magc_read_section_coordinates,
    magc_scan_angle,
    magfinder_file_to_wafer,
    magfinder_magc_reader,
    sbemimage_read_data_magc,
)

from sectionseg.export import write_detection_outputs
from sectionseg.formats import read_magc, read_sections, write_sections
from sectionseg.geometry import Section, canonical_sections, section_direction
from sectionseg.simulation import random_layout

LANDMARKS = [(120.5, 140.0), (1880.0, 160.25), (1010.0, 1890.0)]


def _detections(seed=3, n=30):
    layout = random_layout(np.random.default_rng(seed), 2000, 2000, n_sections=n, dummy_probability=0.0)
    return [Section(s.tissue, s.magnet, score=0.9 - 0.01 * i) for i, s in enumerate(layout)]


@pytest.fixture(scope="module", params=["magfinder", "sbemimage"])
def detected(request, tmp_path_factory):
    """A simulated detection written by ``write_detection_outputs`` in each dialect."""
    out = tmp_path_factory.mktemp(request.param)
    sections = _detections()
    paths = write_detection_outputs(
        out, sections, [], overlay_image=None, report={}, magc_dialect=request.param, landmarks=LANDMARKS
    )
    return request.param, canonical_sections(sections), paths


def test_sbemimage_reads_sections_magnets_angles_orders_landmarks(detected):
    _, sections, paths = detected
    arr = sbemimage_read_data_magc(paths["magc"])
    assert sorted(arr["sections"]) == list(range(len(sections)))
    for i, s in enumerate(sections):
        got = arr["sections"][i]
        np.testing.assert_allclose(got["sample"]["polygon"], s.tissue.polygon, atol=1e-3)
        # the magnet is its location (the last key), not '[-125.671]'
        assert np.array(got["magnet"]["polygon"]).shape == (1, 2)
        np.testing.assert_allclose(got["magnet"]["polygon"][0], s.magnet.centre, atol=1e-3)
        # the angle SBEMimage turns ROIs by is the magnet-to-tissue direction
        assert angle_gap(got["sample"]["angle"], magnet_to_tissue(s.tissue.polygon, s.magnet.polygon)) < 15
        assert got["sample"]["angle"] == pytest.approx(section_direction(s), abs=1e-3)
    assert arr["serial_order"] == list(range(len(sections)))
    assert sorted(arr["stage_order"]) == list(range(len(sections)))
    assert [arr["landmarks"][k]["source"]["location"] for k in sorted(arr["landmarks"])] == [list(p) for p in LANDMARKS]


def test_magfinder_reads_and_recomputes_the_same_angle(detected):
    dialect, sections, paths = detected
    wafer = magfinder_file_to_wafer(paths["magc"])
    assert sorted(wafer["sections"]) == list(range(len(sections)))
    assert all(len(p) == 1 for p in wafer["magnets"].values())  # location last: a point, as MagFinder saves
    stored = sbemimage_read_data_magc(paths["magc"])["sections"]
    for i, s in enumerate(sections):
        # MagFinder's angle (first edge, ImageJ getFloatAngle) is the direction stored in the file
        assert angle_gap(wafer["angles"][i], stored[i]["sample"]["angle"]) < 1e-2
        assert angle_gap(wafer["angles"][i], magnet_to_tissue(s.tissue.polygon, s.magnet.polygon)) < 15
    assert sorted(wafer["landmarks"]) == [0, 1, 2]
    if dialect == "magfinder":
        assert wafer["serial_order"] == list(range(len(sections)))
        assert sorted(wafer["stage_order"]) == list(range(len(sections)))


def test_magfinder_magc_reader_on_the_sbemimage_dialect(detected):
    dialect, sections, paths = detected
    if dialect != "sbemimage":
        pytest.skip("magc_reader reads [sections.N] and [serialorder] only")
    magc = magfinder_magc_reader(paths["magc"])
    assert sorted(magc["sections"]) == list(range(len(sections)))
    assert magc["sections"][4]["angle"] == pytest.approx(section_direction(sections[4]), abs=1e-3)
    np.testing.assert_allclose(magc["magnets"][4]["location"], sections[4].magnet.centre, atol=1e-3)
    assert magc["serialorder"] == list(range(len(sections)))


def test_napari_mass_finds_every_entry(detected):
    _, sections, paths = detected
    magc = NapariMassMagcFile(paths["magc"])
    magc.load()
    values, _ = magc.get_values("sections")
    assert len(values) == len(sections)
    np.testing.assert_allclose(np.reshape(values[7]["polygon"], (-1, 2)), sections[7].tissue.polygon, atol=1e-3)
    magnets, _ = magc.get_values("magnets")
    np.testing.assert_allclose(magnets[7]["location"], sections[7].magnet.centre, atol=1e-3)
    landmarks, _ = magc.get_values("landmarks")
    assert [tuple(v["location"]) for v in landmarks] == LANDMARKS


def test_empty_detection_orders_do_not_crash_the_clients(tmp_path):
    for dialect in ("magfinder", "sbemimage"):
        paths = write_detection_outputs(tmp_path / dialect, [], [], overlay_image=None, report={}, magc_dialect=dialect)
        assert "= []" in paths["magc"].read_text()  # not 'serialorder = ' (int('') in the clients)
        assert "serial_order" not in sbemimage_read_data_magc(paths["magc"])
        assert magfinder_file_to_wafer(paths["magc"])["serial_order"] == []
        assert read_magc(paths["magc"]).sections == []


def test_magc_em_imaging_reads_the_pair_with_the_original_angle_relation(detected, real_layouts):
    """EM_Imaging scans each section at the angle of tissue edge [2] -> [3] (+ 90 deg): on our pair
    it has the same relation to the section's direction as on the original files."""
    _, sections, paths = detected
    ours = magc_read_section_coordinates(paths["tissue"])
    assert len(ours) == len(sections) and all(len(t) == 4 for t in ours)
    original = read_sections(real_layouts / "wafer1")
    for group in (sections, original):
        gaps = [angle_gap(magc_scan_angle(s.tissue.polygon), section_direction(s) + 90.0) for s in group]
        assert max(gaps) < 25.0


def test_integer_pair_parses_with_int(tmp_path):
    paths = write_detection_outputs(
        tmp_path, _detections(n=8), [], overlay_image=None, report={}, pair_scale=3.0, pair_integers=True
    )
    for name in ("tissue", "magnet"):
        for line in paths[name].read_text().splitlines():
            for corner in line.rstrip("\t").split("\t"):
                x, y = corner.split(",")
                int(x), int(y)  # what readers of the original full-resolution files do


def test_coco_detection_file_loads_as_results_and_evaluates(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = _detections(n=20)
    write_sections(tmp_path / "gt.coco.json", truth, "coco", image_path="wafer.tif", image_size=(2000, 2000))
    found = [s.transformed(1.0, (0.4, -0.3)) for s in truth]
    paths = write_detection_outputs(
        tmp_path / "det",
        found,
        [],
        overlay_image=None,
        report={},
        image_path=tmp_path / "wafer.tif",
        image_size=(2000, 2000),
    )
    gt = COCO(str(tmp_path / "gt.coco.json"))
    results = json.loads(paths["coco"].read_text())["annotations"]
    assert all("score" in a for a in results)
    dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[1] > 0.95  # AP at IoU 0.5


def test_labelme_image_path_and_size_resolve_from_the_json(tmp_path):
    from sectionseg.io.images import write_image

    write_image(tmp_path / "images" / "wafer.png", np.zeros((300, 400), np.uint8))
    out = tmp_path / "out"
    paths = write_detection_outputs(
        out, [], [], overlay_image=None, report={}, image_path=tmp_path / "images" / "wafer.png", image_size=(400, 300)
    )
    doc = json.loads(paths["labelme"].read_text())
    assert (paths["labelme"].parent / doc["imagePath"]).resolve() == (tmp_path / "images" / "wafer.png").resolve()
    assert (doc["imageWidth"], doc["imageHeight"]) == (400, 300)


# ---- a SBEMimage file with ROIs, focus points, landmarks and template keys ----

# Laid out as SBEMimage's own example (array/example/wafer_example1.magc): [sections.0000] ids,
# magnets with a template and a location only, ROIs and focus per section, [landmarksEM.N],
# empty orders written as []. The numbers are made up.
SBEMIMAGE_STYLE = """[sections]
number = 2

[sections.0000]
polygon = 400,200,470,190,480,250,410,262
center = 440,225.5
area = 4100
compression = 1.02
angle = -170

[sections.0001]
polygon = 600,200,670,190,680,250,610,262
center = 640,225.5
area = 4100
compression = 0.98
angle = -170

[rois]
number = 2

[rois.0000]
template = 0
polygon = 430,205,442,203,444,214,432,216
center = 437,209.5
area = 130
angle = -170

[rois.0001]
template = 0
polygon = 630,205,642,203,644,214,632,216
center = 637,209.5
area = 130
angle = -170

[focus]
number = 2

[focus.0000]
template = 0
polygon = 415,215,435,200,460,210,440,225

[focus.0001]
template = 0
polygon = 615,215,635,200,660,210,640,225

[magnets]
number = 2

[magnets.0000]
template = 0
location = 445,245

[magnets.0001]
template = 0
location = 645,245

[landmarksEM]
number = 4

[landmarksEM.0]
location = 10,10

[landmarksEM.1]
location = 900,12

[landmarksEM.2]
location = 905,880

[landmarksEM.3]
location = 12,870

[serialorder]
serialorder = []

[tsporder]
tsporder = []
"""


def test_sbemimage_style_file_keeps_rois_focus_landmarks_and_keys(tmp_path):
    src = tmp_path / "wafer.magc"
    src.write_text(SBEMIMAGE_STYLE)
    magc = read_magc(src)
    assert magc.dialect == "sbemimage" and len(magc.sections) == 2
    assert magc.serial_order == magc.stage_order == [0, 1]
    assert magc.landmarks == [(10, 10), (900, 12), (905, 880), (12, 870)]
    assert [e.header for e in magc.entries] == ["rois", "rois.0000", "rois.0001", "focus", "focus.0000", "focus.0001"]
    s = magc.sections[0]
    assert s.magnet is None and s.extra["magnet_location"] == (445, 245)
    assert s.extra["magc_keys"] == [("compression", "1.02")]
    assert s.extra["magc_magnet_keys"] == [("template", "0")]
    # the location-only magnet below the tissue orients it: direction up (about 90 + 9 deg)
    assert angle_gap(section_direction(canonical_sections([s])[0]), 99.0) < 3

    out = tmp_path / "again.magc"
    write_sections(
        out,
        magc.sections,
        "magc",
        magc_dialect=magc.dialect,
        serial_order=magc.serial_order,
        stage_order=magc.stage_order,
        landmarks=magc.landmarks,
        magc_entries=magc.entries,
    )
    arr = sbemimage_read_data_magc(out)
    assert arr["sections"][1]["rois"][0]["polygon"][0] == [630, 205]
    assert arr["sections"][1]["focus"][3]["location"] == [640, 225]
    assert arr["sections"][1]["magnet"]["polygon"] == [[645, 245]]
    assert len(arr["landmarks"]) == 4
    back = read_magc(out)
    assert back.entries == magc.entries and back.landmarks == magc.landmarks
    assert back.sections[1].extra["magc_keys"] == [("compression", "0.98")]


def test_kept_entries_follow_the_read_scale(tmp_path):
    src = tmp_path / "wafer.magc"
    src.write_text(SBEMIMAGE_STYLE)
    magc = read_magc(src, scale=0.5)
    roi = dict(magc.entries[1].items)
    assert roi["polygon"] == "215,102.5,221,101.5,222,107,216,108"
    assert roi["area"] == "32.5" and roi["angle"] == "-170" and roi["template"] == "0"
    assert magc.landmarks[1] == (450, 6)


def test_convert_says_what_another_format_drops(tmp_path, caplog):
    from sectionseg.cli.main import main

    src = tmp_path / "wafer.magc"
    src.write_text(SBEMIMAGE_STYLE)
    assert main(["convert", str(src), str(tmp_path / "w.json")]) == 0
    text = caplog.text
    assert "4 landmarks" in text and "3 [rois.*]" not in text and "2 [rois.*] entries" in text
    assert "2 [focus.*] entries" in text and "other keys" in text
    doc = json.loads((tmp_path / "w.json").read_text())
    assert [sh["shape_type"] for sh in doc["shapes"]] == ["polygon", "point"] * 2  # location-only magnets
    back = read_sections(tmp_path / "w.json")
    assert back[0].extra["magnet_location"] == (445, 245)
    # .magc -> .magc keeps it all, in the dialect read
    assert main(["convert", str(src), str(tmp_path / "again.magc")]) == 0
    assert read_magc(tmp_path / "again.magc").entries == read_magc(src).entries


@pytest.mark.parametrize("header,key", [("serial_order", "serial_order"), ("serialorder", "serialorder")])
def test_both_order_spellings_under_either_header_style(tmp_path, header, key):
    for style in ("section.0000", "sections.0000"):
        path = tmp_path / "o.magc"
        path.write_text(
            f"[sections]\nnumber = 2\n\n[{style}]\npolygon = 0,0,10,0,10,5\n\n"
            f"[{style[:-1]}1]\npolygon = 20,0,30,0,30,5\n\n[{header}]\n{key} = 1,0\n\n"
            f"[{'tsporder' if header == 'serial_order' else 'stage_order'}]\n"
            f"{'tsporder' if header == 'serial_order' else 'stage_order'} = 1,0\n"
        )
        magc = read_magc(path)
        assert magc.serial_order == [1, 0] and magc.stage_order == [1, 0]
        assert magc.dialect == ("sbemimage" if style.startswith("sections") else "magfinder")


def test_sbemimage_dialect_ids_have_4_digits(tmp_path):
    sections = _detections(n=3)
    write_sections(tmp_path / "s.magc", sections, magc_dialect="sbemimage", landmarks=LANDMARKS)
    text = (tmp_path / "s.magc").read_text()
    for header in ("[sections.0002]", "[magnets.0002]", "[landmarks.0002]", "[serialorder]", "[tsporder]"):
        assert header in text
    assert "[sections]\nnumber = 3" in text


def test_written_sections_follow_the_convention(detected):
    _, sections, paths = detected
    for s in read_sections(paths["tissue"]):
        assert_convention(s.tissue.polygon, s.magnet.polygon)
    for s in read_magc(paths["magc"]).sections:
        assert_convention(s.tissue.polygon, s.magnet.polygon)
        assert angle_gap(screen_angle(s.tissue.polygon[1] - s.tissue.polygon[0]), section_direction(s)) < 1e-9
    assert math.isfinite(section_direction(sections[0]))
    assert Path(paths["labelme"]).is_file()


def test_sbemimage_grid_entries_stay_at_the_end(tmp_path):
    """SBEMimage rewrites its file from the first line holding 'sbemimage_sections' on."""
    src = tmp_path / "wafer.magc"
    src.write_text(
        SBEMIMAGE_STYLE.replace(
            "[serialorder]",
            "[sbemimage_sections]\nnumber = 1\n\n[sbemimage_sections.0]\ncenter = 1,2\nangle = 30.0\n\n[serialorder]",
        )
    )
    magc = read_magc(src)
    out = tmp_path / "out.magc"
    write_sections(out, magc.sections, "magc", magc_dialect="sbemimage", magc_entries=magc.entries)
    text = out.read_text()
    assert text.index("[tsporder]") < text.index("[sbemimage_sections]") < text.index("[sbemimage_sections.0]")
    assert text.rstrip().endswith("angle = 30.0")
