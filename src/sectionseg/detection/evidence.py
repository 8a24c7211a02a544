"""Image evidence for parts the model alone does not settle: mean levels inside quads, the wafer's
own levels (tissue, magnet, bare wafer, measured on its confidently paired sections), and whether a
part's outline is visible on the image.

All quads and parts are in the frame of the :class:`~sectionseg.detection.tiling.WaferSource`
given (x, y px, origin at the top-left corner of the top-left pixel; the fit frame in the
detection); levels are the normalised 0-255 channels the
model sees (``"gray"``, or ``"fluo"`` for the fluorescence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import WaferSource
from sectionseg.geometry import Quad, Section
from sectionseg.geometry.raster import polygon_mask


def mean_level(source: WaferSource, quad: np.ndarray, channel: str = "gray") -> float | None:
    """Mean normalised level inside a quad (``source``'s frame); None when it leaves the wafer (or no fluo)."""
    box = source.box_around(quad, 1)
    if box is None:
        return None
    x0, y0, x1, y1 = box
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


def side_levels(
    source: WaferSource,
    p0: np.ndarray,
    p1: np.ndarray,
    n: np.ndarray,
    channel: str = "gray",
    settings: RepairSettings = RepairSettings(),
) -> tuple[float | None, float | None]:
    """Mean levels ``(inside, outside)`` of the bands along the side ``p0 -> p1`` (middle 80 %),
    ``settings.edge_band`` px deep and ``settings.edge_gap`` px off the side line, on either side of it
    (``n``: the side's outward unit normal); None for a band that leaves the wafer."""
    a, b = p0 + 0.1 * (p1 - p0), p0 + 0.9 * (p1 - p0)
    near, far = settings.edge_gap * n, (settings.edge_gap + settings.edge_band) * n
    inner = mean_level(source, np.array([a - near, b - near, b - far, a - far]), channel)
    outer = mean_level(source, np.array([a + near, b + near, b + far, a + far]), channel)
    return inner, outer


@dataclass(frozen=True)
class WaferLevels:
    """Median normalised gray levels (0-255) of one wafer's tissue parts, magnetic parts and the bare
    wafer just outside its sections, from ``n`` paired sections. On real wafers either part can be the
    darker one, and both can be lighter or darker than the wafer: repairs read the relation here."""

    tissue: float
    magnet: float
    background: float
    n: int

    def record(self) -> dict[str, Any]:
        return {
            "tissue_gray": self.tissue,
            "magnet_gray": self.magnet,
            "background_gray": self.background,
            "sections": self.n,
        }


def measure_levels(
    sections: list[Section], source: WaferSource, settings: RepairSettings = RepairSettings()
) -> WaferLevels | None:
    """The wafer's levels from its paired sections (parts in ``source``'s frame: fit px), or None when fewer than
    ``settings.min_levels_sections`` can be measured. The background is the band outside the tissue
    sides that do not face the magnet."""
    tissue, magnet, background = [], [], []
    for s in sections:
        if s.tissue is None or s.magnet is None:
            continue
        t, m = s.tissue.polygon, s.magnet.polygon
        lt, lm = mean_level(source, t), mean_level(source, m)
        if lt is None or lm is None:
            continue
        mc = m.mean(axis=0)
        outside = [
            side_levels(source, p0, p1, n, settings=settings)[1]
            for p0, p1, n, _ in Quad.clockwise(t).sides()
            if float(np.dot(mc - 0.5 * (p0 + p1), n)) <= 0
        ]  # sides facing away from the magnet
        outside_levels = [v for v in outside if v is not None]
        if not outside_levels:
            continue
        tissue.append(lt)
        magnet.append(lm)
        background.append(float(np.median(outside_levels)))
    if len(tissue) < settings.min_levels_sections:
        return None
    return WaferLevels(float(np.median(tissue)), float(np.median(magnet)), float(np.median(background)), len(tissue))


def sides_shown(
    source: WaferSource,
    quad: np.ndarray,
    kind: str,
    levels: WaferLevels | None = None,
    settings: RepairSettings = RepairSettings(),
) -> int | None:
    """How many of the 4 sides of a ``kind`` (``"tissue"``/``"magnet"``) quad are visible edges:
    the band inside differs from the band outside as that kind differs from the bare wafer (middle
    80 % of each side). With the wafer's ``levels``, in gray, in the measured direction, by
    ``settings.edge_share`` of the measured contrast (at least ``settings.edge_min_levels``);
    without them, tissue in gray by ``settings.tissue_edge_ratio`` and magnets in fluorescence by
    ``settings.magnet_edge_levels``. None when a band leaves the wafer or nothing can be measured
    (a magnet without levels or fluorescence)."""
    if levels is not None:
        channel = "gray"
        contrast = (levels.tissue if kind == "tissue" else levels.magnet) - levels.background
        if abs(contrast) < settings.edge_min_levels:
            return None  # this kind does not stand out from the wafer in gray
        need = max(settings.edge_min_levels, settings.edge_share * abs(contrast))
    else:
        channel = "gray" if kind == "tissue" else "fluo"
    shown = 0
    for p0, p1, n, _ in Quad.clockwise(quad).sides():
        inner, outer = side_levels(source, p0, p1, n, channel, settings)
        if inner is None or outer is None:
            return None
        if levels is not None:
            shown += np.sign(contrast) * (inner - outer) > need
        elif kind == "tissue":
            shown += inner < settings.tissue_edge_ratio * outer
        else:
            shown += inner > outer + settings.magnet_edge_levels
    return shown
