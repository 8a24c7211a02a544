"""Whole sections the model saw as one part, split at the edge their two halves share.

Without a fluorescence image, on wafers whose tissue and magnetic halves look alike (near-square
sections, similar gray levels: the real picture of ``shared/real/panel_b``), the model may outline a
whole section as one part. Such a lone part is larger than the wafer's paired parts allow (it would
be dropped as implausible: ``settings.max_area_factor`` x their typical area; on a wafer where
nothing was paired, any lone part qualifies). Where it shows a straight edge across its middle,
parallel to two of its sides (the shared edge, a step between the halves' levels or a thin line),
it is split there into a tissue and a magnetic part. Where it shows none (halves alike, texture,
noise) but has the shape of the wafer's whole sections (:class:`SectionShape`, measured on its
parts), it is cut where the wafer's tissue and magnet depths put the shared edge. Such parts are
taken out before pairing (:func:`set_aside_whole`), so that no neighbour pairs with them.

Which half is which follows, in this order, the fluorescence (the brighter half is the magnet), the
wafer's measured levels (the half lighter than the other is the tissue where the wafer's tissue is
lighter than its magnet, and the other way round: the relation, because a section's brightness
varies from the wafer's), the bead specks (the magnet shows more), and otherwise the darker half is
the tissue (the relation on most wafers we have seen); the wafer-level consensus later corrects
sections that disagree with the wafer.

Parts and image are in one frame, the fit frame of the detection (a
:class:`~sectionseg.detection.tiling.WaferSource` at the fit scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sectionseg.detection.consensus import blob_level, part_features
from sectionseg.detection.evidence import WaferLevels
from sectionseg.detection.refine import Candidate, crop_around
from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import WaferSource
from sectionseg.geometry import Part, Quad, Section, order_corners
from sectionseg.geometry.pairing import DEFAULT_GAP_SHARE, pair_cost
from sectionseg.geometry.quads import rect_sides

CHUNKS = 6  # pieces along the edge whose step positions must agree
PROFILE_STEP = 0.5  # px between samples across the part
MIN_LEVELS = 3.0  # gray levels (0-255): smaller differences between two halves are noise
SHAPE_TIE = 0.05  # shape mismatches closer than this fit alike (the fit of a merged mask is rough)


def split_merged(
    unpaired: list[Section],
    sections: list[Section],
    source: WaferSource,
    levels: WaferLevels | None,
    settings: RepairSettings = RepairSettings(),
) -> tuple[list[Section], list[Section]]:
    """``(new sections, lone parts left)``: lone parts that are whole sections (see the module
    doc) split into paired parts; the others are returned unchanged. Sections and ``source`` in fit
    px."""
    if sections:
        typical = float(np.median([sum(p.area for p in s.pair()) for s in sections])) / 2.0
    else:
        typical = None  # nothing paired on this wafer: any lone part may be a whole section
    # the wafer's shape cuts parts gray alone only (see set_aside_whole)
    shape = (
        None
        if source.fluo is not None or not settings.runs("split_by_shape")
        else SectionShape.of([s.pair()[0] for s in sections], [s.pair()[1] for s in sections], settings)
    )
    contrast = None  # how the wafer's parts differ: measured when a part needs it
    found, rest = [], []
    for s in unpaired:
        part = s.tissue or s.magnet
        assert part is not None  # a Section has a tissue or a magnet
        if typical is not None and part.area <= settings.max_area_factor * typical:
            rest.append(s)
            continue
        quad = order_corners(part.polygon)
        halves = _split(quad, source, settings)
        if halves is not None:
            tissue, magnet = _tissue_first(halves, source, levels)
        elif shape is not None and (cut := _split_by_shape(quad, shape, source, levels, settings)) is not None:
            contrast = part_contrast(sections, source, settings) if contrast is None else contrast
            if not _differ_as_parts(cut, contrast, source, settings):
                rest.append(s)  # one material (a patch of mosaic shading): not a section
                continue
            tissue, magnet = cut
        else:
            rest.append(s)
            continue
        found.append(
            Section(
                Part(tissue),
                Part(magnet),
                s.dummy,
                score=s.score,
                extra={**s.extra, "split_from_one_part": True},
            )
        )
    return found, rest


@dataclass(frozen=True)
class SectionShape:
    """A wafer's typical section (fit px): the long side of its parts and the depths (short sides)
    of its tissue and magnetic parts, medians over its parts."""

    length: float
    tissue_depth: float
    magnet_depth: float

    @property
    def depth(self) -> float:
        """Depth of a whole section across its two parts."""
        return self.tissue_depth + self.magnet_depth

    @classmethod
    def of(cls, tissues: list[Part], magnets: list[Part], settings: RepairSettings) -> SectionShape | None:
        """The shape of these parts (of paired sections, or every part detected); None with fewer
        than ``settings.min_levels_sections`` of either kind."""
        if min(len(tissues), len(magnets)) < settings.min_levels_sections:
            return None
        t = np.median([rect_sides(p.polygon) for p in tissues], axis=0)
        m = np.median([rect_sides(p.polygon) for p in magnets], axis=0)
        return cls(float(t[0]), float(t[1]), float(m[1]))

    def mismatch(self, q: np.ndarray) -> float:
        """How far quad ``q`` is from a whole section lying along its side q0 -> q1: the larger
        relative difference of its length and its depth (0 = the wafer's typical section)."""
        length = 0.5 * float(np.hypot(*(q[1] - q[0])) + np.hypot(*(q[2] - q[3])))
        depth = 0.5 * float(np.hypot(*(q[3] - q[0])) + np.hypot(*(q[2] - q[1])))
        return max(abs(length / self.length - 1.0), abs(depth / self.depth - 1.0))

    def is_whole(self, part: Part, tolerance: float) -> bool:
        """Whether ``part`` has a whole section's shape (either way round, within ``tolerance``)."""
        q = order_corners(Quad.around(part.polygon).corners)
        return min(self.mismatch(q), self.mismatch(np.roll(q, -1, axis=0))) <= tolerance


def set_aside_whole(
    tissues: list[Candidate], magnets: list[Candidate], settings: RepairSettings = RepairSettings()
) -> tuple[list[Candidate], list[Candidate], list[Section]]:
    """``(tissues, magnets, whole)``: candidates larger than ``settings.max_area_factor`` x the
    median of their kind and shaped like the wafer's whole sections (measured on every candidate,
    :class:`SectionShape`) are taken out before pairing (a neighbour's lone part would pair with them,
    or have its partner rebuilt from their pixels) and returned as lone-part sections, for
    :func:`split_merged`. Not those with parts of the other kind along both long sides: two parts
    of one kind back to back, each with its partner (rebuilt by ``rebuild_touching``). Fit px. The
    pipeline calls it gray alone only: with a fluorescence image such parts were two neighbours'
    parts (crowded benchmark wafer)."""
    shape = SectionShape.of([c.part for c in tissues], [c.part for c in magnets], settings)
    if shape is None:
        return tissues, magnets, []
    whole: list[Section] = []

    def keep(cands: list[Candidate], others: list[Candidate], kind: str) -> list[Candidate]:
        median = float(np.median([c.part.area for c in cands]))
        kept = []
        for c in cands:
            if (
                c.part.area > settings.max_area_factor * median
                and c.detection is not None
                and shape.is_whole(c.part, settings.merged_shape_tolerance)
                and not _partners_on_both_sides(
                    c.part, [o.part for o in others], kind, DEFAULT_GAP_SHARE * shape.length
                )
            ):
                parts = {"tissue": None, "magnet": None, kind: c.part}
                whole.append(Section(parts["tissue"], parts["magnet"], score=c.score, extra={f"{kind}_score": c.score}))
            else:
                kept.append(c)
        return kept

    return keep(tissues, magnets, "tissue"), keep(magnets, tissues, "magnet"), whole


def _partners_on_both_sides(part: Part, others: list[Part], kind: str, max_gap: float) -> bool:
    """Whether parts of the other kind share an edge with ``part`` (of ``kind``) on both of its long
    sides."""
    quad = Quad.around(part.polygon)
    long_side = quad.long_sides()[0]
    reach = float(np.hypot(*np.ptp(quad.corners, axis=0)))
    sides = set()
    for other in others:
        offset = np.asarray(other.centre) - quad.centre
        if np.hypot(*offset) > reach:
            continue
        tissue, magnet = (part, other) if kind == "tissue" else (other, part)
        if np.isfinite(pair_cost(tissue, magnet, max_gap=max_gap)):
            sides.add(bool(offset @ long_side.normal > 0))
    return len(sides) == 2


def _contrasts(
    tissue: np.ndarray, magnet: np.ndarray, source: WaferSource, settings: RepairSettings
) -> np.ndarray | None:
    """Differences tissue - magnet of two parts (quads): mean gray and dark blobs (the sample); None
    where one leaves the wafer. (The finer dark structure was left out: on a wafer whose parts differ
    little in it, halves of one patch of mosaic shading differed by as much.)"""
    ft, fm = part_features(source, tissue, settings), part_features(source, magnet, settings)
    bt, bm = blob_level(source, tissue, settings), blob_level(source, magnet, settings)
    if ft is None or fm is None or bt is None or bm is None:
        return None
    return np.array([ft["gray_level"] - fm["gray_level"], bt - bm])


def part_contrast(
    sections: list[Section], source: WaferSource, settings: RepairSettings = RepairSettings()
) -> np.ndarray:
    """How a wafer's tissue and magnetic parts differ: per feature of :func:`_contrasts`, the median
    of ``|tissue - magnet|`` over up to ``settings.merged_contrast_sample`` of its paired sections
    (evenly picked); zeros without any."""
    n = min(len(sections), settings.merged_contrast_sample)
    diffs = []
    for k in np.unique(np.linspace(0, len(sections) - 1, n).astype(int)):
        tissue, magnet = sections[k].pair()
        d = _contrasts(tissue.polygon, magnet.polygon, source, settings)
        if d is not None:
            diffs.append(np.abs(d))
    return np.median(diffs, axis=0) if diffs else np.zeros(2)


def _differ_as_parts(
    halves: tuple[np.ndarray, np.ndarray], contrast: np.ndarray, source: WaferSource, settings: RepairSettings
) -> bool:
    """Whether two halves differ as a tissue and a magnet of this wafer do: in one feature of
    :func:`_contrasts` by at least ``settings.merged_contrast_share`` of the wafer's typical
    difference (``contrast``, :func:`part_contrast`) and by :data:`MIN_LEVELS`, whichever half is
    which."""
    d = _contrasts(*halves, source, settings)
    if d is None:
        return False
    need = np.maximum(MIN_LEVELS, settings.merged_contrast_share * contrast)
    return bool(np.any(np.abs(d) >= need))


def _split_by_shape(
    quad: np.ndarray, shape: SectionShape, source: WaferSource, levels: WaferLevels | None, settings: RepairSettings
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(tissue, magnet)``: a quad shaped like the wafer's whole sections (length and depth within
    ``settings.merged_shape_tolerance`` of ``shape``) cut across its depth where the wafer's tissue
    and magnet depths put the shared edge. Which half is the tissue follows the image (as
    :func:`_tissue_first`, on the halves of a cut through the middle), the cut then lies at the
    tissue's depth from that side; where both directions fit (near-square sections) the one with
    the steeper step at its cut wins. None when the quad is not such a section."""
    best = None
    for k in (0, 1):
        q = np.roll(quad, -k, axis=0)
        mismatch = shape.mismatch(q)
        if mismatch > settings.merged_shape_tolerance:
            continue
        sampled = _profile(q, source)
        if sampled is None:
            continue
        _, ss, prof = sampled
        halves = _cut(q, 0.5)
        tissue_near = _tissue_first(halves, source, levels)[0] is halves[0]
        share = shape.tissue_depth / shape.depth if tissue_near else shape.magnet_depth / shape.depth
        g = np.abs(np.gradient(ndimage.gaussian_filter1d(prof.mean(axis=0), max(1.0, 1.0 / PROFILE_STEP))))
        window = np.abs(ss - share) <= 0.05
        strength = float(g[window].max() / (np.median(g) + 1e-6)) if window.any() else 0.0
        # the direction the wafer's shape says; the steeper step only between two that fit alike
        rank = (round(mismatch / SHAPE_TIE), -strength)
        if best is None or rank < best[0]:
            a, b = _cut(q, share)
            best = (rank, (a, b) if tissue_near else (b, a))
    return None if best is None else best[1]


def _cut(q: np.ndarray, share: float, share1: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The two pieces of quad ``q`` cut across its depth at ``share`` of it at corner 0 (and
    ``share1`` at corner 1, default the same: a cut parallel to the side q0 -> q1), the piece on
    that side first."""
    share1 = share if share1 is None else share1
    a0, a1 = q[0] + share * (q[3] - q[0]), q[1] + share1 * (q[2] - q[1])
    return np.array([q[0], q[1], a1, a0]), np.array([a0, a1, q[2], q[3]])


def _profile(q: np.ndarray, source: WaferSource) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(shares along, shares across, profiles)``: the image sampled across ``q`` from its side
    q0 -> q1 to the opposite side q3 -> q2 (a trapezoid is followed; shares 0.05-0.95 of the depth,
    every PROFILE_STEP px), one row per px along the side (0.1-0.9 of it). None where the quad is
    too small or leaves the wafer."""
    length = float(np.hypot(*(q[1] - q[0])))
    depth = float(np.hypot(*(q[3] - q[0])))
    if min(length, depth) < 12.0:
        return None
    crop = crop_around(source, q, margin=2)  # the wafer's edge repeated beyond it
    if crop is None:
        return None
    image, origin = crop[0].astype(np.float32), crop[1]
    ts = np.arange(0.1, 0.9, 1.0 / length)
    ss = np.arange(0.05, 0.95, PROFILE_STEP / depth)
    near = q[0] + ts[:, None] * (q[1] - q[0])
    far = q[3] + ts[:, None] * (q[2] - q[3])
    pts = near[:, None, :] + ss[None, :, None] * (far - near)[:, None, :] - origin
    return ts, ss, ndimage.map_coordinates(image, [pts[..., 1] - 0.5, pts[..., 0] - 0.5], order=1)


def _split(quad: np.ndarray, source: WaferSource, settings: RepairSettings) -> tuple[np.ndarray, np.ndarray] | None:
    """The two halves ``(a, b)`` (fit px) of a quad cut along a straight edge across its middle
    parallel to one pair of its sides, or None. Both pairs of sides are tried; the stronger edge
    wins."""
    best = None
    for k in (0, 1):
        found = _edge_across(quad, k, source, settings)
        if found is not None and (best is None or found[2] > best[3]):
            best = (k, *found)
    if best is None:
        return None
    k, share0, share1, _ = best
    return _cut(np.roll(quad, -k, axis=0), share0, share1)


def _edge_across(
    quad: np.ndarray, k: int, source: WaferSource, settings: RepairSettings
) -> tuple[float, float, float] | None:
    """``(depth share at corner k, depth share at corner k + 1, strength)`` of a straight edge
    across ``quad`` along its side ``k``: on each of :data:`CHUNKS` pieces along the side, the
    steepest step between ``settings.merged_min_share`` and 1 - that share of the way to the
    opposite side; the steps must lie on one line (within ``settings.merged_agreement`` of the
    depth). Strength: the median over the pieces of the step's gradient over the median gradient
    inside the part. None when there is no such edge."""
    sampled = _profile(np.roll(quad, -k, axis=0), source)
    if sampled is None:
        return None
    ts, ss, prof = sampled
    inner = (ss > settings.merged_min_share) & (ss < 1.0 - settings.merged_min_share)
    sigma = max(1.0, 1.0 / PROFILE_STEP)  # ~1 px: texture smoothed, the edge kept
    where, peaks, strengths = [], [], []
    for idx in np.array_split(np.arange(ts.size), CHUNKS):
        g = np.abs(np.gradient(ndimage.gaussian_filter1d(prof[idx].mean(axis=0), sigma)))[inner]
        k = int(np.argmax(g))
        where.append(float(ts[idx].mean()))
        peaks.append(float(ss[inner][k]))
        strengths.append(float(g[k] / (np.median(g) + 1e-6)))
    # one straight edge: the chunks' peaks on a line (the part's quad may be a little turned)
    slope, offset = np.polyfit(where, peaks, 1)
    residual = np.abs(np.polyval([slope, offset], where) - np.array(peaks))
    ends = np.polyval([slope, offset], [0.0, 1.0])
    strength = float(np.median(strengths))
    if (
        residual.max() > settings.merged_agreement
        or strength < settings.merged_min_strength
        or ends.min() < 0.5 * settings.merged_min_share
        or ends.max() > 1.0 - 0.5 * settings.merged_min_share
    ):
        return None
    return float(ends[0]), float(ends[1]), strength


def _tissue_first(
    halves: tuple[np.ndarray, np.ndarray], source: WaferSource, levels: WaferLevels | None
) -> tuple[np.ndarray, np.ndarray]:
    """The halves as ``(tissue, magnet)`` (see the module doc for the order of the evidence)."""
    a, b = halves
    fa, fb = part_features(source, a), part_features(source, b)
    if fa is None or fb is None:
        return halves
    if "fluo_level" in fa and abs(fa["fluo_level"] - fb["fluo_level"]) > 5.0:
        return (a, b) if fa["fluo_level"] < fb["fluo_level"] else (b, a)
    if levels is not None and abs(levels.tissue - levels.magnet) > 5.0:
        # the wafer's relation, not its levels: a section's brightness varies from the wafer's
        lighter_is_tissue = levels.tissue > levels.magnet
        return (a, b) if (fa["gray_level"] > fb["gray_level"]) == lighter_is_tissue else (b, a)
    if abs(fa["specks"] - fb["specks"]) > 0.005:
        return (a, b) if fa["specks"] < fb["specks"] else (b, a)
    return (a, b) if fa["gray_level"] <= fb["gray_level"] else (b, a)
