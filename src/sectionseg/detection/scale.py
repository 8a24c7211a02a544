"""Choose the working scale of a wafer: sections must look as large as in the training data.

Section sizes differ between wafers (long side about 60-400 px at the working resolution; the
model was trained on sections whose tissue part is ~127 px long). The scale (working px per source
px) is estimated without the user: the predictor runs on a few content-rich sample tiles at a few
candidate scales; the candidate with the most confident detections that touch a part of the other
class (a tissue beside a magnet: at a wrong scale a model outlines whole sections, or bits of them,
as lone parts) wins, then the most confident detections. Its size relative to the training data
refines it: the median long side of the touching tissue/magnet pairs against the reference section
size where the tiles show enough of them (what ``section_size`` measures), else the median part long
side against the training parts'; where the model pairs few of its detections at the estimate,
bracketing scales are tried. A user hint (``section_size``, the section's
long side in source px) skips the estimate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import cv2
import numpy as np

from sectionseg.detection.inference import Detection, Predictor, predict_tiles
from sectionseg.detection.merge import mask_overlap
from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import Tile, WaferSource
from sectionseg.geometry.scale import REFERENCE_SECTION_SIZE, snap_scale, working_scale

log = logging.getLogger(__name__)

#: Long side (px) of the parts in the bundled model's training data, by label (1 tissue, 2 magnet),
#: whose sections are :data:`REFERENCE_SECTION_SIZE` long; other models scale these by their own size.
TRAINING_LONG_SIDE = {1: 127.0, 2: 114.0}


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
            patch = thumb[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell]
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


def grown(det: Detection, reach: int) -> Detection:
    """``det`` with its mask dilated by ``reach`` px (a square), its crop widened to hold it."""
    mask = np.pad(det.mask.astype(np.uint8), reach)
    mask = cv2.dilate(mask, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool)
    return Detection(det.label, det.score, mask, (det.origin[0] - reach, det.origin[1] - reach))


def touching_pairs(dets: list[Detection], reach: int = 3, contact: float = 0.3) -> list[tuple[int, int]]:
    """``(tissue index, magnet index)`` of detections touching along at least ``contact`` of the shorter
    long side (a tissue and its magnet share a long edge); each tissue with its most touching magnet."""
    sides = [long_side(d) for d in dets]
    pairs = []
    for i, a in enumerate(dets):
        if a.label != 1:
            continue
        near = grown(a, reach)
        touch = [(mask_overlap(near, b), j) for j, b in enumerate(dets) if b.label == 2]
        touch = [(n, j) for n, j in touch if n >= contact * min(sides[i], sides[j])]
        if touch:
            pairs.append((i, max(touch)[1]))
    return pairs


def section_side(a: Detection, b: Detection) -> float:
    """Long side (px) of the minimum-area rectangle around two detections' mask pixels (a section)."""
    pts = []
    for d in (a, b):
        ys, xs = np.nonzero(d.mask)
        pts.append(np.column_stack([xs + d.origin[0], ys + d.origin[1]]))
    _, (w, h), _ = cv2.minAreaRect(np.concatenate(pts).astype(np.float32))
    return float(max(w, h)) + 1.0


def _relative_size(dets: list[Detection], reference: float = REFERENCE_SECTION_SIZE) -> float | None:
    """Median detected long side / training long side (None without detections)."""
    k = reference / REFERENCE_SECTION_SIZE
    ratios = [long_side(d) / (k * TRAINING_LONG_SIDE[d.label]) for d in dets if d.label in TRAINING_LONG_SIDE]
    return float(np.median(ratios)) if ratios else None


def scale_trial(
    source: WaferSource,
    centres: list[tuple[float, float]],
    cand: float,
    predictor: Predictor,
    *,
    settings: RepairSettings = RepairSettings(),
    tile_size: int = 512,
    batch_size: int = 2,
    score_threshold: float = 0.7,
    mask_threshold: float = 0.5,
    reference: float = REFERENCE_SECTION_SIZE,
) -> dict[str, Any]:
    """What the model sees on the sample tiles around ``centres`` (source px) at scale ``cand``: its
    confident detections, the tissue/magnet pairs among them (``pairs``; ``paired``: detections in a
    pair), whether those show sections (``sections_seen``) and their size relative to the training
    data (``relative_size``; None without detections)."""
    at = source.rescaled(cand)
    tiles = tiles_at(centres, at, tile_size)
    dets = predict_tiles(
        at,
        tiles,
        predictor,
        batch_size=batch_size,
        score_threshold=score_threshold,
        mask_threshold=mask_threshold,
        progress=False,
    )
    dets = [d for d in dets if not d.truncated]
    rel = _relative_size(dets, reference)
    area = sum(t.width * t.height for t in tiles) / 1e6
    pairs = touching_pairs(dets)
    paired = len({k for pair in pairs for k in pair})
    sections_seen = len(pairs) >= settings.scale_min_pairs and paired >= settings.scale_min_paired_share * len(dets)
    if sections_seen:  # the sections' own size, as --section-size measures it
        rel = float(np.median([section_side(dets[i], dets[j]) for i, j in pairs])) / reference
    log.info("scale %.2f: %d detections (%d paired), relative size %s", cand, len(dets), paired, rel)
    return {
        "scale": cand,
        "detections": len(dets),
        "pairs": len(pairs),
        "paired": paired,
        "sections_seen": sections_seen,
        "per_megapixel": len(dets) / max(area, 1e-9),
        "relative_size": rel,
    }


def estimate_scale(
    source: WaferSource,
    predictor: Predictor,
    *,
    settings: RepairSettings = RepairSettings(),
    n_tiles: int = 4,
    tile_size: int = 512,
    batch_size: int = 2,
    score_threshold: float = 0.7,
    mask_threshold: float = 0.5,
    reference: float = REFERENCE_SECTION_SIZE,
) -> tuple[float, dict[str, Any]]:
    """Estimate the working scale of ``source`` (its own ``scale`` is ignored) for a model trained on
    sections ``reference`` px long.

    Returns ``(scale, info)`` with ``info`` = per-candidate counts and relative sizes. The candidates
    (``settings.scale_candidates``) are tried in order; the search stops early at a candidate that
    already finds sections of about the training size. Every threshold is a ``scale_*`` field of
    ``settings`` (:class:`~sectionseg.detection.settings.RepairSettings`, recorded in ``report.json``).
    Where the model pairs few of its detections at the estimate (a wafer unlike its training data),
    it may pair them better at another size: bracketing scales are tried (on the held-mosaic-jpeg
    benchmark wafer the model pairs 56 % of its detections at the estimate, about the true scale, and
    76 % at 1.15 times it, where it finds more sections).
    """
    look: dict[str, Any] = dict(
        tile_size=tile_size, batch_size=batch_size, score_threshold=score_threshold, mask_threshold=mask_threshold
    )
    trial = _trial_on_samples(source, predictor, n_tiles, settings, reference, look)
    trials = []
    # the candidates are for a model of the reference size: one for smaller sections starts smaller
    low, high = settings.scale_accept
    for cand in (c * reference / REFERENCE_SECTION_SIZE for c in settings.scale_candidates):
        trials.append(trial(cand))
        rel = trials[-1]["relative_size"]
        # a candidate where the model pairs few of its detections may show neighbouring whole sections
        # paired with each other (held-debris gray alone at x0.75: 25 of 63 paired, estimate 0.4 of the truth)
        paired_enough = paired_share(trials[-1], settings.scale_min_detections) >= settings.scale_accept_paired_share
        if trials[-1]["sections_seen"] and low <= rel <= high and paired_enough:
            break

    def evidence(t: dict[str, Any]) -> tuple[float, float, float]:
        return per_source_area(t, "paired"), per_source_area(t, "detections"), -abs(math.log(t["scale"]))

    best = max(trials, key=evidence)
    if best["detections"] == 0 or best["relative_size"] is None:
        log.warning("no section found at any candidate scale; using scale 1")
        return 1.0, {"trials": trials, "method": "fallback"}
    scale = snap_scale(best["scale"] / best["relative_size"])
    # A model's sizes are not proportional far from the size it knows: measure again at the estimate
    # (up to twice) and correct it while the sections there still differ from the training size.
    for _ in range(settings.scale_refine_rounds):
        check = trial(scale)
        trials.append(check)
        rel = check["relative_size"]
        if rel is None or check["detections"] < settings.scale_min_detections:
            break
        if abs(math.log(rel)) < settings.scale_refine_tolerance:
            break
        scale = snap_scale(scale / rel)
    method = "model"
    if settings.runs("scale_bracket"):
        scale, method = _bracket(scale, trials, trial, settings)
    return scale, {"trials": trials, "method": method}


def bracket_scale(
    source: WaferSource,
    predictor: Predictor,
    scale: float,
    *,
    settings: RepairSettings = RepairSettings(),
    n_tiles: int = 4,
    tile_size: int = 512,
    batch_size: int = 2,
    score_threshold: float = 0.7,
    mask_threshold: float = 0.5,
    reference: float = REFERENCE_SECTION_SIZE,
) -> tuple[float, dict[str, Any]]:
    """``(scale, info)``: ``scale`` (working px per source px, given, not estimated), or a bracketing
    scale where the model pairs clearly more of its detections on the sample tiles
    (``settings.scale_bracket_*``, as after an estimate). For a model adapted to the wafer, whose file
    gives the labelled sections' size: on the alien benchmark wafer (``held-all``, gray alone) the model
    adapted from 12 labels pairs 52 % of its detections on the sample tiles at that size and 61 % at 1.15
    times it, with 1.6 times the pairs per wafer area, and finds 59 sections right there instead of 37
    (BENCHMARKS.md). ``info``: the trials and
    ``method`` (``"model_file"`` or ``"model_file, bracketed"``)."""
    look: dict[str, Any] = dict(
        tile_size=tile_size, batch_size=batch_size, score_threshold=score_threshold, mask_threshold=mask_threshold
    )
    trial = _trial_on_samples(source, predictor, n_tiles, settings, reference, look)
    trials: list[dict[str, Any]] = []
    scale, method = _bracket(scale, trials, trial, settings)
    return scale, {"trials": trials, "method": method.replace("model", "model_file", 1)}


def _trial_on_samples(
    source: WaferSource,
    predictor: Predictor,
    n_tiles: int,
    settings: RepairSettings,
    reference: float,
    look: dict[str, Any],
) -> Callable[[float], dict[str, Any]]:
    """``trial(scale)``: :func:`scale_trial` on the ``n_tiles`` sample tiles of ``source`` (chosen
    once, :func:`sample_centres`); ``look``: tile size, batch size and thresholds."""
    centres = sample_centres(source, n_tiles, look["tile_size"])

    def trial(cand: float) -> dict[str, Any]:
        return scale_trial(source, centres, cand, predictor, settings=settings, reference=reference, **look)

    return trial


def is_estimated(scale_info: dict[str, Any]) -> bool:
    """Whether a scale record (``scale_info``) is the model's estimate (``method`` ``"model"``, possibly
    bracketed), not a given scale, section size or model file's size."""
    return str(scale_info.get("method", "")).split(",")[0] == "model"


def paired_share(trial: dict[str, Any], min_detections: int = 4) -> float:
    """Share of a scale trial's detections that touch a part of the other class (0 with fewer than
    ``min_detections``)."""
    return trial["paired"] / trial["detections"] if trial["detections"] >= min_detections else 0.0


def per_source_area(trial: dict[str, Any], count: str) -> float:
    """A scale trial's ``count`` (``"detections"``, ``"paired"``, ``"pairs"``) per source megapixel: a
    tile at scale s covers 1/s^2 source px per working px."""
    per_detection = trial["per_megapixel"] * trial["scale"] ** 2 / max(trial["detections"], 1)
    return float(trial[count] * per_detection)


def _bracket(
    scale: float,
    trials: list[dict[str, Any]],
    trial: Callable[[float], dict[str, Any]],
    settings: RepairSettings = RepairSettings(),
) -> tuple[float, str]:
    """``(scale, method)``: the estimate, or a bracketing scale where the model pairs clearly more of
    its detections, or as many of them and clearly more pairs per wafer area
    (``settings.scale_bracket_*``); the trials made are appended to ``trials``."""
    here = next((t for t in reversed(trials) if t["scale"] == scale), None)
    if here is None:
        here = trial(scale)
        trials.append(here)

    def share(t: dict[str, Any]) -> float:
        return paired_share(t, settings.scale_min_detections)

    if share(here) >= settings.scale_bracket_below:
        return scale, "model"
    step = settings.scale_bracket_step
    around = [trial(scale * f) for f in (step, 1 / step)]
    trials.extend(around)

    def pairs_gain(t: dict[str, Any]) -> float:  # pairs per wafer area, relative to here
        return per_source_area(t, "pairs") / max(per_source_area(here, "pairs"), 1e-9)

    best = max(around, key=share)
    if share(best) >= share(here) + settings.scale_bracket_gain and pairs_gain(best) >= 1.0:
        return snap_scale(best["scale"]), "model, bracketed"
    # ... or as high a share and clearly more pairs per wafer area
    best = max(around, key=pairs_gain)
    if share(best) >= share(here) and pairs_gain(best) >= settings.scale_bracket_pairs_gain:
        return snap_scale(best["scale"]), "model, bracketed"
    return scale, "model"


def choose_polarity(
    source: WaferSource,
    predictor: Predictor,
    scale: float,
    scale_info: dict[str, Any],
    *,
    settings: RepairSettings = RepairSettings(),
    n_tiles: int = 4,
    tile_size: int = 512,
    batch_size: int = 2,
    score_threshold: float = 0.7,
    mask_threshold: float = 0.5,
    reference: float = REFERENCE_SECTION_SIZE,
) -> tuple[WaferSource, float, dict[str, Any]]:
    """Read the gray image dark for light where the model sees the wafer's sections much better that
    way: the model was trained on sections darker than the wafer, and on a wafer whose sections are
    the lighter ones it finds a fraction of them (held-bright benchmark wafer, gray alone: section F1
    0.22 read as it is, 0.76 inverted).

    Returns ``(source, scale, scale_info)``: ``source`` or its :meth:`~WaferSource.inverted` copy; where
    inverted and the scale was estimated (``scale_info["method"]`` starting with ``model``), it is
    estimated again on the inverted image. ``scale_info["polarity"]`` records the two trials at
    ``scale`` (only the first where the model pairs enough of its detections read as it is: then the
    other is never tried) and ``inverted``. Thresholds: ``settings.scale_bracket_below``,
    ``settings.polarity_gain``, ``settings.scale_min_pairs``.
    """
    look: dict[str, Any] = dict(
        tile_size=tile_size, batch_size=batch_size, score_threshold=score_threshold, mask_threshold=mask_threshold
    )
    centres = sample_centres(source, n_tiles, tile_size)
    here = next((t for t in reversed(scale_info.get("trials", [])) if t["scale"] == scale), None)
    if here is None:
        here = scale_trial(source, centres, scale, predictor, settings=settings, reference=reference, **look)
    record: dict[str, Any] = {"as_is": here, "inverted": False}
    info = {**scale_info, "polarity": record}
    if paired_share(here, settings.scale_min_detections) >= settings.scale_bracket_below:
        return source, scale, info
    flipped = source.inverted()
    there = scale_trial(flipped, centres, scale, predictor, settings=settings, reference=reference, **look)
    record["dark_for_light"] = there
    better = per_source_area(there, "paired") >= settings.polarity_gain * per_source_area(here, "paired")
    if not (better and there["pairs"] >= settings.scale_min_pairs):
        return source, scale, info
    log.info("the model pairs more sections with the gray image read dark for light: inverted")
    record["inverted"] = True
    if is_estimated(scale_info):
        scale, again = estimate_scale(
            flipped, predictor, settings=settings, n_tiles=n_tiles, reference=reference, **look
        )
        info = {**again, "polarity": record, "first_estimate": scale_info}
    return flipped, scale, info
