"""Polygon rasterisation with the package's pixel convention.

Pixel ``(col, row)`` covers ``[col, col+1) x [row, row+1)``; it belongs to a polygon when its centre
``(col + 0.5, row + 0.5)`` is inside. The test is matplotlib's exact point-in-polygon (C++), run
only on the pixels of the polygon's bounding box. (OpenCV's ``fillPoly`` rounds every span outwards,
making a 3x2 px square fill 4x3 pixels and biasing centroids by a quarter pixel on average.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.path import Path


def polygon_window(
    polygon: np.ndarray, shape: tuple[int, ...], offset: npt.ArrayLike = (0.0, 0.0)
) -> tuple[int, int, int, int, np.ndarray | None]:
    """Return ``(r0, r1, c0, c1, inside)``: the clipped bounding-box window of ``polygon - offset`` in
    an image of ``shape = (height, width)`` and the boolean mask of that window (None if empty)."""
    pts = np.asarray(polygon, dtype=np.float64) - np.asarray(offset, dtype=np.float64)
    h, w = shape[:2]
    c0, r0 = np.floor(pts.min(axis=0)).astype(int)
    c1, r1 = np.ceil(pts.max(axis=0)).astype(int)
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, w), min(r1, h)
    if c1 <= c0 or r1 <= r0:
        return r0, r0, c0, c0, None
    ys, xs = np.mgrid[r0:r1, c0:c1]
    centres = np.column_stack([xs.ravel() + 0.5, ys.ravel() + 0.5])
    inside = Path(pts).contains_points(centres).reshape(r1 - r0, c1 - c0)
    return r0, r1, c0, c1, inside


def fill_polygon(image: np.ndarray, polygon: np.ndarray, value: Any, offset: npt.ArrayLike = (0.0, 0.0)) -> np.ndarray:
    """Set the pixels of ``image`` inside ``polygon - offset`` to ``value`` (in place); return ``image``."""
    r0, r1, c0, c1, inside = polygon_window(polygon, image.shape, offset)
    if inside is not None:
        image[r0:r1, c0:c1][inside] = value
    return image


def polygon_mask(polygon: np.ndarray, shape: tuple[int, ...], offset: npt.ArrayLike = (0.0, 0.0)) -> np.ndarray:
    """Boolean mask of ``shape = (height, width)`` that is True inside ``polygon - offset``."""
    mask = np.zeros(shape[:2], dtype=bool)
    return fill_polygon(mask, polygon, True, offset)
