"""The one quad type: sides, long sides, the side facing a partner, lines and corner order."""

import numpy as np
import pytest

from sectionseg.geometry import Quad, order_corners
from sectionseg.geometry.quads import rect_sides

# 100 x 40 px rectangle, clockwise on screen from the top-left corner
RECT = np.array([[10.0, 20.0], [110.0, 20.0], [110.0, 60.0], [10.0, 60.0]])


def test_sides_run_from_corner_to_corner_with_outward_normals():
    sides = Quad(RECT).sides()
    assert [s.length for s in sides] == pytest.approx([100, 40, 100, 40])
    assert np.allclose(sides[0].start, RECT[0]) and np.allclose(sides[0].end, RECT[1])
    assert np.allclose([s.normal for s in sides], [[0, -1], [1, 0], [0, 1], [-1, 0]])
    assert np.allclose(sides[2].midpoint, [60, 60])
    # the normals point away from the quad whatever the corner order
    assert np.allclose([s.normal for s in Quad(RECT[::-1]).sides()], [[0, 1], [1, 0], [0, -1], [-1, 0]])


def test_long_sides_size_and_area():
    q = Quad(RECT)
    assert q.long_side_indices() == [0, 2]
    assert [s.length for s in q.long_sides()] == pytest.approx([100, 100])
    assert q.size() == pytest.approx((100, 40))
    assert q.area() == pytest.approx(4000)
    assert np.allclose(q.centre, [60, 40])
    assert rect_sides(RECT) == pytest.approx((100, 40))


def test_facing_side_is_the_one_next_to_the_partner():
    partner = RECT + [0.0, 45.0]  # below, 5 px gap
    k, gap = Quad(RECT).facing(partner)
    assert k == 2 and gap == pytest.approx(5.0)


def test_lines_give_the_quad_back_and_a_side_can_be_moved():
    q = Quad(RECT)
    back = Quad.from_lines(q.lines())
    assert back is not None and np.allclose(back.corners, RECT)
    moved = q.with_side(2, (np.array([0.0, 50.0]), np.array([1.0, 0.0])))
    assert moved is not None and np.allclose(moved.corners[2:], [[110, 50], [10, 50]])
    parallel = [(np.array([0.0, 0.0]), np.array([1.0, 0.0]))] * 4
    assert Quad.from_lines(parallel) is None


def test_around_and_clockwise():
    points = np.array([[10, 20], [60, 20], [110, 20], [110, 60], [10, 60]], dtype=float)
    assert Quad.around(points).area() == pytest.approx(4000)
    shuffled = RECT[[2, 1, 0, 3]]  # counter-clockwise, starting elsewhere
    assert np.allclose(Quad.clockwise(shuffled).corners, order_corners(shuffled))
    assert np.allclose(Quad.clockwise(shuffled).corners, RECT)
