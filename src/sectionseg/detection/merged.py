"""Whole sections the model saw as one part, split at the edge their two halves share.

Without a fluorescence image, on wafers whose tissue and magnetic halves look alike (near-square
sections, similar gray levels: the real picture of ``shared/real/panel_b``), the model may outline a
whole section as one part. Such a lone part is larger than the wafer's paired parts allow (it would
be dropped as implausible: ``settings.max_area_factor`` x their typical area; on a wafer where
nothing was paired, any lone part qualifies) and shows a straight edge across its middle,
parallel to two of its sides: the shared edge, a step between the halves' levels or a thin line.
It is split there into a tissue and a magnetic part. Which half is which follows, in this order, the
fluorescence (the brighter half is the magnet), the wafer's measured levels (each half goes to the
nearer of the wafer's tissue and magnet levels), the bead specks (the magnet shows more), and
otherwise the darker half is the tissue (the relation on most wafers we have seen); the wafer-level
consensus later corrects sections that disagree with the wafer.

Parts and image are in one frame, the fit frame of the detection (a
:class:`~sectionseg.detection.tiling.WaferSource` at the fit scale).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sectionseg.detection.consensus import part_features
from sectionseg.detection.evidence import WaferLevels
from sectionseg.detection.refine import crop_around
from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import WaferSource
from sectionseg.geometry import Part, Section, order_corners

CHUNKS = 6  # pieces along the edge whose step positions must agree
PROFILE_STEP = 0.5  # px between samples across the part


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
    found, rest = [], []
    for s in unpaired:
        part = s.tissue or s.magnet
        assert part is not None  # a Section has a tissue or a magnet
        if typical is not None and part.area <= settings.max_area_factor * typical:
            rest.append(s)
            continue
        halves = _split(order_corners(part.polygon), source, settings)
        if halves is None:
            rest.append(s)
            continue
        tissue, magnet = _tissue_first(halves, source, levels)
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
    q = np.roll(quad, -k, axis=0)  # side q0 -> q1 and its opposite q3 -> q2 are cut across
    a0, a1 = q[0] + share0 * (q[3] - q[0]), q[1] + share1 * (q[2] - q[1])
    return np.array([q[0], q[1], a1, a0]), np.array([a0, a1, q[2], q[3]])


def _edge_across(
    quad: np.ndarray, k: int, source: WaferSource, settings: RepairSettings
) -> tuple[float, float, float] | None:
    """``(depth share at corner k, depth share at corner k + 1, strength)`` of a straight edge
    across ``quad`` along its side ``k``: on each of :data:`CHUNKS` pieces along the side, the
    steepest step between ``settings.merged_min_share`` and 1 - that share of the way to the
    opposite side; the steps must lie on one line (within ``settings.merged_agreement`` of the
    depth). Strength: the median over the pieces of the step's gradient over the median gradient
    inside the part. None when there is no such edge."""
    q = np.roll(quad, -k, axis=0)
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
    # points between the side q0 -> q1 and its opposite q3 -> q2 (a trapezoid is followed)
    near = q[0] + ts[:, None] * (q[1] - q[0])
    far = q[3] + ts[:, None] * (q[2] - q[3])
    pts = near[:, None, :] + ss[None, :, None] * (far - near)[:, None, :] - origin
    prof = ndimage.map_coordinates(image, [pts[..., 1] - 0.5, pts[..., 0] - 0.5], order=1)
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
        cost_ab = abs(fa["gray_level"] - levels.tissue) + abs(fb["gray_level"] - levels.magnet)
        cost_ba = abs(fb["gray_level"] - levels.tissue) + abs(fa["gray_level"] - levels.magnet)
        return (a, b) if cost_ab <= cost_ba else (b, a)
    if abs(fa["specks"] - fb["specks"]) > 0.005:
        return (a, b) if fa["specks"] < fb["specks"] else (b, a)
    return (a, b) if fa["gray_level"] <= fb["gray_level"] else (b, a)
