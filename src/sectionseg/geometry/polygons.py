"""Polygon helpers on ``(N, 2)`` float arrays of ``x, y`` pixel coordinates.

Convention: origin at the top-left corner of the top-left pixel, x right, y down.
Angles are in degrees, measured counter-clockwise *as seen on screen* from the +x axis
(i.e. with y pointing down, a vector ``(dx, dy)`` has angle ``atan2(-dy, dx)``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt
import shapely


def as_polygon_array(points: npt.ArrayLike, name: str = "polygon") -> np.ndarray:
    """Return ``points`` as a float64 ``(N, 2)`` array with N >= 3; raise ValueError otherwise."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 3:
        raise ValueError(f"{name} must be an (N>=3, 2) array of x,y points, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite coordinates")
    return arr


def polygon_area(points: np.ndarray) -> float:
    """Area in px^2 (shoelace formula, always positive)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def polygon_centroid(points: np.ndarray) -> tuple[float, float]:
    """Area centroid ``(x, y)``; the vertex mean for degenerate (zero-area) polygons."""
    poly = shapely.Polygon(points)
    if poly.area <= 1e-12:
        m = points.mean(axis=0)
        return float(m[0]), float(m[1])
    c = poly.centroid
    return float(c.x), float(c.y)


def long_axis_angle(points: np.ndarray) -> float:
    """Orientation of the polygon's long (principal) axis, degrees in ``[0, 180)``.

    Computed from the exact second moments of the polygon's area (OpenCV's Green-theorem moments),
    so it does not depend on the vertex order or count. Counter-clockwise on screen from +x.
    """
    m = cv2.moments(points.astype(np.float32).reshape(-1, 1, 2))
    if m["m00"] == 0:  # degenerate: use the longest vertex-to-vertex direction
        d = points[:, None, :] - points[None, :, :]
        i, j = np.unravel_index(np.argmax((d**2).sum(-1)), d.shape[:2])
        dx, dy = points[j] - points[i]
        theta_img = math.atan2(dy, dx)
    else:
        theta_img = 0.5 * math.atan2(2.0 * m["mu11"], m["mu20"] - m["mu02"])
    return math.degrees(-theta_img) % 180.0


def min_area_quad(points: np.ndarray) -> np.ndarray:
    """Corners ``(4, 2)`` of the minimum-area rotated rectangle around ``points`` (OpenCV)."""
    rect = cv2.minAreaRect(points.astype(np.float32).reshape(-1, 1, 2))
    return cv2.boxPoints(rect).astype(np.float64)


def angle_difference(a: float, b: float, period: float = 180.0) -> float:
    """Smallest absolute difference between two angles modulo ``period`` (degrees)."""
    d = (a - b) % period
    return min(d, period - d)


def polygon_iou(a: shapely.Polygon, b: shapely.Polygon) -> float:
    """Intersection over union of two shapely polygons (0 when both are empty)."""
    inter = float(a.intersection(b).area)
    union = float(a.area + b.area) - inter
    return inter / union if union > 0 else 0.0
