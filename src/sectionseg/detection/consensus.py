"""Which half is the tissue, decided per wafer: a wafer-level consensus that corrects single
sections whose tissue and magnet came out swapped.

On a gray-only wafer both halves of a section can look alike, and the model then labels some sections
the wrong way round. But all sections of one wafer come from one block: the tissue half carries the
sample (blobs, striations: more fine texture), the magnet half the bead specks, one half is darker on
average, and with a fluorescence image the magnet is the bright one. For each paired section we
measure these on both halves and take the difference (tissue minus magnet). A feature expresses the
*wafer's relation* when most sections agree on its sign; a section whose differences disagree with
the relation on those features, by a clear margin, has its parts exchanged.

Sections are in source px (as the detection repairs keep them); :func:`part_features` takes quads in
the working frame of a :class:`~sectionseg.detection.tiling.WaferSource`. Levels are the normalised
0-255 channels the model sees.
"""
from __future__ import annotations

import cv2
import numpy as np

from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import WaferSource
from sectionseg.geometry import Section
from sectionseg.geometry.raster import polygon_mask

FEATURES = ("gray_level", "fine_texture", "specks", "fluo_level")


def part_features(source: WaferSource, quad: np.ndarray, inset: float = 2.0) -> dict[str, float] | None:
    """Measurements of one part (working-px quad) or None when it leaves the wafer or is too small.

    ``gray_level``: mean gray; ``fine_texture``: s.d. of gray minus its 2-px Gaussian blur
    (striations, blobs' edges); ``specks``: share of pixels standing out by more than 3 robust s.d.
    from a 5 px median (bead specks); ``fluo_level``: mean fluorescence (absent without one).
    """
    x0, y0 = (np.floor(quad.min(axis=0)) - 3).astype(int)
    x1, y1 = (np.ceil(quad.max(axis=0)) + 3).astype(int)
    w, h = source.size
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        return None
    centre = quad.mean(axis=0)
    scale = np.linalg.norm(quad - centre, axis=1).mean()
    inner = centre + (quad - centre) * max(0.0, 1.0 - inset / max(scale, 1e-6))
    inside = polygon_mask(inner, (y1 - y0, x1 - x0), offset=(x0, y0))
    if inside.sum() < 16:
        return None
    gray = source.gray_window(x0, y0, x1, y1).astype(np.float32)
    fine = gray - cv2.GaussianBlur(gray, (0, 0), 2.0)
    spots = gray - cv2.medianBlur(gray.astype(np.uint8), 5).astype(np.float32)
    values = spots[inside]
    mad = float(np.median(np.abs(values))) * 1.4826 + 1.0
    out = {"gray_level": float(gray[inside].mean()), "fine_texture": float(fine[inside].std()),
           "specks": float(np.mean(np.abs(values) > 3.0 * mad))}
    fluo = source.fluo_window(x0, y0, x1, y1)
    if fluo is not None:
        out["fluo_level"] = float(fluo[inside].mean())
    return out


def tissue_consensus(sections: list[Section], source: WaferSource,
                     settings: RepairSettings = RepairSettings()) -> tuple[list[Section], dict]:
    """Sections (source px) with parts exchanged where they disagree with the wafer's
    relation; and a JSON-ready record: per feature the median difference, agreement and whether it
    counted, the number of sections swapped."""
    diffs, index = [], []
    for i, s in enumerate(sections):
        if s.tissue is None or s.magnet is None:
            continue
        ft = part_features(source, s.tissue.polygon * source.scale, settings.consensus_inset)
        fm = part_features(source, s.magnet.polygon * source.scale, settings.consensus_inset)
        if ft is None or fm is None:
            continue
        diffs.append([ft.get(k, np.nan) - fm.get(k, np.nan) for k in FEATURES])
        index.append(i)
    record: dict = {"sections_measured": len(index), "swapped": 0, "features": {}}
    if len(index) < settings.consensus_min_sections:
        record["skipped"] = f"fewer than {settings.consensus_min_sections} measurable paired sections"
        return sections, record
    d = np.asarray(diffs, dtype=np.float64)
    votes = np.zeros(len(index))
    weights = 0.0
    for k, name in enumerate(FEATURES):
        col = d[:, k]
        if np.isnan(col).all():
            continue
        med = float(np.median(col))
        sign = 1.0 if med >= 0 else -1.0
        agreement = float(np.mean(np.sign(col) == sign))
        spread = float(np.median(np.abs(col))) + 1e-6
        used = agreement >= settings.consensus_min_agreement and med != 0.0
        record["features"][name] = {"median_difference": med, "agreement": agreement, "used": used}
        if used:
            weight = 2.0 * agreement - 1.0  # 0 at a coin flip, 1 when every section agrees
            votes += weight * sign * np.clip(col / spread, -3.0, 3.0)
            weights += weight
    if weights == 0.0:
        record["skipped"] = "no feature separates tissue from magnet on this wafer"
        return sections, record
    votes /= weights
    out = list(sections)
    for i, v in zip(index, votes):
        if v < settings.consensus_swap_vote:
            s = out[i]
            out[i] = Section(s.magnet, s.tissue, s.dummy, score=s.score, extra=_swapped_extra(s.extra))
            record["swapped"] += 1
    return out, record


def _swapped_extra(extra: dict | None) -> dict:
    out = dict(extra or {})
    out["tissue_score"], out["magnet_score"] = out.get("magnet_score"), out.get("tissue_score")
    out["swapped_by_consensus"] = True
    return out
