"""The canonical corner order and section direction (geometry.orientation): on the original MagC files,
on simulated ground truth as written, on lone parts, whatever the input order."""

from __future__ import annotations

import numpy as np
import pytest
from conventions import angle_gap, assert_convention, cw, magnet_to_tissue, screen_angle

from sectionseg.formats import read_sections, write_sections
from sectionseg.geometry import Part, Section, canonical_section, section_direction
from sectionseg.geometry.orientation import edge_direction
from sectionseg.simulation import random_layout


def _shuffled(points: np.ndarray, rng) -> np.ndarray:
    """The same polygon from another start vertex, maybe run the other way round."""
    p = np.roll(points, int(rng.integers(len(points))), axis=0)
    return p[::-1] if rng.random() < 0.5 else p


@pytest.mark.parametrize("wafer,count", [("wafer1", 514), ("wafer2", 503)])
def test_original_files_already_follow_the_order(real_layouts, wafer, count):
    sections = read_sections(real_layouts / wafer)
    assert len(sections) == count
    for s in sections:
        assert_convention(s.tissue.polygon, s.magnet.polygon, max_gap=30.0)  # full-resolution px
        c = canonical_section(s)
        assert np.array_equal(c.tissue.polygon, s.tissue.polygon)
        assert np.array_equal(c.magnet.polygon, s.magnet.polygon)


def test_direction_is_magnet_to_tissue_on_wafer1(real_layouts):
    sections = read_sections(real_layouts / "wafer1")
    gaps = [angle_gap(section_direction(s), magnet_to_tissue(s.tissue.polygon, s.magnet.polygon)) for s in sections]
    assert len(gaps) == 514 and max(gaps) < 15.0  # trapezoids: the first edge leans a little


def test_simulated_ground_truth_is_written_in_the_order(tmp_path):
    truth = random_layout(np.random.default_rng(5), 1200, 900, n_sections=25, dummy_probability=0.5)
    write_sections(tmp_path / "gt", truth, "magc-pair")
    written = read_sections(tmp_path / "gt")
    assert len(written) == len(truth)
    for s, t in zip(written, truth):
        assert_convention(s.tissue.polygon, s.magnet.polygon)
        assert sorted(map(tuple, s.tissue.polygon.round(3))) == sorted(map(tuple, t.tissue.polygon.round(3)))


def test_any_input_order_gives_the_same_canonical_section():
    rng = np.random.default_rng(0)
    for s in random_layout(rng, 900, 900, n_sections=12, dummy_probability=1.0):
        want = canonical_section(s)
        assert canonical_section(want) == want  # idempotent
        for _ in range(4):
            mixed = Section(
                Part(_shuffled(s.tissue.polygon, rng)),
                Part(_shuffled(s.magnet.polygon, rng)),
                Part(_shuffled(s.dummy.polygon, rng)),
            )
            got = canonical_section(mixed)
            for name in ("tissue", "magnet", "dummy"):
                np.testing.assert_allclose(getattr(got, name).polygon, getattr(want, name).polygon)
        assert angle_gap(edge_direction(want.dummy.polygon), section_direction(want)) < 20.0


@pytest.mark.parametrize("angle", [0.0, 30.0, 89.0, 91.0, 150.0, 179.0])
def test_lone_parts_start_on_a_short_edge_pointing_up(angle):
    a = np.radians(angle)
    u, v = np.array([np.cos(a), -np.sin(a)]), np.array([np.sin(a), np.cos(a)])  # long axis, normal (image)
    rect = np.array([-u * 60 - v * 25, u * 60 - v * 25, u * 60 + v * 25, -u * 60 + v * 25]) + 300
    for part in ("tissue", "magnet"):
        s = Section(Part(rect), None) if part == "tissue" else Section(None, Part(rect))
        p = getattr(canonical_section(s), part).polygon
        assert cw(p)
        assert np.hypot(*(p[1] - p[0])) == pytest.approx(50.0)  # a short edge first
        d = screen_angle(p[1] - p[0])
        assert -1e-6 <= d < 180.0  # an axis: pointing up on screen
        assert angle_gap(d, angle + 90.0) < 1e-6 or angle_gap(d, angle - 90.0) < 1e-6


def test_location_only_magnet_orients_its_tissue():
    tissue = np.array([[100, 100], [220, 100], [220, 150], [100, 150]], float)
    s = Section(Part(tissue), None, extra={"magnet_location": (160.0, 60.0)})  # magnet above
    c = canonical_section(s)
    assert c.extra == s.extra
    assert section_direction(c) == pytest.approx(-90.0)  # magnet -> tissue: down on screen
    np.testing.assert_allclose(c.tissue.polygon[[3, 0]], [[100, 100], [220, 100]])  # p3 -> p0: top edge
