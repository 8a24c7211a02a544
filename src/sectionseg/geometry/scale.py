"""Section size and working scale: helpers that detection, dataset building, fine-tuning and the model
config share.

A model sees sections at one size: the long side of a whole section (tissue + magnet) in its training
data (``data.section_size`` of a model file, :data:`REFERENCE_SECTION_SIZE` px for the bundled model's
simulated data). A wafer is brought to its *working scale* (working px per source px), where its
sections have that size; a scale close to 1 is taken as exactly 1, so that the image is not resampled
at all.

Lengths are in px of the image the sections are given in; coordinates x, y from the top-left corner of
the top-left pixel.
"""

from __future__ import annotations

import numpy as np

from sectionseg.geometry.quads import rect_sides
from sectionseg.geometry.section import Section

#: Long side (px) of a whole section (tissue + magnet) in the simulated training data of the bundled
#: model (styles default, crowded, sparse); a model file records its own value (``data.section_size``).
REFERENCE_SECTION_SIZE = 130.0
#: A working scale within this fraction of 1 is taken as 1 (no resampling at all).
SNAP_TOLERANCE = 0.12


def section_long_side(section: Section) -> float:
    """Long side (px) of the minimum-area rectangle around a section's tissue and magnet corners."""
    return rect_sides(np.concatenate([p.polygon for n, p in section.parts().items() if n != "dummy"]))[0]


def median_section_size(sections: list[Section]) -> float:
    """Median :func:`section_long_side` of ``sections`` (px)."""
    return float(np.median([section_long_side(s) for s in sections]))


def snap_scale(scale: float) -> float:
    """``scale``, or exactly 1 when within :data:`SNAP_TOLERANCE` of it (no resampling at all)."""
    return 1.0 if abs(scale - 1.0) <= SNAP_TOLERANCE else float(scale)


def working_scale(section_size: float, reference: float = REFERENCE_SECTION_SIZE) -> float:
    """Working px per source px for sections of long side ``section_size`` source px, for a model
    trained on sections ``reference`` px long (1 when close: :func:`snap_scale`)."""
    return snap_scale(reference / float(section_size))
