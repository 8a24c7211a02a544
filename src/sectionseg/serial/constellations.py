"""Rotation- and flip-invariant constellations of beads, and cheap candidate pairs of sections.

A constellation is a bead (the anchor) with 3 of its ``neighbours`` nearest beads, ordered by
their distance to the anchor: its descriptor is the 3 anchor distances and the 3 distances among
the neighbours, quantised to ``bin_px`` and packed into one int64 key. The descriptor does not
change when a section is turned, shifted or mirrored, and a missing or extra bead only spoils the
constellations it takes part in. ``parity`` (the sign of the first two neighbours' turn around the
anchor) flips with a mirror image.

:func:`candidate_pairs` counts the keys that two sections share, for all sections at once (hash
join: sort the keys of every section, count the co-occurrences of each key), and keeps for each
section its ``candidates`` best partners: consecutive sections share most beads, hence most
constellations, while unrelated ones share a few by chance. Cost: O(total constellations x the
sections a key occurs in), instead of aligning all n^2 pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.spatial import cKDTree

_BITS = 6  # per quantised distance: 6 distances x 6 bits in one int64
_MAX_BIN = (1 << _BITS) - 1
MAX_KEY_SECTIONS = 80  # a key shared by more sections than this says nothing


@dataclass
class Constellations:
    """Constellations of one section: ``keys`` ``(M,)`` int64 (unique), ``members`` ``(M, 4)`` bead
    indices (anchor, then its 3 neighbours by distance), ``parity`` ``(M,)`` +1/-1."""

    keys: np.ndarray
    members: np.ndarray
    parity: np.ndarray


def constellations(xy: np.ndarray, neighbours: int = 5, bin_px: float = 2.0) -> Constellations:
    """The constellations of bead centres ``xy`` ``(N, 2)`` px (see the module doc); keys occurring
    twice in one section are dropped (ambiguous)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    k = min(neighbours, len(xy) - 1)
    if k < 3:
        return Constellations(np.zeros(0, np.int64), np.zeros((0, 4), np.int64), np.zeros(0, np.int8))
    dist, idx = cKDTree(xy).query(xy, k + 1)
    dist, idx = dist[:, 1:], idx[:, 1:]
    combos = np.array(list(combinations(range(k), 3)))  # (C, 3), increasing: by distance
    n, c = len(xy), len(combos)
    nb = idx[:, combos]  # (N, C, 3)
    da = dist[:, combos]  # anchor distances
    p = xy[nb]  # (N, C, 3, 2)
    d01 = np.linalg.norm(p[:, :, 0] - p[:, :, 1], axis=-1)
    d02 = np.linalg.norm(p[:, :, 0] - p[:, :, 2], axis=-1)
    d12 = np.linalg.norm(p[:, :, 1] - p[:, :, 2], axis=-1)
    desc = np.stack([da[..., 0], da[..., 1], da[..., 2], d01, d02, d12], -1) / bin_px
    q = np.floor(desc).astype(np.int64).reshape(n * c, 6)
    ok = (q <= _MAX_BIN).all(1)
    keys = np.zeros(n * c, np.int64)
    for j in range(6):
        keys = (keys << _BITS) | q[:, j]
    a = xy[:, None, :]
    v1, v2 = p[:, :, 0] - a, p[:, :, 1] - a
    parity = np.sign(v1[..., 0] * v2[..., 1] - v1[..., 1] * v2[..., 0]).reshape(-1).astype(np.int8)
    members = np.concatenate([np.repeat(np.arange(n), c)[:, None], nb.reshape(n * c, 3)], 1)
    keys, members, parity = keys[ok], members[ok], parity[ok]
    uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
    single = first[counts == 1]
    return Constellations(keys[single], members[single], parity[single])


def candidate_pairs(all_keys: list[np.ndarray], candidates: int = 10, min_votes: int = 3):
    """Candidate partners of every section from its constellation keys.

    ``all_keys[i]``: unique keys of section ``i``. Returns ``(pairs, votes)``: ``pairs`` ``(P, 2)``
    with ``i < j``, each pair among the ``candidates`` most-shared partners of ``i`` or of ``j``
    (and sharing at least ``min_votes`` keys), and ``votes`` the dense ``(n, n)`` matrix of shared
    key counts (int32).
    """
    n = len(all_keys)
    keys = np.concatenate([np.asarray(k, np.int64) for k in all_keys]) if n else np.zeros(0, np.int64)
    sec = np.concatenate([np.full(len(k), i, np.int64) for i, k in enumerate(all_keys)]) if n else keys
    order = np.argsort(keys, kind="stable")
    keys, sec = keys[order], sec[order]
    start = np.r_[0, np.flatnonzero(np.diff(keys)) + 1]
    size = np.diff(np.r_[start, len(keys)])
    group_size = np.repeat(size, size)
    votes = np.zeros(n * n, np.int64)
    usable = group_size <= MAX_KEY_SECTIONS
    longest = int(size[size <= MAX_KEY_SECTIONS].max()) if len(size) and (size <= MAX_KEY_SECTIONS).any() else 0
    for off in range(1, longest):
        same = (keys[off:] == keys[:-off]) & usable[off:]
        a, b = sec[:-off][same], sec[off:][same]
        votes += np.bincount(a * n + b, minlength=n * n)
    votes = votes.reshape(n, n)
    votes = votes + votes.T
    np.fill_diagonal(votes, 0)
    keep = np.zeros((n, n), bool)
    if n > 1:
        k = min(candidates, n - 1)
        best = np.argpartition(-votes, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (n, 1))
        rows = np.repeat(np.arange(n), best.shape[1])
        keep[rows, best.reshape(-1)] = True
    keep &= votes >= min_votes
    keep |= keep.T
    np.fill_diagonal(keep, False)
    i, j = np.nonzero(np.triu(keep))
    return np.c_[i, j].astype(np.int64), votes.astype(np.int32)


def shared(a: Constellations, b: Constellations) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(ia, ib)`` of the constellations with the same key in ``a`` and ``b``."""
    _, ia, ib = np.intersect1d(a.keys, b.keys, assume_unique=True, return_indices=True)
    return ia, ib
