"""Quads refined on the image: each merged detection's mask fitted and refined on the gray image of
a :class:`~sectionseg.detection.tiling.WaferSource` at the fit scale (:func:`to_fit_frame`), in
worker processes, giving a :class:`Candidate` per part (fit px: the frame detection works in until
its end); and the small helpers the repairs share
(gray crops, edges moved onto the image, mask points, widths).

The quad fitting itself is :mod:`sectionseg.geometry.fitting`; this module runs it on a wafer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sectionseg.detection.inference import Detection
from sectionseg.detection.parallel import fork_map
from sectionseg.detection.tiling import WaferSource
from sectionseg.geometry import Part
from sectionseg.geometry.fitting import SEARCH_OUT_PX, SEARCH_PX, fit_quadrilateral, refine_quad
from sectionseg.geometry.quads import rect_sides
from sectionseg.geometry.raster import polygon_mask
from sectionseg.geometry.scale import REFERENCE_SECTION_SIZE, snap_scale

FIT_MARGIN = 6  # px of image around a mask crop for the edge refinement
#: Farthest reach (times the default search distances) for tissue sides fitted from masks made at a
#: coarser scale. Magnets keep the default: in gray their edges are weaker than the tissue's, and a
#: wider search locks onto the partner tissue's edge across a gap between the parts.
MAX_TISSUE_REACH = 1.5


@dataclass
class Candidate:
    """A part on its way to a section: ``part`` (fit px), ``score``, and for a part fitted to a
    merged detection that ``detection`` (fit px, as :func:`to_fit_frame` gives it) and the quad's
    ``fit_iou`` with its mask; both None for a part a repair made (rebuilt beside its partner)."""

    part: Part
    score: float
    detection: Detection | None = None
    fit_iou: float | None = None


def fit_iou(det: Detection, quad: np.ndarray) -> float:
    """IoU of a quad with the detection's mask (both in one frame: fit px in the pipeline); low
    values flag a poor fit."""
    x0, y0, x1, y1 = det.box
    m = 4
    inside = polygon_mask(quad, (y1 - y0 + 2 * m, x1 - x0 + 2 * m), offset=(x0 - m, y0 - m))
    mask = np.pad(det.mask, m)
    union = np.count_nonzero(inside | mask)
    return float(np.count_nonzero(inside & mask)) / union if union else 0.0


def gray_box(source: WaferSource, x0: int, y0: int, x1: int, y1: int) -> np.ndarray | None:
    """Gray crop ``[x0, x1) x [y0, y1)`` of the working frame; parts outside the wafer repeat its edge
    (None when the box misses the wafer)."""
    w, h = source.size
    gx0, gy0, gx1, gy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if gx1 <= gx0 or gy1 <= gy0:
        return None
    win = source.gray_window(gx0, gy0, gx1, gy1)
    return np.pad(win, ((gy0 - y0, y1 - gy1), (gx0 - x0, x1 - gx1)), mode="edge")


def fit_part(det: Detection, source: WaferSource, refine: bool = True, reach: float = 1.0) -> np.ndarray | None:
    """Quad (4, 2) of a merged detection, in the frame of ``source`` and of the detection (the fit
    frame in :func:`~sectionseg.detection.pipeline.detect_wafer`), edges refined on the gray image.

    ``reach``: the edge search reaches this many times the default distances on either side of the
    mask's sides (masks made at a coarser scale than ``source``'s are that much less precise)."""
    m = math.ceil(FIT_MARGIN * reach)
    mask = np.pad(det.mask, m)
    x0, y0 = det.origin[0] - m, det.origin[1] - m
    image = gray_box(source, x0, y0, x0 + mask.shape[1], y0 + mask.shape[0]) if refine else None
    return fit_quadrilateral(
        mask,
        (x0, y0),
        image,
        refine=refine and image is not None,
        search=SEARCH_PX * reach,
        search_out=SEARCH_OUT_PX * reach,
    )


def fit_candidates(
    dets: list[Detection],
    source: WaferSource,
    refine: bool = True,
    workers: int = 1,
    chunk: int = 32,
    reach: dict[int, float] | None = None,
) -> list[Candidate | None]:
    """A :class:`Candidate` of every detection (None where no quad could be fitted), in order, its
    part in the frame of ``source`` and of the detections (fit px); chunks of ``chunk`` detections
    go to ``workers`` forked processes. ``reach``: label -> search reach (see :func:`fit_part`; 1
    for labels not in it)."""
    reach = reach or {}

    def fit_chunk(start: int) -> list[Candidate | None]:
        found: list[Candidate | None] = []
        for det in dets[start : start + chunk]:
            quad = fit_part(det, source, refine=refine, reach=reach.get(det.label, 1.0))
            found.append(None if quad is None else Candidate(Part(quad), det.score, det, fit_iou(det, quad)))
        return found

    chunks = fork_map(fit_chunk, range(0, len(dets), chunk), workers)
    return [fit for found in chunks for fit in found]


def to_fit_frame(
    dets: list[Detection], source: WaferSource, reference: float = REFERENCE_SECTION_SIZE
) -> tuple[list[Detection], WaferSource, dict[int, float]]:
    """Detections of a model trained on sections ``reference`` px long, and its working ``source``,
    moved to the scale where sections are :data:`REFERENCE_SECTION_SIZE` long, where quads are fitted
    and repaired: a model for small sections reads fewer tiles, but its masks are refined on an image
    as fine as a full-size model's (and every px constant of the repairs keeps its meaning).

    Returns ``(detections, source at the fit scale, reach per label for fit_candidates)``: tissue sides of
    masks from a coarser scale are searched farther (up to :data:`MAX_TISSUE_REACH`)."""
    fit_scale = snap_scale(source.scale * REFERENCE_SECTION_SIZE / reference)
    factor = fit_scale / source.scale
    reach = {1: float(np.clip(factor, 1.0, MAX_TISSUE_REACH))}
    if fit_scale == source.scale:
        return dets, source, reach
    return [d.rescaled(factor) for d in dets], source.rescaled(fit_scale), reach


def crop_around(
    source: WaferSource, quad: np.ndarray, margin: int = FIT_MARGIN
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(gray crop, origin)`` of the working frame around a working-px quad, ``margin`` px wider
    (origin: working px of the crop's top-left corner); None when the crop misses the wafer."""
    x0, y0 = (np.floor(quad.min(axis=0)) - margin).astype(int)
    x1, y1 = (np.ceil(quad.max(axis=0)) + margin).astype(int)
    image = gray_box(source, int(x0), int(y0), int(x1), int(y1))
    return None if image is None else (image, np.array([x0, y0], dtype=np.float64))


def refined_on_image(source: WaferSource, quad: np.ndarray, margin: int = FIT_MARGIN) -> np.ndarray:
    """A working-px quad with its sides moved onto the gray image's edges (:func:`refine_quad` on the
    crop around it, ``margin`` px wider); unchanged when the crop misses the wafer."""
    crop = crop_around(source, quad, margin)
    if crop is None:
        return quad
    image, origin = crop
    refined: np.ndarray = refine_quad(quad - origin, image) + origin
    return refined


def short_side(part: Part) -> float:
    """The short side (px) of the minimum-area rectangle around a part."""
    return rect_sides(part.polygon)[1]


def mask_points(det: Detection) -> np.ndarray:
    """Working-px centres of a detection's mask pixels."""
    rows, cols = np.nonzero(det.mask)
    return np.column_stack([cols + det.origin[0] + 0.5, rows + det.origin[1] + 0.5])
