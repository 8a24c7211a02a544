"""Serial order from the overview's magnets: crop geometry, the order on a simulated overview whose
magnets carry their sections' beads, no order when beads are not resolved, ``detect --serial-order``."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from sectionseg.cli.main import main
from sectionseg.formats import read_magc, read_sections
from sectionseg.geometry.orientation import magnet_frame
from sectionseg.geometry.section import Section
from sectionseg.io.images import read_image
from sectionseg.serial import order_metrics
from sectionseg.serial.overview import OverviewSettings, magnet_crop, overview_order


def _rect(cx, cy, length, width, angle_deg):
    t = math.radians(angle_deg)
    u, v = np.array([math.cos(t), math.sin(t)]), np.array([-math.sin(t), math.cos(t)])
    c = np.array([cx, cy])
    return np.array(
        [
            c - u * length / 2 - v * width / 2,
            c + u * length / 2 - v * width / 2,
            c + u * length / 2 + v * width / 2,
            c - u * length / 2 + v * width / 2,
        ]
    )


def _section(cx, cy, angle, tissue_side=1.0, length=80.0, width=30.0):
    """A section whose magnet is centred at (cx, cy); tissue beside its long edge on side ``tissue_side``."""
    t = math.radians(angle)
    v = np.array([-math.sin(t), math.cos(t)])
    tc = np.array([cx, cy]) + tissue_side * v * (width / 2 + 20)
    return Section.from_arrays(_rect(*tc, length, 40, angle), _rect(cx, cy, length, width, angle))


# ---- crop geometry ----------------------------------------------------------------------------


@pytest.mark.parametrize("angle,side", [(0, 1), (37, 1), (-120, -1), (90, -1), (200, 1)])
def test_a_pattern_in_a_turned_magnet_comes_back_upright(angle, side):
    s = _section(150.0, 140.0, angle, side)
    a, length, width = magnet_frame(s)
    assert np.linalg.det(a[:, :2]) > 0  # no mirror: the frame keeps the image's handedness
    assert length == pytest.approx(80.0) and width == pytest.approx(30.0)
    # spots at known frame positions (asymmetric), drawn into the image through the frame's inverse
    frame_pts = np.array([[10.0, 6.0], [30.0, 20.0], [65.0, 9.0], [50.0, 24.0]])
    lin = np.linalg.inv(a[:, :2])
    img_pts = (frame_pts - a[:, 2]) @ lin.T
    yy, xx = np.mgrid[0:300, 0:300] + 0.5
    image = np.full((300, 300), 100.0, np.float32)
    for x, y in img_pts:
        image += 1000 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.2**2))
    crop, to_crop = magnet_crop(image, s, upsample=2.0, inset_px=2.0)
    assert crop.shape == (round((30 - 4) * 2), round((80 - 4) * 2))
    expect = (frame_pts - 2.0) * 2.0
    for x, y in expect:  # each spot is the brightest point near where it should be
        r, c = int(y), int(x)
        win = crop[max(r - 4, 0) : r + 5, max(c - 4, 0) : c + 5]
        peak = np.unravel_index(np.argmax(win), win.shape)
        assert abs(peak[0] + max(r - 4, 0) + 0.5 - y) <= 1.0 and abs(peak[1] + max(c - 4, 0) + 0.5 - x) <= 1.0
    assert to_crop @ np.r_[img_pts[0], 1] == pytest.approx(expect[0], abs=1e-6)
    # the corner order as given does not matter (counter-clockwise, other start)
    s2 = Section.from_arrays(s.tissue.polygon[::-1], np.roll(s.magnet.polygon[::-1], 2, axis=0))
    assert np.array_equal(magnet_crop(image, s2, upsample=2.0, inset_px=2.0)[0], crop)


def test_a_section_upside_down_shows_its_pattern_mirrored():
    # the same face drawn into a section and into its mirror image (tissue on the other side of the
    # magnet, reflected across the magnet's long axis): the crops are mirror images left-right
    s = _section(100.0, 100.0, 0.0, 1.0)
    m = _section(100.0, 100.0, 0.0, -1.0)
    yy, xx = np.mgrid[0:200, 0:200] + 0.5
    pts = np.array([[75.0, 90.0], [95.0, 105.0], [120.0, 95.0]])
    image = np.zeros((200, 200), np.float32)
    for x, y in pts:
        image += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 2.0)
    mirrored = image[::-1].copy()  # reflect across y = 100, the magnet's long axis
    a = magnet_crop(image, s, inset_px=0.0)[0]
    b = magnet_crop(mirrored, m, inset_px=0.0)[0]
    assert np.abs(a - b[:, ::-1]).max() < 0.05


# ---- orders on simulated overviews -------------------------------------------------------------


@pytest.fixture(scope="module")
def bead_wafer(tmp_path_factory):
    """24 sections, magnets ~150 px long, overview 1.5 um/px: the beads are resolved."""
    from sectionseg.simulation import get_style, simulate_wafer
    from sectionseg.simulation.beads import BeadSettings

    out = tmp_path_factory.mktemp("ov") / "w"
    style = get_style("default").replace(name="test-overview", section_size=(150.0, 150.0))
    simulate_wafer(
        out,
        seed=8,
        width=1400,
        height=1400,
        n_sections=24,
        style=style,
        beads=BeadSettings(damaged=0.0),
        overview_beads_um=1.5,
    )
    return out


def _truth(wafer):
    return json.loads((wafer / "beads" / "ground_truth.json").read_text())


def test_order_from_a_simulated_overview(bead_wafer):
    sections = read_sections(bead_wafer / "sections.magc")
    ov = overview_order(read_image(bead_wafer / "fluo.tif"), sections)
    s = ov.summary()
    assert ov.proposed and ov.reason is None, s
    assert s["beads_per_magnet_median"] >= 30 and s["reliability"] in ("high", "medium")
    truth = _truth(bead_wafer)
    assert truth["flipped"]  # some sections upside down: their patterns are mirrored
    m = order_metrics(ov.order, truth["serial_order"])
    assert m["consecutive"] >= 0.9 and m["kendall_tau"] >= 0.95
    json.dumps(s)  # JSON-ready


def test_overview_beads_change_only_the_magnets_beads(bead_wafer, tmp_path):
    from sectionseg.simulation import get_style, simulate_wafer
    from sectionseg.simulation.beads import BeadSettings

    style = get_style("default").replace(name="test-overview", section_size=(150.0, 150.0))
    simulate_wafer(
        tmp_path / "plain", seed=8, width=1400, height=1400, n_sections=24, style=style, beads=BeadSettings(damaged=0.0)
    )
    assert (tmp_path / "plain" / "gray.tif").read_bytes() == (bead_wafer / "gray.tif").read_bytes()
    a = read_image(tmp_path / "plain" / "fluo.tif").astype(np.int32)
    b = read_image(bead_wafer / "fluo.tif").astype(np.int32)
    differ = np.abs(a - b) > 0
    magnets = np.zeros(a.shape, np.uint8)
    for sec in read_sections(bead_wafer / "sections.magc"):
        cv2.fillPoly(magnets, [np.round(sec.magnet.polygon).astype(np.int32)], 1)
    magnets = cv2.dilate(magnets, np.ones((15, 15), np.uint8)).astype(bool)  # beads blur past the edge
    assert differ.any() and not differ[~magnets].any()
    # random magnet beads do not tell the order: not proposed, and it says why
    ov = overview_order(read_image(tmp_path / "plain" / "fluo.tif"), read_sections(bead_wafer / "sections.magc"))
    assert not ov.proposed and ov.order is None and "align" in ov.reason


def test_no_order_when_beads_are_not_resolved(bead_wafer):
    fluo = cv2.GaussianBlur(read_image(bead_wafer / "fluo.tif").astype(np.float32), (0, 0), 6.0)
    ov = overview_order(fluo, read_sections(bead_wafer / "sections.magc"))
    assert not ov.proposed and ov.order is None
    assert ov.reason.startswith("beads not resolved") and ov.summary()["reliability"] is None
    few = overview_order(fluo, read_sections(bead_wafer / "sections.magc")[:2], OverviewSettings())
    assert not few.proposed and "at least 3" in few.reason


# ---- detect --serial-order overview ------------------------------------------------------------


def test_detect_writes_the_overview_order(bead_wafer, tmp_path, tiny_model, monkeypatch, capsys):
    import sectionseg.detection as detection
    from sectionseg.detection.pipeline import DetectionResult

    truth_sections = read_sections(bead_wafer / "sections.magc")

    def fake_detect(gray, fluo=None, **kwargs):
        return DetectionResult(
            sections=truth_sections,
            unpaired=[],
            parts=[],
            timings={},
            scale=1.0,
            params={},
            counts={"tiles": 1, "sections": len(truth_sections), "unpaired": 0, "dropped_dummies": 0},
        )

    monkeypatch.setattr(detection, "detect_wafer", fake_detect)
    out = tmp_path / "det"
    argv = [
        "detect",
        str(bead_wafer / "gray.tif"),
        "--fluo",
        str(bead_wafer / "fluo.tif"),
        "--out",
        str(out),
        "--model",
        str(tiny_model),
        "--no-progress",
        "--workers",
        "1",
        "--serial-order",
        "overview",
    ]
    assert main(argv) == 0
    assert "serial order from the overview" in capsys.readouterr().out
    magc = read_magc(out / "sections.magc")
    truth = _truth(bead_wafer)["serial_order"]
    assert sorted(magc.serial_order) == list(range(len(truth_sections)))
    assert order_metrics(magc.serial_order, truth)["consecutive"] >= 0.9
    report = json.loads((out / "report.json").read_text())
    so = report["serial_order"]
    assert so["source"] == "overview" and so["proposed"] and so["written"] == "overview"
    assert so["reliability"] in ("high", "medium") and so["beads_per_magnet_median"] > 0
    assert report["outputs"]["order"] == "order/"
    order_report = json.loads((out / "order" / "order_report.json").read_text())
    assert order_report["serial_order"] == magc.serial_order and order_report["source"] == "overview"
    assert (out / "order" / "serial_order.txt").is_file()
    assert "order" in json.loads((out / ".sectionseg-set.json").read_text())["files"]

    # default: the index placeholder, said so in the report, no order folder
    out2 = tmp_path / "det2"
    assert main([str(out2) if a == str(out) else a for a in argv[:-2]]) == 0
    assert read_magc(out2 / "sections.magc").serial_order == list(range(len(truth_sections)))
    assert json.loads((out2 / "report.json").read_text())["serial_order"]["source"] == "index"
    assert not (out2 / "order").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--serial-order", "bogus"], "--serial-order"),
        (["--serial-order", "overview"], "needs --fluo"),
    ],
)
def test_detect_bad_serial_order_exits_2(argv, message, tmp_path, capsys):
    gray = tmp_path / "g.png"
    cv2.imwrite(str(gray), np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    try:
        code = main(["detect", str(gray), "--out", str(tmp_path / "o"), *argv])
    except SystemExit as exc:  # argparse's own errors (a value outside choices)
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--overview-beads", "1.5"], "needs --beads"),
        (["--beads", "--overview-beads", "0"], "--overview-beads"),
    ],
)
def test_simulate_bad_overview_beads_exits_2(argv, message, tmp_path, capsys):
    assert (
        main(["simulate", "--out", str(tmp_path / "w"), "--seed", "1", "--width", "300", "--height", "300", *argv]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
