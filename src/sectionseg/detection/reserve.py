"""Sections the model saw only with a low score, where nothing confident lies (step ``reserve_sections``).

On a wafer unlike its training data the model often still outlines a section's part, but below the
score threshold: those detections wait in reserve (``RepairSettings.reserve_score`` up to the
threshold). :func:`~sectionseg.detection.repairs.recover_partners` uses them as partners of lone
confident parts; this step uses the rest where no known part lies: two reserve parts that pair with
each other make a section, and a lone reserve part of plausible size whose outline shows on the
image gets its partner from the image (the evidence of :mod:`sectionseg.detection.repairs`). A
reserve part alone has no pairing evidence, so it is never reported alone.

Everything in the fit frame (fit px, the frame of ``source``), as the other repairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import shapely

from sectionseg.detection.evidence import WaferLevels
from sectionseg.detection.inference import Detection
from sectionseg.detection.refine import Candidate, fit_part
from sectionseg.detection.repairs import complete_from_image, drop_implausible, pair_sections, split_unseen
from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import WaferSource
from sectionseg.geometry import Part, Section

T = TypeVar("T")


def _known_shapes(sections: list[Section]) -> list[shapely.Polygon]:
    return [shapely.Polygon(p.polygon) for s in sections for p in (s.tissue, s.magnet) if p is not None]


def _outline(section: Section) -> shapely.Geometry:
    return shapely.unary_union(_known_shapes([section]))


def _clear_of(
    items: list[T], shape: Callable[[T], shapely.Geometry], known: list[shapely.Geometry], max_overlap: float
) -> list[T]:
    """``items``, in their order, leaving out those whose ``shape`` covers more than ``max_overlap`` of
    itself with a ``known`` shape or with an item kept before it."""
    tree = shapely.STRtree(known)
    kept: list[T] = []
    taken: list[shapely.Geometry] = []
    for item in items:
        poly = shape(item)
        near = [known[i] for i in tree.query(poly)] + taken
        if any(poly.intersection(other).area > max_overlap * poly.area for other in near):
            continue
        kept.append(item)
        taken.append(poly)
    return kept


def _free_candidates(
    reserve: list[Detection], known: list[Section], source: WaferSource, refine: bool, max_overlap: float
) -> list[Candidate]:
    """Reserve detections fitted as quads, those covering more than ``max_overlap`` of their area with
    a known part or with a higher-scoring reserve part left out (best score first)."""
    fitted: list[Candidate] = []
    for det in sorted(reserve, key=lambda d: -d.score):
        quad = fit_part(det, source, refine=refine)
        if quad is None:
            continue
        poly = shapely.Polygon(quad)
        if poly.is_valid and poly.area > 0:
            fitted.append(Candidate(Part(quad), det.score, det))
    return _clear_of(fitted, lambda c: shapely.Polygon(c.part.polygon), _known_shapes(known), max_overlap)


def reserve_sections(
    reserve: list[Detection],
    sections: list[Section],
    unpaired: list[Section],
    source: WaferSource,
    refine: bool = True,
    levels: WaferLevels | None = None,
    settings: RepairSettings = RepairSettings(),
) -> list[Section]:
    """New sections made of reserve detections (below the score threshold) where no known part lies.

    ``reserve``: the merged detections below the score threshold (fit px); ``sections``/``unpaired``:
    the sections and lone parts found so far (fit px). A reserve part counts when at most
    ``settings.partner_max_overlap`` of it covers a known part. Pairs among them are sections; lone
    ones of plausible size (``drop_implausible``'s areas, no score bar) that show
    ``settings.edge_sides`` sides on the image get their partner from the image. Each new section's
    ``extra["recovered"]`` says ``"reserve pair"`` or ``"reserve with <kind> from image"``.
    """
    if not reserve or len(sections) < settings.min_levels_sections:
        return []
    free = _free_candidates(reserve, sections + unpaired, source, refine, settings.partner_max_overlap)
    tissues = [c for c in free if c.detection is not None and c.detection.label == 1]
    magnets = [c for c in free if c.detection is not None and c.detection.label != 1]
    paired, lone = pair_sections(tissues, magnets, source, settings)
    for s in paired:
        s.extra["recovered"] = "reserve pair"
    lone, _, _ = drop_implausible(lone, sections, replace(settings, lone_score=0.0))
    seen, _ = split_unseen(lone, source, levels, settings)
    known = sections + unpaired + paired
    completed, _ = complete_from_image(
        sections + paired, seen, source, refine, known=known + seen, levels=levels, settings=settings
    )
    for s in completed:
        s.extra["recovered"] = f"reserve with {s.extra['recovered']}"  # "<kind> from image"
    # best score first, none over a known section or one kept before it
    best_first = sorted(completed, key=lambda s: -(s.score or 0.0))
    return paired + _clear_of(best_first, _outline, [_outline(s) for s in known], settings.partner_max_overlap)
