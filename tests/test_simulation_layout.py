"""Random layouts, dummies, layouts from files, layout statistics, styles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely

from sectionseg.errors import InputError
from sectionseg.simulation import add_dummies, get_style, layout_from_file, layout_stats, random_layout, style_names


def _shared_vertices(section) -> int:
    t, m = section.tissue.polygon, section.magnet.polygon
    return sum(any(np.array_equal(a, b) for b in m) for a in t)


def test_random_layout_count_shared_edge_and_inside(rng):
    sections = random_layout(rng, 1200, 1000, n_sections=40, dummy_probability=0.5, margin=15, region="full")
    assert len(sections) == 40
    for s in sections:
        assert _shared_vertices(s) == 2  # tissue and magnet share one edge exactly
        pts = np.concatenate([p.polygon for p in s.parts().values()])
        assert pts.min() >= 15 and pts[:, 0].max() <= 1200 - 15 and pts[:, 1].max() <= 1000 - 15
        # the long side is the shared edge's direction: tissue long side within the size range
        assert 110 < layout_stats([s])["tissue_long"]["median"] < 145
    assert any(s.dummy is not None for s in sections) and any(s.dummy is None for s in sections)


def test_random_layout_no_big_overlaps(rng):
    sections = random_layout(rng, 1500, 1500, density=30, touching_fraction=0.6, region="full")
    polys = [shapely.union_all([shapely.Polygon(p.polygon) for p in s.parts().values()]) for s in sections]
    for a, b in itertools.combinations(polys, 2):
        assert a.intersection(b).area <= 0.03 * min(a.area, b.area)
    stats = layout_stats(sections)
    assert stats["touching_fraction"] > 0.3  # crowded with touching neighbours, as on real wafers


def test_dummy_beyond_tissue_not_magnet(rng):
    sections = random_layout(rng, 800, 800, n_sections=12, dummy_probability=1.0, dummy_gap_range=(2, 4))
    for s in sections:
        d, t, m = (shapely.Polygon(p.polygon) for p in (s.dummy, s.tissue, s.magnet))
        assert 1.9 < d.distance(t) < 4.1
        assert d.distance(m) > t.distance(m) + 0.8 * layout_stats([s])["tissue_short"]["median"]


def test_random_layout_deterministic_and_sparse_vs_crowded():
    a = random_layout(np.random.default_rng(3), 1500, 1500, density=8)
    b = random_layout(np.random.default_rng(3), 1500, 1500, density=8)
    c = random_layout(np.random.default_rng(4), 1500, 1500, density=8)
    assert a == b and a != c
    dense = random_layout(np.random.default_rng(3), 1500, 1500, density=25)
    assert layout_stats(dense)["nn_distance"]["median"] < layout_stats(a)["nn_distance"]["median"]


def test_trapezoid_and_rectangles(rng):
    rect = random_layout(rng, 800, 800, n_sections=5, trapezoid=(0.0, 0.0), dummy_probability=0)
    for s in rect:
        e = np.linalg.norm(np.roll(s.tissue.polygon, -1, 0) - s.tissue.polygon, axis=1)
        assert e[0] == pytest.approx(e[2], abs=1e-6)
    trap = random_layout(rng, 800, 800, n_sections=5, trapezoid=(0.1, 0.12), dummy_probability=0)
    for s in trap:
        e = np.linalg.norm(np.roll(s.tissue.polygon, -1, 0) - s.tissue.polygon, axis=1)
        assert e[0] / e[2] == pytest.approx(1.11, abs=0.03)  # far edge longer than the shared one


def test_add_dummies_on_far_side(rng):
    sections = random_layout(rng, 800, 800, n_sections=10, dummy_probability=0, touching_fraction=0, region="full")
    out = add_dummies(rng, sections, probability=1.0, gap_range=(1, 1), width_range=(10, 10))
    assert all(s.dummy is None for s in sections)  # input untouched
    assert sum(s.dummy is not None for s in out) >= 8
    for s in out:
        if s.dummy is not None:
            d, t, m = (shapely.Polygon(p.polygon) for p in (s.dummy, s.tissue, s.magnet))
            assert d.distance(t) == pytest.approx(1.0, abs=0.3) and d.distance(m) > 30


def test_layout_stats_keys(rng):
    stats = layout_stats(random_layout(rng, 1000, 1000, n_sections=20))
    for key in ("tissue_long", "tissue_short", "magnet_long", "tissue_aspect", "nn_distance", "tissue_area"):
        assert stats[key]["p5"] <= stats[key]["median"] <= stats[key]["p95"]
    assert stats["n"] == 20 and 0 <= stats["touching_fraction"] <= 1 and stats["density"] > 0


def test_layout_from_real_file(real_layouts):
    sections = layout_from_file(real_layouts / "wafer1" / "source_sections_tissue.txt", 1 / 3)
    assert len(sections) == 514
    stats = layout_stats(sections)
    assert 110 < stats["tissue_long"]["median"] < 145 and 40 < stats["tissue_short"]["median"] < 65


def test_styles_differ_and_unknown_name():
    assert {"default", "low-contrast", "large-sections", "crowded", "sparse"} <= set(style_names())
    d = get_style("default").sample(np.random.default_rng(0))
    low = get_style("low-contrast").sample(np.random.default_rng(0))
    big = get_style("large-sections").sample(np.random.default_rng(0))
    assert low["tissue_contrast"] < get_style("default").tissue_contrast[0] <= d["tissue_contrast"]
    assert big["section_size"] > 1.45 * get_style("default").section_size[1] * 0.95
    with pytest.raises(InputError, match="valid styles: default"):
        get_style("nope")
