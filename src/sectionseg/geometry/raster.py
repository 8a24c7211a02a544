"""Polygon rasterisation with the package's pixel convention.

Pixel ``(col, row)`` covers ``[col, col+1) x [row, row+1)``; it belongs to a polygon when its centre
``(col + 0.5, row + 0.5)`` is inside. OpenCV puts integer coordinates on pixel centres, so polygons
are shifted by -0.5 and drawn with 4 bits of sub-pixel precision.
"""
from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4


def _cv_points(polygon: np.ndarray, offset=(0.0, 0.0)) -> np.ndarray:
    pts = (np.asarray(polygon, dtype=np.float64) - np.asarray(offset, dtype=np.float64) - 0.5) * (1 << _SHIFT)
    return np.round(pts).astype(np.int32).reshape(-1, 1, 2)


def fill_polygon(image: np.ndarray, polygon: np.ndarray, value, offset=(0.0, 0.0)) -> np.ndarray:
    """Fill ``polygon`` (x, y px, shifted by ``-offset``) into ``image`` in place with ``value``; return it."""
    cv2.fillPoly(image, [_cv_points(polygon, offset)], value, lineType=cv2.LINE_8, shift=_SHIFT)
    return image


def polygon_mask(polygon: np.ndarray, shape: tuple[int, int], offset=(0.0, 0.0)) -> np.ndarray:
    """Boolean mask of ``shape = (height, width)`` that is True inside ``polygon - offset``."""
    mask = np.zeros(shape, dtype=np.uint8)
    fill_polygon(mask, polygon, 1, offset)
    return mask.astype(bool)
