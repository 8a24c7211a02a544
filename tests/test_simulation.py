"""Rendering and whole simulated wafers: pixels agree with the ground truth, determinism, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sectionseg.cli.main import main
from sectionseg.formats import read_sections
from sectionseg.geometry.raster import polygon_mask
from sectionseg.io.images import read_image
from sectionseg.simulation import get_style, random_layout, render_wafer, simulate_wafer

W = H = 600


def _masks(sections, name):
    out = np.zeros((H, W), dtype=bool)
    for s in sections:
        part = getattr(s, name)
        if part is not None:
            out |= polygon_mask(part.polygon, (H, W))
    return out


@pytest.fixture(scope="module")
def rendered():
    rng = np.random.default_rng(7)
    params = get_style("default").sample(rng)
    params["bit_depth"] = 8
    sections = random_layout(
        rng,
        W,
        H,
        n_sections=10,
        dummy_probability=1.0,
        dummy_width_range=(12, 16),
        region="full",
        touching_fraction=0.2,
    )
    gray, fluo = render_wafer(sections, W, H, params, rng)
    return sections, gray, fluo


def test_render_shapes_and_types(rendered):
    _, gray, fluo = rendered
    assert gray.shape == fluo.shape == (H, W) and gray.dtype == fluo.dtype == np.uint8


def test_gray_matches_ground_truth(rendered):
    sections, gray, _ = rendered
    tissue, magnet, dummy = (_masks(sections, n) for n in ("tissue", "magnet", "dummy"))
    background = ~(tissue | magnet | dummy)
    g = gray.astype(float)
    assert g[tissue].mean() < 0.8 * g[background].mean()  # tissue clearly dark
    assert g[tissue].mean() < g[magnet].mean() < g[background].mean()  # magnet mid gray
    assert g[dummy].mean() < 0.85 * g[background].mean()  # dummies dark too, yet not tissue GT
    assert not (dummy & tissue).any()


def test_fluo_bright_exactly_over_magnets(rendered):
    sections, _, fluo = rendered
    tissue, magnet = _masks(sections, "tissue"), _masks(sections, "magnet")
    f = fluo.astype(float)
    outside = f[~magnet].mean()
    assert f[magnet].mean() > 3 * outside
    assert f[tissue].mean() < 0.5 * f[magnet].mean()


def test_bit_depth_16():
    rng = np.random.default_rng(1)
    params = get_style("default").sample(rng)
    params["bit_depth"] = 16
    sections = random_layout(rng, 300, 300, n_sections=3, region="full")
    gray, fluo = render_wafer(sections, 300, 300, params, rng)
    assert gray.dtype == fluo.dtype == np.uint16 and gray.max() > 255


def test_styles_render_differently():
    sections = random_layout(np.random.default_rng(2), 400, 400, n_sections=5, region="full")
    out = {}
    for name in ("default", "low-contrast"):
        rng = np.random.default_rng(2)
        params = get_style(name).sample(rng)
        params["bit_depth"] = 8
        gray, _ = render_wafer(sections, 400, 400, params, rng)
        tissue = _masks_any(sections, "tissue", (400, 400))
        out[name] = 1 - gray[tissue].mean() / gray[~tissue].mean()  # tissue contrast
    assert out["low-contrast"] < 0.6 * out["default"]


def _masks_any(sections, name, shape):
    m = np.zeros(shape, dtype=bool)
    for s in sections:
        m |= polygon_mask(getattr(s, name).polygon, shape)
    return m


def test_simulate_wafer_files_and_determinism(tmp_path):
    kw = dict(seed=11, width=W, height=H, n_sections=10)
    a = simulate_wafer(tmp_path / "a", **kw)
    simulate_wafer(tmp_path / "b", **kw)
    simulate_wafer(tmp_path / "c", **{**kw, "seed": 12})
    names = [
        "gray.tif",
        "fluo.tif",
        "rgb.tif",
        "sections.labelme.json",
        "sections.magc",
        "sections.coco.json",
        "magc/source_sections_tissue.txt",
        "magc/source_sections_mag.txt",
        "simulation.json",
    ]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "gray.tif").read_bytes() != (tmp_path / "c" / "gray.tif").read_bytes()
    assert a["n_sections"] == 10
    gt = read_sections(tmp_path / "a" / "sections.labelme.json")
    assert len(gt) == 10 and sum(s.dummy is not None for s in gt) == a["n_dummies"]
    assert len(read_sections(tmp_path / "a" / "magc", "magc-pair")) == 10
    rgb = read_image(tmp_path / "a" / "rgb.tif", expect_gray=False)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    meta = json.loads((tmp_path / "a" / "simulation.json").read_text())
    assert meta["seed"] == 11 and meta["style"] == "default" and "tissue_contrast" in meta["params"]


def test_simulate_from_layout_file(tmp_path):
    first = simulate_wafer(tmp_path / "src", seed=3, width=500, height=450, n_sections=6, dummies=False)
    assert first["n_dummies"] == 0
    out = simulate_wafer(tmp_path / "re", seed=4, layout_path=tmp_path / "src" / "magc", layout_scale=2.0)
    src = read_sections(tmp_path / "src" / "magc", "magc-pair")
    again = read_sections(tmp_path / "re" / "sections.labelme.json")
    assert out["n_sections"] == 6
    assert np.allclose(again[0].tissue.polygon, 2 * src[0].tissue.polygon, atol=0.01)
    xmax = max(p.polygon[:, 0].max() for s in again for p in s.parts().values())
    assert xmax < out["width"] <= xmax + 21  # image = layout extent + margin


def test_cli_end_to_end(tmp_path, capsys):
    code = main(
        [
            "simulate",
            "--out",
            str(tmp_path / "w"),
            "--seed",
            "5",
            "--width",
            "500",
            "--height",
            "400",
            "--sections",
            "6",
            "--style",
            "crowded",
            "--no-dummies",
        ]
    )
    assert code == 0
    assert "6 sections" in capsys.readouterr().out
    assert read_image(tmp_path / "w" / "gray.tif").shape == (400, 500)
    assert all(s.dummy is None for s in read_sections(tmp_path / "w" / "sections.labelme.json"))


def test_cli_bad_style(tmp_path, capsys):
    code = main(["simulate", "--out", str(tmp_path / "w"), "--seed", "1", "--style", "bogus"])
    assert code == 2 and "valid styles" in capsys.readouterr().err


def test_real_layout_renders(real_layouts, tmp_path):
    out = simulate_wafer(
        tmp_path / "r",
        seed=1,
        layout_path=real_layouts / "wafer2" / "source_sections_tissue.txt",
        layout_scale=1 / 3,
        width=1200,
        height=1200,
    )
    assert out["n_sections"] == 503 and out["width"] == 1200  # sections outside the image are harmless
