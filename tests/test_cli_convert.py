"""``sectionseg convert`` end to end: through ``main([...])`` and once through the console script."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sectionseg.cli.main import main
from sectionseg.formats import read_magc, read_sections, write_sections
from sectionseg.geometry import Section, canonical_sections

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real_layouts"


def layout():
    """Two sections in the canonical corner order (what every writer writes)."""
    t = np.array([[10, 10], [140.5, 10], [140.5, 60], [10, 60]])
    m = t + [0, 50]
    d = t[:, :] * [1, 0.2] + [0, 2]
    return canonical_sections([Section.from_arrays(t, m, d), Section.from_arrays(t + [200, 30.25], m + [200, 30.25])])


def test_convert_chain(tmp_path, capsys):
    src = tmp_path / "in.json"
    write_sections(src, layout())
    out_magc = tmp_path / "out.magc"
    assert main(["convert", str(src), str(out_magc), "--magc-dialect", "sbemimage"]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"2 sections read from {src} (labelme), written to {out_magc} (magc)"
    assert read_magc(out_magc).dialect == "sbemimage"

    # .magc -> .magc keeps the dialect and the orders.
    text = out_magc.read_text().replace("serialorder = 0,1", "serialorder = 1,0")
    out_magc.write_text(text)
    again = tmp_path / "again.magc"
    assert main(["convert", str(out_magc), str(again)]) == 0
    m = read_magc(again)
    assert m.dialect == "sbemimage" and m.serial_order == [1, 0]

    # .json with --to coco, explicit image size, then to a MagC pair folder (no extension).
    coco = tmp_path / "out.json"
    assert (
        main(
            [
                "convert",
                str(again),
                str(coco),
                "--to",
                "coco",
                "--image-size",
                "400",
                "300",
                "--image-path",
                "wafer.tif",
            ]
        )
        == 0
    )
    doc = json.loads(coco.read_text())
    assert doc["images"][0] == {"id": 1, "file_name": "wafer.tif", "width": 400, "height": 300}
    folder = tmp_path / "pair"
    assert main(["convert", str(coco), str(folder), "--scale", "2"]) == 0
    assert "(coco)" in capsys.readouterr().out
    back = read_sections(folder)
    np.testing.assert_allclose(back[1].magnet.polygon, layout()[1].magnet.polygon * 2, atol=1e-3)


def test_convert_bad_input_exit_2(tmp_path, capsys):
    folder = tmp_path / "pair"
    folder.mkdir()
    (folder / "source_sections_tissue.txt").write_text("0,0\t10,0\t10,5\t0,5\t\n0,0\t10,x\t10,5\t\n")
    (folder / "source_sections_mag.txt").write_text("0,5\t10,5\t10,9\t0,9\t\n0,5\t10,5\t10,9\t0,9\t\n")
    out = tmp_path / "out.json"
    assert main(["convert", str(folder), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'source_sections_tissue.txt'}:2:" in err and "'x' is not a number" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()

    assert main(["convert", str(tmp_path / "missing.magc"), str(out)]) == 2
    assert "no such file" in capsys.readouterr().err

    # A half section cannot become a MagC pair.
    half = tmp_path / "half.json"
    write_sections(half, [Section.from_arrays([[0, 0], [9, 0], [9, 4]], None)])
    assert main(["convert", str(half), str(tmp_path / "pair2")]) == 2
    assert "no magnet part" in capsys.readouterr().err
    assert main(["convert", str(half), str(tmp_path / "x.txt")]) == 2
    assert "cannot tell the annotation format" in capsys.readouterr().err


def test_console_script_real_layout(tmp_path):
    script = Path(sys.executable).parent / "sectionseg"
    if not script.exists():
        pytest.skip("console script not installed")
    src = REAL / "wafer1"
    if not (src / "source_sections_tissue.txt").is_file():
        pytest.skip(f"real layouts absent ({src})")
    out = tmp_path / "wafer1.magc"
    proc = subprocess.run(
        [str(script), "convert", str(src), str(out), "--scale", str(1 / 3)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("514 sections read from")
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(out.read_text())
    assert cp.get("sections", "number") == "514"
    full = read_sections(src)
    np.testing.assert_allclose(read_magc(out).sections[7].tissue.polygon, full[7].tissue.polygon / 3, atol=1e-3)


def test_convert_landmarks_image_size_and_integer_pair(tmp_path, capsys):
    from sectionseg.io.images import write_image

    src = tmp_path / "in.json"
    write_sections(src, layout())
    (tmp_path / "lm.txt").write_text("10,10\n400,12\n200,300\n")
    out = tmp_path / "out.magc"
    assert main(["convert", str(src), str(out), "--landmarks", str(tmp_path / "lm.txt"), "--scale", "2"]) == 0
    assert read_magc(out).landmarks == [(20, 20), (800, 24), (400, 600)]  # --scale applies to them too
    # labelme: the image path relative to the JSON and its true size read from it
    write_image(tmp_path / "img" / "wafer.png", np.zeros((321, 654), np.uint8))
    doc_path = tmp_path / "sub" / "l.json"
    assert main(["convert", str(out), str(doc_path), "--image-path", str(tmp_path / "img" / "wafer.png")]) == 0
    doc = json.loads(doc_path.read_text())
    assert doc["imagePath"] == "../img/wafer.png" and (doc["imageWidth"], doc["imageHeight"]) == (654, 321)
    # MagC pair in whole pixels
    assert main(["convert", str(src), str(tmp_path / "pair"), "--pair-integers", "--scale", "1.5"]) == 0
    assert "." not in (tmp_path / "pair" / "source_sections_tissue.txt").read_text()
    assert main(["convert", str(src), str(tmp_path / "x.json"), "--pair-integers"]) == 2
    assert "--pair-integers applies to a MagC pair" in capsys.readouterr().err


def test_convert_annotations_api_keeps_magc_orders_and_reports_what_is_dropped(tmp_path):
    from sectionseg.workflows import convert_annotations

    magc = tmp_path / "in.magc"
    marks = np.array([[0.0, 0.0], [300.0, 0.0], [0.0, 200.0]])
    write_sections(magc, layout(), "magc", serial_order=[1, 0], stage_order=[0, 1], landmarks=marks)
    again = convert_annotations(magc, tmp_path / "again.magc")
    assert (again.n_sections, again.in_format, again.out_format, again.dropped) == (2, "magc", "magc", [])
    assert read_magc(tmp_path / "again.magc").serial_order == [1, 0]
    # labelme has no place for landmarks or dummies: said, not silently lost; coordinates scaled on reading
    done = convert_annotations(magc, tmp_path / "out.json", scale=0.5, image_size=(200, 100))
    assert done.out_format == "labelme" and "3 landmarks" in done.dropped
    first = read_sections(tmp_path / "out.json")[0]
    np.testing.assert_allclose(first.tissue.centre, np.asarray(layout()[0].tissue.centre) * 0.5)
