"""The canonical corner order of written sections and the section *direction* derived from it.

Every file this package writes lists a part's corners in one order, the order of the original MagC
files (all sections of the dataset's wafers follow it) and the one the microscope software reads a
direction from:

- tissue corners run clockwise on screen (image frame: x right, y down);
- the magnetic part adjoins the tissue's edge ``p[-1] -> p[0]`` (for 4 corners: ``p3 -> p0``, a long
  edge), so the first edge ``p0 -> p1`` is a short edge pointing away from the magnet;
- magnet corners run clockwise too, and its edge ``p1 -> p2`` faces the tissue: magnet ``p1`` ~
  tissue ``p0`` and magnet ``p2`` ~ tissue ``p3``, so the magnet's first edge also points towards
  the tissue;
- a dummy strip is ordered like its tissue (its first edge points the same way);
- a lone part (no partner) is clockwise and starts so that its first edge crosses the long axis and
  points up on screen (direction in about [0, 180)): its side is unknown, so its direction is an axis.

The *direction* of a part is the angle of its first edge ``p0 -> p1``, in degrees counter-clockwise on
screen from +x, in (-180, 180]: exactly what MagFinder computes (ImageJ ``getFloatAngle`` of the first
two points) and rotates its local view by. For a paired section it is the magnet-to-tissue direction.
A location-only magnet (``Section.extra["magnet_location"]``) counts as the partner of its tissue.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from sectionseg.geometry.polygons import long_axis_angle
from sectionseg.geometry.section import Part, Section

_TIE = 1e-9  # facing scores closer than this are a tie, broken geometrically (not by vertex index)


def signed_area(points: np.ndarray) -> float:
    """Shoelace area of ``(N, 2)`` image-frame points: > 0 when they run clockwise on screen (y down)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def clockwise(points: np.ndarray) -> np.ndarray:
    """``points`` ``(N, 2)`` in clockwise-on-screen order (reversed if needed, same start vertex)."""
    p = np.asarray(points, dtype=np.float64)
    return p if signed_area(p) >= 0 else np.concatenate([p[:1], p[:0:-1]])


def edge_direction(points: np.ndarray, index: int = 0) -> float:
    """Angle (degrees, counter-clockwise on screen from +x, in (-180, 180]) of edge ``p[i] -> p[i+1]``."""
    p = np.asarray(points, dtype=np.float64)
    (x0, y0), (x1, y1) = p[index], p[(index + 1) % len(p)]
    return math.degrees(math.atan2(-(y1 - y0), x1 - x0))


def _facing_edge(points: np.ndarray, facing: np.ndarray) -> int:
    """Index i of the edge ``p[i] -> p[i+1]`` of clockwise ``points`` whose outward normal points most
    along ``facing`` (image frame); ties go to the edge whose midpoint has the smallest (y, x)."""
    edges = np.roll(points, -1, axis=0) - points
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1) / np.maximum(lengths, 1e-12)[:, None]
    score = normals @ (facing / max(float(np.hypot(*facing)), 1e-12))
    best = np.flatnonzero(score >= score.max() - _TIE)
    mids = (points + np.roll(points, -1, axis=0)) / 2
    return int(min(best, key=lambda i: (round(mids[i, 1], 6), round(mids[i, 0], 6))))


def _oriented(points: np.ndarray, facing: np.ndarray, edge: int) -> np.ndarray:
    """Clockwise ``points`` rolled so that the edge facing ``facing`` becomes edge number ``edge``
    (negative counts from the end, as in Python)."""
    p = clockwise(points)
    n = len(p)
    i = _facing_edge(p, facing)
    return np.roll(p, -((i - edge % n) % n), axis=0)


def _lone_facing(points: np.ndarray) -> np.ndarray:
    """Facing vector (image frame) of a lone part: down across its long axis, so that its first edge
    points up across the long axis (direction in about [0, 180))."""
    a = math.radians((long_axis_angle(points) + 90.0) % 180.0)  # up-pointing normal of the long axis
    return np.array([-math.cos(a), math.sin(a)])  # its opposite, in the image frame (y down)


def _centre(part: Part | None, location: npt.ArrayLike | None) -> np.ndarray | None:
    if part is not None:
        return np.array(part.centre)
    return None if location is None else np.asarray(location, dtype=np.float64)


def canonical_section(section: Section) -> Section:
    """``section`` with every part's corners in the canonical order (see the module doc).

    Geometry is unchanged (same vertices, image px); score and ``extra`` are kept. Idempotent.
    """
    location = section.extra.get("magnet_location")
    t_centre = _centre(section.tissue, None)
    m_centre = _centre(section.magnet, location)
    tissue = magnet = dummy = None
    if section.tissue is not None:
        poly = section.tissue.polygon
        facing = m_centre - t_centre if m_centre is not None else _lone_facing(poly)
        tissue = Part(_oriented(poly, facing, -1))
    if section.magnet is not None:
        poly = section.magnet.polygon
        facing = t_centre - m_centre if t_centre is not None else -_lone_facing(poly)
        magnet = Part(_oriented(poly, facing, 1))
    if section.dummy is not None:
        poly = section.dummy.polygon
        if tissue is not None:
            facing = m_centre - t_centre if m_centre is not None else _lone_facing(tissue.polygon)
        else:
            facing = _lone_facing(poly)
        dummy = Part(_oriented(poly, facing, -1))
    return Section(tissue, magnet, dummy, section.score, dict(section.extra))


def canonical_sections(sections: Iterable[Section]) -> list[Section]:
    """:func:`canonical_section` of each section, as a new list."""
    return [canonical_section(s) for s in sections]


def section_direction(section: Section) -> float:
    """Direction (degrees, counter-clockwise on screen, (-180, 180]) of a section in canonical order:
    its tissue's first edge, else its magnet's. Magnet-to-tissue for a paired section."""
    part = section.tissue if section.tissue is not None else section.magnet
    assert part is not None, "a Section has a tissue or a magnet"
    return edge_direction(part.polygon)


def part_direction(part: Part) -> float:
    """Direction of one part whose corners are in canonical order: the angle of its first edge."""
    return edge_direction(part.polygon)


__all__ = [
    "canonical_section",
    "canonical_sections",
    "section_direction",
    "part_direction",
    "edge_direction",
    "clockwise",
    "signed_area",
]


def magnet_frame(section: Section) -> tuple[np.ndarray, float, float]:
    """The magnetic part's own frame: ``(A, length, width)`` with ``A`` the 2x3 affine from image px
    to frame px and the frame's rectangle ``[0, length] x [0, width]``.

    The magnet's corners in canonical order (see the module doc) go to the rectangle's corners:
    magnet ``p1`` (beside tissue ``p0``) -> ``(0, 0)``, ``p2`` -> ``(length, 0)``, ``p3`` ->
    ``(length, width)``, ``p0`` -> ``(0, width)`` (least squares over the four, so a slightly
    skewed quad is straightened): x runs along the edge shared with the tissue, y away from the
    tissue, and the map keeps handedness (a section that landed upside down shows its face mirrored
    in this frame). ``length``/``width``: the mean lengths of the long / short edges. A magnet with
    more or fewer than 4 corners is replaced by its smallest enclosing rectangle first.
    """
    import cv2

    if section.magnet is None:
        raise ValueError("the section has no magnetic part")
    poly = np.asarray(section.magnet.polygon, dtype=np.float64)
    if len(poly) != 4:
        poly = cv2.boxPoints(cv2.minAreaRect(poly.astype(np.float32))).astype(np.float64)
        section = Section(section.tissue, Part(poly), None, section.score, dict(section.extra))
    magnet = canonical_section(section).magnet
    assert magnet is not None
    m = magnet.polygon
    length = 0.5 * (np.linalg.norm(m[2] - m[1]) + np.linalg.norm(m[3] - m[0]))
    width = 0.5 * (np.linalg.norm(m[0] - m[1]) + np.linalg.norm(m[3] - m[2]))
    src = np.array([m[1], m[2], m[3], m[0]])
    dst = np.array([[0, 0], [length, 0], [length, width], [0, width]], dtype=np.float64)
    design = np.c_[src, np.ones(4)]
    coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
    return coef.T.copy(), float(length), float(width)
