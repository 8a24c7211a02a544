"""How good a found serial order is, against the true one (simulations, benchmarks).

Orders are lists of section ids. Only ids in both orders count; "consecutive" means adjacent among
those (a lost section in between does not make a link wrong). The direction of an order is
arbitrary (beads do not tell which end was cut first), so links are unordered and Kendall's tau is
given for the better of the two directions (its absolute value).
"""

from __future__ import annotations

from scipy.stats import kendalltau


def _links(order: list[int]) -> set[frozenset]:
    return {frozenset(p) for p in zip(order[:-1], order[1:])}


def wrong_links(found: list[int], true: list[int]) -> list[tuple[int, int]]:
    """Links ``(a, b)`` of ``found`` whose sections are not consecutive in ``true``."""
    common = set(found) & set(true)
    f = [s for s in found if s in common]
    good = _links([s for s in true if s in common])
    return [(a, b) for a, b in zip(f[:-1], f[1:]) if frozenset((a, b)) not in good]


def order_metrics(found: list[int], true: list[int]) -> dict:
    """``consecutive``: share of the true consecutive pairs that are consecutive in ``found``;
    ``kendall_tau``: |tau| between the two orders; ``wrong_links``: count; ``n``: common ids."""
    common = set(found) & set(true)
    f = [s for s in found if s in common]
    t = [s for s in true if s in common]
    true_links = _links(t)
    hit = len(true_links & _links(f))
    rank = {s: k for k, s in enumerate(t)}
    tau = kendalltau(list(range(len(f))), [rank[s] for s in f]).statistic if len(f) > 1 else 1.0
    return {
        "n": len(f),
        "consecutive": hit / len(true_links) if true_links else 1.0,
        "kendall_tau": abs(float(tau)),
        "wrong_links": len(wrong_links(f, t)),
    }
