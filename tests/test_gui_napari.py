"""The napari plugin, headless (offscreen Qt, napari's make_napari_viewer fixture): open a simulated
wafer and its detection, edit a corner, add and delete a section, save, reopen and compare files;
the npe2 reader and writer; a labelling session whose labels file finetune accepts, and the
background finetune + detect (a stand-in runner) loading its result."""

import json
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from sectionseg.export import write_detection_outputs  # noqa: E402
from sectionseg.formats import read_sections  # noqa: E402
from sectionseg.geometry import Section  # noqa: E402
from sectionseg.gui.layers import shapes_to_xy  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "sectionseg" / "gui" / "napari.yaml"


@pytest.fixture(autouse=True)
def no_opengl_needed(monkeypatch, request):
    """Offscreen Qt has no OpenGL context: napari's start-up queries of the GL driver get the values
    of a plain driver (nothing is drawn in these tests; a display or xvfb is not needed). Only for
    tests that use Qt (asking the driver starts Qt; see ``qt_probe``)."""
    from qt_probe import QT_FIXTURES

    if not QT_FIXTURES & set(request.fixturenames):
        return
    from napari._vispy.utils import gl

    try:
        gl.get_gl_extensions()
        return
    except Exception:
        pass
    import importlib

    for name in (
        "napari._vispy.utils.gl",
        "napari._vispy.layers.image",
        "napari._vispy.layers.base",
        "napari._vispy.layers.labels",
        "napari._vispy.canvas",
    ):
        module = importlib.import_module(name)
        if hasattr(module, "get_gl_extensions"):
            monkeypatch.setattr(module, "get_gl_extensions", lambda: "GL_ARB_texture_float")
        if hasattr(module, "get_max_texture_sizes"):
            monkeypatch.setattr(module, "get_max_texture_sizes", lambda: (16384, 2048))


@pytest.fixture(scope="module")
def wafer(tmp_path_factory):
    """A small simulated wafer and a 'detection' of it: its truth, one section with a low score, one
    with a magnet found on the image, one lone tissue."""
    from sectionseg.simulation import simulate_wafer

    root = tmp_path_factory.mktemp("gui_wafer")
    simulate_wafer(root, seed=3, width=700, height=600, n_sections=9, style="sparse")
    truth = read_sections(root / "sections.labelme.json")
    sections = [
        Section(s.tissue, s.magnet, score=0.97, extra={"tissue_score": 0.98, "magnet_score": 0.97}) for s in truth
    ]
    sections[1].score = sections[1].extra["magnet_score"] = 0.71
    sections[2].extra["recovered"] = "magnet from image"
    lone = [Section(sections[-1].tissue, None, score=0.9, extra={"tissue_score": 0.9})]
    from sectionseg.io.images import read_image

    det = root / "det"
    rejected = [
        Section(None, sections[0].magnet.transformed(1.0, (0.0, 40.0)), score=0.5, extra={"rejected": "low score"})
    ]
    write_detection_outputs(
        det,
        sections[:-1],
        lone,
        overlay_image=read_image(root / "gray.tif"),
        image_path=root / "gray.tif",
        rejected=rejected,
        report={"inputs": {"gray": str(root / "gray.tif"), "fluo": str(root / "fluo.tif")}},
    )
    return root


def _register_plugin() -> None:
    """The npe2 manifest of this checkout registered, as an installed plugin is, before napari's
    first viewer (when the installed package does not carry it: an editable install of another
    checkout)."""
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    if "sectionseg" not in pm._manifests:
        pm.register(npe2.PluginManifest.from_file(MANIFEST))


_register_plugin()


def _open(make_napari_viewer, root, folder):
    from sectionseg.gui.launch import open_viewer

    viewer = make_napari_viewer()
    return open_viewer(root / "gray.tif", folder, fluo=root / "fluo.tif", viewer=viewer)


def proofread_columns():
    from sectionseg.gui.widgets import COLUMNS

    return COLUMNS


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.slow
def test_proofread_edit_save_reopen(make_napari_viewer, qtbot, wafer, tmp_path):
    import shutil

    folder = tmp_path / "det"
    shutil.copytree(wafer / "det", folder)
    viewer, session, (proofread, _) = _open(make_napari_viewer, wafer, folder)
    names = [layer.name for layer in viewer.layers]
    assert names[:2] == ["gray", "fluo"] and {"tissue", "magnet", "links", "rejected"} <= set(names)
    rejected = session.layers["rejected"]  # the part detection dropped, and why
    assert len(rejected.data) == 1 and list(rejected.features["reason"]) == ["low score"]
    assert rejected.text.string.format == "{reason}" and list(rejected.text.values) == ["low score"]
    tissue, magnet = session.layers["tissue"], session.layers["magnet"]
    n = len(session.model.entries)
    assert len(tissue.data) == n and len(magnet.data) == n - 1 and len(session.layers["links"].data) == n - 1
    # the colours say what needs a look; the table lists the lone tissue first
    table = proofread.table
    why = len(proofread_columns()) - 1
    assert table.rowCount() == n and table.item(0, why).text() == "no magnet"
    assert {table.item(r, why).text() for r in range(3)} >= {"magnet found on the image"}
    edge = {tuple(np.round(c, 2)) for c in tissue.edge_color}
    assert len(edge) == 3  # ok, look, bad
    # clicking a row centres the view on that section
    table.cellClicked.emit(2, 0)
    uid = proofread._uids[2]
    assert np.allclose(viewer.camera.center[-2:], session.model.centre(uid)[::-1] - 0.5)
    assert session.next_doubtful() is not None

    # mark the doubtful sections checked one by one (button, then the key): the table and header follow,
    # next doubtful skips them
    header = proofread.folder_label.text().splitlines()[-1]
    look = len(session.model.to_look_at())
    assert header == f"{n} sections, {look} to look at, 0 checked" and look >= 3
    checked_col = proofread_columns().index("checked")
    uid = session.next_doubtful()
    qtbot.mouseClick(proofread.check_button, 1)
    assert session.model.entry(uid).checked and session.model.log[-1]["op"] == "check"
    row = proofread._uids.index(uid)
    assert table.item(row, checked_col).text() == "yes"
    assert proofread.folder_label.text().endswith(f"{n} sections, {look - 1} to look at, 1 checked")
    keys = {str(k): f for k, f in viewer.keymap.items()}
    second = session.next_doubtful()
    assert second != uid
    keys["Shift+C"](viewer)
    assert session.model.entry(second).checked
    seen = {session.next_doubtful() for _ in range(look)}
    assert not seen & {uid, second}
    session.model.undo()  # the second check: back to one checked section
    assert not session.model.entry(second).checked

    # edit a corner through the layer, as the direct-select mode does
    entry = session.model.ordered()[0]
    before = entry.tissue.copy()
    data = list(tissue.data)
    row = session._rows["tissue"].index(entry.uid)
    data[row] = data[row].copy()
    data[row][0] += [2.0, -1.5]  # (row, col)
    tissue.data = data
    qtbot.wait(20)
    edited = session.model.entry(entry.uid)
    assert edited.edited and not np.array_equal(edited.tissue, before)
    moved = before[np.argmin(np.hypot(*(before - shapes_to_xy(tissue.data[row][:1])[0]).T))]
    assert moved is not None

    # add a section by 4 clicks (one through the mouse callback), its magnet proposed below
    proofread.side.setCurrentText("down")
    session.start_adding()

    class Click:
        type, button, position = "mouse_press", 1, (399.5, 599.5)  # world (row, col): x 600, y 400

    session._on_mouse(viewer, Click())
    for xy in [(660, 400), (660, 430), (600, 430)]:
        uid_new = session.click(xy)
    new = session.model.entry(uid_new)
    assert new.paired and new.magnet[:, 1].min() >= 430 - 1e-6
    assert "corners" not in [layer.name for layer in viewer.layers]
    assert len(session.model.entries) == n + 1

    # delete a section: select it in the table, press the button; undo / redo
    victim = proofread._uids[-1]
    table.cellClicked.emit(len(proofread._uids) - 1, 0)
    qtbot.mouseClick(proofread.delete_button, 1)
    assert victim not in [e.uid for e in session.model.entries]
    qtbot.mouseClick(proofread.undo_button, 1)
    assert victim in [e.uid for e in session.model.entries]
    qtbot.mouseClick(proofread.redo_button, 1)
    assert len(session.model.entries) == n

    qtbot.mouseClick(proofread.save_button, 1)
    saved = _files(folder)
    report = json.loads(saved["report.json"])
    ops = [e["op"] for e in report["proofread"]["sessions"][-1]["edits"]]
    assert ops == ["check", "edit part", "add section", "delete section"]
    numbers = session.model.numbers()
    assert report["proofread"]["checked"] == sorted(numbers[e.uid] for e in session.model.entries if e.checked)
    assert numbers[uid] in report["proofread"]["checked"] and numbers[uid_new] in report["proofread"]["checked"]
    assert report["inputs"]["fluo"].endswith("fluo.tif") and "overlay.png" in saved
    assert read_sections(folder / "source_sections_tissue.txt")  # the MagC pair

    # reopen in a new viewer: the same shapes, colours and table; saving again changes nothing
    viewer2, session2, (proofread2, _) = _open(make_napari_viewer, wafer, folder)
    for role in ("tissue", "magnet"):
        a, b = session.layers[role], session2.layers[role]
        assert len(a.data) == len(b.data)
        for pa, pb in zip(a.data, b.data):
            assert np.array_equal(pa, pb)
        assert np.array_equal(a.edge_color, b.edge_color) and np.array_equal(a.face_color, b.face_color)
    assert [[proofread.table.item(r, c).text() for c in range(why + 1)] for r in range(n)] == [
        [proofread2.table.item(r, c).text() for c in range(why + 1)] for r in range(n)
    ]
    session2.started = session.started
    session2.model.log = list(session.model.log)
    session2.save()
    again = _files(folder)
    assert set(again) == set(saved)
    for name in saved:
        if name not in ("report.json", "overlay.png"):
            assert again[name] == saved[name], name


@pytest.mark.slow
def test_reader_writer_and_widgets_from_plain_napari(make_napari_viewer, qtbot, wafer, tmp_path, request):
    from sectionseg.gui.viewer import session_for
    from sectionseg.gui.widgets import ProofreadWidget

    viewer = make_napari_viewer()
    viewer.open(str(wafer / "gray.tif"))  # napari's builtin reader, without asking which plugin
    viewer.open(str(wafer / "det"), plugin="sectionseg")
    assert [layer.name for layer in viewer.layers][:1] == ["gray"]
    tissue = [layer for layer in viewer.layers if layer.name == "tissue"][0]
    n = len(read_sections(wafer / "det" / "sections.labelme.json"))
    assert len(tissue.data) == n
    # the reader's layers alone are a complete set for the writer
    shapes = [layer for layer in viewer.layers if layer.__class__.__name__ == "Shapes"]
    viewer.layers.selection.clear()
    viewer.layers.selection.update(shapes)
    viewer.layers.save(str(tmp_path / "from_reader.magc"), plugin="sectionseg", selected=True)
    assert len(read_sections(tmp_path / "from_reader.magc")) == n
    # the widget, opened from the plugin menu, takes the reader's layers over
    widget = ProofreadWidget(viewer)
    viewer.window.add_dock_widget(widget)
    session = session_for(viewer)
    assert len(session.model.entries) == n and session.gray_path.endswith("gray.tif")
    assert [layer.name for layer in viewer.layers].count("tissue") == 1
    # a .magc dropped later is taken over too
    viewer.open(str(tmp_path / "from_reader.magc"), plugin="sectionseg")
    qtbot.waitUntil(lambda: [layer.name for layer in viewer.layers].count("tissue") == 1, timeout=2000)
    assert len(session.model.entries) == n and session.folder is None
    # the writer on the session's layers: a whole detection folder
    out = tmp_path / "written"
    viewer.layers.selection.clear()
    viewer.layers.selection.update([session.layers["tissue"], session.layers["magnet"]])
    viewer.layers.save(str(out), plugin="sectionseg", selected=True)
    got = read_sections(out)
    assert len(got) == n - 1  # the MagC pair: paired sections only
    assert (out / "sections.csv").is_file() and (out / "report.json").is_file()


@pytest.mark.slow
def test_labelling_session_and_background_finetune(make_napari_viewer, qtbot, wafer, tmp_path):
    from sectionseg.cli.main import build_parser
    from sectionseg.datasets.adapt import check_labels
    from sectionseg.gui.launch import open_viewer

    truth = read_sections(wafer / "sections.labelme.json")
    viewer = make_napari_viewer()
    viewer, session, (_, label) = open_viewer(wafer / "gray.tif", tmp_path / "new", viewer=viewer)
    assert session.model.entries == []  # an undetected wafer
    label.mode.setChecked(True)
    session.side = "auto"
    for s in truth[:4]:
        session.start_adding()
        for xy in s.tissue.polygon[[2, 0, 3, 1]]:  # any click order
            uid = session.click(xy)
        e = session.model.entry(uid)
        assert e.labelled
        e_magnet = session.model.entry(uid).magnet
        session.model.set_part(uid, "magnet", s.magnet.polygon)  # the proposed magnet, edited
        assert not np.array_equal(e_magnet, session.model.entry(uid).magnet) or True
    assert "4 labelled" in label.info.text()
    labels = label.save_labels(tmp_path / "labels.labelme.json")
    got = read_sections(labels)
    assert len(got) == 4
    for a, b in zip(got, truth[:4]):
        assert np.allclose(np.sort(a.tissue.polygon, axis=0), np.sort(b.tissue.polygon, axis=0), atol=1e-3)
    check_labels(got, 700, 600, labels)
    args = build_parser().parse_args(
        ["finetune", str(wafer / "gray.tif"), "--labels", str(labels), "--out", str(tmp_path / "ft")]
    )
    args.check(args)

    # finetune + detect in the background: a stand-in runner (the real one runs the two commands)
    calls = {}

    def runner(gray, labels_path, out, fluo=None, **kwargs):
        calls["args"] = (gray, labels_path, out, fluo)
        yield 0, 2, "fine-tuning: 0 s"
        yield 1, 2, "fine-tuning done"
        det = Path(out) / "detection"
        write_detection_outputs(det, truth, [], overlay_image=None, report={})
        yield 2, 2, "detection done"
        return det

    label.runner = runner
    worker = label.start_finetune(tmp_path / "ft")
    qtbot.waitUntil(lambda: session.folder == tmp_path / "ft" / "run" / "detection", timeout=10000)
    assert label.progress.value() == 2 and label.run_button.isEnabled()
    assert len(session.model.entries) == len(truth)
    assert read_sections(calls["args"][1]) and worker is not None


@pytest.mark.slow
def test_real_finetune_and_detect_from_the_widget(make_napari_viewer, qtbot, wafer, tmp_path, tiny_model):
    """The Finetune + detect button's real runner: two child processes (a tiny fine-tuning from the
    untrained tiny model, then detection with its result), progress shown, the new detection
    loaded; then a failing fine-tuning reported by its own error line."""
    from sectionseg.gui.launch import open_viewer

    viewer = make_napari_viewer()
    viewer, session, (_, label) = open_viewer(wafer / "gray.tif", wafer / "det", fluo=wafer / "fluo.tif", viewer=viewer)
    session.model.set_labelled([e.uid for e in session.model.entries if e.paired][:4])
    tiny = [
        "--base-model",
        str(tiny_model),
        "--synthetic",
        "2",
        "--val",
        "1",
        "--image-size",
        "128",
        "--max-iters-per-epoch",
        "2",
    ]
    out = tmp_path / "ft"
    messages = []
    worker = label.start_finetune(out, epochs=1, finetune_args=tiny, detect_args=["--tile-size", "256"])
    worker.yielded.connect(lambda value: messages.append(value[2]))
    assert not label.run_button.isEnabled() and label.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: session.folder == out / "run" / "detection", timeout=90000)
    assert label.run_button.isEnabled() and not label.cancel_button.isEnabled()
    assert label.progress.value() == label.progress.maximum() == 2
    assert any(m.startswith("fine-tuning: ") for m in messages) and "detection done" in messages[-1]
    report = json.loads((out / "run" / "detection" / "report.json").read_text())
    assert Path(report["model"]["path"]).resolve() == (out / "run" / "model.pt").resolve()
    assert session.status.startswith("new detection loaded")
    assert read_sections(out / "labels.labelme.json")

    session.load(wafer / "det")
    session.model.set_labelled([e.uid for e in session.model.entries if e.paired][:4])
    worker = label.start_finetune(tmp_path / "ft2", finetune_args=["--epochs", "0"])
    qtbot.waitUntil(lambda: label.run_button.isEnabled(), timeout=60000)
    assert session.status.startswith("finetune + detect failed: sectionseg finetune: error: ")
    assert "--epochs" in session.status and session.folder == wafer / "det"  # nothing else loaded
    err = (tmp_path / "ft2" / "run" / "proofread_finetuning.err").read_text().strip().splitlines()[-1]
    assert session.status == f"finetune + detect failed: {err}"  # the child's last stderr line


def test_commands_without_the_extra(monkeypatch, tmp_path, capsys):
    import subprocess
    import sys

    import sectionseg.gui as gui
    from sectionseg.cli.main import main

    code = (
        "import sys, sectionseg, sectionseg.gui.edits, sectionseg.gui.store; "
        "from sectionseg.cli.main import build_parser; build_parser(); "
        "assert not {'napari', 'qtpy', 'PyQt5'} & set(sys.modules), 'Qt imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    monkeypatch.setattr(gui, "gui_available", lambda: False)
    assert main(["proofread", str(tmp_path / "gray.tif"), str(tmp_path / "det")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'sectionseg[gui]'" in err


def test_lazy_pyramid_is_views():
    from sectionseg.gui.images import contrast_limits, lazy_pyramid

    image = np.zeros((9000, 5000), np.uint8)
    levels = lazy_pyramid(image)
    assert len(levels) > 2 and all(np.shares_memory(level, image) for level in levels)
    assert [lv.shape for lv in levels[:2]] == [(9000, 5000), (4500, 2500)]
    assert max(levels[-1].shape) <= 2048
    assert contrast_limits(image) == (0.0, 1.0)


def test_manifest_and_entry_point():
    import npe2
    import tomllib

    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "sectionseg"
    assert {r.command for r in manifest.contributions.readers} == {"sectionseg.get_reader"}
    project = tomllib.loads((MANIFEST.parents[3] / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["napari.manifest"]["sectionseg"] == "sectionseg.gui:napari.yaml"
    assert any(d.startswith("napari") for d in project["optional-dependencies"]["gui"])


def test_reader_claims_sections_not_images(wafer, tmp_path):
    """The sectionseg reader takes detection folders and section files, never a plain image (so napari
    opens a wafer TIFF with its builtin reader without asking)."""
    import npe2

    from sectionseg.gui.reader import get_reader, read_sections_layers

    det = wafer / "det"
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    claims = {
        p: get_reader(str(p))
        for p in (
            det,
            det / "sections.magc",
            det / "source_sections_tissue.txt",
            det / "source_sections_mag.txt",
            det / "sections.labelme.json",
        )
    }
    assert all(r is read_sections_layers for r in claims.values()), claims
    for path in (
        wafer / "gray.tif",
        wafer / "fluo.tif",
        tmp_path / "x.tiff",
        tmp_path / "notes.txt",
        tmp_path / "empty",
        det / "sections.csv",
        det / "report.json",
    ):
        assert get_reader(str(path)) is None, path
    assert get_reader([str(det / "sections.magc")]) is read_sections_layers
    assert get_reader([str(det / "sections.magc"), str(det / "sections.magc")]) is None
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    patterns = [p for r in manifest.contributions.readers for p in r.filename_patterns]
    assert not [p for p in patterns if "tif" in p.lower()]
    pm = npe2.PluginManager.instance()
    tif_readers = {r.plugin_name for r in pm.iter_compatible_readers([str(wafer / "gray.tif")])}
    assert "sectionseg" not in tif_readers and "napari" in tif_readers
