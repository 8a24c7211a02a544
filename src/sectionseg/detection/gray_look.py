"""A second look without the fluorescence for magnets found alone.

With a fluorescence image the model finds magnets easily (they shine) but on a wafer unlike its
training data it may miss the tissues beside them: on the real picture of ``../shared/real/panel_b``
tissue and magnet have the same gray level, and five of its six magnets come out alone. Gray alone
the same model outlines those sections (whole, then cut in two by the ``split_merged`` repair).
When many magnets stay alone, :func:`needs_gray_look` says so and the pipeline runs the detection
again on the gray image alone, at the same scale; :func:`partners_from_gray` then gives each lone
magnet the other part of the gray-only section that has it (the fluorescence's magnet is kept: it
decides which part is the magnet, whichever way round the gray-only pass labelled them).
"""

from __future__ import annotations

import shapely

from sectionseg.detection.settings import RepairSettings
from sectionseg.geometry import Part, Section
from sectionseg.geometry.polygons import polygon_iou


def lone_magnets(unpaired: list[Section]) -> list[Section]:
    """The sections of ``unpaired`` that are a magnet without a tissue."""
    return [s for s in unpaired if s.magnet is not None and s.tissue is None]


def needs_gray_look(sections: list[Section], unpaired: list[Section], settings: RepairSettings) -> bool:
    """Whether the lone magnets are many enough (``settings.gray_look_min_lone`` and
    ``settings.gray_look_share`` of all magnets found) for a second, gray-only pass."""
    lone = len(lone_magnets(unpaired))
    magnets = lone + sum(s.magnet is not None for s in sections)
    return lone >= settings.gray_look_min_lone and lone >= settings.gray_look_share * max(magnets, 1)


def partners_from_gray(
    unpaired: list[Section], gray_sections: list[Section], *, min_iou: float = 0.5
) -> tuple[list[Section], list[Section]]:
    """Lone magnets of ``unpaired`` completed from the paired ``gray_sections`` of a gray-only pass
    (same frame, source px): a gray-only section one of whose parts covers the lone magnet with an IoU
    of at least ``min_iou`` gives its other part as the tissue. Returns ``(new sections, still
    unpaired)``."""
    shapes = [
        (shapely.Polygon(s.tissue.polygon), shapely.Polygon(s.magnet.polygon), s)
        for s in gray_sections
        if s.tissue is not None and s.magnet is not None
    ]
    new, rest = [], []
    used: set[int] = set()
    for lone in unpaired:
        if lone.magnet is None or lone.tissue is not None:
            rest.append(lone)
            continue
        magnet = shapely.Polygon(lone.magnet.polygon)
        best, tissue, pick = 0.0, None, -1
        for k, (t, m, s) in enumerate(shapes):
            if k in used:
                continue
            for same, other in ((m, s.tissue), (t, s.magnet)):
                iou = polygon_iou(magnet, same)
                if iou >= min_iou and iou > best:
                    best, tissue, pick = iou, other, k
        if tissue is None:
            rest.append(lone)
            continue
        used.add(pick)
        new.append(
            Section(
                tissue=Part(tissue.polygon),
                magnet=lone.magnet,
                score=lone.score,
                extra={**lone.extra, "recovered": "tissue from the gray image alone"},
            )
        )
    return new, rest
