"""End-to-end checks of the command line: help on every command, show, demo, error handling."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sectionseg.cli.main import COMMANDS, main
from sectionseg.formats import read_sections
from sectionseg.io.images import read_image

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: sectionseg " + command in capsys.readouterr().out


def test_show_draws_each_part_colour(tmp_path):
    assert (
        main(
            [
                "simulate",
                "--out",
                str(tmp_path / "w"),
                "--seed",
                "3",
                "--width",
                "400",
                "--height",
                "300",
                "--sections",
                "4",
            ]
        )
        == 0
    )
    out = tmp_path / "overlay.png"
    assert (
        main(["show", str(tmp_path / "w" / "gray.tif"), str(tmp_path / "w" / "sections.magc"), "--out", str(out)]) == 0
    )
    picture = read_image(out, expect_gray=False)
    assert picture.shape == (300, 400, 3)
    sections = read_sections(tmp_path / "w" / "sections.magc")
    # outline pixels of the tissue and magnet colours exist near each section's parts
    for colour in [(0, 200, 255), (255, 140, 0)]:
        near = np.abs(picture.astype(int) - colour).sum(-1) < 60
        assert near.sum() > 100
    x, y = sections[0].magnet.polygon[0]
    patch = picture[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].astype(int)
    assert (np.abs(patch - (255, 140, 0)).sum(-1) < 120).any()


def test_show_bad_annotations_exit_2(tmp_path, capsys):
    image = tmp_path / "g.png"
    from sectionseg.io.images import write_image

    write_image(image, np.zeros((20, 20), np.uint8))
    (tmp_path / "bad.json").write_text("{ not json")
    assert main(["show", str(image), str(tmp_path / "bad.json"), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_demo_end_to_end(tmp_path, capsys):
    # the demo detects with the bundled model; here an untrained tiny model stands in (hidden --model)
    import torch

    from sectionseg.model import build_model, load_config, save_model

    torch.manual_seed(0)
    cfg = load_config("tiny")
    save_model(tmp_path / "tiny.pt", build_model(cfg.model), cfg)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--size", "600", "--model", str(tmp_path / "tiny.pt")]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "recall" in out and "overlay.png" in out
    truth = read_sections(tmp_path / "demo" / "sections.labelme.json")
    assert len(truth) > 3
    assert len(read_sections(tmp_path / "demo" / "magc")) == len(truth)
    detection = tmp_path / "demo" / "detection"
    for name in ("sections.csv", "report.json", "overlay.png", "sections.magc"):
        assert (detection / name).is_file(), name
    assert read_image(detection / "overlay.png", expect_gray=False).shape[2] == 3


def test_console_script_missing_file_exit_2(tmp_path):
    exe = Path(sys.executable).parent / "sectionseg"
    if not exe.exists():
        pytest.skip("console script not installed")
    proc = subprocess.run(
        [str(exe), "show", str(tmp_path / "none.tif"), str(tmp_path / "none.json"), "--out", str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "none.tif" in proc.stderr and "Traceback" not in proc.stderr
