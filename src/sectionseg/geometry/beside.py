"""Rebuild a tissue part from its magnetic part when the tissue's own outline is unreliable.

Two tissue parts that touch look like one dark region: the model's mask (and any edge search on the
image) runs on into the neighbour, and the quad fitted to it is wrong. The magnetic part next to
each of them is usually clean (the fluorescence separates magnets), and a section's tissue shares
one long edge with its magnet. So the tissue is rebuilt as the strip beside that edge: the shared
edge is the magnet's long side facing the tissue pixels, the strip's width is where those pixels
stop (capped by the wafer's typical tissue width, since the boundary between two touching tissues
is invisible).

Coordinates: x, y pixels, origin at the top-left corner of the top-left pixel.
"""

from __future__ import annotations

import numpy as np

from sectionseg.geometry.quads import Quad, order_corners

MIN_OCCUPANCY = 0.5  # a row of the strip belongs to the tissue when this fraction of it is covered


def strip_beside(
    anchor: np.ndarray, points: np.ndarray, typical_width: float, max_width_factor: float = 1.25
) -> np.ndarray | None:
    """The quad of the part lying beside ``anchor``'s long side, from the part's pixel centres.

    ``anchor``: the magnet's 4 corners ``(4, 2)``; ``points``: ``(N, 2)`` pixel centres that may
    belong to the part (e.g. the masks of suspect tissue detections nearby), x, y px;
    ``typical_width``: the wafer's usual tissue short side (px). Of the anchor's two long sides, the
    one with more points in front of it (within ``max_width_factor * typical_width``) is the shared
    edge; the width is the extent of the rows (1 px bins parallel to that edge) covered at least
    ``MIN_OCCUPANCY``, counted from the edge, and is ``typical_width`` when the rows run on beyond
    the cap (a touching neighbour). Returns the 4 corners (clockwise from the top-left-most) or None
    when too few points lie there.
    """
    limit = max_width_factor * typical_width
    best = None
    for p0, p1, n, length in Quad.clockwise(anchor).long_sides():
        if length < 1.0:
            continue
        rel = np.asarray(points, dtype=np.float64) - p0
        a, b = rel @ ((p1 - p0) / length), rel @ n
        sel = (a >= 0) & (a <= length) & (b >= 0) & (b <= limit)
        if best is None or sel.sum() > best[0]:
            best = (int(sel.sum()), p0, p1, n, b[sel], length)
    if best is None:
        return None
    count, p0, p1, n, b, length = best
    if count < 0.3 * length * typical_width:
        return None
    rows = np.bincount(np.floor(b).astype(int), minlength=int(np.ceil(limit)) + 1) / length
    covered = rows >= MIN_OCCUPANCY
    first_gap = int(np.argmin(covered)) if not covered.all() else len(covered)
    if first_gap >= limit - 1.0:  # ran on to the cap: a touching neighbour, its boundary unseen
        width = typical_width
    else:  # covered rows plus the partly covered one: sub-pixel width
        width = float(rows[: first_gap + 1].clip(0, 1).sum())
    if width < 0.4 * typical_width:
        return None
    return order_corners(np.array([p0, p1, p1 + width * n, p0 + width * n]))
