"""Quadrilaterals: a part's 4 corners and what the code asks of them (sides, long and short sides,
the side facing a partner, side lines, a quad made from 4 lines).

A :class:`Quad` wraps a ``(4, 2)`` float64 array of corners, x, y px with the origin at the
top-left corner of the top-left pixel, y down. Side ``i`` runs from corner ``i`` to corner
``i + 1``. A quad keeps the corner order it was given; :meth:`Quad.clockwise` puts the corners in
:func:`order_corners` order (clockwise on screen from the corner nearest the top-left), which most
callers want before they index sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt
import shapely

#: a line: ``(point, unit direction)``, both ``(2,)`` float arrays, x, y in pixels
Line = tuple[np.ndarray, np.ndarray]


def order_corners(quad: npt.ArrayLike) -> np.ndarray:
    """Return the 4 corners ``(4, 2)`` clockwise on screen (y down), starting from the corner with
    the smallest ``x + y`` (the one nearest the top-left; ties broken by the smaller y)."""
    q = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    x, y = q[:, 0], q[:, 1]
    signed = float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if signed < 0:  # counter-clockwise on screen: reverse
        q = q[::-1]
    key = q[:, 0] + q[:, 1]
    start = min(range(4), key=lambda i: (round(float(key[i]), 9), q[i, 1]))
    return np.roll(q, -start, axis=0).copy()


def intersect(l1: Line, l2: Line) -> np.ndarray | None:
    """Intersection of two lines ``(point, direction)``; None when (nearly) parallel."""
    (p, u), (q, v) = l1, l2
    den = u[0] * v[1] - u[1] * v[0]
    if abs(den) < 1e-6:
        return None
    t = ((q[0] - p[0]) * v[1] - (q[1] - p[1]) * v[0]) / den
    point: np.ndarray = p + t * u
    return point


def rect_sides(points: npt.ArrayLike) -> tuple[float, float]:
    """``(long, short)`` side lengths (px) of the minimum-area rotated rectangle around ``points``
    (OpenCV, in float32: the size the repairs measure a part's width with)."""
    _, (w, h), _ = cv2.minAreaRect(np.asarray(points, dtype=np.float32).reshape(-1, 1, 2))
    return float(max(w, h)), float(min(w, h))


class Side(NamedTuple):
    """One side of a quad: end points ``start`` -> ``end`` (x, y px), the unit ``normal`` pointing away
    from the quad (from its corners' mean) and the ``length`` (px)."""

    start: np.ndarray
    end: np.ndarray
    normal: np.ndarray
    length: float

    @property
    def midpoint(self) -> np.ndarray:
        mid: np.ndarray = 0.5 * (self.start + self.end)
        return mid


class Quad:
    """A quadrilateral: ``corners`` ``(4, 2)`` float64, x, y px (see the module doc)."""

    __slots__ = ("corners",)

    def __init__(self, corners: npt.ArrayLike):
        self.corners: np.ndarray = np.asarray(corners, dtype=np.float64).reshape(4, 2)

    @classmethod
    def clockwise(cls, corners: npt.ArrayLike) -> Quad:
        """The quad with its corners in :func:`order_corners` order."""
        return cls(order_corners(corners))

    @classmethod
    def around(cls, polygon: np.ndarray) -> Quad:
        """A polygon's quad: the polygon itself when it has 4 points, else its minimum-area rectangle."""
        if len(polygon) == 4:
            return cls(polygon)
        rect = cv2.minAreaRect(np.asarray(polygon).astype(np.float32).reshape(-1, 1, 2))
        return cls(cv2.boxPoints(rect).astype(np.float64))

    @classmethod
    def from_lines(cls, lines: Sequence[Line]) -> Quad | None:
        """Corner i = intersection of line i-1 and line i; None when two adjacent lines are parallel."""
        corners = [intersect(lines[i - 1], lines[i]) for i in range(4)]
        if any(c is None for c in corners):
            return None
        return cls(np.array(corners))

    def __repr__(self) -> str:
        return f"Quad({self.corners.tolist()})"

    @property
    def centre(self) -> np.ndarray:
        """Mean of the corners (x, y px)."""
        centre: np.ndarray = self.corners.mean(axis=0)
        return centre

    def sides(self) -> list[Side]:
        """The four sides, side i from corner i to corner i+1, normals pointing away from the quad."""
        q, centre = self.corners, self.centre
        out = []
        for i in range(4):
            p0, p1 = q[i], q[(i + 1) % 4]
            length = float(np.hypot(*(p1 - p0)))
            u = (p1 - p0) / max(length, 1e-9)
            n = np.array([-u[1], u[0]])
            if n @ (0.5 * (p0 + p1) - centre) < 0:
                n = -n
            out.append(Side(p0, p1, n, length))
        return out

    def lengths(self) -> np.ndarray:
        """Side lengths ``(4,)`` px, side i from corner i to corner i+1."""
        lengths: np.ndarray = np.hypot(*(np.roll(self.corners, -1, axis=0) - self.corners).T)
        return lengths

    def long_side_indices(self) -> list[int]:
        """Indices of the two longest sides, longest first (ties: the lower index first)."""
        lengths = [float(np.hypot(*(self.corners[(i + 1) % 4] - self.corners[i]))) for i in range(4)]
        return sorted(range(4), key=lambda i: -lengths[i])[:2]

    def long_sides(self) -> list[Side]:
        """The two longest sides, longest first."""
        sides = self.sides()
        return [sides[i] for i in self.long_side_indices()]

    def size(self) -> tuple[float, float]:
        """``(long, short)``: the means of the two pairs of opposite sides (px)."""
        e = self.lengths()
        pair = sorted([0.5 * (e[0] + e[2]), 0.5 * (e[1] + e[3])])
        return float(pair[1]), float(pair[0])

    def facing(self, other: np.ndarray) -> tuple[int, float]:
        """``(side index, distance px)`` of the side whose midpoint lies nearest to the polygon
        ``other`` ``(N, 2)`` (the side a partner part adjoins)."""
        facing = shapely.Polygon(other)
        gaps = [facing.distance(shapely.Point(side.midpoint)) for side in self.sides()]
        k = int(np.argmin(gaps))
        return k, float(gaps[k])

    def lines(self) -> list[Line]:
        """Side lines ``(point, unit direction)``, side i from corner i towards corner i+1."""
        out = []
        for i in range(4):
            p0, p1 = self.corners[i], self.corners[(i + 1) % 4]
            d = p1 - p0
            out.append((p0.copy(), d / max(np.hypot(*d), 1e-12)))
        return out

    def with_side(self, i: int, line: Line) -> Quad | None:
        """The quad with side i moved onto ``line`` (neighbouring corners re-intersected), or None."""
        lines = self.lines()
        lines[i] = line
        return Quad.from_lines(lines)

    def area(self) -> float:
        """Area (px^2, shoelace)."""
        x, y = self.corners[:, 0], self.corners[:, 1]
        return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
