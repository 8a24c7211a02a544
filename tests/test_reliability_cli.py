"""Reliability of the command line: every bad argument or unusable output place is one
line with exit 2 before any work; formats are validated; stale outputs never mix with new ones."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from sectionseg.cli.main import main
from sectionseg.formats import write_sections
from sectionseg.geometry import Section

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wafer(tmp_path_factory):
    out = tmp_path_factory.mktemp("wafer") / "w"
    assert (
        main(["simulate", "--out", str(out), "--seed", "1001", "--width", "500", "--height", "300", "--sections", "4"])
        == 0
    )
    return out


def run_cli(argv, capsys) -> tuple[int, str]:
    """``(exit code, stderr)`` of ``sectionseg ARGV`` run in this process."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_line_error(code, err, expected, code_wanted=2):
    lines = err.strip().splitlines()
    assert code == code_wanted, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]


# ------------------------------------------------------------------------------ option ranges (fuzz)
def _option_cases(w, m, out):
    g, labels, rgb = w / "gray.tif", w / "sections.magc", w / "rgb.tif"
    detect = ["detect", g, "--model", m, "--out", out]
    show = ["show", g, labels, "--out", out / "o.png"]
    tiles = ["tiles", rgb, "--labels", labels, "--out", out]
    synth = ["synth", rgb, "--labels", labels, "--count", "1", "--out", out]
    train = ["train", "--data", w, "--out", out]
    finetune = ["finetune", g, "--labels", w / "sections.labelme.json", "--base-model", m, "--out", out]
    return [
        (detect + ["--tile-size", "0"], "--tile-size must be in [64, 4096], got 0"),
        (detect + ["--tile-size", "-5"], "--tile-size"),
        (detect + ["--tile-size", "100000"], "--tile-size"),
        (detect + ["--overlap", "-1"], "--overlap"),
        (detect + ["--tile-size", "256", "--overlap", "200"], "at most half of --tile-size"),
        (detect + ["--batch-size", "0"], "--batch-size"),
        (detect + ["--workers", "0"], "--workers"),
        (detect + ["--proposals", "0"], "--proposals"),
        (detect + ["--proposals", "1000000"], "--proposals must be in [1, 5000]"),
        (detect + ["--score-threshold", "nan"], "--score-threshold"),
        (detect + ["--score-threshold", "1.5"], "--score-threshold"),
        (detect + ["--mask-threshold", "1"], "--mask-threshold must be in (0, 1)"),
        (detect + ["--section-size", "inf"], "--section-size must be in [8, 20000], got inf"),
        (detect + ["--section-size", "nan"], "--section-size"),
        (detect + ["--section-size", "-1"], "--section-size"),
        (detect + ["--pair-scale", "0"], "--pair-scale"),
        (detect + ["--pair-scale", "inf"], "--pair-scale"),
        (detect + ["--tile-size", "4096", "--batch-size", "64", "--workers", "8"], "GiB of memory"),
        (["simulate", "--out", out, "--seed", "-1"], "--seed must be in [0, 4294967295], got -1"),
        (["simulate", "--out", out, "--seed", str(2**32)], "--seed"),
        (["simulate", "--out", out, "--seed", "1", "--width", "10"], "width must be >= 64"),
        (
            ["simulate", "--out", out, "--seed", "1", "--width", "600", "--height", "600", "--sections", "100000"],
            "do not fit on a 600x600 px wafer",
        ),
        (["simulate", "--out", out, "--seed", "1", "--width", "100000", "--height", "100000"], "GiB of memory"),
        (["simulate", "--out", out, "--seed", "1", "--density", "1e9"], "density must be at most"),
        (["simulate", "--out", out, "--seed", "1", "--layout-scale", "0"], "--layout-scale"),
        (show + ["--max-side", "-10"], "--max-side"),
        (show + ["--fill", "2"], "--fill must be in [0, 1], got 2"),
        (show + ["--fill", "-1"], "--fill"),
        (show + ["--fill", "nan"], "--fill"),
        (show + ["--scale", "nan"], "--scale"),
        (["convert", labels, out / "x.json", "--image-size", "-5", "-5"], "--image-size"),
        (["convert", labels, out / "x.json", "--scale", "inf"], "--scale"),
        (tiles + ["--size", "0"], "--size"),
        (tiles + ["--size", "256", "--overlap", "256"], "--overlap must be smaller than --size"),
        (tiles + ["--min-area", "-1"], "--min-area"),
        (synth + ["--count", "-1"], "--count"),
        (synth + ["--sections-per-image", "4", "2"], "MIN must not exceed MAX"),
        (synth + ["--sections-per-image", "-1", "3"], "--sections-per-image"),
        (synth + ["--margin", "0"], "--margin"),
        (synth + ["--margin", "5000"], "--margin"),
        (synth + ["--margin", "200"], "at most a quarter of --size"),
        (["dataset", "--out", out, "--fractions", "nan", "0", "1"], "--fractions"),
        (["dataset", "--out", out, "--fractions", "0.8", "0.8", "0.8"], "add up to 1"),
        (["dataset", "--out", out, "--wafers", "0"], "--wafers"),
        (["dataset", "--out", out, "--wafer-size", "10"], "--wafer-size"),
        (["dataset", "--out", out, "--split", "-1", "0", "0"], "--split"),
        (["dataset", "--out", out, "--scale", "5"], "--scale must be in (0, 4]"),
        (["dataset", "--out", out, "--jobs", "0"], "--jobs"),
        (["dataset", "--out", out, "--styles", ","], "--styles names no style"),
        (train + ["--lr", "nan"], "--lr must be in (0, 10], got nan"),
        (train + ["--lr", "0"], "--lr"),
        (train + ["--epochs", "0"], "--epochs"),
        (train + ["--seed", "-5"], "--seed"),
        (train + ["--device", "gpu"], "--device must be cpu, cuda or cuda:N, got 'gpu'"),
        (train + ["--max-iters-per-epoch", "-1"], "--max-iters-per-epoch"),
        (finetune + ["--lr", "nan"], "--lr"),
        (finetune + ["--epochs", "0"], "--epochs"),
        (finetune + ["--image-size", "10"], "--image-size"),
        (finetune + ["--synthetic", "0"], "--synthetic"),
        (finetune + ["--val", "-1"], "--val"),
        (finetune + ["--scale", "0"], "--scale"),
        (["evaluate", "--data", w, "--model", m, "--out", out, "--score-threshold", "2"], "--score-threshold"),
        (["evaluate", "--data", w, "--model", m, "--out", out, "--device", "tpu"], "--device"),
        (["demo", "--out", out, "--size", "10"], "--size"),
        (["demo", "--out", out, "--seed", "-1"], "--seed"),
    ]


N_OPTION_CASES = 65


@pytest.mark.parametrize("case", range(N_OPTION_CASES))
def test_every_bad_option_value_is_one_line_before_any_work(case, wafer, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    cases = _option_cases(wafer, tiny_model, out)
    assert len(cases) == N_OPTION_CASES
    argv, expected = cases[case]
    code, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, expected)
    assert not out.exists()


def test_the_ranges_table_accepts_the_defaults():
    """Every command's defaults pass the shared range checks (and so does the parser's help)."""
    from sectionseg.cli._checks import check_options
    from sectionseg.cli.main import COMMANDS, build_parser

    parser = build_parser()
    minimal = {
        "detect": ["g.tif", "--out", "o"],
        "simulate": ["--out", "o", "--seed", "0"],
        "convert": ["a", "b"],
        "show": ["a", "b", "--out", "o.png"],
        "tiles": ["a", "--labels", "l", "--out", "o"],
        "synth": ["a", "--labels", "l", "--out", "o", "--count", "1"],
        "dataset": ["--out", "o"],
        "train": ["--data", "d", "--out", "o"],
        "finetune": ["g", "--labels", "l", "--out", "o"],
        "evaluate": ["--data", "d", "--out", "o"],
        "export-model": ["a", "b"],
        "demo": [],
        "order": ["beads", "--out", "o"],
        "proofread": ["g", "d"],
        "detect-batch": ["m.csv", "--out", "o"],
    }
    for command in COMMANDS:
        check_options(parser.parse_args([command, *minimal[command]]))


# ------------------------------------------------------------------------------ output places
def _place_cases(w, m, x):
    """argv of every command writing to ``x`` (a folder or a file name below it)."""
    g, labels = w / "gray.tif", w / "sections.magc"
    return {
        "detect": ["detect", g, "--model", m, "--out", x],
        "detect-batch": ["detect-batch", w, "--model", m, "--out", x],
        "simulate": ["simulate", "--seed", "1", "--width", "100", "--height", "100", "--out", x],
        "convert": ["convert", labels, x / "out.json"],
        "convert-pair": ["convert", labels, x / "pair"],
        "show": ["show", g, labels, "--out", x / "o.png"],
        "tiles": ["tiles", w / "rgb.tif", "--labels", labels, "--out", x],
        "synth": ["synth", w / "rgb.tif", "--labels", labels, "--count", "1", "--out", x],
        "dataset": ["dataset", "--wafers", "1", "--out", x],
        "train": ["train", "--data", w, "--out", x],
        "finetune": ["finetune", g, "--labels", w / "sections.labelme.json", "--base-model", m, "--out", x],
        "evaluate": ["evaluate", "--data", w, "--model", m, "--out", x],
        "export-model": ["export-model", m, x / "m.pt"],
        "demo": ["demo", "--model", m, "--out", x],
    }


PLACE_COMMANDS = [
    "detect",
    "detect-batch",
    "simulate",
    "convert",
    "convert-pair",
    "show",
    "tiles",
    "synth",
    "dataset",
    "train",
    "finetune",
    "evaluate",
    "export-model",
    "demo",
]


@pytest.mark.parametrize("command", PLACE_COMMANDS)
@pytest.mark.parametrize("place", ["proc", "below a file"])
def test_unusable_output_places_are_refused_first(command, place, wafer, tiny_model, tmp_path, capsys):
    if place == "proc":
        x, expected = Path("/proc/sectionseg-test"), "cannot write under /proc"
    else:
        (tmp_path / "a_file").write_text("")
        x, expected = tmp_path / "a_file" / "sub", "is a file"
    code, err = run_cli(_place_cases(wafer, tiny_model, x)[command], capsys)
    assert_one_line_error(code, err, expected)


@pytest.mark.parametrize("command", ["detect", "simulate", "tiles", "dataset", "train", "evaluate", "demo"])
def test_a_file_where_a_folder_is_expected(command, wafer, tiny_model, tmp_path, capsys):
    x = tmp_path / "a_file"
    x.write_text("")
    code, err = run_cli(_place_cases(wafer, tiny_model, x)[command], capsys)
    assert_one_line_error(code, err, "exists and is not a folder")


def test_a_folder_where_a_file_is_expected(wafer, tiny_model, tmp_path, capsys):
    (tmp_path / "o.png").mkdir()
    code, err = run_cli(["show", wafer / "gray.tif", wafer / "sections.magc", "--out", tmp_path / "o.png"], capsys)
    assert_one_line_error(code, err, "is a folder")
    (tmp_path / "m.pt").mkdir()
    code, err = run_cli(["export-model", tiny_model, tmp_path / "m.pt"], capsys)
    assert_one_line_error(code, err, "is a folder")


# ------------------------------------------------------------------------------ inputs
@pytest.mark.parametrize(
    "argv",
    [
        ["detect", "/nonexistent/g.tif", "--out", "{t}/o"],
        ["train", "--data", "/nonexistent", "--out", "{t}/o"],
        ["evaluate", "--data", "/nonexistent", "--model", "/nonexistent/m.pt", "--out", "{t}/o"],
        ["finetune", "/nonexistent/g.tif", "--labels", "/nonexistent/l.json", "--out", "{t}/o"],
        ["export-model", "/nonexistent/m.pt", "{t}/m.pt"],
        ["export", "/nonexistent/m.pt", "{t}/m.pt"],  # the alias
    ],
)
def test_a_missing_input_is_refused_before_torch_is_imported(argv, tmp_path):
    code = (
        "import sys; from sectionseg.cli.main import main; rc = main(sys.argv[1:]); print(rc, 'torch' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *[a.format(t=tmp_path) for a in argv]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
        timeout=120,
    )
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr
    assert "no such" in proc.stderr and "Traceback" not in proc.stderr


def test_model_that_is_a_folder_and_bad_backbone_weights(wafer, tiny_model, tmp_path, capsys):
    code, err = run_cli(["detect", wafer / "gray.tif", "--model", tmp_path, "--out", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "model file expected, but this is a folder")
    from sectionseg.model.build import build_model, load_backbone_weights
    from sectionseg.model.config import load_config

    text = tmp_path / "weights.pt"
    text.write_text("not a state dict\n")
    from sectionseg.errors import InputError

    with pytest.raises(InputError, match="cannot read backbone weights"):
        load_backbone_weights(build_model(load_config("tiny").model), text)


def test_detect_refuses_thin_and_constant_images(wafer, tiny_model, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "thin.tif", np.full((1, 100000), 7, np.uint8))
    tifffile.imwrite(tmp_path / "flat.tif", np.full((100, 120), 7, np.uint8))
    for name, expected in (("thin.tif", "at least 16 px"), ("flat.tif", "the value 7 everywhere")):
        code, err = run_cli(
            ["detect", tmp_path / name, "--model", tiny_model, "--out", tmp_path / "o", "--no-progress"], capsys
        )
        assert_one_line_error(code, err, expected)
        assert not (tmp_path / "o").exists()


def test_detect_with_nan_pixels_finds_a_finite_result_and_writes_strict_json(
    wafer, tiny_model, tmp_path, capsys, caplog
):
    import warnings

    gray = tifffile.imread(wafer / "gray.tif").astype(np.float32)
    gray[100:150, 200:260] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", gray)
    argv = [
        "detect",
        tmp_path / "nan.tif",
        "--model",
        tiny_model,
        "--out",
        tmp_path / "o",
        "--no-progress",
        "--section-size",
        "48",
        "--tile-size",
        "256",
        "--overlap",
        "64",
        "--workers",
        "1",
    ]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code, err = run_cli(argv, capsys)
    assert code == 0 and "3000 of 150000 pixels are NaN" in caplog.text, err
    assert not [w for w in seen if issubclass(w.category, RuntimeWarning)]
    text = (tmp_path / "o" / "report.json").read_text()
    assert "NaN" not in text and json.loads(text)["normalisation"]["gray"]["low"] is not None
    tifffile.imwrite(tmp_path / "allnan.tif", np.full((300, 500), np.nan, np.float32))
    code, err = run_cli(argv[:1] + [tmp_path / "allnan.tif"] + argv[2:4] + ["--out", tmp_path / "p"], capsys)
    assert_one_line_error(code, err, "no pixel of the image has a finite value")


def test_show_refuses_two_page_tiffs_and_a_name_without_extension(wafer, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "two.tif", np.zeros((2, 300, 500), np.uint8))
    code, err = run_cli(["show", tmp_path / "two.tif", wafer / "sections.magc", "--out", tmp_path / "o.png"], capsys)
    assert_one_line_error(code, err, "holds 2 images")
    code, err = run_cli(["show", wafer / "gray.tif", wafer / "sections.magc", "--out", tmp_path / "noext"], capsys)
    assert_one_line_error(code, err, "output file must end in")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.tif"]


def test_labels_outside_the_image_are_named(wafer, tmp_path, capsys, caplog):
    code, _ = run_cli(
        ["show", wafer / "gray.tif", wafer / "sections.magc", "--out", tmp_path / "o.png", "--scale", "3"], capsys
    )
    assert code == 0 and "reach outside the 500x300 px image" in caplog.text


# ------------------------------------------------------------------------------ formats
def _quad(x=0.0, y=0.0, w=40.0, h=20.0):
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])


def test_wrong_format_and_bad_coco_files_are_refused(tmp_path, capsys):
    write_sections(tmp_path / "l.json", [Section.from_arrays(_quad(), _quad(0, 20))], fmt="labelme")
    code, err = run_cli(["convert", tmp_path / "l.json", tmp_path / "o.json", "--from", "coco"], capsys)
    assert_one_line_error(code, err, 'not a COCO file: no "annotations" list')
    (tmp_path / "c.json").write_text(json.dumps({"images": [{"id": 1}], "categories": []}))
    code, err = run_cli(["convert", tmp_path / "c.json", tmp_path / "o.json"], capsys)
    assert_one_line_error(code, err, 'no "annotations" list')
    write_sections(tmp_path / "good.coco.json", [Section.from_arrays(_quad(), _quad(0, 20))], fmt="coco")
    doc = json.loads((tmp_path / "good.coco.json").read_text())
    doc["annotations"][1]["image_id"] = 7
    (tmp_path / "bad.coco.json").write_text(json.dumps(doc))
    code, err = run_cli(["convert", tmp_path / "bad.coco.json", tmp_path / "o.json"], capsys)
    assert_one_line_error(code, err, 'annotations[1]: image_id 7 is not in "images"')
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize(
    "tissue, expected",
    [
        ("5,5\t5,5\t5,5\t5,5", "all corners are the same point"),
        ("0,0\t10,10\t20,20\t30,30", "lie on one line"),
        ("0,0\t40,20\t40,0\t0,20", "crosses itself"),
        ("0,0\t1e308,0\t1e308,20\t0,20", "beyond 1e+07 px"),
    ],
)
def test_degenerate_polygons_and_huge_coordinates_name_the_line(tissue, expected, tmp_path, capsys):
    pair = tmp_path / "pair"
    pair.mkdir()
    (pair / "source_sections_tissue.txt").write_text("0,0\t40,0\t40,20\t0,20\t\n" + tissue + "\t\n")
    (pair / "source_sections_mag.txt").write_text("0,20\t40,20\t40,40\t0,40\t\n0,20\t40,20\t40,40\t0,40\t\n")
    code, err = run_cli(["convert", pair, tmp_path / "o.json"], capsys)
    assert_one_line_error(code, err, expected)
    assert "source_sections_tissue.txt:2:" in err


def test_convert_says_what_a_magc_pair_drops(tmp_path, capsys, caplog):
    sections = [Section.from_arrays(_quad(100 * k), _quad(100 * k, 20), _quad(100 * k, -8, 40, 6)) for k in range(3)]
    write_sections(tmp_path / "w.magc", sections, fmt="magc")
    code = main(["convert", str(tmp_path / "w.magc"), str(tmp_path / "pair")])
    printed = capsys.readouterr().out
    assert code == 0 and "dropped: 3 dummies" in printed and "3 dummies" in caplog.text


# ------------------------------------------------------------------------------ stale outputs, checkpoints
@pytest.mark.parametrize("command", ["tiles", "synth"])
def test_tiles_and_synth_refuse_a_used_folder_and_overwrite_replaces_it_whole(command, wafer, tmp_path, capsys):
    out = tmp_path / "ds"
    argv = [command, wafer / "rgb.tif", "--labels", wafer / "sections.labelme.json", "--out", out]
    argv += (
        ["--count", "2", "--size", "256", "--sections-per-image", "1", "2"]
        if command == "synth"
        else ["--size", "128", "--overlap", "16"]
    )
    assert run_cli(argv, capsys)[0] == 0
    (out / "images" / "stale_from_an_earlier_run.png").write_bytes(b"old")
    code, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, "pass --overwrite")
    assert run_cli(argv + ["--overwrite"], capsys)[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    listed = sorted(Path(it["image"]).name for it in manifest["splits"]["train"])
    assert sorted(p.name for p in (out / "images").iterdir()) == listed  # nothing stale left


def test_synth_refuses_more_sections_than_fit(wafer, tmp_path, capsys):
    code, err = run_cli(
        [
            "synth",
            wafer / "rgb.tif",
            "--labels",
            wafer / "sections.labelme.json",
            "--out",
            tmp_path / "s",
            "--count",
            "1",
            "--sections-per-image",
            "500",
            "600",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "sections of this wafer fit on a 512 px image")
    assert not (tmp_path / "s").exists()


def test_export_refuses_to_replace_the_checkpoint_and_resume_needs_training_state(tiny_model, tmp_path, capsys):
    import shutil

    import torch

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_model, run / "last.pt")
    payload = torch.load(run / "last.pt", weights_only=False)
    payload["training"] = {"epoch": 1}
    torch.save(payload, run / "ckpt.pt")
    code, err = run_cli(["export-model", run / "last.pt", run / "last.pt"], capsys)
    assert_one_line_error(code, err, "OUT is the checkpoint itself")
    code, err = run_cli(["export-model", run / "last.pt", run / "ckpt.pt"], capsys)
    assert_one_line_error(code, err, "OUT is a training checkpoint")
    assert torch.load(run / "ckpt.pt", weights_only=False)["training"] == {"epoch": 1}
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text(
        json.dumps(
            {"format": "sectionseg-dataset", "version": 1, "classes": ["tissue", "magnet"], "splits": {"train": []}}
        )
    )
    code, err = run_cli(["train", "--resume", "--data", data, "--out", run, "--no-progress"], capsys)
    assert_one_line_error(code, err, "last.pt holds no training state")


def test_evaluate_refuses_an_empty_split_and_missing_images(tiny_model, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    manifest = {
        "format": "sectionseg-dataset",
        "version": 1,
        "classes": ["tissue", "magnet"],
        "splits": {"train": [], "val": [], "test": []},
    }
    (data / "manifest.json").write_text(json.dumps(manifest))
    code, err = run_cli(["evaluate", "--data", data, "--model", tiny_model, "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "split 'test' has no images")
    manifest["splits"]["test"] = [{"image": "images/a.png", "annotations": "annotations/a.json"}]
    (data / "manifest.json").write_text(json.dumps(manifest))
    code, err = run_cli(["evaluate", "--data", data, "--model", tiny_model, "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "splits.test[0]: image images/a.png is missing")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------ machine errors
@pytest.mark.parametrize(
    "error, expected",
    [
        (MemoryError(), "out of memory"),
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/out/overlay.png"),
            "/data/out/overlay.png: No space left on device",
        ),
    ],
)
def test_memory_and_disk_errors_are_one_line_with_exit_1(error, expected, wafer, tmp_path, capsys, monkeypatch):
    import sectionseg.cli.show as show

    def fail(args):
        raise error

    monkeypatch.setattr(show, "run", fail)
    code, err = run_cli(["show", wafer / "gray.tif", wafer / "sections.magc", "--out", tmp_path / "o.png"], capsys)
    assert_one_line_error(code, err, expected, code_wanted=1)


def test_argparse_errors_are_one_line_with_exit_2(capsys):
    from sectionseg.cli.main import main

    for argv in (
        ["detect", "g.tif", "--out", "o", "--device", "gpu"],
        ["no-such-command"],
        ["detect", "g.tif", "--out", "o", "--no-such-option"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error:" in err and "usage" not in err
