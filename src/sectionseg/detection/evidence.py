"""Image evidence for parts the model alone does not settle: mean levels inside quads, and whether
a part's outline is visible on the image.

All quads are in the working frame of a :class:`~sectionseg.detection.tiling.WaferSource` (x, y px,
origin at the top-left corner of the top-left pixel); levels are the normalised 0-255 channels the
model sees (``"gray"``, or ``"fluo"`` for the fluorescence).
"""
from __future__ import annotations

import numpy as np

from sectionseg.detection.tiling import WaferSource
from sectionseg.geometry.beside import quad_sides
from sectionseg.geometry.raster import polygon_mask

# A side of a part "shows" when the band just inside it differs from the band just outside: tissue
# darker in gray by this ratio, magnet brighter in fluorescence by this many levels (calibrated on
# the benchmark wafers: shading patches taken for tissue stay above 0.87, real tissue sides are near
# 0.4; real magnet sides differ by 60-150 levels)
TISSUE_EDGE_RATIO = 0.93
MAGNET_EDGE_LEVELS = 15.0
EDGE_BAND = 4.0  # px, depth of the bands inside and outside a side
EDGE_GAP = 1.5   # px left out on each side of the edge line (blur, fit error)


def mean_level(source: WaferSource, quad: np.ndarray, channel: str = "gray") -> float | None:
    """Mean normalised level inside a working-px quad; None when it leaves the wafer (or no fluo)."""
    x0, y0 = (np.floor(quad.min(axis=0)) - 1).astype(int)
    x1, y1 = (np.ceil(quad.max(axis=0)) + 1).astype(int)
    w, h = source.size
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        return None
    window = source.gray_window(x0, y0, x1, y1) if channel == "gray" else source.fluo_window(x0, y0, x1, y1)
    if window is None:
        return None
    inside = polygon_mask(quad, window.shape, offset=(x0, y0))
    return float(window[inside].mean()) if inside.any() else None


def quarters(strip: np.ndarray) -> list[np.ndarray]:
    """The four quarters along the first side (p0 -> p1) of a strip ``[p0, p1, p2, p3]``."""
    p0, p1, p2, p3 = strip
    cut = [(p0 + (p1 - p0) * k / 4, p3 + (p2 - p3) * k / 4) for k in range(5)]
    return [np.array([a0, a1, b1, b0]) for (a0, b0), (a1, b1) in zip(cut[:-1], cut[1:])]


def side_levels(source: WaferSource, p0: np.ndarray, p1: np.ndarray, n: np.ndarray,
                channel: str = "gray") -> tuple[float | None, float | None]:
    """Mean levels ``(inside, outside)`` of the bands along the side ``p0 -> p1`` (middle 80 %),
    :data:`EDGE_BAND` px deep and :data:`EDGE_GAP` px off the side line, on either side of it (``n``:
    the side's outward unit normal); None for a band that leaves the wafer."""
    a, b = p0 + 0.1 * (p1 - p0), p0 + 0.9 * (p1 - p0)
    near, far = EDGE_GAP * n, (EDGE_GAP + EDGE_BAND) * n
    inner = mean_level(source, np.array([a - near, b - near, b - far, a - far]), channel)
    outer = mean_level(source, np.array([a + near, b + near, b + far, a + far]), channel)
    return inner, outer


def sides_shown(source: WaferSource, quad: np.ndarray, kind: str) -> int | None:
    """How many of the 4 sides of a ``kind`` (``"tissue"``/``"magnet"``) quad are visible edges:
    the band inside differs from the band outside as that kind differs from its surroundings (middle
    80 % of each side). None when a band leaves the wafer or a magnet has no fluorescence."""
    channel = "gray" if kind == "tissue" else "fluo"
    shown = 0
    for p0, p1, n, _ in quad_sides(quad):
        inner, outer = side_levels(source, p0, p1, n, channel)
        if inner is None or outer is None:
            return None
        shown += inner < TISSUE_EDGE_RATIO * outer if kind == "tissue" else inner > outer + MAGNET_EDGE_LEVELS
    return shown
