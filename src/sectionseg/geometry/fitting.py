"""Fit a part's quadrilateral (4 corners) to a detection mask, optionally refined against the image.

Masks from an instance-segmentation model are coarse (a 28x28 mask upsampled to a ~130 px part) and
tend to come out a few pixels too large; the microscope needs the corners. The fit is in two steps:

1. **From the mask** (:func:`fit_mask_quad`): the largest blob's outer contour is split into four
   sides (first by its minimum-area rectangle, then by the current quad), a straight line is fitted
   to each side's middle part (corners of a rasterised shape are rounded off) and adjacent lines are
   intersected, so trapezoids come out as trapezoids. Contour points are boundary *pixel centres*,
   inside the true outline, so the four lines are finally pushed outwards by the same distance that
   makes the quad's area equal the blob's pixel count.
2. **Against the image** (:func:`refine_quad`): each side is re-located on the strongest intensity
   step along its normal, from ``search`` px inside to ``search_out`` px outside its mask line
   (asymmetric: model masks come out too large, and a longer outward reach would find the outer edge
   of a dummy strip lying against the tissue). The cubic-spline profiles across the side are lightly
   smoothed and averaged; the sub-pixel peak of their derivative (parabola through the three best
   samples) moves the side as a whole, and when the peaks on chunks of ~12 px along the side agree,
   a robust line through them also sets its direction (at most ``MAX_TURN_DEG`` off). The refined
   lines are intersected again; a second, narrow pass re-centres the profiles. The step polarity of
   each side (dark tissue -> bright wafer, dark tissue -> mid-gray magnet, ...) comes from the
   side's mean profile, so a neighbour's opposite edge across a narrow gap is not picked. A side
   whose step is weak, or at the end of the window, keeps its mask line.

Coordinates: x, y pixels with the origin at the top-left corner of the top-left pixel (pixel
``(col, row)`` has its centre at ``(col + 0.5, row + 0.5)``). Corner order of every returned quad:
clockwise on screen (y down), starting from the corner with the smallest ``x + y`` (see
:func:`order_corners`).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from sectionseg.geometry.quads import Line, Quad, order_corners

MIN_PIXELS = 12  # blobs smaller than this are no part
MIN_SIDE = 2.0  # px: thinner rectangles are no part
CORNER_MARGIN = 0.15  # fraction of a side left out at each end when fitting / refining it
SMOOTH_PX = 0.6  # Gaussian sigma (px) across an edge before taking the derivative
MAX_TURN_DEG = 3.0  # a refined side may turn at most this much from the mask fit
SEARCH_PX = 5.0  # default search reach (px) inwards along each side's normal (farther: knife stripes)
# ... and outwards: less, since model masks come out too large rather than too small, and a wider
# outward reach finds the outer edge of a dummy strip lying against the tissue's far edge
SEARCH_OUT_PX = 3.0


# --------------------------------------------------------------------------------------------
# line helpers
# --------------------------------------------------------------------------------------------


def _outward_normal(u: np.ndarray) -> np.ndarray:
    """Outward normal of a side with direction ``u`` of a quad ordered clockwise on screen."""
    return np.array([u[1], -u[0]])


def _is_good_quad(quad: np.ndarray | None, ref: np.ndarray, tol: float) -> bool:
    """Convex, clockwise, finite and every corner within ``tol`` px of the reference quad's."""
    if quad is None or not np.all(np.isfinite(quad)):
        return False
    e = np.roll(quad, -1, axis=0) - quad
    cross = e[:, 0] * np.roll(e, -1, axis=0)[:, 1] - e[:, 1] * np.roll(e, -1, axis=0)[:, 0]
    if not np.all(cross > 0):
        return False
    # corner order may start elsewhere (the start corner flips near 45 degrees): any cyclic shift
    return any(bool(np.all(np.hypot(*(np.roll(quad, k, axis=0) - ref).T) <= tol)) for k in range(4))


# --------------------------------------------------------------------------------------------
# step 1: from the mask
# --------------------------------------------------------------------------------------------


def _largest_blob(mask: np.ndarray) -> tuple[np.ndarray, int] | None:
    """``(contour points (K, 2) at pixel centres, pixel count)`` of the largest outer blob, or None."""
    m = np.ascontiguousarray(np.asarray(mask) > 0, dtype=np.uint8)
    if m.ndim != 2 or int(m.sum()) < MIN_PIXELS:
        return None
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    largest = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    filled = np.zeros(m.shape, dtype=np.uint8)
    n_pixels = int(cv2.drawContours(filled, [largest], -1, 1, thickness=cv2.FILLED).sum())
    if n_pixels < MIN_PIXELS or len(largest) < 4:
        return None
    # contour points are pixel indices; +0.5 puts them on pixel centres in our convention
    return largest.reshape(-1, 2).astype(np.float64) + 0.5, n_pixels


def _grow_to_area(quad: np.ndarray, area: float) -> np.ndarray:
    """Shift the 4 side lines outwards by one common distance so that the quad's area is ``area``."""
    base = Quad(quad).lines()
    normals = [_outward_normal(u) for _, u in base]

    def grown(d: float) -> np.ndarray | None:
        q = Quad.from_lines([(p + d * n, u) for (p, u), n in zip(base, normals)])
        return None if q is None else q.corners

    d = 0.0
    for _ in range(4):  # Newton on area(d); d(area)/dd = perimeter at d
        q = grown(d)
        if q is None:
            return quad
        perimeter = float(np.hypot(*(np.roll(q, -1, axis=0) - q).T).sum())
        d += (area - Quad(q).area()) / max(perimeter, 1e-9)
    q = grown(d)
    return quad if q is None else q


def _fit_sides(points: np.ndarray, quad: np.ndarray) -> np.ndarray | None:
    """Refit each side of ``quad`` as a line through the contour points nearest to it (middle parts
    only) and intersect adjacent lines. Returns None when a side has too few points."""
    lines = []
    for i, (p0, u) in enumerate(Quad(quad).lines()):
        length = float(np.hypot(*(quad[(i + 1) % 4] - p0)))
        rel = points - p0
        t = rel @ u
        dist = np.abs(rel @ _outward_normal(u))
        lines.append((p0, u, length, t, dist))
    # each contour point goes to the side it is closest to
    all_dist = np.stack([d for *_, d in lines])
    owner = np.argmin(all_dist, axis=0)
    fitted = []
    for i, (_p0, u, length, t, _dist) in enumerate(lines):
        margin = max(1.5, CORNER_MARGIN * length)
        sel = (owner == i) & (t > margin) & (t < length - margin)
        if sel.sum() < 3:
            return None
        vx, vy, x0, y0 = cv2.fitLine(points[sel].astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).ravel()
        v = np.array([vx, vy], dtype=np.float64)
        if v @ u < 0:
            v = -v
        fitted.append((np.array([x0, y0], dtype=np.float64), v))
    found = Quad.from_lines(fitted)
    return None if found is None else found.corners


def fit_mask_quad(mask: np.ndarray) -> np.ndarray | None:
    """Quad ``(4, 2)`` (x, y px in the mask's frame) fitted to the mask's largest blob: four side lines
    fitted to the contour, grown so that the quad's area equals the blob's pixel count. Falls back to
    the area-matched minimum-area rectangle when the side fit fails. None for empty or tiny masks."""
    blob = _largest_blob(mask)
    if blob is None:
        return None
    points, n_pixels = blob
    (cx, cy), (w, h), angle = cv2.minAreaRect(points.astype(np.float32))
    if min(w, h) + 1.0 < MIN_SIDE:  # +1: contour points are boundary pixel centres
        return None
    rect = order_corners(cv2.boxPoints(((cx, cy), (w, h), angle)).astype(np.float64))
    quad = rect
    for _ in range(2):  # reassign contour points to the sides of the improved quad once
        fitted = _fit_sides(points, quad)
        if fitted is None:
            break
        fitted = order_corners(fitted)
        if not _is_good_quad(fitted, rect, tol=0.25 * max(w, h) + 2.0):
            break
        quad = fitted
    return order_corners(_grow_to_area(quad, float(n_pixels)))


# --------------------------------------------------------------------------------------------
# step 2: against the image
# --------------------------------------------------------------------------------------------


def _sample(coeffs: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Cubic-spline samples at x, y px (our convention) of the image whose spline coefficients are
    ``coeffs`` (``scipy.ndimage.spline_filter``); NaN outside the image. Cubic, not bilinear: the
    derivative of a bilinear profile is flat between pixel centres, so its peak is ill-defined on
    edges aligned with the pixel grid."""
    values: np.ndarray = ndimage.map_coordinates(
        coeffs, [ys - 0.5, xs - 0.5], order=3, mode="constant", cval=np.nan, prefilter=False
    )
    return values


def _parabola_peak(g: np.ndarray, k: int) -> float:
    """Sub-sample offset of the peak of ``g`` at index k (parabola through k-1, k, k+1)."""
    a, b, c = g[k - 1], g[k], g[k + 1]
    den = a - 2.0 * b + c
    return 0.0 if den >= 0 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))


def _refine_side(
    image: np.ndarray,
    p0: np.ndarray,
    p1: np.ndarray,
    search: float,
    search_out: float,
    step: float,
    chunk: float,
    polarity: int = 0,
    min_peak: float = 1e-9,
) -> Line | None:
    """Refined line ``(point, direction)`` of the side p0 -> p1 (step searched from ``search`` px
    inside to ``search_out`` px outside; ``polarity`` +1/-1: only steps rising/falling outwards;
    ``min_peak``: least mean derivative, levels per px), or None (no clear step)."""
    d = p1 - p0
    length = float(np.hypot(*d))
    if length < 4.0:
        return None
    u = d / length
    n = _outward_normal(u)
    margin = max(2.0, CORNER_MARGIN * length)
    ts = np.arange(margin, length - margin + 1e-9, 1.0)
    if ts.size < 3:
        return None
    pad = 1.0  # px sampled beyond the search window so that peaks at its ends are true peaks
    ss = np.arange(-search - pad, search_out + pad + 1e-9, step)
    pts = p0 + ts[:, None, None] * u + ss[None, :, None] * n  # (T, S, 2)
    prof = _sample(image, pts[..., 0].ravel(), pts[..., 1].ravel()).reshape(ts.size, ss.size)
    valid = np.all(np.isfinite(prof), axis=1)
    if valid.sum() < 3:
        return None
    ts, prof = ts[valid], prof[valid]
    # light smoothing across the edge against noise, then the derivative along the normal
    grad = np.gradient(ndimage.gaussian_filter1d(prof, SMOOTH_PX / step, axis=1), step, axis=1)
    mean = grad.mean(axis=0)
    n_pad = int(round(pad / step))
    inner = slice(n_pad, ss.size - n_pad)  # -search <= s <= search_out
    k = int(np.argmax(polarity * mean[inner] if polarity else np.abs(mean[inner]))) + n_pad
    peak = polarity * mean[k] if polarity else abs(mean[k])
    # the mean step must stand out of the row-to-row scatter (rows ~2 px apart are about independent
    # after the optics' blur) and out of the rest of the window
    spread = float(np.std(grad[:, k])) / np.sqrt(max(1.0, 0.5 * len(ts)))
    background = float(np.median(np.abs(mean[inner])))
    if peak <= 4.0 * spread or peak <= 1.5 * background or peak < min_peak or k <= n_pad or k >= ss.size - n_pad - 1:
        return None  # no clear step, or the strongest one is at the window's end (edge outside)
    sign = np.sign(mean[k])
    s_mean = ss[k] + step * _parabola_peak(sign * mean, k)
    shifted = (p0 + s_mean * n, u)  # the side moved as a whole onto the mean step
    # the side's direction as well, from the step positions on chunks along it, when they agree
    n_chunks = int(ts.size // chunk)
    if n_chunks < 3:
        return shifted
    edge_pts = []
    for idx in np.array_split(np.arange(ts.size), n_chunks):
        g = sign * grad[idx].mean(axis=0)
        kc = int(np.argmax(g[inner])) + n_pad
        if kc <= n_pad or kc >= ss.size - n_pad - 1 or g[kc] < 0.4 * peak:
            continue  # at the window's end or too weak (occluded, dust)
        sc = ss[kc] + step * _parabola_peak(g, kc)
        if abs(sc - s_mean) <= 1.5:
            edge_pts.append(p0 + ts[idx].mean() * u + sc * n)
    if len(edge_pts) < 3:
        return shifted
    vx, vy, x0, y0 = cv2.fitLine(np.array(edge_pts, np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
    v, point = np.array([vx, vy], dtype=np.float64), np.array([x0, y0], dtype=np.float64)
    v = v / max(np.hypot(*v), 1e-12)
    if v @ u < 0:
        v = -v
    if abs(u[0] * v[1] - u[1] * v[0]) > np.sin(np.radians(MAX_TURN_DEG)):  # turned too much: distrust
        return shifted
    return point, v


def refine_quad(
    quad: np.ndarray,
    image: np.ndarray,
    *,
    search: float = SEARCH_PX,
    search_out: float = SEARCH_OUT_PX,
    step: float = 0.25,
    chunk: float = 12.0,
    passes: int = 2,
) -> np.ndarray:
    """Move each side of ``quad`` (``(4, 2)`` x, y px in ``image``'s frame) onto the strongest
    intensity step from ``search`` px inside to ``search_out`` px outside along its normal; return the
    refined quad in :func:`order_corners` order. Sides without a clear step keep their line.
    ``image``: 2-D gray crop (any numeric dtype) reaching a few px beyond the part."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")
    img = ndimage.spline_filter(img, order=3, mode="mirror")
    quad = order_corners(quad)
    start = quad
    for i in range(passes):
        inward, outward = (search, search_out) if i == 0 else (min(search, 1.5), min(search_out, 1.5))
        lines = []
        for (p0, u), p1 in zip(Quad(quad).lines(), np.roll(quad, -1, axis=0)):
            lines.append(_refine_side(img, p0, p1, inward, outward, step, chunk) or (p0, u))
        found = Quad.from_lines(lines)
        if found is None:
            break
        new = order_corners(found.corners)
        if not _is_good_quad(new, start, tol=2.0 * search + 2.0):
            break
        quad = new
    return quad


def refine_side(
    quad: np.ndarray,
    image: np.ndarray,
    side: int,
    *,
    search: float = SEARCH_PX,
    search_out: float = SEARCH_OUT_PX,
    polarity: int = 0,
    min_peak: float = 1e-9,
    step: float = 0.25,
    chunk: float = 12.0,
) -> np.ndarray | None:
    """``quad`` (in :func:`order_corners` order) with its side ``side`` (corner ``side`` to corner
    ``side + 1``) moved onto the strongest intensity step between ``search`` px inside and
    ``search_out`` px outside its line (negative: inside too), as :func:`refine_quad` moves a side;
    ``polarity`` +1 takes only steps that rise going outwards, -1 only falling ones, 0 either;
    ``min_peak``: the least mean derivative across the step (levels per px). None when no clear step
    is found or the moved side spoils the quad."""
    img = ndimage.spline_filter(np.asarray(image, dtype=np.float32), order=3, mode="mirror")
    quad = order_corners(quad)
    found = _refine_side(img, quad[side], quad[(side + 1) % 4], search, search_out, step, chunk, polarity, min_peak)
    if found is None:
        return None
    moved = Quad(quad).with_side(side, found)
    if moved is None:
        return None
    new = order_corners(moved.corners)
    return new if _is_good_quad(new, quad, tol=2.0 * search + 2.0) else None


# --------------------------------------------------------------------------------------------
# the contract
# --------------------------------------------------------------------------------------------


def fit_quadrilateral(
    mask: np.ndarray,
    origin: npt.ArrayLike = (0.0, 0.0),
    image: np.ndarray | None = None,
    *,
    refine: bool = True,
    search: float = SEARCH_PX,
    search_out: float = SEARCH_OUT_PX,
) -> np.ndarray | None:
    """Corners ``(4, 2)`` float64 of a part, in wafer px, fitted to a mask crop.

    - ``mask``: ``(h, w)`` bool (or 0/1) crop; its largest blob is the part.
    - ``origin``: wafer ``(x0, y0)`` px of the top-left corner of ``mask[0, 0]`` (crop offset).
    - ``image``: optional ``(h, w)`` gray crop of the *same* window (uint8/uint16/float); with
      ``refine`` each side is moved onto the image's strongest intensity step (sub-pixel) between
      ``search`` px inside and ``search_out`` px outside the mask's side line.
      Give the crop a margin of a few px around the part so the search window fits inside.

    Returns the corners clockwise on screen starting from the one with the smallest ``x + y``, or
    None when the mask is empty or too small to be a part.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    quad = fit_mask_quad(mask)
    if quad is None:
        return None
    if image is not None and refine:
        image = np.asarray(image)
        if image.shape[:2] != mask.shape:
            raise ValueError(f"image crop {image.shape} and mask {mask.shape} differ in size")
        quad = refine_quad(quad, image, search=search, search_out=search_out)
    return order_corners(quad + np.asarray(origin, dtype=np.float64))
