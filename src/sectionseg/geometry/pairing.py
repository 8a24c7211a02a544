"""Pair tissue parts with magnetic parts: the two parts of a section share one long edge.

For a candidate (tissue, magnet) the cost looks at every combination of a tissue long edge ``a`` and a
magnet long edge ``b`` (the two longest sides of each quad) and keeps the best:

- ``gap``: mean signed distance of ``b``'s end points from ``a``'s line (0 for a shared edge; small
  negative values are overlaps), in units of ``ref = 0.1 x`` the tissue edge length;
- ``misalignment``: how far ``b``'s end points lie from ``a``'s along the edge (a shared edge has the
  same end points; a crowded neighbour's magnet is shifted), same units;
- ``angle``: the angle between the edges, in units of 10 degrees;
- with the ``depths`` a wafer's parts usually have (their short sides), how far each part's depth is
  from its kind's, in units of ``depth_unit`` of it: a dummy strip detected as a magnet (about half
  a magnet's depth on real-look wafers) lies along the tissue's other long side as closely as the
  magnet does, often closer (a magnet's mask stops short of the shared edge).

Hard limits make a pair impossible: ``|gap| > max_gap``, ``angle > max_angle``, overlap of the two
edges along their length below ``min_overlap`` of the shorter one, or the magnet's centre not on the
far side of ``a`` from the tissue's centre. The pairing is one global assignment (Hungarian,
``scipy.optimize.linear_sum_assignment``) per connected group of candidates, where leaving a part
unpaired costs ``max_cost / 2``: so a pair is accepted only when its cost is below ``max_cost`` and
a touching neighbour's magnet never takes the place of the section's own.

:func:`snap_shared_edge` then makes a pair's two fitted quads share their common edge exactly.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from sectionseg.geometry.quads import Quad, Side, order_corners
from sectionseg.geometry.section import Part

DEFAULT_MAX_COST = 5.0
#: the default largest gap between two parts that pair, as a share of the median tissue long side
DEFAULT_GAP_SHARE = 0.1


def long_edges(part: Part) -> list[Side]:
    """The two longest sides of the part's quad (its polygon, or its minimum-area rectangle when it
    has more than 4 points), longest first."""
    return Quad.around(part.polygon).long_sides()


def _edge_terms(
    a: Side,
    b: Side,
    tissue_centre: np.ndarray,
    magnet_centre: np.ndarray,
    max_gap: float,
    max_angle: float,
    min_overlap: float,
    pixel: float = 1.0,
) -> tuple[float, float]:
    """``(cost, gap as a share of a's length)`` of tissue side ``a`` and magnet side ``b`` being the
    shared edge; ``(inf, nan)`` when impossible (``pixel``: see :func:`pair_parts`)."""
    impossible = (math.inf, math.nan)
    a0, a1 = a.start, a.end
    la = float(np.hypot(*(a1 - a0)))
    lb = float(np.hypot(*(b.end - b.start)))
    if la < 1e-6 or lb < 1e-6:
        return impossible
    u = (a1 - a0) / la
    mid = 0.5 * (a0 + a1)
    n = np.array([u[1], -u[0]])
    if (tissue_centre - mid) @ n > 0:  # the normal must point away from the tissue
        n = -n
    if (magnet_centre - mid) @ n <= 0:  # the magnet lies on the tissue's side of the edge
        return impossible
    ub = (b.end - b.start) / lb
    angle = math.degrees(math.acos(min(1.0, abs(float(u @ ub)))))
    if angle > max_angle:
        return impossible
    rel = np.array([b.start - mid, b.end - mid])
    along, across = np.sort(rel @ u), rel @ n
    gap = float(across.mean())
    if abs(gap) > max_gap:
        return impossible
    overlap = min(along[1], 0.5 * la) - max(along[0], -0.5 * la)
    if overlap < min_overlap * min(la, lb):
        return impossible
    misalignment = 0.5 * (abs(along[0] + 0.5 * la) + abs(along[1] - 0.5 * la))
    ref = max(0.1 * la, pixel)
    return float(abs(gap) / ref + misalignment / ref + angle / 10.0), gap / la


def edge_gap(tissue: Part, magnet: Part, *, max_gap: float, max_angle: float = 15.0, min_overlap: float = 0.5) -> float:
    """Gap between a paired tissue and magnet (the signed distance between their facing long sides
    as a share of the tissue's side; negative: they overlap), on the sides :func:`pair_cost` would
    take; NaN when they cannot pair within ``max_gap`` px."""
    tc, mc = np.asarray(tissue.centre), np.asarray(magnet.centre)
    terms = [
        _edge_terms(a, b, tc, mc, max_gap, max_angle, min_overlap)
        for a in long_edges(tissue)
        for b in long_edges(magnet)
    ]
    return min(terms)[1]


def pair_cost(
    tissue: Part,
    magnet: Part,
    *,
    max_gap: float,
    max_angle: float = 15.0,
    min_overlap: float = 0.5,
    pixel: float = 1.0,
    depths: tuple[float, float] | None = None,
    depth_unit: float = 0.2,
) -> float:
    """How badly ``tissue`` and ``magnet`` share a long edge (0 = exactly; inf = impossible;
    ``pixel``, ``depths``, ``depth_unit``: see :func:`pair_parts`)."""
    tc, mc = np.asarray(tissue.centre), np.asarray(magnet.centre)
    cost = min(
        _edge_terms(a, b, tc, mc, max_gap, max_angle, min_overlap, pixel)[0]
        for a in long_edges(tissue)
        for b in long_edges(magnet)
    )
    if depths is None or not math.isfinite(cost):
        return cost
    return cost + sum(
        abs(Quad.around(part.polygon).size()[1] / depth - 1.0) / depth_unit
        for part, depth in zip((tissue, magnet), depths)
        if depth > 0
    )


def _radius(part: Part) -> float:
    """Half the diagonal of the part's bounding box (px)."""
    p = part.polygon
    return 0.5 * float(np.hypot(*(p.max(axis=0) - p.min(axis=0))))


def pair_parts(
    tissues: list[Part],
    magnets: list[Part],
    *,
    max_gap: float | None = None,
    max_angle: float = 15.0,
    min_overlap: float = 0.5,
    max_cost: float = DEFAULT_MAX_COST,
    pixel: float = 1.0,
    depths: tuple[float, float] | None = None,
    depth_unit: float = 0.2,
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pair tissue parts with magnetic parts (polygons in the same px frame).

    ``max_gap``: largest distance (px) between the tissue's and the magnet's facing long edges; None
    picks 10 % of the median tissue long side, but at least 3 image px. See the module doc for the cost,
    whose length unit is 10 % of the tissue's edge, but at least 1 image px. ``pixel``: the length of
    an image px in the parts' frame, for those two floors (parts drawn at another scale than the image's
    pixels pair as they would in it). ``depths``: the usual ``(tissue, magnet)`` depths (short sides,
    same frame) of the wafer's parts, or None; a part ``depth_unit`` x its kind's depth deeper or
    shallower costs 1.

    Returns ``(pairs, unpaired_tissues, unpaired_magnets)``: ``pairs`` a list of
    ``(tissue index, magnet index)`` sorted by tissue index, the others sorted index lists.
    """
    nt, nm = len(tissues), len(magnets)
    if nt == 0 or nm == 0:
        return [], list(range(nt)), list(range(nm))
    if max_gap is None:
        longest = [long_edges(t)[0].length for t in tissues]
        max_gap = max(3.0 * pixel, DEFAULT_GAP_SHARE * float(np.median(longest)))
    t_centres = np.array([t.centre for t in tissues])
    m_centres = np.array([m.centre for m in magnets])
    m_radius = np.array([_radius(m) for m in magnets])
    tree = cKDTree(m_centres)
    rows, cols, costs = [], [], []
    for i, tissue in enumerate(tissues):
        reach = _radius(tissue) + float(m_radius.max()) + max_gap
        for j in tree.query_ball_point(t_centres[i], reach):
            c = pair_cost(
                tissue,
                magnets[j],
                max_gap=max_gap,
                max_angle=max_angle,
                min_overlap=min_overlap,
                pixel=pixel,
                depths=depths,
                depth_unit=depth_unit,
            )
            if c < max_cost:
                rows.append(i)
                cols.append(j)
                costs.append(c)
    pairs = _assign(nt, nm, np.array(rows, int), np.array(cols, int), np.array(costs), max_cost)
    paired_t = {i for i, _ in pairs}
    paired_m = {j for _, j in pairs}
    return (sorted(pairs), [i for i in range(nt) if i not in paired_t], [j for j in range(nm) if j not in paired_m])


def _assign(
    nt: int, nm: int, rows: np.ndarray, cols: np.ndarray, costs: np.ndarray, max_cost: float
) -> list[tuple[int, int]]:
    """Minimum-cost assignment where leaving a part unpaired costs ``max_cost / 2``, solved on each
    connected group of candidate pairs separately (small matrices even for thousands of parts)."""
    if rows.size == 0:
        return []
    graph = coo_matrix((np.ones(rows.size), (rows, nt + cols)), shape=(nt + nm, nt + nm))
    _, label = connected_components(graph, directed=False)
    pairs = []
    for comp in np.unique(label[rows]):
        sel = label[rows] == comp
        ti, ti_inv = np.unique(rows[sel], return_inverse=True)
        mj, mj_inv = np.unique(cols[sel], return_inverse=True)
        a, b = ti.size, mj.size
        big = 1e6
        # [[pair costs, tissue-unpaired], [magnet-unpaired, 0]]
        cost = np.full((a + b, b + a), big)
        cost[:a, :b][ti_inv, mj_inv] = costs[sel]
        cost[np.arange(a), b + np.arange(a)] = 0.5 * max_cost
        cost[a + np.arange(b), np.arange(b)] = 0.5 * max_cost
        cost[a:, b:] = 0.0
        r, c = linear_sum_assignment(cost)
        pairs += [(int(ti[x]), int(mj[y])) for x, y in zip(r, c) if x < a and y < b and cost[x, y] < max_cost]
    return pairs


def snap_shared_edge(tissue: Part, magnet: Part, *, max_gap: float = 10.0) -> tuple[Part, Part]:
    """Make a paired tissue and magnet share one edge line exactly, as real sections do.

    The facing long sides (the best pair by :func:`pair_cost`'s terms) are replaced in both quads by
    their average line, the neighbouring corners re-intersected, and each pair of facing corners
    replaced by its mean, so both parts end with the same two vertices: small gaps and overlaps
    between the two fits vanish and their errors on that edge are averaged. Parts that are not 4-point
    polygons, or whose facing sides are farther apart than ``max_gap`` px, come back unchanged.
    """
    if len(tissue.polygon) != 4 or len(magnet.polygon) != 4:
        return tissue, magnet
    quad_t, quad_m = Quad.clockwise(tissue.polygon), Quad.clockwise(magnet.polygon)
    qt, qm = quad_t.corners, quad_m.corners
    sides_t, sides_m = quad_t.sides(), quad_m.sides()
    tc, mc = np.asarray(tissue.centre), np.asarray(magnet.centre)
    best, pair = math.inf, None
    for i in quad_t.long_side_indices():
        for j in quad_m.long_side_indices():
            c = _edge_terms(sides_t[i], sides_m[j], tc, mc, max_gap, 15.0, 0.5)[0]
            if c < best:
                best, pair = c, (i, j)
    if pair is None:
        return tissue, magnet
    i, j = pair
    ua, ub = qt[(i + 1) % 4] - qt[i], qm[(j + 1) % 4] - qm[j]
    ua, ub = ua / np.hypot(*ua), ub / np.hypot(*ub)
    u = ua + (ub if ua @ ub >= 0 else -ub)
    u /= np.hypot(*u)
    point = 0.25 * (qt[i] + qt[(i + 1) % 4] + qm[j] + qm[(j + 1) % 4])
    moved_t = quad_t.with_side(i, (point, u if u @ ua >= 0 else -u))
    moved_m = quad_m.with_side(j, (point, u if u @ ub >= 0 else -u))
    if moved_t is None or moved_m is None:
        return tissue, magnet
    new_t, new_m = moved_t.corners, moved_m.corners
    # the shared edge's two end points: the mean of the facing corners (now all on the line)
    a0, a1 = (i, (i + 1) % 4)
    b0, b1 = (j, (j + 1) % 4)
    if np.hypot(*(new_t[a0] - new_m[b0])) > np.hypot(*(new_t[a0] - new_m[b1])):
        b0, b1 = b1, b0
    for ta, mb in ((a0, b0), (a1, b1)):
        new_t[ta] = new_m[mb] = 0.5 * (new_t[ta] + new_m[mb])
    return Part(order_corners(new_t)), Part(order_corners(new_m))
