"""Align the beads of two sections (turned, shifted, maybe mirrored, a little strained) and measure
how much their bead patterns differ.

In: two sections' :class:`~sectionseg.serial.beads.Beads` and constellations. The constellations
with the same key give bead correspondences (4 per constellation); the parity that most of them
agree on says whether one section is mirrored. OpenCV's RANSAC (``estimateAffine2D``) keeps the
consistent correspondences. The transform is affine, not rigid, because sections are compressed a
little differently while cut: over a 1000 px field, 0.5 % of compression moves the border beads by
2.5 px, beyond the match radius; an affine that stretches or shrinks by more than ``max_strain`` is
rejected. It is then refined (RANSAC affine again) on all mutually nearest strong beads.

Out: :class:`PairMatch` with the transform from section ``i``'s image px to section ``j``'s, and
the cost: among the beads that lie inside both fields of view and on both sections' resin (see
:func:`sectionseg.serial.beads.resin_mask`), the share that does not match
(``count``) or the share of bead signal that does not (``flux``: matched beads count by their
brightness difference, after the median brightness ratio of the pair is divided out). Consecutive
sections share nearly all beads (a ~1 um bead shows in ~20 sections of 50 nm), so the cost grows with
the number of sections between two sections: the order is the path of least total cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial import cKDTree

from sectionseg.serial.beads import Beads
from sectionseg.serial.constellations import Constellations, shared
from sectionseg.serial.settings import OrderSettings

NO_MATCH = 1.0  # cost of a pair that could not be aligned (the largest cost)
_MIRROR = np.diag([-1.0, 1.0])


@dataclass
class PairMatch:
    """Result of :func:`match_pair` for sections ``i``, ``j`` (indices into the caller's list).

    ``ok``: aligned; ``matrix``: 2x3 affine from ``i`` px to ``j`` px (rotation, maybe a mirror,
    translation, a small strain); ``mirrored``, ``angle`` (deg, counter-clockwise on screen, of the
    rotation nearest to the linear part); ``votes``: shared
    constellations; ``inliers``: RANSAC inliers; ``matched``: beads matched after refinement;
    ``n_i``, ``n_j``: beads of each inside the common field; ``overlap``: common field / the smaller
    field; ``rms``: px of matched beads; ``gain``: median brightness ratio i/j; ``cost`` in [0, 1];
    ``why``: reason when not ok.
    """

    i: int
    j: int
    ok: bool = False
    matrix: np.ndarray | None = None
    mirrored: bool = False
    angle: float = 0.0
    votes: int = 0
    inliers: int = 0
    matched: int = 0
    n_i: int = 0
    n_j: int = 0
    overlap: float = 0.0
    rms: float = float("nan")
    gain: float = float("nan")
    cost: float = NO_MATCH
    why: str = ""
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64), repr=False)

    def summary(self) -> dict:
        """JSON-ready fields (no arrays)."""
        out = {
            k: getattr(self, k)
            for k in ("i", "j", "ok", "mirrored", "votes", "inliers", "matched", "n_i", "n_j", "why")
        }
        for k in ("angle", "overlap", "rms", "gain", "cost"):
            v = float(getattr(self, k))
            out[k] = None if not np.isfinite(v) else round(v, 4)
        return out


def apply(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Points ``xy`` ``(N, 2)`` through the 2x3 affine ``matrix``."""
    return xy @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def _strain(linear: np.ndarray) -> float:
    """Largest stretch or shrink of a 2x2 linear map: max |singular value - 1|."""
    sv = np.linalg.svd(np.asarray(linear, np.float64), compute_uv=False)
    return float(np.max(np.abs(sv - 1.0)))


def _affine(src: np.ndarray, dst: np.ndarray, before: np.ndarray, max_strain: float, px: float) -> np.ndarray:
    """Affine src -> dst (OpenCV RANSAC, ``px`` reprojection threshold, refined on its inliers);
    ``before`` when there are too few points or the affine stretches or shrinks by more than
    ``max_strain``."""
    if len(src) < 6:
        return before
    matrix, _ = cv2.estimateAffine2D(
        src.astype(np.float32),
        dst.astype(np.float32),
        method=cv2.RANSAC,
        ransacReprojThreshold=px,
        maxIters=500,
        confidence=0.99,
    )
    if matrix is None or _strain(matrix[:, :2]) > max_strain:
        return before
    return matrix


def _mutual(a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """``(K, 2)`` index pairs of points of ``a`` and ``b`` that are each other's nearest, within ``radius``."""
    if not len(a) or not len(b):
        return np.zeros((0, 2), np.int64)
    da, ia = cKDTree(b).query(a, distance_upper_bound=radius)
    db, ib = cKDTree(a).query(b, distance_upper_bound=radius)
    ka = np.flatnonzero(np.isfinite(da))
    ka = ka[ib[ia[ka]] == ka]
    return np.c_[ka, ia[ka]].astype(np.int64)


def _field_overlap(matrix: np.ndarray, size_i, size_j) -> float:
    """Area of field ``i`` mapped into ``j`` and intersected with field ``j``, over the smaller field."""
    wi, hi = size_i
    wj, hj = size_j
    corners = apply(matrix, np.array([[0, 0], [wi, 0], [wi, hi], [0, hi]], np.float64)).astype(np.float32)
    rect = np.array([[0, 0], [wj, 0], [wj, hj], [0, hj]], np.float32)
    if cv2.contourArea(corners, oriented=True) < 0:
        corners = corners[::-1].copy()
    area, _ = cv2.intersectConvexConvex(corners, rect)
    return float(area) / float(min(wi * hi, wj * hj))


def match_pair(
    i: int,
    j: int,
    bi: Beads,
    bj: Beads,
    ci: Constellations,
    cj: Constellations,
    settings: OrderSettings = OrderSettings(),
) -> PairMatch:
    """Align section ``i`` onto ``j`` and measure their cost (see the module doc)."""
    out = PairMatch(i, j)
    ia, ib = shared(ci, cj)
    out.votes = len(ia)
    if len(ia) < 2:
        out.why = "no shared constellations"
        return out
    mirrored = int(np.sum(ci.parity[ia] != cj.parity[ib])) > len(ia) / 2
    same = (ci.parity[ia] != cj.parity[ib]) == mirrored
    corr = np.unique(np.c_[ci.members[ia[same]].reshape(-1), cj.members[ib[same]].reshape(-1)], axis=0)
    src = bi.xy[corr[:, 0]] @ (_MIRROR if mirrored else np.eye(2)).T
    dst = bj.xy[corr[:, 1]]
    if len(corr) < 3:
        out.why = "too few correspondences"
        return out
    m, inl = cv2.estimateAffine2D(
        src.astype(np.float32),
        dst.astype(np.float32),
        method=cv2.RANSAC,
        ransacReprojThreshold=settings.ransac_px,
        maxIters=5000,
        confidence=0.999,
        refineIters=10,
    )
    if m is None:
        out.why = "RANSAC found no transform"
        return out
    out.inliers = int(inl.sum())
    strain = _strain(m[:, :2])
    if strain > settings.max_strain or out.inliers < settings.min_matches:
        out.why = f"RANSAC: strain {strain:.3f}, {out.inliers} inliers"
        return out
    f = _MIRROR if mirrored else np.eye(2)
    matrix = np.c_[m[:, :2] @ f, m[:, 2]]  # i px -> j px
    ki, kj = np.flatnonzero(bi.strong), np.flatnonzero(bj.strong)
    for _ in range(2):  # refine on all mutually nearest strong beads
        pairs = _mutual(apply(matrix, bi.xy[ki]), bj.xy[kj], 2 * settings.match_px)
        if len(pairs) < settings.min_matches:
            out.why = f"{len(pairs)} beads match after RANSAC"
            return out
        matrix = _affine(
            bi.xy[ki[pairs[:, 0]]], bj.xy[kj[pairs[:, 1]]], matrix, settings.max_strain, 0.5 * settings.match_px
        )
    out.ok, out.matrix, out.mirrored = True, matrix, mirrored
    u, _, vt = np.linalg.svd(matrix[:, :2] @ f)
    rot = u @ vt
    out.angle = float(np.degrees(np.arctan2(rot[1, 0], rot[0, 0])) % 360)
    _cost(out, bi, bj, settings)
    if out.matched < settings.min_matches:
        out.ok, out.cost, out.why = False, NO_MATCH, f"{out.matched} beads match in the common field"
    return out


def _cost(out: PairMatch, bi: Beads, bj: Beads, settings: OrderSettings) -> None:
    """Fill matched/n_i/n_j/overlap/rms/gain/cost of an aligned pair (beads of the common field only).

    Pairs: mutually nearest beads of the same channel within ``match_px``, at least one of them
    strong. ``flux`` cost (Bray-Curtis): sum over pairs of ``|f_i - g f_j|`` plus the flux of the
    unmatched strong beads, over the total flux of the same beads; ``count``: unmatched strong beads
    over all strong beads."""
    xi = apply(out.matrix, bi.xy)
    xj = apply(invert(out.matrix), bj.xy)
    si = np.flatnonzero(bj.on_resin(xi, settings.margin_px) & bi.on_resin(bi.xy))
    sj = np.flatnonzero(bi.on_resin(xj, settings.margin_px) & bj.on_resin(bj.xy))
    pairs = _mutual(xi[si], bj.xy[sj], settings.match_px)
    pairs = np.c_[si[pairs[:, 0]], sj[pairs[:, 1]]]
    pairs = pairs[
        (bi.channel[pairs[:, 0]] == bj.channel[pairs[:, 1]]) & (bi.strong[pairs[:, 0]] | bj.strong[pairs[:, 1]])
    ]
    out.pairs = pairs
    strong_i, strong_j = si[bi.strong[si]], sj[bj.strong[sj]]
    out.matched, out.n_i, out.n_j = len(pairs), len(strong_i), len(strong_j)
    out.overlap = _field_overlap(out.matrix, bi.size, bj.size)
    if not len(pairs):
        return
    out.rms = float(np.sqrt(np.mean(np.sum((xi[pairs[:, 0]] - bj.xy[pairs[:, 1]]) ** 2, 1))))
    fi, fj = bi.flux[pairs[:, 0]], bj.flux[pairs[:, 1]]
    both = bi.strong[pairs[:, 0]] & bj.strong[pairs[:, 1]]
    ratio = fi / np.maximum(fj, 1e-9)
    out.gain = float(np.median(ratio[both] if both.sum() >= 5 else ratio))
    lone_i = np.setdiff1d(strong_i, pairs[:, 0])
    lone_j = np.setdiff1d(strong_j, pairs[:, 1])
    if settings.cost == "count":
        total = out.n_i + out.n_j
        out.cost = (len(lone_i) + len(lone_j)) / total if total else NO_MATCH
        return
    g = out.gain
    lone = bi.flux[lone_i].sum() + g * bj.flux[lone_j].sum()
    num = np.abs(fi - g * fj).sum() + lone
    den = fi.sum() + g * fj.sum() + lone
    out.cost = float(np.clip(num / max(den, 1e-9), 0.0, 1.0))
