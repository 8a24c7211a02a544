"""Stage order: a short path through the sections for the microscope stage (open travelling salesman).

The path starts at the point nearest the top-left corner (smallest ``x + y``) and ends anywhere.
Heuristics: a greedy nearest-neighbour path, improved by python-tsp's Lin-Kernighan moves (up to
:data:`LK_MAX_POINTS` points), then by 2-opt sweeps (segment reversals, vectorised with numpy) until
none shortens the path or :data:`MAX_SWEEPS` is reached. Everything is deterministic (python-tsp's
local search is not used: it draws from Python's global random state under a wall-clock limit).
The open path is solved as a closed tour in which the return to the start costs nothing; distances
are rounded to 1/16 px because python-tsp's Lin-Kernighan can cycle forever on floating-point ties.
"""

from __future__ import annotations

import numpy as np
from python_tsp.heuristics import solve_tsp_lin_kernighan

LK_MAX_POINTS = 2000  # python-tsp's Lin-Kernighan is pure Python: seconds up to here
MAX_SWEEPS = 50  # 2-opt sweeps at most (each is O(N^2) numpy work)
_UNIT = 16.0  # distance resolution: 1/16 px


def path_length(points: np.ndarray, order) -> float:
    """Length (px) of the open path visiting ``points`` ``(N, 2)`` in ``order``."""
    p = np.asarray(points, dtype=np.float64)[list(order)]
    return float(np.hypot(*np.diff(p, axis=0).T).sum()) if len(p) > 1 else 0.0


def _nearest_neighbour(dist: np.ndarray) -> list[int]:
    """Greedy path from point 0: always on to the nearest unvisited point."""
    n = len(dist)
    left = np.ones(n, dtype=bool)
    left[0] = False
    path = [0]
    for _ in range(n - 1):
        j = int(np.argmin(np.where(left, dist[path[-1]], np.inf)))
        path.append(j)
        left[j] = False
    return path


def _two_opt(points: np.ndarray, path: list[int]) -> list[int]:
    """2-opt on an open path with a fixed start: reverse ``path[i+1..j]`` while that shortens it."""
    p = np.array(path)
    n = len(p)
    for _ in range(MAX_SWEEPS):
        improved = False
        for i in range(n - 2):
            xy = points[p]
            a, b = xy[i], xy[i + 1]
            c, d = xy[i + 2 :], np.vstack([xy[i + 3 :], [np.nan, np.nan]])  # j = i+2 .. n-1
            old = np.hypot(*(b - a)) + np.nan_to_num(np.hypot(*(d - c).T))
            new = np.hypot(*(c - a).T) + np.nan_to_num(np.hypot(*(d - b).T))
            gain = old - new
            k = int(np.argmax(gain))
            if gain[k] > 1e-6:
                j = i + 2 + k
                p[i + 1 : j + 1] = p[i + 1 : j + 1][::-1].copy()
                improved = True
        if not improved:
            break
    return p.tolist()


def stage_order(points: np.ndarray) -> list[int]:
    """A short open path through ``points`` ``(N, 2)`` (x, y px): a permutation of ``range(N)``,
    starting at the point with the smallest ``x + y``. Deterministic."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    if n == 0:
        return []
    start = int(np.argmin(pts[:, 0] + pts[:, 1]))
    # put the start first: the solvers' tours begin at index 0
    idx = np.r_[start, np.delete(np.arange(n), start)]
    p = pts[idx]
    if n <= 3:  # trivial: start, then the nearer of the others first
        rest = sorted(range(1, n), key=lambda i: float(np.hypot(*(p[i] - p[0]))))
        return [int(idx[i]) for i in [0] + rest]
    dist = np.round(_UNIT * np.hypot(p[:, None, 0] - p[None, :, 0], p[:, None, 1] - p[None, :, 1]))
    dist[:, 0] = 0.0  # returning to the start is free: an open path
    path = _nearest_neighbour(dist)
    if n <= LK_MAX_POINTS:
        path, _ = solve_tsp_lin_kernighan(dist, x0=path)
    del dist
    path = _two_opt(p, list(path))
    return [int(idx[i]) for i in path]
