"""The serial order as the cheapest open path through all sections (travelling salesman, LKH).

In: a symmetric cost matrix ``(n, n)`` in [0, 1] (NaN: pair not compared, taken as the largest
cost). The open path is solved as a closed tour through one extra city, by LKH-3 (package ``elkai``,
deterministic: LKH's fixed seed), on integer costs (1e-4 units). The extra city's link to section
``i`` costs ``i``'s cheapest link: a noisy section (bright dust, low exposure...) costs more with
every partner, and with free end links the cheapest path would put such sections at its ends, where
they pay one link instead of two; with these end costs every section pays about twice its own noise
wherever it stands.
Out: the path as indices; its direction is arbitrary (beads cannot tell the cutting direction), so
it is returned starting at the end ``first`` sits nearer to, or else at the end with the smaller
index.
"""

from __future__ import annotations

import numpy as np

UNIT = 10000  # integer cost units per cost 1
UNKNOWN = 1.5  # cost of a pair that was not compared (above any measured cost)


def _elkai_tour(weights: np.ndarray, runs: int) -> list[int]:
    import elkai

    tour = elkai.DistanceMatrix(weights.tolist()).solve_tsp(runs=runs)
    return list(tour[:-1])


def cheapest_path(cost: np.ndarray, *, runs: int = 10, first: int | None = None) -> list[int]:
    """Indices of ``cost``'s sections in the order of the cheapest open path (see the module doc)."""
    c = np.asarray(cost, dtype=np.float64)
    n = len(c)
    if n <= 1:
        return list(range(n))
    if n == 2:
        path = [0, 1]
    else:
        c = np.where(np.isfinite(c), c, UNKNOWN)
        c = np.minimum(c, c.T)
        w = np.zeros((n + 1, n + 1), np.int64)
        w[1:, 1:] = np.rint(np.clip(c, 0, UNKNOWN) * UNIT)
        off = c + np.diag(np.full(n, np.inf))
        w[0, 1:] = w[1:, 0] = np.rint(np.clip(off.min(1), 0, UNKNOWN) * UNIT)
        np.fill_diagonal(w, 0)
        tour = _elkai_tour(w, runs)
        k = tour.index(0)
        path = [t - 1 for t in tour[k + 1 :] + tour[:k]]
    if first is not None:
        if path.index(first) > (len(path) - 1) / 2:
            path.reverse()
    elif path[-1] < path[0]:
        path.reverse()
    return path


def path_cost(cost: np.ndarray, path: list[int]) -> float:
    """Sum of the link costs along ``path`` (NaN links count as :data:`UNKNOWN`)."""
    c = np.asarray(cost, dtype=np.float64)
    links = c[path[:-1], path[1:]] if len(path) > 1 else np.zeros(0)
    return float(np.where(np.isfinite(links), links, UNKNOWN).sum())
