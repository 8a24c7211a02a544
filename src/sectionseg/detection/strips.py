"""Strips merged into a tissue part, cut back to the tissue's own far edge.

A dummy strip often lies against the tissue's far side (the side opposite the magnet), 0-5 px away,
and looks like the tissue itself. The model reads the wafer at a scale where such a gap is under a
pixel (and its masks are 28x28 cells), so a tissue mask often swallows part of the dummy, or of a
neighbour across a thin gap; the fitted far side then lands several px outside the true one and the
tissue's centre moves with it. Image levels alone do not tell a gap line from the tissue's own light
striations, but geometry does: on one wafer the tissue is about the same share deeper than its
magnet for every section (the same block was trimmed once), and the magnets' outlines are precise.
A tissue part deeper than that share of its magnet's depth by more than a few px has its far side
searched for the tissue's edge (the step from tissue to bare wafer) around the expected depth.

Parts and image are in one frame, the fit frame of the detection (a
:class:`~sectionseg.detection.tiling.WaferSource` at the fit scale, sections ~130 px long).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from scipy import ndimage

from sectionseg.detection.evidence import WaferLevels
from sectionseg.detection.refine import crop_around
from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import WaferSource
from sectionseg.geometry import Part, Quad, Section, order_corners
from sectionseg.geometry.fitting import refine_side


def trim_merged_strips(
    sections: list[Section],
    source: WaferSource,
    levels: WaferLevels | None,
    settings: RepairSettings = RepairSettings(),
) -> tuple[list[Section], dict[str, Any]]:
    """Paired sections whose tissue's far side is moved back onto the tissue's edge where the tissue
    is deeper than the wafer's tissue/magnet depth ratio allows (see the module doc). Needs the
    wafer's levels (the polarity of the tissue's edge) and ``settings.consensus_min_sections`` paired
    sections. Sections and ``source`` in fit px. Returns ``(sections, record)``: the measured ratio
    and the number trimmed."""
    record: dict[str, Any] = {"depth_ratio": None, "trimmed": 0}
    measured = {i: _depths(s) for i, s in enumerate(sections) if s.tissue is not None and s.magnet is not None}
    depths = {i: d for i, d in measured.items() if d is not None}
    if levels is None or len(depths) < settings.consensus_min_sections:
        record["skipped"] = "too few paired sections or no wafer levels"
        return sections, record
    # each tissue's quad and the gray crop around it, read once for both uses below
    crops = {i: (quad, crop_around(source, quad)) for i, (_, _, _, quad) in depths.items()}
    # the ratio from tissues with bare wafer right beyond their far side: a tissue cut short by the
    # model or the fit (more tissue beyond it) would pull it down
    clean = [t / m for i, (t, m, far, _) in depths.items() if _far_side_clear(*crops[i], far, levels, settings)]
    record["ratio_sections"] = len(clean)
    if len(clean) < settings.consensus_min_sections:
        record["skipped"] = "too few tissues with a clear far side"
        return sections, record
    ratio = float(np.median(clean))
    record["depth_ratio"] = ratio
    out = list(sections)
    for i, (tissue_depth, magnet_depth, far, _) in depths.items():
        excess = tissue_depth - ratio * magnet_depth
        if excess < max(settings.strip_min_excess, settings.strip_excess_share * tissue_depth):
            continue
        quad = _trimmed(*crops[i], far, excess, levels, settings)
        if quad is not None:
            s = sections[i]
            out[i] = Section(
                tissue=Part(quad),
                magnet=s.magnet,
                dummy=s.dummy,
                score=s.score,
                extra={**s.extra, "strip_trimmed": True},
            )
            record["trimmed"] += 1
    return out, record


def _far_side_clear(
    quad: np.ndarray,
    crop: tuple[np.ndarray, np.ndarray] | None,
    far: int,
    levels: WaferLevels,
    settings: RepairSettings,
) -> bool:
    """Whether the bare wafer shows just beyond the far side ``far`` of the tissue
    ``quad`` (``crop``: the gray crop around it and its origin, from ``crop_around``)."""
    if crop is None:
        return False
    image, origin = crop
    p0, p1, n, _ = Quad.clockwise(quad).sides()[far]
    return _gap_beyond(image, p0 - origin, p1 - origin, n, levels.background, settings)


def _depths(s: Section) -> tuple[float, float, int, np.ndarray] | None:
    """``(tissue depth, magnet depth, index of the tissue's far side, tissue quad)`` in fit px:
    each part's area over the length of its side along the shared edge; the quad in
    :func:`order_corners` order (the far side indexes its :meth:`Quad.sides`)."""
    tissue_part, magnet_part = s.pair()
    tissue_quad = Quad.clockwise(tissue_part.polygon)
    magnet_quad = Quad.clockwise(magnet_part.polygon)
    tissue, magnet = tissue_quad.corners, magnet_quad.corners
    touching, _ = tissue_quad.facing(magnet)
    mt, _ = magnet_quad.facing(tissue)
    t_len, m_len = tissue_quad.sides()[touching].length, magnet_quad.sides()[mt].length
    if t_len <= 0 or m_len <= 0:
        return None
    return (
        float(shapely.Polygon(tissue).area) / t_len,
        float(shapely.Polygon(magnet).area) / m_len,
        (touching + 2) % 4,
        tissue,
    )


def _trimmed(
    quad: np.ndarray,
    crop: tuple[np.ndarray, np.ndarray] | None,
    k: int,
    excess: float,
    levels: WaferLevels,
    settings: RepairSettings,
) -> np.ndarray | None:
    """The tissue ``quad`` (fit px; ``crop``: the gray crop around it and its origin) with its
    far side ``k`` on the tissue's edge, searched ``settings.strip_edge_search`` px either side of
    the expected depth (``excess`` px inside the side), or None when no clear step of the tissue's
    polarity is there. (Asking for bare wafer just beyond the step as well, or for a step of a share
    of the wafer's contrast, kept out fewer wrong cuts on a textured held-out family than right ones
    on the others: see BENCHMARKS.md.)"""
    if crop is None:
        return None
    image, origin = crop
    polarity = 1 if levels.background > levels.tissue else -1  # tissue -> bare wafer, going out
    moved = _moved_side(quad, k, excess)
    found = refine_side(
        moved - origin,
        image,
        k,
        search=settings.strip_edge_search,
        search_out=settings.strip_edge_search,
        polarity=polarity,
        min_peak=settings.edge_min_levels / 4,
    )
    return None if found is None else order_corners(found + origin)


def _gap_beyond(
    image: np.ndarray, p0: np.ndarray, p1: np.ndarray, n: np.ndarray, background: float, settings: RepairSettings
) -> bool:
    """Whether, just outside the side ``p0 -> p1`` (crop frame, outward normal ``n``), the mean
    profile across it comes ``settings.strip_gap_share`` of the way from the level inside (2-6 px in)
    to the wafer's ``background`` level."""
    length = float(np.hypot(*(p1 - p0)))
    u = (p1 - p0) / max(length, 1e-9)
    ts = np.arange(0.15 * length, 0.85 * length, 1.0)
    ss = np.arange(-6.0, 4.51, 0.5)
    pts = p0 + ts[:, None, None] * u + ss[None, :, None] * n
    prof = ndimage.map_coordinates(
        np.asarray(image, np.float32), [pts[..., 1] - 0.5, pts[..., 0] - 0.5], order=1, mode="nearest"
    ).mean(axis=0)
    inside = float(np.median(prof[(ss >= -6.0) & (ss <= -2.0)]))
    contrast = background - inside
    if abs(contrast) < settings.edge_min_levels:
        return False
    reached = float(np.max((prof[ss >= 0.0] - inside) / contrast))
    return reached >= settings.strip_gap_share


def _moved_side(quad: np.ndarray, k: int, inward: float) -> np.ndarray:
    """``quad`` with side ``k`` moved ``inward`` px towards the inside, parallel to itself (its end
    corners slide along the adjacent sides)."""
    p0, p1, n, _ = Quad.clockwise(quad).sides()[k]
    out = quad.copy()
    for corner, other in ((k, (k - 1) % 4), ((k + 1) % 4, (k + 2) % 4)):
        along = quad[other] - quad[corner]
        cos = float(np.dot(along, -n)) / max(float(np.hypot(*along)), 1e-9)
        out[corner] = quad[corner] + along / max(float(np.hypot(*along)), 1e-9) * inward / max(cos, 0.2)
    return out
