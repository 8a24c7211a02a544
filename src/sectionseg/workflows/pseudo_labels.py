"""Which sections an adapted model found confidently enough to be taught as labels in a next round of
fine-tuning (self-training: ``sectionseg finetune --rounds``).

With a dozen hand labels the adapted model finds part of its wafer; the sections it found with both
parts confident and as it saw them (no repair made or moved a part) show the wafer's other looks
(brightness, neighbours, debris) that the dozen did not. They join the hand labels; a section
overlapping a hand-labelled one is left out (the hand label stands).
"""

from __future__ import annotations

import numpy as np
import shapely

from sectionseg.export.outputs import REPAIR_KEYS
from sectionseg.geometry import Section

#: repairs after which a section is still as the model saw it (the magnet's side moved back onto its edge)
KEEPS_SHAPE = frozenset({"gap_trimmed"})


def _outline(s: Section) -> shapely.Geometry:
    return shapely.MultiPoint(np.vstack([p.polygon for p in s.pair()])).convex_hull


def confident_sections(
    found: list[Section], labelled: list[Section], min_score: float = 0.7, max_overlap: float = 0.1
) -> list[Section]:
    """The sections of ``found`` (a detection on the wafer, px of its image) to teach as labels: both
    parts scored at least ``min_score``, no repair but those of :data:`KEEPS_SHAPE`, and covering at most
    ``max_overlap`` of their outline with a hand-labelled section (``labelled``, same px). Returned as
    plain sections (tissue and magnet, no score or repairs)."""
    hand = [_outline(s) for s in labelled]
    tree = shapely.STRtree(hand)
    chosen = []
    for s in found:
        if s.tissue is None or s.magnet is None:
            continue
        scores = [s.extra.get("tissue_score"), s.extra.get("magnet_score")]
        if any(v is None or v < min_score for v in scores):
            continue
        if any(s.extra.get(k) for k in REPAIR_KEYS if k not in KEEPS_SHAPE):
            continue
        outline = _outline(s)
        if any(outline.intersection(hand[i]).area > max_overlap * outline.area for i in tree.query(outline)):
            continue
        chosen.append(Section(s.tissue, s.magnet))
    return chosen
