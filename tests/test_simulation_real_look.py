"""Real-look domain randomisation: the variation real MagC wafers show is an ordinary draw of the
"realistic" style, the original styles are untouched by it, and the held-out families differ."""

from __future__ import annotations

import numpy as np
import pytest

from sectionseg.geometry.raster import polygon_mask
from sectionseg.simulation import STYLES, get_style, random_layout, render_wafer
from sectionseg.simulation.layout import layout_stats
from sectionseg.simulation.styles import HELD_OUT_STYLES

REAL_KEYS = (
    "section_brightness",
    "part_balance",
    "tissue_blobs",
    "blob_contrast",
    "fold_probability",
    "edge_band",
    "gray_speckles",
    "speckle_contrast",
    "loose_dummies_per_mpx",
    "seam_contrast",
    "padding_probability",
    "jpeg_quality",
)


def _render(style, seed=3, size=500, n=8):
    rng = np.random.default_rng(seed)
    params = get_style(style).sample(rng)
    sections = random_layout(
        rng,
        size,
        size,
        n_sections=n,
        region="full",
        size_range=params["size_range"],
        aspect_range=params["aspect_range"],
        magnet_ratio_range=params["magnet_ratio_range"],
    )
    gray, fluo = render_wafer(sections, size, size, params, rng)
    return sections, gray, fluo, params


def test_original_styles_draw_no_real_look_variation():
    for name in ("default", "low-contrast", "crowded", "sparse", "large-sections"):
        params = STYLES[name].sample(np.random.default_rng(0))
        assert all(params[k] == 0.0 for k in REAL_KEYS), name


def test_real_look_keys_off_render_as_before():
    # the original renderer did not know these keys: absent and off must give the same pixels
    sections, gray, fluo, params = _render("default")
    old = {k: v for k, v in params.items() if k not in REAL_KEYS and k != "edge_band_width"}
    rng = np.random.default_rng(3)
    get_style("default").sample(rng)
    random_layout(
        rng,
        500,
        500,
        n_sections=8,
        region="full",
        size_range=params["size_range"],
        aspect_range=params["aspect_range"],
        magnet_ratio_range=params["magnet_ratio_range"],
    )
    gray_old, fluo_old = render_wafer(sections, 500, 500, old, rng)
    assert np.array_equal(gray, gray_old) and np.array_equal(fluo, fluo_old)


def test_realistic_style_covers_real_wafers_geometry_and_polarity():
    draws = [STYLES["realistic"].sample(np.random.default_rng(s)) for s in range(60)]
    darker_tissue = [d["tissue_contrast"] > d["magnet_contrast"] for d in draws]
    assert 0 < sum(darker_tissue) < len(draws)  # either part can be the darker one
    assert min(d["aspect"] for d in draws) < 1.7 and max(d["aspect"] for d in draws) > 2.8
    assert max(d["magnet_ratio"] for d in draws) > 1.1  # magnet as wide as the tissue or wider
    # sections at the bundled model's scale (0.5): 40-95 px long
    assert 0.5 * min(d["section_size"] for d in draws) < 45 and 0.5 * max(d["section_size"] for d in draws) > 90
    sections, *_ = _render("real-square", n=12)
    stats = layout_stats(sections)
    assert stats["tissue_aspect"]["median"] < 2.3


def test_per_section_brightness_varies_on_realistic_wafers():
    sections, gray, _, params = _render("realistic", seed=5, size=700, n=14)
    levels = [gray[polygon_mask(s.tissue.polygon, gray.shape)].mean() for s in sections]
    spread_real = np.std(levels) / np.mean(levels)
    sections_d, gray_d, *_ = _render("default", seed=5, size=700, n=14)
    levels_d = [gray_d[polygon_mask(s.tissue.polygon, gray_d.shape)].mean() for s in sections_d]
    assert spread_real > 2 * np.std(levels_d) / np.mean(levels_d)


def test_mosaic_jpeg_family_pads_outside_the_sections_and_compresses():
    sections, gray, fluo, params = _render("held-mosaic-jpeg", seed=1, size=1600, n=10)
    assert gray.dtype == np.uint8 and params["jpeg_quality"] >= 20
    padded = gray == 0
    assert padded.any()  # black padding outside the staircase outline
    for s in sections:  # ... never over a section (a near-black section may have a few 0 pixels)
        for part in s.parts().values():
            assert padded[polygon_mask(part.polygon, gray.shape)].mean() < 0.2
    # JPEG: 8x8 block boundaries carry artefacts the rest of the bare wafer does not
    diff = np.abs(np.diff(gray.astype(np.int16), axis=1))[~padded[:, 1:]]
    assert diff.mean() > 0


def test_bright_family_sections_are_lighter_than_the_wafer():
    sections, gray, *_ = _render("held-bright", seed=2, size=600, n=8)
    inside = np.zeros(gray.shape, bool)
    for s in sections:
        inside |= polygon_mask(s.tissue.polygon, gray.shape)
    assert gray[inside].mean() > gray[~inside].mean()


def test_held_out_families_are_named_styles():
    for name in HELD_OUT_STYLES:
        assert name in STYLES
    assert "realistic" not in HELD_OUT_STYLES


def test_the_alien_family_is_every_held_out_variation_at_once():
    alien, bright, debris, mosaic = (STYLES[n] for n in ("held-all", "held-bright", "held-debris", "held-mosaic-jpeg"))
    assert "held-all" in HELD_OUT_STYLES
    assert alien.tissue_contrast == bright.tissue_contrast and alien.magnet_contrast == bright.magnet_contrast
    assert alien.dust_per_mpx == debris.dust_per_mpx and alien.loose_dummies_per_mpx == debris.loose_dummies_per_mpx
    assert alien.jpeg_quality == mosaic.jpeg_quality and alien.padding_probability == mosaic.padding_probability
    sections, gray, *_ = _render("held-all", seed=3, size=600, n=6)
    inside = np.zeros(gray.shape, bool)
    for s in sections:
        inside |= polygon_mask(s.tissue.polygon, gray.shape)
    assert gray[inside].mean() > gray[~inside & (gray > 0)].mean()  # lighter than the (unpadded) wafer


# the styles the bundled model's recipes draw from (Makefile: real-look-model, default-model)
TRAINED = ("default", "crowded", "realistic", "real-square", "real-dark-magnet", "real-wide", "real-wider")
# each held-out family's defining fields, and on which side of its range the trained styles stay
DEFINING = {
    "held-bright": {"tissue_contrast": "above", "magnet_contrast": "above"},
    "held-debris": {"dust_per_mpx": "below", "fibres_per_mpx": "below", "loose_dummies_per_mpx": "below"},
    "held-mosaic-jpeg": {"tile_shading": "below", "tile_gain": "below", "seam_contrast": "below"},
}


@pytest.mark.parametrize("family", sorted(DEFINING))
def test_trained_styles_reach_up_to_never_into_a_held_out_family(family):
    held = STYLES[family]
    for name in TRAINED:
        style = STYLES[name]
        for field, side in DEFINING[family].items():
            lo, hi = getattr(style, field)
            held_lo, held_hi = getattr(held, field)
            if side == "above":
                assert lo > held_hi, (name, field)
            else:
                assert hi <= held_lo, (name, field)
        assert style.jpeg_quality == (0.0, 0.0)  # JPEG only through training augmentation


def test_the_widest_trained_style_draws_some_parts_lighter_than_the_wafer():
    rng = np.random.default_rng(0)
    draws = [STYLES["real-wider"].sample(rng) for _ in range(200)]
    lighter = [d for d in draws if min(d["tissue_contrast"], d["magnet_contrast"]) < 0]
    assert 5 <= len(lighter) <= 60  # sometimes, not mostly
    bright = STYLES["held-bright"]
    assert all(d["tissue_contrast"] > bright.tissue_contrast[1] for d in draws)
    assert all(d["magnet_contrast"] > bright.magnet_contrast[1] for d in draws)
