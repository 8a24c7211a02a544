"""Sections <-> napari Shapes data, in one place (numpy only).

The package's coordinates are ``x, y`` px with the origin at the top-left corner of the top-left
pixel, so pixel ``(col, row)`` has its centre at ``(col + 0.5, row + 0.5)``. napari puts an image
pixel's centre at the integer data coordinate ``(row, col)``. Our Shapes layers therefore hold the
vertices as ``(y, x)``, exactly (a plain column swap, no arithmetic), and carry the layer translate
:data:`SHAPES_TRANSLATE` = ``(-0.5, -0.5)``, which puts them over the right pixels of an image layer
that has no translate. :func:`shapes_to_xy` reads the vertices of any Shapes layer (its own
translate taken into account), so polygons drawn on another layer come out right too.
"""

from __future__ import annotations

import numpy as np

#: translate of the sections' Shapes layers: data ``(y, x)`` in our convention -> napari world
SHAPES_TRANSLATE = (-0.5, -0.5)


def xy_to_shapes(points) -> np.ndarray:
    """``(N, 2)`` x, y (our convention) -> ``(N, 2)`` (row, col) data of a layer with
    :data:`SHAPES_TRANSLATE`: the columns swapped, nothing else."""
    p = np.asarray(points, dtype=np.float64)
    return np.ascontiguousarray(p[:, ::-1])


def shapes_to_xy(data, translate=SHAPES_TRANSLATE) -> np.ndarray:
    """``(N, 2)`` (row, col) data of a Shapes layer with ``translate`` -> x, y in our convention.

    The exact inverse of :func:`xy_to_shapes` for the default translate (``0.0`` is added)."""
    d = np.asarray(data, dtype=np.float64)[:, -2:]
    shift = np.asarray(translate, dtype=np.float64)[-2:] - np.asarray(SHAPES_TRANSLATE)
    return np.ascontiguousarray((d + shift)[:, ::-1])


def world_to_xy(position) -> np.ndarray:
    """A napari world position ``(..., row, col)`` (a mouse click; image pixel centres at integers)
    -> x, y in our convention."""
    row, col = (float(v) for v in tuple(position)[-2:])
    return np.array([col + 0.5, row + 0.5])


def xy_to_world(point) -> np.ndarray:
    """x, y (our convention) -> napari world ``(row, col)`` (e.g. the camera centre)."""
    x, y = (float(v) for v in point)
    return np.array([y - 0.5, x - 0.5])


def link_line(a, b) -> np.ndarray:
    """A 2-point line between two centres (x, y) as Shapes data."""
    return xy_to_shapes(np.array([a, b], dtype=np.float64))
