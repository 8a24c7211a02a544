"""Quadrilateral fitting to masks, and its refinement against the image (sectionseg.geometry.fitting)."""

import cv2
import numpy as np
import pytest

from sectionseg.geometry import fit_mask_quad, fit_quadrilateral, order_corners
from sectionseg.geometry.polygons import angle_difference, long_axis_angle, polygon_centroid
from sectionseg.geometry.raster import polygon_mask

SIZE = 180


def _quad(cx, cy, length, width, angle_deg, taper=0.0):
    """Trapezoid: long edges ``length * (1 + taper)`` (top) and ``length`` (bottom), rotated."""
    top = 0.5 * length * (1.0 + taper)
    local = np.array([[-top, -width / 2], [top, -width / 2], [length / 2, width / 2], [-length / 2, width / 2]])
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # ccw on screen
    return local @ rot.T + [cx, cy]


def _corner_error(found, truth):
    """Largest corner distance (px) after aligning the corner order (any cyclic shift)."""
    truth = order_corners(truth)
    return min(float(np.hypot(*(np.roll(found, k, axis=0) - truth).T).max()) for k in range(4))


def _render(quad, rng, blur=1.0, noise=3.0):
    """Gray image: dark part (90) on a bright wafer (200), anti-aliased by 4x supersampling."""
    big = polygon_mask(quad * 4, (SIZE * 4, SIZE * 4)).reshape(SIZE, 4, SIZE, 4).mean(axis=(1, 3))
    image = 200.0 - 110.0 * big
    return cv2.GaussianBlur(image, (0, 0), blur) + rng.normal(0.0, noise, image.shape)


def _dilate(mask, px):
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


CASES = [(0.0, 0.0), (17.0, 0.0), (45.0, 0.0), (101.0, 0.12), (160.0, -0.08), (73.0, 0.1)]


@pytest.mark.parametrize("angle,taper", CASES)
def test_exact_mask_fit_within_a_pixel(angle, taper):
    truth = _quad(90.3, 88.7, 128.0, 54.0, angle, taper)
    quad = fit_quadrilateral(polygon_mask(truth, (SIZE, SIZE)), refine=False)
    assert quad.shape == (4, 2) and quad.dtype == np.float64
    assert _corner_error(quad, truth) < 1.0
    assert angle_difference(long_axis_angle(quad), long_axis_angle(truth)) < 0.5


@pytest.mark.parametrize("angle,taper", CASES)
def test_refinement_against_image_fixes_a_too_large_mask(angle, taper):
    rng = np.random.default_rng(int(angle))
    truth = _quad(90.6, 89.2, 126.0, 52.0, angle, taper)
    mask = _dilate(polygon_mask(truth, (SIZE, SIZE)), 3)
    image = _render(truth, rng)
    coarse = fit_quadrilateral(mask, refine=False)
    refined = fit_quadrilateral(mask, image=image)
    assert _corner_error(coarse, truth) > 2.0  # the too-large mask really is off
    assert _corner_error(refined, truth) < 0.7
    cx, cy = polygon_centroid(refined)
    tx, ty = polygon_centroid(truth)
    assert np.hypot(cx - tx, cy - ty) < 0.3


def test_refinement_finds_the_shared_tissue_magnet_edge():
    """A dark tissue next to a mid-gray magnet: the shared edge is a weaker step, still found."""
    rng = np.random.default_rng(5)
    tissue = _quad(90.0, 75.0, 126.0, 52.0, 12.0)
    shared = tissue[2:][::-1]  # bottom edge, left to right
    normal = np.array([np.sin(np.radians(12.0)), np.cos(np.radians(12.0))]) * 46.0
    magnet = np.array([shared[0], shared[1], shared[1] + normal, shared[0] + normal])
    big_t = polygon_mask(tissue * 4, (SIZE * 4,) * 2).reshape(SIZE, 4, SIZE, 4).mean(axis=(1, 3))
    big_m = polygon_mask(magnet * 4, (SIZE * 4,) * 2).reshape(SIZE, 4, SIZE, 4).mean(axis=(1, 3))
    image = 200.0 - 110.0 * big_t - 60.0 * big_m
    image = cv2.GaussianBlur(image, (0, 0), 1.0) + rng.normal(0.0, 3.0, image.shape)
    for part in (tissue, magnet):
        mask = _dilate(polygon_mask(part, (SIZE, SIZE)), 3)
        assert _corner_error(fit_quadrilateral(mask, image=image), part) < 0.8


def test_origin_shifts_and_corner_order():
    truth = _quad(60.0, 50.0, 80.0, 30.0, 30.0)
    mask = polygon_mask(truth, (110, 120))
    local = fit_quadrilateral(mask, refine=False)
    shifted = fit_quadrilateral(mask, origin=(1000.0, 2000.0), refine=False)
    assert np.allclose(shifted, local + [1000.0, 2000.0])
    # clockwise on screen (positive shoelace sum with y down), first corner has the smallest x + y
    x, y = local[:, 0], local[:, 1]
    assert np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)) > 0
    assert np.argmin(x + y) == 0


def test_no_image_refinement_when_image_is_flat():
    """A featureless image gives no step: the mask fit is kept."""
    truth = _quad(90.0, 90.0, 120.0, 50.0, 20.0)
    mask = polygon_mask(truth, (SIZE, SIZE))
    flat = np.full((SIZE, SIZE), 128, np.uint8)
    assert np.allclose(fit_quadrilateral(mask, image=flat), fit_quadrilateral(mask, refine=False))


def test_degenerate_masks_give_none():
    assert fit_quadrilateral(np.zeros((40, 40), bool)) is None
    tiny = np.zeros((40, 40), bool)
    tiny[10:12, 10:13] = True
    assert fit_quadrilateral(tiny) is None
    line = np.zeros((40, 40), bool)
    line[20, 5:35] = True
    assert fit_quadrilateral(line) is None
    assert fit_mask_quad(np.zeros((8, 8), np.uint8)) is None


def test_largest_blob_wins_and_mismatched_image_is_refused():
    truth = _quad(60.0, 60.0, 70.0, 30.0, 0.0)
    mask = polygon_mask(truth, (120, 120))
    mask[2:6, 2:6] = True  # a speck elsewhere
    assert _corner_error(fit_quadrilateral(mask, refine=False), truth) < 1.0
    with pytest.raises(ValueError):
        fit_quadrilateral(mask, image=np.zeros((10, 10)))


def _coarse_mask(quad, grow, shift):
    """Mask R-CNN-like: the exact mask sampled on 28x28 over its box, pasted back bilinearly,
    thresholded at 0.5, dilated by ``grow`` px, for a quad moved by ``shift`` px."""
    exact = polygon_mask(quad + shift, (SIZE, SIZE)).astype(np.float32)
    ys, xs = np.nonzero(exact)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    coarse = cv2.resize(exact[y0:y1, x0:x1], (28, 28), interpolation=cv2.INTER_AREA)
    pasted = np.zeros((SIZE, SIZE), np.float32)
    pasted[y0:y1, x0:x1] = cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return _dilate(pasted > 0.5, grow)


@pytest.mark.parametrize("angle,taper", CASES[1:4])
def test_coarse_shifted_too_large_mask_is_corrected(angle, taper):
    rng = np.random.default_rng(7)
    truth = _quad(89.4, 90.8, 130.0, 55.0, angle, taper)
    mask = _coarse_mask(truth, 2, np.array([1.2, -0.9]))  # ~3.5 px too far out: within SEARCH_PX
    image = _render(truth, rng, blur=1.1, noise=4.0)
    quad = fit_quadrilateral(mask, image=image)
    cx, cy = polygon_centroid(quad)
    tx, ty = polygon_centroid(truth)
    assert np.hypot(cx - tx, cy - ty) < 0.4
    assert angle_difference(long_axis_angle(quad), long_axis_angle(truth)) < 0.5
    assert _corner_error(quad, truth) < 1.0


@pytest.mark.parametrize("angle", [0.0, 17.0])
def test_one_side_is_moved_onto_the_step_of_the_asked_polarity(angle):
    from sectionseg.geometry.fitting import refine_side

    rng = np.random.default_rng(5)
    a = np.radians(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

    def box(y0, y1):  # local x in [-50, 50], y in [y0, y1], rotated about (90, 90)
        return np.array([[-50, y0], [50, y0], [50, y1], [-50, y1]], float) @ rot.T + 90

    # magnet (120) | 4 px of bare wafer (200) | tissue (40): a mask that swallowed the gap reaches
    # the tissue; only a rising step (magnet -> wafer, as beyond its far side) is the magnet's own edge
    magnet, swallowed, tissue = box(-40, 0), box(-40, 4), box(4, 54)

    def big(q):
        return polygon_mask(q * 4, (SIZE * 4, SIZE * 4)).reshape(SIZE, 4, SIZE, 4).mean(axis=(1, 3))

    image = 200.0 - 80.0 * big(magnet) - 160.0 * big(tissue)
    image = cv2.GaussianBlur(image, (0, 0), 0.8) + rng.normal(0.0, 2.0, image.shape)
    quad = order_corners(swallowed)
    mids = [(quad[i] + quad[(i + 1) % 4]) / 2 for i in range(4)]
    side = int(np.argmin([np.hypot(*(m - polygon_centroid(tissue))) for m in mids]))
    trimmed = refine_side(quad, image, side, search=8.0, search_out=-0.5, polarity=1)
    assert trimmed is not None and _corner_error(trimmed, magnet) < 0.35
    # the falling step at the tissue is never taken for the magnet's edge
    assert refine_side(quad, image, side, search=8.0, search_out=-0.5, polarity=-1) is None
