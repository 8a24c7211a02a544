"""Choose the working scale of a wafer: sections must look as large as in the training data.

Section sizes differ between wafers (long side about 60-400 px at the working resolution; the
model was trained on sections whose tissue part is ~127 px long). The scale (working px per source
px) is estimated without the user: the predictor runs on a few content-rich sample tiles at a few
candidate scales; the candidate with the most confident detections wins, then the median detected
long side (relative to the training size) refines it. A user hint (``section_size``, the section's
long side in source px) skips the estimate.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np

from sectionseg.detection.inference import Detection, Predictor, predict_tiles
from sectionseg.detection.tiling import Tile, WaferSource
from sectionseg.geometry.scale import REFERENCE_SECTION_SIZE, snap_scale, working_scale

log = logging.getLogger(__name__)

#: Long side (px) of the parts in the bundled model's training data, by label (1 tissue, 2 magnet),
#: whose sections are :data:`REFERENCE_SECTION_SIZE` long; other models scale these by their own size.
TRAINING_LONG_SIDE = {1: 127.0, 2: 114.0}
CANDIDATE_SCALES = (1.0, 0.5, 2.0, 0.3)
REFINE_ROUNDS = 2  # measurements at the estimated scale that may correct it


def scale_from_section_size(section_size: float, reference: float = REFERENCE_SECTION_SIZE) -> float:
    """Working scale for sections whose long side is ``section_size`` source px, for a model trained on
    sections ``reference`` px long (exactly what fine-tuning uses, so an adapted model sees its
    sections at the size it was trained on)."""
    return working_scale(section_size, reference)


def long_side(det: Detection) -> float:
    """Long side (px) of the minimum-area rectangle around a detection's mask pixels."""
    ys, xs = np.nonzero(det.mask)
    if xs.size < 3:
        return float(max(det.mask.shape))
    pts = np.column_stack([xs, ys]).astype(np.float32)
    _, (w, h), _ = cv2.minAreaRect(pts)
    return float(max(w, h)) + 1.0  # pixel centres -> pixel extent


def sample_centres(source: WaferSource, n: int = 4, block: int = 512) -> list[tuple[float, float]]:
    """Source-px centres of the ``n`` ``block``-px squares with the most gray-level contrast (where
    sections are, not bare wafer), ranked on a strided thumbnail so that huge wafers stay cheap."""
    step = max(1, block // 32)
    thumb = np.asarray(source.gray[::step, ::step], dtype=np.float32)
    cell = max(1, block // step)
    rows, cols = max(1, thumb.shape[0] // cell), max(1, thumb.shape[1] // cell)
    scores = []
    for r in range(rows):
        for c in range(cols):
            patch = thumb[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell]
            scores.append((float(patch.std()) if patch.size else 0.0, r, c))
    scores.sort(reverse=True)
    w, h = source.source_size
    return [(min(w, (c + 0.5) * cell * step), min(h, (r + 0.5) * cell * step)) for _, r, c in scores[:n]]


def tiles_at(centres: Iterable[tuple[float, float]], source: WaferSource, tile_size: int) -> list[Tile]:
    """Working-frame tiles of ``tile_size`` centred (as far as the frame allows) on source centres."""
    w, h = source.size
    tw, th = min(tile_size, w), min(tile_size, h)
    tiles = set()
    for cx, cy in centres:
        x0 = int(np.clip(round(cx * source.scale - tw / 2), 0, w - tw))
        y0 = int(np.clip(round(cy * source.scale - th / 2), 0, h - th))
        tiles.add(Tile(x0, y0, x0 + tw, y0 + th))
    return sorted(tiles, key=lambda t: (t.y0, t.x0))


def _relative_size(dets: list[Detection], reference: float = REFERENCE_SECTION_SIZE) -> float | None:
    """Median detected long side / training long side (None without detections)."""
    k = reference / REFERENCE_SECTION_SIZE
    ratios = [long_side(d) / (k * TRAINING_LONG_SIDE[d.label]) for d in dets if d.label in TRAINING_LONG_SIDE]
    return float(np.median(ratios)) if ratios else None


def estimate_scale(source: WaferSource, predictor: Predictor, *, candidates: Sequence[float] = CANDIDATE_SCALES,
                   n_tiles: int = 4, tile_size: int = 512, batch_size: int = 2, score_threshold: float = 0.7,
                   mask_threshold: float = 0.5,
                   reference: float = REFERENCE_SECTION_SIZE) -> tuple[float, dict[str, Any]]:
    """Estimate the working scale of ``source`` (its own ``scale`` is ignored) for a model trained on
    sections ``reference`` px long.

    Returns ``(scale, info)`` with ``info`` = per-candidate counts and relative sizes. Candidates
    are tried in order; the search stops early at a candidate that already finds sections of about
    the training size.
    """
    centres = sample_centres(source, n_tiles, tile_size)

    def trial(cand: float) -> dict[str, Any]:
        at = source.rescaled(cand)
        tiles = tiles_at(centres, at, tile_size)
        dets = predict_tiles(at, tiles, predictor, batch_size=batch_size, score_threshold=score_threshold,
                             mask_threshold=mask_threshold, progress=False)
        dets = [d for d in dets if not d.truncated]
        rel = _relative_size(dets, reference)
        area = sum(t.width * t.height for t in tiles) / 1e6
        log.info("scale %.2f: %d detections, relative size %s", cand, len(dets), rel)
        return {"scale": cand, "detections": len(dets), "per_megapixel": len(dets) / max(area, 1e-9),
                "relative_size": rel}

    trials = []
    # the candidates are for a model of the reference size: one for smaller sections starts smaller
    for cand in (c * reference / REFERENCE_SECTION_SIZE for c in candidates):
        trials.append(trial(cand))
        rel = trials[-1]["relative_size"]
        if rel is not None and trials[-1]["detections"] >= 4 and 0.75 <= rel <= 1.33:
            break
    # Detections per source (not working) megapixel: a tile at scale s covers 1/s^2 more wafer.
    best = max(trials, key=lambda t: (t["per_megapixel"] * t["scale"] ** 2, -abs(math.log(t["scale"]))))
    if best["detections"] == 0 or best["relative_size"] is None:
        log.warning("no section found at any candidate scale; using scale 1")
        return 1.0, {"trials": trials, "method": "fallback"}
    scale = snap_scale(best["scale"] / best["relative_size"])
    # A model's sizes are not proportional far from the size it knows: measure again at the estimate
    # (up to twice) and correct it while the sections there still differ from the training size.
    for _ in range(REFINE_ROUNDS):
        check = trial(scale)
        trials.append(check)
        rel = check["relative_size"]
        if rel is None or check["detections"] < 4 or abs(math.log(rel)) < 0.05:
            break
        scale = snap_scale(scale / rel)
    return scale, {"trials": trials, "method": "model"}
