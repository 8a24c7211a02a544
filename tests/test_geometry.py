import math

import numpy as np
import pytest

from sectionseg.geometry import Part, Section
from sectionseg.geometry.polygons import angle_difference, long_axis_angle, min_area_quad
from sectionseg.geometry.raster import polygon_mask


def rect(cx, cy, length, width, angle_deg):
    """Rectangle corners; angle counter-clockwise on screen (y down)."""
    a = math.radians(angle_deg)
    u = np.array([math.cos(a), -math.sin(a)]) * length / 2
    v = np.array([math.sin(a), math.cos(a)]) * width / 2
    c = np.array([cx, cy])
    return np.array([c - u - v, c + u - v, c + u + v, c - u + v])


@pytest.mark.parametrize("angle", [0, 10, 45, 89, 90, 135, 179.5])
def test_part_angle_centre_area(angle):
    part = Part(rect(50, 40, 120, 40, angle))
    assert part.area == pytest.approx(4800)
    assert part.centre == pytest.approx((50, 40))
    assert angle_difference(part.angle, angle) < 1e-6


def test_angle_is_counter_clockwise_on_screen():
    # long axis from bottom-left to top-right on screen (y decreases as x increases) is +45 degrees
    pts = np.array([[0, 100], [10, 110], [110, 10], [100, 0]], dtype=float)
    assert long_axis_angle(pts) == pytest.approx(45)


def test_section_needs_a_part_and_transforms():
    with pytest.raises(ValueError):
        Section(None, None)
    s = Section.from_arrays(rect(10, 10, 8, 4, 0), rect(10, 14, 8, 4, 0))
    t = s.transformed(scale=2, offset=(1, 1))
    assert t.tissue.centre == pytest.approx((21, 21))
    assert t.magnet.area == pytest.approx(4 * s.magnet.area)
    assert s.dummy is None and set(s.parts()) == {"tissue", "magnet"}


def test_bad_polygon_rejected():
    with pytest.raises(ValueError):
        Part(np.zeros((2, 2)))
    with pytest.raises(ValueError):
        Part([[0, 0], [1, np.nan], [2, 2]])


def test_mask_follows_pixel_convention():
    # the square [2, 5) x [1, 3) covers exactly columns 2..4 and rows 1..2
    mask = polygon_mask(np.array([[2, 1], [5, 1], [5, 3], [2, 3]], float), (6, 8))
    rows, cols = np.nonzero(mask)
    assert set(rows) == {1, 2} and set(cols) == {2, 3, 4}
    assert mask.sum() == 6


def test_mask_area_matches_polygon_area():
    poly = rect(60, 50, 80, 30, 33)
    assert polygon_mask(poly, (100, 120)).sum() == pytest.approx(Part(poly).area, rel=0.03)


def test_min_area_quad_recovers_rectangle():
    poly = rect(60, 50, 80, 30, 20)
    quad = min_area_quad(poly)
    assert Part(quad).area == pytest.approx(2400, rel=1e-3)
    assert angle_difference(Part(quad).angle, 20) < 0.1


def test_mask_centroid_is_unbiased():
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(50):
        poly = rect(
            rng.uniform(40, 60), rng.uniform(40, 60), rng.uniform(20, 80), rng.uniform(10, 30), rng.uniform(0, 180)
        )
        ys, xs = np.nonzero(polygon_mask(poly, (100, 100)))
        cx, cy = Part(poly).centre
        errors.append(np.hypot(xs.mean() + 0.5 - cx, ys.mean() + 0.5 - cy))
    assert np.mean(errors) < 0.1


def test_mask_clipped_at_image_border():
    mask = polygon_mask(np.array([[-5, -5], [4, -5], [4, 3], [-5, 3]], float), (10, 10))
    assert mask.sum() == 12 and mask[:3, :4].all()


def test_polygon_iou():
    import shapely

    from sectionseg.geometry.polygons import polygon_iou

    a, b = shapely.box(0, 0, 2, 2), shapely.box(1, 0, 3, 2)  # half of each overlaps
    assert polygon_iou(a, b) == pytest.approx(1 / 3)
    assert polygon_iou(a, a) == 1.0 and polygon_iou(a, shapely.box(5, 5, 6, 6)) == 0.0
    assert polygon_iou(shapely.Polygon(), shapely.Polygon()) == 0.0
