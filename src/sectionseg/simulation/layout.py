"""Section layouts for simulated wafers: random ones, ones read from a file, and their statistics.

A *layout* is a ``list[Section]`` in image pixels (x right, y down, origin at the top-left corner of
the top-left pixel). In every section built here the tissue and magnetic parts are quadrilaterals
that share one long edge exactly (the same two vertices); the optional dummy strip lies on the
tissue side away from the magnet, attached or with a small gap.

Random layouts imitate real MagC wafers (see ``benchmarks/layout_stats.py``): near-uniform sizes
within one wafer (all sections come from one block), uniform rotation, trapezoid shapes, and a
controlled fraction of neighbours that touch or overlap slightly, as when sections crowd on the
wafer. Placement is random sequential adsorption with a uniform grid of cells for neighbour look-up,
so 500 sections take well under a second spread over the image, a few seconds when packed into a
ring near jamming (sections that keep refusing neighbours are dropped as slide targets).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import shapely

from sectionseg.geometry.quads import Quad, rect_sides
from sectionseg.geometry.section import Part, Section, sections_bounds

log = logging.getLogger(__name__)

TOUCH_DISTANCE = 1.5  # px: two sections closer than this "touch" (layout_stats)


# --------------------------------------------------------------------------------------------
# one section in its local frame
# --------------------------------------------------------------------------------------------


@dataclass
class _Shape:
    """Local-frame section shape: u along the long axis, v across it (v > 0 towards the magnet).

    The shared tissue/magnet edge is at ``v = 0``; its length is ``l0``. Long edges change length
    linearly with v (``taper``: relative growth of the tissue's far edge) and are shifted along u by
    ``shear * v`` (a non-isosceles trapezoid).
    """

    l0: float
    tissue_w: float
    magnet_w: float
    taper: float
    shear: float
    dummy_gap: float | None = None
    dummy_w: float = 0.0

    def _edge(self, v: float) -> np.ndarray:
        """The two end points ``(2, 2)`` of the long edge at ``v``."""
        half = 0.5 * self.l0 * (1.0 - self.taper * v / self.tissue_w)
        du = self.shear * v
        return np.array([[-half + du, v], [half + du, v]])

    def parts(self) -> dict[str, np.ndarray]:
        """Local polygons ``(4, 2)`` by part name; tissue and magnet share the ``v = 0`` edge."""
        shared = self._edge(0.0)
        far_t = self._edge(-self.tissue_w)
        far_m = self._edge(self.magnet_w)
        out = {
            "tissue": np.array([far_t[0], far_t[1], shared[1], shared[0]]),
            "magnet": np.array([shared[0], shared[1], far_m[1], far_m[0]]),
        }
        if self.dummy_gap is not None:
            near = self._edge(-self.tissue_w - self.dummy_gap)
            far = self._edge(-self.tissue_w - self.dummy_gap - self.dummy_w)
            out["dummy"] = np.array([far[0], far[1], near[1], near[0]])
        return out


def _place(local: dict[str, np.ndarray], angle_deg: float, centre) -> dict[str, np.ndarray]:
    """Rotate local polygons by ``angle_deg`` (counter-clockwise on screen) about the centre of their
    footprint and move that centre to ``centre`` (x, y)."""
    pts = np.concatenate(list(local.values()))
    mid = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
    a = math.radians(angle_deg)
    # y points down: counter-clockwise on screen is clockwise in array maths
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    c = np.asarray(centre, dtype=np.float64)
    return {k: (p - mid) @ rot.T + c for k, p in local.items()}


def _footprint(parts: dict[str, np.ndarray]) -> shapely.Polygon:
    """Convex hull of all parts: the area a section takes on the wafer."""
    return shapely.MultiPoint(np.concatenate(list(parts.values()))).convex_hull


# --------------------------------------------------------------------------------------------
# random layouts
# --------------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return float(lo if hi <= lo else rng.uniform(lo, hi))


def _taper_range(trapezoid) -> tuple[float, float]:
    """``trapezoid`` as a ``(lo, hi)`` taper range; a single number t means ``(-t/4, t)``: real
    blocks are trimmed wider on the tissue side far more often than the other way round."""
    if np.ndim(trapezoid) == 0:
        t = abs(float(trapezoid))
        return (-0.25 * t, t)
    lo, hi = (float(v) for v in trapezoid)
    return (min(lo, hi), max(lo, hi))


def _random_shape(
    rng, size_range, aspect_range, magnet_ratio_range, trapezoid, dummy_probability, dummy_gap_range, dummy_width_range
) -> _Shape:
    size = _uniform(rng, size_range)  # mean tissue long side
    tissue_w = size / _uniform(rng, aspect_range)
    magnet_w = tissue_w * _uniform(rng, magnet_ratio_range)
    taper = _uniform(rng, trapezoid)
    shear = float(rng.uniform(-0.15, 0.15)) * max(abs(taper), 0.02)
    l0 = size / (1.0 + 0.5 * taper)
    shape = _Shape(l0, tissue_w, magnet_w, taper, shear)
    if rng.random() < dummy_probability:
        shape.dummy_gap = _uniform(rng, dummy_gap_range)
        shape.dummy_w = _uniform(rng, dummy_width_range)
    return shape


class _Grid:
    """Uniform grid of cells holding section indices, for neighbour look-up by centre."""

    def __init__(self, cell: float):
        self.cell = cell
        self.cells: dict[tuple[int, int], list[int]] = {}

    def add(self, index: int, centre) -> None:
        key = (int(centre[0] // self.cell), int(centre[1] // self.cell))
        self.cells.setdefault(key, []).append(index)

    def near(self, centre) -> list[int]:
        """Indices whose centre lies in the 3 x 3 cells around ``centre``."""
        cx, cy = int(centre[0] // self.cell), int(centre[1] // self.cell)
        out: list[int] = []
        for i in (cx - 1, cx, cx + 1):
            for j in (cy - 1, cy, cy + 1):
                out.extend(self.cells.get((i, j), ()))
        return out


def random_layout(
    rng: np.random.Generator,
    width: int,
    height: int,
    *,
    n_sections: int | None = None,
    density: float = 27.0,
    size_range=(124.0, 130.0),
    aspect_range=(2.25, 2.45),
    magnet_ratio_range=(0.89, 0.93),
    trapezoid=(0.09, 0.13),
    dummy_probability: float = 0.5,
    dummy_gap_range=(0.0, 4.0),
    dummy_width_range=(8.0, 20.0),
    touching_fraction: float = 0.3,
    touch_gap_range=(0.0, 1.0),
    max_overlap_depth: float = 1.5,
    region: str = "ring",
    hole: float = 0.3,
    align_probability: float = 0.7,
    align_sigma: float = 10.0,
    margin: float = 20.0,
    max_attempts_per_section: int = 60,
) -> list[Section]:
    """Random non-overlapping sections on a ``width x height`` px image.

    - ``n_sections``: how many to place; when None, ``density`` sections per megapixel of the
      usable area (the image less ``margin`` px on every side). When the wafer is too full, fewer
      are returned (a warning is logged).
    - ``size_range``: mean long side of the tissue part, px (sampled per section; keep it narrow
      for realism: one wafer's sections come from one block). ``aspect_range``: tissue long side /
      tissue short side. ``magnet_ratio_range``: magnet short side / tissue short side.
    - ``trapezoid``: taper, the relative length difference between the tissue's far long edge and
      the shared edge (0 gives rectangles; the magnet continues the same taper): a ``(lo, hi)``
      range, or one number t for ``(-t/4, t)``. Sections also get a small random shear.
    - ``dummy_probability``: chance of a dummy strip ``dummy_width_range`` px wide, placed
      ``dummy_gap_range`` px beyond the tissue's far edge.
    - ``touching_fraction``: chance that a section is slid against an already placed one until it
      is ``touch_gap_range`` px away from it, or overlaps it by up to ``max_overlap_depth`` px
      (about half of these). Other sections never intersect anything. A slid section takes its
      neighbour's orientation (+- ``align_sigma`` degrees, magnet on either side) with
      ``align_probability``: real sections crowd in locally parallel ribbons.
    - ``region``: ``"full"`` spreads sections uniformly over the image; ``"ring"`` (as on real
      wafers, where the sections settle around an empty middle) keeps the centres inside a wobbly
      annulus touching the margins, whose hole has ``hole`` times its outer radius.
    - Orientation is otherwise uniform in [0, 360). Sections keep ``margin`` px from the border.

    Returns sections sorted by nothing in particular (placement order); deterministic for ``rng``.
    """
    usable = (width - 2 * margin) * (height - 2 * margin)
    if usable <= 0:
        raise ValueError(f"image {width}x{height} px has no room inside a margin of {margin} px")
    if n_sections is None:
        n_sections = int(round(density * usable / 1e6))
    if region not in ("ring", "full"):
        raise ValueError(f"region must be 'ring' or 'full', got {region!r}")
    in_region = _ring(rng, width, height, margin, hole) if region == "ring" else (lambda c: True)
    trapezoid = _taper_range(trapezoid)
    shape_args = (
        size_range,
        aspect_range,
        magnet_ratio_range,
        trapezoid,
        dummy_probability,
        dummy_gap_range,
        dummy_width_range,
    )
    # largest possible footprint radius, for the neighbour grid and the slide start distance
    big = max(size_range) * (1 + max(abs(t) for t in trapezoid)) + 2.0
    radius = 0.5 * math.hypot(
        big, big / min(aspect_range) * (1 + max(magnet_ratio_range)) + max(dummy_gap_range) + max(dummy_width_range)
    )
    grid = _Grid(2.0 * radius)
    polys: list[shapely.Polygon] = []
    angles: list[float] = []
    fails: list[int] = []  # failed slides against each placed section
    open_ids: list[int] = []  # sections still worth sliding against
    sections: list[Section] = []
    attempts = 0
    while len(sections) < n_sections and attempts < n_sections * max_attempts_per_section:
        attempts += 1
        touching = bool(open_ids) and rng.random() < touching_fraction
        if touching:
            slot = int(rng.integers(len(open_ids)))
            j = open_ids[slot]
            angle = float(rng.uniform(0.0, 360.0))
            ray = None
            if rng.random() < align_probability:
                angle = angles[j] + float(rng.normal(0.0, align_sigma)) + 180.0 * int(rng.integers(2))
                # parallel neighbours mostly stack side by side (across their long axes)
                ray = math.radians(angles[j] + 90.0 + 180.0 * int(rng.integers(2)) + float(rng.normal(0.0, 20.0)))
            local = _place(_random_shape(rng, *shape_args).parts(), angle, (0.0, 0.0))
            shift = _slide_against(rng, _hull(local), polys[j], touch_gap_range, max_overlap_depth, radius, ray)
            if not in_region(shift) or not _inside_box(shift, local, width, height, margin):
                continue
        else:
            shift = np.array([rng.uniform(margin, width - margin), rng.uniform(margin, height - margin)])
            if not in_region(shift):  # cheap test first: most misses cost nothing more
                continue
            angle = float(rng.uniform(0.0, 360.0))
            local = _place(_random_shape(rng, *shape_args).parts(), angle, (0.0, 0.0))
        parts = {k: p + shift for k, p in local.items()}
        fp = shapely.Polygon(_hull(parts))
        if not _inside(fp, width, height, margin) or not _fits(fp, shift, polys, grid, touching):
            if touching:  # a neighbour that keeps refusing is buried: stop sliding against it
                fails[j] += 1
                if fails[j] >= 4:
                    open_ids[slot] = open_ids[-1]
                    open_ids.pop()
            continue
        index = len(sections)
        polys.append(fp)
        angles.append(angle)
        fails.append(0)
        open_ids.append(index)
        grid.add(index, shift)
        sections.append(
            Section(Part(parts["tissue"]), Part(parts["magnet"]), Part(parts["dummy"]) if "dummy" in parts else None)
        )
    if len(sections) < n_sections:
        log.warning(
            "placed only %d of %d sections on a %dx%d px wafer (too full)", len(sections), n_sections, width, height
        )
    return sections


def _hull(parts: dict[str, np.ndarray]) -> np.ndarray:
    """Convex hull vertices ``(K, 2)`` of all parts (exact input coordinates)."""
    import cv2

    pts = np.concatenate(list(parts.values()))
    return pts[cv2.convexHull(pts.astype(np.float32), returnPoints=False).ravel()]


def _ring(rng, width, height, margin, hole):
    """A predicate ``centre -> bool``: inside an annulus centred on the image, outer radius reaching
    the margins, inner radius ``hole`` x outer; both radii wobble with the polar angle."""
    cx, cy = 0.5 * width, 0.5 * height
    outer = 0.5 * min(width, height) - margin
    k = np.arange(2, 6)
    a_out, a_in = rng.uniform(0, 0.04, 4) / k, rng.uniform(0, 0.25, 4) / k
    p_out, p_in = rng.uniform(0, 2 * np.pi, 4), rng.uniform(0, 2 * np.pi, 4)

    def inside(c) -> bool:
        dx, dy = c[0] - cx, c[1] - cy
        phi = math.atan2(dy, dx)
        r = math.hypot(dx, dy)
        r_out = outer * (1 - 0.04 + float(np.sum(a_out * np.cos(k * phi + p_out))))
        r_in = hole * outer * (1 + float(np.sum(a_in * np.cos(k * phi + p_in))))
        return r_in <= r <= r_out

    return inside


def _slide_against(rng, hull, target, gap_range, max_overlap_depth, radius, ray=None) -> np.ndarray:
    """Where to put the centre of a section whose footprint, centred on the origin, is ``hull``
    ``(K, 2)``, so that it lies against the placed footprint ``target``: on a random ray from the
    target's centre, the nearest position at the wanted gap (or overlapping by a random depth up
    to ``max_overlap_depth`` px). ``ray``: the ray's screen angle in radians (counter-clockwise),
    random when None. Searched with two vectorised sweeps of 48 steps (~0.02 px)."""
    centre = np.array([target.centroid.x, target.centroid.y])
    a = rng.uniform(0.0, 2 * math.pi) if ray is None else ray
    direction = np.array([math.cos(a), -math.sin(a)])  # from the target outwards (y down)
    overlap = rng.random() < 0.5 and max_overlap_depth > 0
    gap = 0.0 if overlap else _uniform(rng, gap_range)
    lo, hi = 0.0, 2.0 * radius + 2.0  # distance of the candidate's centre from the target's
    for _ in range(2):
        t = np.linspace(lo, hi, 48)
        shifted = hull[None] + (centre + t[:, None] * direction)[:, None, :]
        d = shapely.distance(shapely.polygons(shifted), target)
        k = int(np.argmax(d > gap + 1e-9))  # first free step (the last one is always free)
        lo, hi = t[max(k - 1, 0)], t[k]
    dist = hi - (float(rng.uniform(0.0, max_overlap_depth)) if overlap else 0.0)
    return centre + dist * direction


def _inside_box(centre, local, width, height, margin) -> bool:
    """Cheap pre-test: the parts' bounding box, moved to ``centre``, is inside the margins."""
    pts = np.concatenate(list(local.values()))
    lo, hi = pts.min(axis=0) + centre, pts.max(axis=0) + centre
    return lo[0] >= margin and lo[1] >= margin and hi[0] <= width - margin and hi[1] <= height - margin


def _inside(fp: shapely.Polygon, width, height, margin) -> bool:
    x0, y0, x1, y1 = fp.bounds
    return x0 >= margin and y0 >= margin and x1 <= width - margin and y1 <= height - margin


def _fits(fp: shapely.Polygon, centre, polys, grid: _Grid, touching: bool) -> bool:
    """No intersection with placed footprints; a slid ("touching") section may overlap by a sliver
    (at most 2 % of its area)."""
    near = grid.near(centre)
    if not near:
        return True
    others = [polys[k] for k in near]
    hit = shapely.intersects(fp, others)
    if not hit.any():
        return True
    if not touching:
        return False
    allowed = 0.02 * fp.area
    return all(fp.intersection(o).area <= allowed for o, h in zip(others, hit) if h)


# --------------------------------------------------------------------------------------------
# layouts from files, dummies
# --------------------------------------------------------------------------------------------


def layout_from_file(path: str | os.PathLike, scale: float = 1.0, fmt: str | None = None) -> list[Section]:
    """Sections read with :func:`sectionseg.formats.read_sections` (any supported format), with
    coordinates multiplied by ``scale`` (e.g. 1/3 for full-resolution MagC files)."""
    from sectionseg.formats import read_sections  # formats is the stage above: import on use

    return read_sections(path, fmt=fmt, scale=scale)


def _far_edge(tissue: np.ndarray, magnet: np.ndarray):
    """For a quadrilateral tissue: ``(c, d, outward)``, the far edge's end points (the two vertices
    away from the magnet, in order) and the unit directions along the tissue's side edges, pointing
    away from the magnet. None when the tissue is not a quadrilateral."""
    if len(tissue) != 4:
        return None
    mag = shapely.Polygon(magnet)
    dist = np.array([mag.distance(shapely.Point(p)) for p in tissue])
    near = set(np.argsort(dist)[:2].tolist())
    # the two near vertices must be adjacent (they form the shared edge)
    i = next((k for k in range(4) if k in near and (k + 1) % 4 in near), None)
    if i is None:
        return None
    a, b = tissue[i], tissue[(i + 1) % 4]
    c, d = tissue[(i + 2) % 4], tissue[(i + 3) % 4]  # c adjacent to b, d adjacent to a
    ec, ed = c - b, d - a
    nc, nd = np.linalg.norm(ec), np.linalg.norm(ed)
    if nc < 1e-6 or nd < 1e-6:
        return None
    return c, d, ec / nc, ed / nd


def add_dummies(
    rng: np.random.Generator,
    sections: list[Section],
    *,
    probability: float = 0.5,
    gap_range=(0.0, 4.0),
    width_range=(8.0, 20.0),
    avoid_overlap: bool = True,
) -> list[Section]:
    """Return new sections where each section without a dummy gets one with ``probability``.

    The dummy extends the tissue's side edges beyond its far edge (away from the magnet), starting
    ``gap_range`` px from it and ``width_range`` px wide. With ``avoid_overlap`` a dummy that would
    hit another section's tissue or magnet is left out. Sections need both a tissue and a magnet
    part; others are returned unchanged.
    """
    footprints = [_footprint({k: p.polygon for k, p in s.parts().items()}) for s in sections]
    tree = shapely.STRtree(footprints) if footprints else None
    out: list[Section] = []
    for idx, s in enumerate(sections):
        new = Section(s.tissue, s.magnet, s.dummy, s.score, dict(s.extra))
        draw = rng.random() < probability
        gap, w = _uniform(rng, gap_range), _uniform(rng, width_range)  # drawn always: stable streams
        if draw and s.dummy is None and s.tissue is not None and s.magnet is not None:
            edge = _far_edge(s.tissue.polygon, s.magnet.polygon)
            if edge is not None:
                c, d, uc, ud = edge
                dummy = np.array([d + ud * (gap + w), c + uc * (gap + w), c + uc * gap, d + ud * gap])
                poly = shapely.Polygon(dummy)
                hits = [] if tree is None else [k for k in tree.query(poly) if k != idx]
                if not avoid_overlap or not any(poly.intersects(footprints[k]) for k in hits):
                    new.dummy = Part(dummy)
        out.append(new)
    return out


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------


def _sides(polygon: np.ndarray) -> tuple[float, float]:
    """``(long, short)`` side in px: for a quadrilateral the means of its two pairs of opposite
    edges, otherwise the sides of the minimum-area rectangle."""
    return Quad(polygon).size() if len(polygon) == 4 else rect_sides(polygon)


def _summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"median": float("nan"), "p5": float("nan"), "p95": float("nan")}
    p5, med, p95 = np.percentile(v, [5, 50, 95])
    return {"median": float(med), "p5": float(p5), "p95": float(p95)}


def layout_stats(sections: list[Section], touch_distance: float = TOUCH_DISTANCE) -> dict:
    """Statistics of a layout, to compare random layouts with real ones.

    Returns a dict: ``n``; ``tissue_long``, ``tissue_short``, ``magnet_long``, ``magnet_short``,
    ``tissue_aspect`` (long/short), ``tissue_area``, ``magnet_area``, ``nn_distance`` (centre of a
    section's tissue+magnet to the nearest other section's, px) — each ``{median, p5, p95}``;
    ``touching_fraction`` (sections whose tissue+magnet area comes closer than ``touch_distance`` px
    to another section's), ``overlap_pairs`` (pairs whose areas intersect by > 1 px^2),
    ``dummy_fraction``, ``density`` (sections per megapixel of the bounding box of all parts).
    """
    from scipy.spatial import cKDTree

    paired = [s for s in sections if s.tissue is not None and s.magnet is not None]
    tissue = [_sides(s.tissue.polygon) for s in paired]
    magnet = [_sides(s.magnet.polygon) for s in paired]
    bodies = [
        shapely.union(shapely.Polygon(s.tissue.polygon).buffer(0), shapely.Polygon(s.magnet.polygon).buffer(0))
        for s in paired
    ]
    stats = {
        "n": len(sections),
        "tissue_long": _summary([t[0] for t in tissue]),
        "tissue_short": _summary([t[1] for t in tissue]),
        "magnet_long": _summary([m[0] for m in magnet]),
        "magnet_short": _summary([m[1] for m in magnet]),
        "tissue_aspect": _summary([t[0] / t[1] for t in tissue if t[1] > 0]),
        "tissue_area": _summary([s.tissue.area for s in paired]),
        "magnet_area": _summary([s.magnet.area for s in paired]),
        "dummy_fraction": float(np.mean([s.dummy is not None for s in sections])) if sections else 0.0,
    }
    touching, overlaps, nn = 0, 0, []
    if len(bodies) >= 2:
        centres = np.array([[b.centroid.x, b.centroid.y] for b in bodies])
        d, _ = cKDTree(centres).query(centres, k=2)
        nn = d[:, 1]
        tree = shapely.STRtree(bodies)
        touched = np.zeros(len(bodies), dtype=bool)
        for i, b in enumerate(bodies):
            for j in tree.query(b.buffer(touch_distance)):
                if j == i:
                    continue
                if b.distance(bodies[j]) < touch_distance:
                    touched[i] = True
                if j > i and b.intersection(bodies[j]).area > 1.0:
                    overlaps += 1
        touching = float(touched.mean())
    stats["nn_distance"] = _summary(nn)
    stats["touching_fraction"] = float(touching)
    stats["overlap_pairs"] = int(overlaps)
    if sections:
        x0, y0, x1, y1 = sections_bounds(sections)
        stats["density"] = float(len(sections) / max((x1 - x0) * (y1 - y0) / 1e6, 1e-9))
    else:
        stats["density"] = 0.0
    return stats
