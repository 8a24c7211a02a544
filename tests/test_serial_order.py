"""Section order retrieval from bead images: simulator, bead detection, constellations, matching,
path, doubts, .magc update and the ``order`` command (tiny simulated series)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sectionseg.cli.main import main
from sectionseg.serial import (
    OrderSettings,
    detect_beads,
    find_bead_images,
    order_metrics,
    order_sections,
    section_beads,
    wrong_links,
)
from sectionseg.serial.constellations import constellations
from sectionseg.serial.match import match_pair
from sectionseg.serial.path import cheapest_path
from sectionseg.simulation.beads import BeadSettings, simulate_bead_sections, write_bead_folder

SMALL = BeadSettings(n_sections=30, image_size_px=(200, 200), density=12.0, shift_um=6.0)


def _order(series, settings=OrderSettings()):
    beads = {sid: section_beads(images, settings) for sid, images in series.images.items()}
    return order_sections(beads, settings)


@pytest.fixture(scope="module")
def series():
    return simulate_bead_sections(
        np.random.default_rng(3), BeadSettings(**{**SMALL.__dict__, "channels": 2, "flip_probability": 0.5})
    )


def test_simulated_series_ground_truth(series):
    assert sorted(series.images) == list(range(30)) and sorted(series.serial_order) == list(range(30))
    assert series.serial_order != list(range(30))  # ids are not the cutting order
    assert all(len(ch) == 2 and ch[0].dtype == np.uint16 and ch[0].shape == (200, 200) for ch in series.images.values())
    assert 5 <= len(series.flipped) <= 25
    again = simulate_bead_sections(
        np.random.default_rng(3), BeadSettings(**{**SMALL.__dict__, "channels": 2, "flip_probability": 0.5})
    )
    assert all(np.array_equal(again.images[s][0], series.images[s][0]) for s in series.images)


def test_order_recovered_with_rotation_flips_noise_two_channels(series):
    result = _order(series)
    metrics = order_metrics(result.order, series.serial_order)
    assert metrics["consecutive"] == 1.0 and metrics["kendall_tau"] == 1.0
    assert result.order[0] < result.order[-1]  # default direction: the end with the smaller id first
    assert sorted(result.order) == sorted(series.images)
    # fewer pairs aligned than all pairs (candidates pruned by shared constellations)
    assert len(result.matches) < 30 * 29 // 2


def test_alignment_knows_mirror_and_angle(series):
    settings = OrderSettings()
    a, b = series.serial_order[10], series.serial_order[11]
    ba = section_beads(series.images[a], settings)
    bb = section_beads(series.images[b], settings)
    ca, cb = (constellations(x.xy, settings.neighbours, settings.bin_px) for x in (ba, bb))
    m = match_pair(0, 1, ba, bb, ca, cb, settings)
    assert m.ok and m.matched > 0.7 * min(m.n_i, m.n_j)
    pa, pb = series.poses[a], series.poses[b]
    assert m.mirrored == (pa["flipped"] != pb["flipped"])
    assert m.rms < 0.7


def test_missing_and_damaged_sections_are_flagged():
    settings = BeadSettings(**{**SMALL.__dict__, "n_sections": 34, "missing": 0.06, "damaged": 0.06})
    series = simulate_bead_sections(np.random.default_rng(11), settings)
    assert len(series.missing) == 2 and len(series.damaged) == 2
    result = _order(series)
    flagged = {frozenset((link["from"], link["to"])) for link in result.links if link["doubts"]}
    assert all(frozenset(w) in flagged for w in wrong_links(result.order, series.serial_order))
    assert order_metrics(result.order, series.serial_order)["kendall_tau"] > 0.9
    # the links across a lost section are dearer than most links; a gap is flagged when it is
    # clearly dearer than the links around it (not always: gaps are told by cost alone)
    cut = series.cut_index
    gaps = [
        link
        for link in result.links
        if abs(cut[link["from"]] - cut[link["to"]]) == 2
        and (cut[link["from"]] + cut[link["to"]]) // 2 in series.missing
    ]
    median = np.median([link["cost"] for link in result.links])
    assert len(gaps) == 2 and all(link["cost"] > median for link in gaps)
    assert any("gap" in link["doubts"] for link in gaps), [(g["from"], g["to"], g["cost"], g["doubts"]) for g in gaps]
    # every damaged section is doubtful itself or has a doubtful link
    for sid in series.damaged:
        assert sid in result.doubtful_sections or any(
            link["doubts"] for link in result.links if sid in (link["from"], link["to"])
        )
    assert len(result.doubtful_sections) <= 4
    assert len(flagged) < len(result.links) // 2


def test_detect_beads_subpixel(rng):
    import cv2

    pts = rng.uniform(10, 110, (30, 2))
    img = np.zeros((120, 120), np.float32)
    yy, xx = np.mgrid[0:120, 0:120] + 0.5
    for x, y in pts:
        img += 1000 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.0**2))
    img = (img + 100 + rng.normal(0, 5, img.shape)).astype(np.float32)
    cv2.setNumThreads(1)
    beads = detect_beads(img)
    d = np.linalg.norm(beads.xy[:, None] - pts[None], axis=-1).min(0)
    near = d < 0.3
    assert near.mean() > 0.8  # beads closer than ~2 px merge; the rest are found within 0.3 px
    assert abs(np.median(beads.flux) - 1) < 1e-9


def test_constellations_survive_rotation_flip_and_lost_beads(rng):
    pts = rng.uniform(0, 200, (120, 2))
    t = np.radians(37)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    moved = (pts * [-1, 1]) @ rot.T + [50, -20]  # mirrored, turned, shifted
    keep = rng.random(120) > 0.05
    a = constellations(pts)
    b = constellations(moved[keep])
    shared = len(np.intersect1d(a.keys, b.keys))
    other = constellations(rng.uniform(0, 200, (120, 2)))
    assert shared > 0.3 * len(a.keys)
    assert len(np.intersect1d(a.keys, other.keys)) < 0.05 * shared


def test_cheapest_path_line_metric_and_direction(rng):
    truth = rng.permutation(12)
    pos = np.empty(12)
    pos[truth] = np.arange(12)
    cost = np.abs(pos[:, None] - pos[None]) / 12
    cost[cost > 4 / 12] = np.nan  # far pairs not compared
    path = cheapest_path(cost)
    assert path in (list(truth), list(truth[::-1]))
    assert path[0] < path[-1]
    assert cheapest_path(cost, first=int(truth[-1]))[0] == truth[-1]


def test_order_metrics():
    assert order_metrics([1, 2, 3, 4], [4, 3, 2, 1]) == {
        "n": 4,
        "consecutive": 1.0,
        "kendall_tau": 1.0,
        "wrong_links": 0,
    }
    m = order_metrics([1, 3, 2, 4], [1, 2, 3, 4])
    assert m["consecutive"] == pytest.approx(1 / 3) and m["wrong_links"] == 2
    assert wrong_links([1, 3, 5], [1, 2, 3, 4, 5]) == []  # lost sections do not make links wrong


# ---- command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wafer(tmp_path_factory):
    out = tmp_path_factory.mktemp("wafer") / "w"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(out),
                "--seed",
                "4",
                "--width",
                "800",
                "--height",
                "600",
                "--sections",
                "12",
                "--beads",
                "--bead-channels",
                "2",
                "--bead-damaged",
                "0",
            ]
        )
        == 0
    )
    return out


def test_simulate_beads_same_ids_and_wafer_unchanged(wafer, tmp_path):
    files = find_bead_images(wafer / "beads")
    assert sorted(files) == list(range(12)) and sorted(files[0]) == ["488", "546"]
    truth = json.loads((wafer / "beads" / "ground_truth.json").read_text())
    assert sorted(truth["serial_order"]) == list(range(12))
    assert (
        main(
            [
                "simulate",
                "--out",
                str(tmp_path / "plain"),
                "--seed",
                "4",
                "--width",
                "800",
                "--height",
                "600",
                "--sections",
                "12",
            ]
        )
        == 0
    )
    for name in ("gray.tif", "fluo.tif", "sections.magc", "sections.labelme.json"):
        assert (tmp_path / "plain" / name).read_bytes() == (wafer / name).read_bytes()
    summary = json.loads((tmp_path / "plain" / "simulation.json").read_text())
    assert "beads" not in summary and "beads/" not in summary["files"]


def test_order_cli_writes_order_and_updates_magc(wafer, tmp_path, capsys):
    import shutil

    det = tmp_path / "det"
    det.mkdir()
    shutil.copy(wafer / "sections.magc", det / "sections.magc")
    before = (det / "sections.magc").read_text().splitlines()
    out = tmp_path / "order"
    assert main(["order", str(wafer / "beads"), "--out", str(out), "--sections", str(det), "--pictures", "all"]) == 0
    assert "ordered 12 sections" in capsys.readouterr().out
    order = [int(v) for v in (out / "serial_order.txt").read_text().split()]
    truth = json.loads((wafer / "beads" / "ground_truth.json").read_text())["serial_order"]
    assert order_metrics(order, truth)["consecutive"] == 1.0
    after = (det / "sections.magc").read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after) and changed == [
        (before[after.index(changed[0][1])], "serial_order = " + ",".join(map(str, order)))
    ]
    from sectionseg.formats import read_magc

    assert read_magc(det / "sections.magc").serial_order == order
    report = json.loads((out / "order_report.json").read_text())
    assert report["serial_order"] == order and len(report["links"]) == 11
    assert {"from", "to", "cost", "doubts", "mirrored", "angle", "matched"} <= set(report["links"][0])
    assert len(list((out / "links").glob("*.png"))) == 11
    assert (out / "distances.png").is_file() and (out / "link_costs.png").is_file()
    rows = (out / "distances.csv").read_text().splitlines()
    assert len(rows) == 13 and rows[0].split(",")[1:] == [str(i) for i in range(12)]


def test_order_cli_plain_folder_and_sbemimage_magc(tmp_path):
    series = simulate_bead_sections(np.random.default_rng(5), BeadSettings(**{**SMALL.__dict__, "n_sections": 10}))
    write_bead_folder(tmp_path / "plain", series, layout="plain")
    assert sorted(find_bead_images(tmp_path / "plain")) == list(range(10))
    from sectionseg.formats import read_magc, write_sections
    from sectionseg.geometry import Section

    sections = [
        Section.from_arrays(
            np.array([[0, 0], [20, 0], [20, 10], [0, 10]]) + [30 * i, 0],
            np.array([[0, 10], [20, 10], [20, 16], [0, 16]]) + [30 * i, 0],
        )
        for i in range(10)
    ]
    write_sections(tmp_path / "s.magc", sections, "magc", magc_dialect="sbemimage", stage_order=list(range(10))[::-1])
    assert (
        main(
            [
                "order",
                str(tmp_path / "plain"),
                "--out",
                str(tmp_path / "o"),
                "--sections",
                str(tmp_path / "s.magc"),
                "--first",
                str(series.serial_order[-1]),
            ]
        )
        == 0
    )
    order = [int(v) for v in (tmp_path / "o" / "serial_order.txt").read_text().split()]
    assert order == series.serial_order[::-1]
    f = read_magc(tmp_path / "s.magc")
    assert f.dialect == "sbemimage" and f.serial_order == order and f.stage_order == list(range(10))[::-1]
    assert not (tmp_path / "o" / "links").exists() or len(list((tmp_path / "o" / "links").iterdir())) < 9


def test_magc_without_serial_order_entry_is_rewritten(tmp_path):
    from sectionseg.formats import read_magc, write_sections
    from sectionseg.geometry import Section
    from sectionseg.serial.magc import set_serial_order

    sections = [
        Section.from_arrays(np.array([[0, 0], [20, 0], [20, 10], [0, 10]]) + [30 * i, 0], None) for i in range(3)
    ]
    write_sections(tmp_path / "s.magc", sections, "magc")
    text = (tmp_path / "s.magc").read_text()
    cut = text.index("[serial_order]")
    end = text.index("[stage_order]")
    (tmp_path / "s.magc").write_text(text[:cut] + text[end:] + "[roi.0000]\nname = x\n")
    set_serial_order(tmp_path / "s.magc", [2, 0, 1])
    f = read_magc(tmp_path / "s.magc")
    assert f.serial_order == [2, 0, 1] and [e.header for e in f.entries] == ["roi.0000"]


@pytest.mark.parametrize("case", ["empty", "unreadable", "mismatch", "no_magc", "tiles", "no_beads"])
def test_order_cli_errors_one_line_exit_2(case, wafer, tmp_path, capsys):
    beads = tmp_path / "b"
    beads.mkdir()
    args = ["order", str(beads), "--out", str(tmp_path / "o")]
    if case == "unreadable":
        import shutil

        shutil.copytree(wafer / "beads", beads, dirs_exist_ok=True)
        (beads / "section_0003" / "section_0003_channel_488_tileId_00-00-mag.tif").write_bytes(b"not a tiff")
    elif case == "mismatch":
        series = simulate_bead_sections(np.random.default_rng(5), BeadSettings(**{**SMALL.__dict__, "n_sections": 14}))
        write_bead_folder(beads, series)
        args += ["--sections", str(wafer)]  # 12 sections in the .magc, 14 bead sections
    elif case == "no_magc":
        import shutil

        shutil.copytree(wafer / "beads", beads, dirs_exist_ok=True)
        args += ["--sections", str(tmp_path)]
    elif case == "tiles":
        import shutil

        shutil.copytree(wafer / "beads", beads, dirs_exist_ok=True)
        src = beads / "section_0001" / "section_0001_channel_488_tileId_00-00-mag.tif"
        shutil.copy(src, src.with_name("section_0001_channel_488_tileId_00-01-mag.tif"))
    elif case == "no_beads":
        from sectionseg.io.images import write_image

        for k in range(3):
            write_image(
                beads / f"section_{k:04d}.tif", np.random.default_rng(k).integers(90, 110, (64, 64), dtype=np.uint16)
            )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sectionseg order: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o" / "serial_order.txt").exists()
    if case == "mismatch":
        assert "sections 12, 13" in err
    if case == "no_beads":
        assert "no two sections could be aligned" in err
