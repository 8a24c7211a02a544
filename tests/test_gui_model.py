"""The proofreading model without Qt: coordinates, corner order, edits with undo, doubt, save and
reopen through detect's writer, labels that finetune accepts."""

import csv
import json

import numpy as np
import pytest

from sectionseg.export import write_detection_outputs
from sectionseg.geometry import Section, canonical_section
from sectionseg.geometry.orientation import section_direction
from sectionseg.gui.doubt import section_doubt
from sectionseg.gui.edits import ProofreadModel, propose_magnet, quad_of
from sectionseg.gui.layers import SHAPES_TRANSLATE, shapes_to_xy, world_to_xy, xy_to_shapes, xy_to_world
from sectionseg.gui.store import load_annotations, model_from, save_session
from sectionseg.simulation import random_layout


def _wafer(seed=0, n=8):
    rng = np.random.default_rng(seed)
    layout = random_layout(rng, 900, 700, n_sections=n + 2, dummy_probability=0.0)
    sections = [
        Section(s.tissue, s.magnet, score=0.95, extra={"tissue_score": 0.97, "magnet_score": 0.95}) for s in layout[:n]
    ]
    sections[1].extra["recovered"] = "magnet from image"
    sections[2].score, sections[2].extra["magnet_score"] = 0.72, 0.72
    unpaired = [Section(layout[n].tissue, None, score=0.91, extra={"tissue_score": 0.91})]
    return sections, unpaired


def test_shapes_round_trip_is_exact(rng):
    xy = rng.uniform(-3, 20000, size=(50, 2))
    xy[:3] = [[0.0, 0.0], [0.1, 0.3], [1e-9, 0.5]]
    data = xy_to_shapes(xy)
    assert np.array_equal(shapes_to_xy(data, SHAPES_TRANSLATE), xy)
    assert np.array_equal(data, xy[:, ::-1])
    # a layer without translate (drawn by the user elsewhere): pixel centres at integers
    assert np.allclose(shapes_to_xy(np.array([[10.0, 20.0]]), (0, 0)), [[20.5, 10.5]])
    # a click at the centre of pixel (col 7, row 3) -> its centre in our convention
    assert np.allclose(world_to_xy((3.0, 7.0)), [7.5, 3.5])
    assert np.allclose(world_to_xy(xy_to_world((7.5, 3.5))), [7.5, 3.5])


def test_corner_order_follows_convention_whatever_the_clicks():
    rect = np.array([[100, 100], [180, 100], [180, 140], [100, 140]], float)
    model = ProofreadModel()
    directions = set()
    for order in ([0, 1, 2, 3], [2, 0, 3, 1], [3, 2, 1, 0], [1, 3, 0, 2]):
        uid = model.add_section(rect[order], side="down")
        e = model.entry(uid)
        want = canonical_section(Section(e.tissue, e.magnet))
        assert np.array_equal(e.tissue, want.tissue.polygon) and np.array_equal(e.magnet, want.magnet.polygon)
        assert np.mean(e.magnet[:, 1]) > 140  # the magnet below, as asked
        directions.add(round(section_direction(Section(e.tissue, e.magnet)), 6))
    assert directions == {90.0}  # magnet-to-tissue: up
    assert np.allclose(sorted(map(tuple, quad_of(rect[[2, 0, 3, 1]]))), sorted(map(tuple, rect)))


def test_propose_magnet_sides():
    tissue = np.array([[0, 0], [100, 0], [100, 40], [0, 40]], float)
    up = propose_magnet(tissue, "up", 20)
    assert up[:, 1].min() == pytest.approx(-20) and up[:, 1].max() == pytest.approx(0)
    right = propose_magnet(np.array([[0, 0], [40, 0], [40, 100], [0, 100]], float), "right", 10)
    assert right[:, 0].min() == pytest.approx(40) and right[:, 0].max() == pytest.approx(50)


def test_edits_and_undo():
    sections, unpaired = _wafer()
    model = ProofreadModel(sections + unpaired)
    n = len(model.entries)
    uid = model.entries[0].uid
    before = model.entry(uid).tissue.copy()
    model.move_corner(uid, "tissue", 0, before[0] + [3.0, -2.0])
    assert model.entry(uid).edited and not np.array_equal(model.entry(uid).tissue, before)
    model.delete_section(model.entries[1].uid)
    assert len(model.entries) == n - 1
    assert model.undo() and model.undo()
    assert len(model.entries) == n and np.array_equal(model.entry(uid).tissue, before)
    assert not model.entry(uid).edited and model.log == []
    assert model.redo() and model.log[-1]["op"] == "edit part"
    # re-pair: the lone tissue takes the magnet of section 3, whose tissue is then alone
    lone = model.entries[-1].uid
    third = model.entries[3].uid
    model.pair(lone, third)
    assert model.entry(lone).paired and model.entry(third).magnet is None
    paired, alone = model.sections()
    assert len(paired) == len(sections) and len(alone) == 1


def test_doubt_reasons():
    sections, unpaired = _wafer()
    model = ProofreadModel(sections + unpaired)
    doubts = model.doubts()
    by_number = {model.numbers()[u]: d for u, d in doubts.items()}
    assert by_number[0].level == "ok"
    assert "magnet found on the image" in by_number[1].reasons
    gray = Section(sections[0].tissue, sections[0].magnet, extra={"recovered": "tissue from the gray image alone"})
    (second_look,) = ProofreadModel([gray]).doubts().values()
    assert "tissue found on the gray image alone" in second_look.reasons
    assert any(r.startswith("low score 0.72") for r in by_number[2].reasons)
    assert by_number[len(sections)].reasons[0] == "no magnet" and by_number[len(sections)].level == "bad"
    assert model.by_doubt()[0][0].uid == model.entries[-1].uid
    big = np.array([[0, 0], [400, 0], [400, 200], [0, 200]], float)
    d = section_doubt(big, big, score=0.99, medians={"tissue": 1000.0, "magnet": 1000.0})
    assert d.value == 2 and "tissue 80.0x the usual area" in d.reasons
    # an edited section: its score no longer counts
    assert section_doubt(big, big, score=0.1, edited=True).value == 0


def test_save_reopen_same_files_and_state(tmp_path):
    sections, unpaired = _wafer()
    image = np.full((700, 900), 150, np.uint8)
    gray = tmp_path / "gray.tif"
    from sectionseg.io.images import write_image

    write_image(gray, image)
    det = tmp_path / "det"
    write_detection_outputs(
        det,
        sections,
        unpaired,
        overlay_image=image,
        image_path=gray,
        magc_dialect="sbemimage",
        report={"inputs": {"gray": str(gray)}, "magc_dialect": "sbemimage"},
    )
    with open(det / "sections.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[1]["repairs"] == "recovered=magnet_from_image" and rows[0]["repairs"] == ""
    loaded = load_annotations(det)
    model = model_from(loaded)
    assert model.entries[1].extra["recovered"] == "magnet from image"
    assert model.entries[2].extra["magnet_score"] == pytest.approx(0.72)
    uid = model.entries[0].uid
    model.move_corner(uid, "tissue", 1, model.entry(uid).tissue[1] + [2.0, 1.0])
    model.add_section([[600, 600], [660, 600], [660, 630], [600, 630]], side="up")
    model.delete_section(model.entries[4].uid)
    model.set_labelled([e.uid for e in model.entries if e.paired][:3])
    save_session(det, model, report=loaded.report, gray=image, gray_path=gray, session_start="s1")
    first = {p.name: p.read_bytes() for p in det.iterdir() if p.is_file()}
    assert "labels.labelme.json" in first
    report = json.loads(first["report.json"])
    assert report["magc_dialect"] == "sbemimage" and "[sections.0000]" in first["sections.magc"].decode()
    assert [e["op"] for e in report["proofread"]["sessions"][0]["edits"]] == [
        "edit part",
        "add section",
        "delete section",
        "label",
    ]
    # reopen: the same sections, flags and doubts; saving again writes the same files
    again = load_annotations(det)
    model2 = model_from(again)
    assert len(model2.entries) == len(model.entries)
    for a, b in zip(model.ordered(), model2.ordered()):
        for role in ("tissue", "magnet"):
            pa, pb = a.part(role), b.part(role)
            assert (pa is None) == (pb is None)
            if pa is not None:
                assert np.allclose(pa, pb, atol=1e-3)
        assert (a.labelled, a.edited) == (b.labelled, b.edited)
    assert [d.level for _, d in model.by_doubt()] == [d.level for _, d in model2.by_doubt()]
    model2.log = list(model.log)
    save_session(det, model2, report=again.report, gray=image, gray_path=gray, session_start="s1")
    second = {p.name: p.read_bytes() for p in det.iterdir() if p.is_file()}
    assert set(first) == set(second)
    for name in first:
        if name not in ("report.json", "overlay.png"):
            assert first[name] == second[name], name
    strip = lambda r: {k: v for k, v in json.loads(r).items() if k != "proofread"}  # noqa: E731
    assert strip(first["report.json"]) == strip(second["report.json"])


def test_labels_file_accepted_by_finetune(tmp_path):
    from sectionseg.cli.main import build_parser
    from sectionseg.datasets.adapt import check_labels
    from sectionseg.formats import read_sections
    from sectionseg.gui.store import write_labels
    from sectionseg.io.images import write_image

    sections, _ = _wafer()
    model = ProofreadModel(sections)
    model.set_labelled([e.uid for e in model.entries][:5])
    gray = tmp_path / "gray.tif"
    write_image(gray, np.full((700, 900), 150, np.uint8))
    labels = write_labels(tmp_path / "labels.json", model, gray_path=gray, image_size=(900, 700))
    got = read_sections(labels)
    assert len(got) == 5
    check_labels(got, 900, 700, labels)
    args = build_parser().parse_args(["finetune", str(gray), "--labels", str(labels), "--out", str(tmp_path / "ft")])
    args.check(args)


def _centre_key(section) -> tuple:
    return tuple(np.round(np.mean(section.tissue.polygon, axis=0), 1))


def test_magc_orders_kept_through_edits(tmp_path):
    """A serial order set on the folder (as ``sectionseg order`` does), a stage order and landmarks
    survive a delete and an add: the others keep their relative order, the new section is appended
    at the end of the serial order (noted in the report) and put into the stage path."""
    from sectionseg.formats import MagcEntry, read_magc
    from sectionseg.serial.magc import set_serial_order

    sections, unpaired = _wafer()
    det = tmp_path / "det"
    landmarks = [(10.0, 10.0), (800.0, 20.0), (400.0, 650.0)]
    entries = [MagcEntry("roi.0000", [("polygon", "1,1,5,1,5,5")]), MagcEntry("focus", [("x", "1")])]
    stage = [7, 6, 5, 4, 3, 2, 1, 0]
    write_detection_outputs(
        det,
        sections,
        unpaired,
        overlay_image=None,
        report={},
        landmarks=landmarks,
        stage_order=stage,
        magc_entries=entries,
    )
    serial = [3, 0, 7, 1, 6, 2, 5, 4]
    set_serial_order(det, serial)
    original = read_magc(det / "sections.magc")
    assert original.serial_order == serial and original.stage_order == stage
    key_of = [_centre_key(s) for s in original.sections]

    model = model_from(load_annotations(det))
    assert model.magc is not None
    victim = model.entries[2]  # file section 2
    assert _centre_key(victim.section()) == key_of[2]
    model.delete_section(victim.uid)
    new_uid = model.add_section([[600, 600], [660, 600], [660, 630], [600, 630]], side="up")
    save_session(det, model, session_start="s1")

    got = read_magc(det / "sections.magc")
    keys = [_centre_key(s) for s in got.sections]
    new_key = _centre_key(model.entry(new_uid).section())
    assert [keys[i] for i in got.serial_order] == [key_of[i] for i in serial if i != 2] + [new_key]
    stage_keys = [keys[i] for i in got.stage_order]
    assert [k for k in stage_keys if k != new_key] == [key_of[i] for i in stage if i != 2]
    assert sorted(got.stage_order) == list(range(len(got.sections)))
    assert got.landmarks == landmarks
    assert [e.header for e in got.entries] == ["focus"]  # roi.0000 may name a section: numbers changed
    session = json.loads((det / "report.json").read_text())["proofread"]["sessions"][-1]
    assert "serial order: 1 section appended at the end; check it" in session["notes"]
    assert any("roi" in n or "numbered" in n for n in session["notes"])

    # reopened and saved again: the same orders, nothing appended
    model2 = model_from(load_annotations(det))
    save_session(det, model2, session_start="s2")
    again = read_magc(det / "sections.magc")
    assert (again.serial_order, again.stage_order) == (got.serial_order, got.stage_order)
    assert "notes" not in json.loads((det / "report.json").read_text())["proofread"]["sessions"][-1]


def test_checked_sections(tmp_path):
    sections, unpaired = _wafer()
    model = ProofreadModel(sections + unpaired)
    look = [e.uid for e in model.to_look_at()]
    assert len(look) == 3  # lone tissue, low score, magnet found on the image
    first = look[0]
    level = model.doubts()[first].level
    model.set_checked([first])
    assert model.entry(first).checked and first not in [e.uid for e in model.to_look_at()]
    same_level = [e.uid for e, d in model.by_doubt() if d.level == level]
    assert same_level[-1] == first  # after the unchecked ones of its doubt level
    assert model.log[-1]["op"] == "check"
    model.undo()
    assert not model.entry(first).checked
    # an edit marks the section checked
    uid = look[1]
    model.move_corner(uid, "tissue", 0, model.entry(uid).tissue[0] + [1.0, 1.0])
    assert model.entry(uid).checked and model.entry(uid).edited
    model.set_checked([first])
    det = tmp_path / "det"
    save_session(det, model, session_start="s1")
    record = json.loads((det / "report.json").read_text())["proofread"]
    numbers = model.numbers()
    assert record["checked"] == sorted([numbers[first], numbers[uid]])
    reopened = model_from(load_annotations(det))
    assert sorted(reopened.numbers()[e.uid] for e in reopened.entries if e.checked) == record["checked"]
    assert [e.uid for e in reopened.to_look_at()] == [
        e.uid for e in reopened.entries if not e.checked and reopened.doubts()[e.uid].value > 0
    ]


def test_qt_probe_and_skip_of_qt_tests(monkeypatch):
    """When Qt cannot start (here: a platform plugin that does not exist), the probe says why, from a
    child process, and the tests that need a QApplication are marked skipped with that reason."""
    import os

    import conftest
    import qt_probe

    reason = qt_probe.qt_problem(env={**os.environ, "QT_QPA_PLATFORM": "no-such-platform"})
    assert reason.startswith("Qt cannot start") and "no-such-platform" in reason

    class Item:
        def __init__(self, *names):
            self.fixturenames, self.markers = list(names), []

        def add_marker(self, marker):
            self.markers.append(marker)

    monkeypatch.setattr(qt_probe, "qt_problem", lambda: reason)
    items = [Item("make_napari_viewer", "qtbot"), Item("tmp_path"), Item("qapp")]
    conftest.pytest_collection_modifyitems(None, items)
    assert [[m.kwargs.get("reason") for m in i.markers] for i in items] == [[reason], [], [reason]]
    calls = []
    monkeypatch.setattr(qt_probe, "qt_problem", lambda: calls.append(1))
    conftest.pytest_collection_modifyitems(None, [Item("tmp_path")])
    assert calls == []  # no Qt test collected: no probe


def _sectionseg_children() -> list:
    import psutil

    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "sectionseg" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.Error:
            pass
    return out


def test_real_runner_cancel_close_and_error(tmp_path):
    """The child-process runner of finetune + detect (no Qt): extra options reach the commands;
    cancelling or closing it stops the running child."""
    import threading

    from sectionseg.gui.adapt import CommandFailed, commands, finetune_and_detect
    from sectionseg.io.images import write_image

    gray = tmp_path / "gray.tif"
    write_image(gray, np.full((300, 400), 120, np.uint8))
    labels = tmp_path / "labels.json"
    labels.write_text("{}")
    argv = dict(
        commands(gray, labels, tmp_path / "run", finetune_args=["--seed", "3"], detect_args=["--tile-size", "256"])
    )
    assert argv["fine-tuning"][-2:] == ["--seed", "3"] and argv["detection"][-2:] == ["--tile-size", "256"]

    cancel = threading.Event()
    run = finetune_and_detect(gray, labels, tmp_path / "run", cancel=cancel)
    step, steps, message = next(run)
    assert (step, steps) == (0, 2) and message.startswith("fine-tuning: ")
    assert _sectionseg_children()  # the child runs
    cancel.set()
    rest = []
    with pytest.raises(StopIteration) as stop:
        while True:
            rest.append(next(run))
    assert stop.value.value is None and rest[-1][2] == "fine-tuning cancelled"
    assert not _sectionseg_children()

    run = finetune_and_detect(gray, labels, tmp_path / "run2")
    next(run)
    run.close()  # the worker thread stopped
    assert not _sectionseg_children()

    assert not issubclass(CommandFailed, RuntimeError)  # napari's workers would swallow a RuntimeError
    # a failing command: tests/test_gui_napari.py::test_real_finetune_and_detect_from_the_widget
