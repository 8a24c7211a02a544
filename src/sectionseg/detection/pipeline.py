"""Whole-wafer detection: tiles -> predictor -> merge -> quadrilaterals -> tissue/magnet pairs.

:func:`detect_wafer` is the Python API behind ``sectionseg detect``. Inputs are the source images
(2-D arrays, np.memmap welcome); every polygon of the result is in source pixels (x, y, origin at
the top-left corner of the top-left pixel).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sectionseg.detection.consensus import tissue_consensus
from sectionseg.detection.content import content_flags
from sectionseg.detection.evidence import measure_levels
from sectionseg.detection.fit import fit_parts, to_fit_frame
from sectionseg.detection.inference import Detection, Predictor, predict_tiles, resolve_batch_size
from sectionseg.detection.merge import merge_detections
from sectionseg.detection.merged import split_merged
from sectionseg.detection.parallel import resolve_workers
from sectionseg.detection.predictor import resolve_model
from sectionseg.detection.repairs import (
    complete_from_image,
    drop_duplicates,
    drop_implausible,
    pair_sections,
    rebuild_touching,
    recover_partners,
    regrow_small,
    split_tiny,
    split_unseen,
    trim_gaps,
)
from sectionseg.detection.scale import estimate_scale, scale_from_section_size
from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.strips import trim_merged_strips
from sectionseg.detection.tiling import WaferSource, plan_tiles
from sectionseg.errors import InputError
from sectionseg.geometry import Part, Section
from sectionseg.geometry.scale import REFERENCE_SECTION_SIZE

log = logging.getLogger(__name__)

DEFAULT_SCORE_THRESHOLD = 0.7  # tuned on 4 held-out 2000 px wafers; the whole-wafer figures at it: BENCHMARKS.md
DEFAULT_MASK_THRESHOLD = 0.5
DEFAULT_PROPOSALS = 300    # region proposals per tile at inference (None: the model's own); 300 found
                           # the same parts as 500 on the 5 benchmark wafers, 20 % faster
POOR_FIT_IOU = 0.8     # quads whose IoU with their mask is lower are counted as poor fits


@dataclass
class DetectionResult:
    """What :func:`detect_wafer` found (source px).

    - ``sections``: paired sections (tissue + magnet quads), ``score`` = the lower part score,
      ``extra`` = ``{"tissue_score", "magnet_score"}``;
    - ``unpaired``: sections with only one part (dummy-like small tissue detections excluded);
    - ``parts``: every merged part detection as a dict ``{"label", "name", "score", "polygon",
      "area_px", "fit_iou"}`` (polygon in source px, None when no quad could be fitted; ``fit_iou``
      the quad's IoU with the mask);
    - ``timings``: seconds per stage; ``scale``: working px per source px; ``params``: the
      parameters used; ``counts``: numbers per stage (tiles, raw and merged detections, dropped dummies);
      ``normalisation``: the intensity normalisation record; ``scale_info``: the scale estimate's trials;
    - ``rejected``: the lone parts dropped, for people to look at (``report.json``:
      ``rejected_parts``), each with its reason in ``extra["rejected"]``: ``duplicate``
      (``drop_duplicates``), ``low score``, ``dummy-like`` or ``implausible size``
      (``drop_implausible``), ``no visible outline`` (``split_unseen``, not completed from the image).

    ``extra`` of a section may also name the repairs that made it: ``recovered``, ``regrown``,
    ``rebuilt`` (a part rebuilt beside its partner), ``gap_trimmed``, ``swapped_by_consensus``
    (written to ``sections.csv``'s ``repairs`` column).
    """

    sections: list[Section]
    unpaired: list[Section]
    parts: list[dict[str, Any]]
    timings: dict[str, float]
    scale: float
    params: dict[str, Any]
    counts: dict[str, Any] = field(default_factory=dict)
    normalisation: dict[str, Any] = field(default_factory=dict)
    scale_info: dict[str, Any] = field(default_factory=dict)
    rejected: list[Section] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """JSON-ready summary (no polygons); the model's identity is under ``"model"``."""
        params = {k: v for k, v in self.params.items() if k != "model"}
        return {"counts": self.counts, "params": params, "model": self.params.get("model"),
                "scale": self.scale, "scale_estimate": self.scale_info, "timings_s": self.timings,
                "normalisation": self.normalisation}


def detect_wafer(gray: np.ndarray, fluo: np.ndarray | None = None, *, model: Any = None,
                 predictor: Predictor | None = None,
                 tile_size: int = 512, overlap: int = 128, batch_size: int | None = None,
                 score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 mask_threshold: float = DEFAULT_MASK_THRESHOLD, section_size: float | None = None,
                 scale: float | None = None, device: str = "cpu",
                 refine: bool = True, nms_overlap: float | None = None, skip_empty: bool = True,
                 precision: str = "auto", proposals: int | None = DEFAULT_PROPOSALS,
                 workers: int | None = None, progress: bool = True,
                 settings: RepairSettings | None = None, reuse_model: bool = False) -> DetectionResult:
    """Find the sections of a whole wafer.

    - ``gray``/``fluo``: 2-D source images of the same shape (np.memmap welcome; read tile by tile).
    - ``model``: model file path, ``load_model`` tuple or torch module; None = the bundled model.
      ``predictor`` (callable on a list of ``(3, H, W)`` float tensors, torchvision-style outputs)
      replaces the model (tests).
    - ``tile_size``/``overlap``: working-frame tiles (px); ``batch_size`` tiles per predictor call
      (None: 2 on the CPU, 16 on a GPU, :data:`~sectionseg.detection.inference.DEFAULT_BATCH_SIZE`).
      On a GPU the next batch's tiles are prepared in a thread while the model runs.
    - ``score_threshold``: minimum detection score; ``mask_threshold``: mask probability cut.
    - ``section_size``: the sections' long side in source px (skips the scale estimate); when None
      and the model file records one (an adapted model), that one is used;
      ``scale``: the working scale itself (working px per source px), overrides ``section_size``.
    - ``refine``: refine quad edges against the gray image.
    - ``skip_empty``: do not run the model on tiles showing only bare wafer
      (:mod:`sectionseg.detection.content`).
    - ``precision``: ``auto`` (bf16 on CPUs that run it natively, else fp32), ``fp32`` or ``bf16``;
      ``proposals``: region proposals per tile (None: the model's own setting).
    - ``workers``: processes for inference and quad fitting (None: one per core up to 8 on the CPU,
      1 on a GPU or with a ``predictor``; see :mod:`sectionseg.detection.parallel`). On a GPU the
      model always runs in this process and ``workers`` fit the quads.
    - ``settings``: thresholds of the post-processing and the repair steps that run
      (:class:`~sectionseg.detection.settings.RepairSettings`; None: the defaults). Recorded in the
      result's ``params["settings"]``.
    - ``reuse_model``: a model file this thread loaded before is not loaded again (batches: one load
      per worker for all its wafers).
    - ``nms_overlap``: after merging, of two same-class detections overlapping by more than this
      fraction of the smaller one only the higher-scoring one stays (None: off).
    """
    timings: dict[str, float] = {}
    settings = settings or RepairSettings()
    run = settings.runs
    t = time.perf_counter()
    # a caller's own predictor may keep state (tests): it runs in this process unless told otherwise
    n_workers = resolve_workers(workers, device) if predictor is None or workers is not None else 1
    batch_size = resolve_batch_size(batch_size, device)
    on_gpu = str(device).startswith("cuda")
    prefetch = on_gpu
    # a GPU runs the model in this process (CUDA does not survive fork); workers fit the quads only
    infer_workers = 1 if on_gpu else n_workers
    reserve_threshold = min(score_threshold, settings.reserve_score)
    if predictor is None:
        predictor, model_info = resolve_model(model, device, reserve_threshold, precision, proposals,
                                              reuse=reuse_model, mask_threshold=mask_threshold)
    else:
        model_info = {"predictor": getattr(predictor, "__name__", type(predictor).__name__)}
    if fluo is None:  # the bundled model is trained with half of its samples gray-only
        log.info("no fluorescence image: gray-only detection (the third channel repeats gray)")
    source = WaferSource(gray, fluo)
    timings["setup"] = time.perf_counter() - t

    t = time.perf_counter()
    scale_info: dict[str, Any] = {}
    reference = model_info.get("reference_size", REFERENCE_SECTION_SIZE)
    if scale is None and section_size is None and model_info.get("section_size"):
        scale = scale_from_section_size(model_info["section_size"], reference)
        scale_info = {"method": "model_file"}
    elif scale is None and section_size is not None:
        if not section_size > 0:
            raise InputError(f"section size must be positive, got {section_size}")
        scale, scale_info = scale_from_section_size(section_size, reference), {"method": "section_size"}
    elif scale is None:
        scale, scale_info = estimate_scale(source, predictor, tile_size=tile_size, batch_size=batch_size,
                                           score_threshold=score_threshold, mask_threshold=mask_threshold,
                                           reference=reference)
    else:
        scale_info = {"method": "given"}
    source = source.rescaled(scale)
    working_size = list(source.size)
    timings["scale"] = time.perf_counter() - t

    t = time.perf_counter()
    all_tiles = plan_tiles(*source.size, tile_size=tile_size, overlap=overlap)
    tiles = all_tiles
    if skip_empty and len(all_tiles) > 1:
        tiles = [t for t, busy in zip(all_tiles, content_flags(source, all_tiles)) if busy]
    raw = predict_tiles(source, tiles, predictor, batch_size=batch_size, score_threshold=reserve_threshold,
                        mask_threshold=mask_threshold, workers=infer_workers, progress=progress,
                        prefetch=prefetch)
    timings["inference"] = time.perf_counter() - t

    t = time.perf_counter()
    merged = merge_detections(raw, nms_overlap=nms_overlap)
    merged, source, fit_reach = to_fit_frame(merged, source, reference)
    fit_scale = source.scale
    reserve = [d for d in merged if d.score < score_threshold]
    merged = [d for d in merged if d.score >= score_threshold]
    timings["merge"] = time.perf_counter() - t

    t = time.perf_counter()
    parts: list[dict[str, Any]] = []
    tissue_fits: list[tuple[Part, float, Detection, float]] = []  # (part, score, detection, fit IoU)
    magnet_fits: list[tuple[Part, float, Detection, float]] = []
    for det, (quad, iou) in zip(merged, fit_parts(merged, source, refine, n_workers, reach=fit_reach)):
        parts.append({"label": det.label, "name": det.name, "score": det.score,
                      "polygon": None if quad is None else quad.tolist(), "area_px": det.area / fit_scale ** 2,
                      "fit_iou": iou})
        if quad is not None:
            assert iou is not None  # a fitted quad comes with its IoU
            (tissue_fits if det.label == 1 else magnet_fits).append((Part(quad), det.score, det, iou))
    # touching parts seen as one region: rebuilt beside their clean partners, tissues first
    n_tissues = n_magnets = 0
    fitted_tissues, fitted_magnets = [p for p, *_ in tissue_fits], [p for p, *_ in magnet_fits]
    tissues: list[tuple[Part, float]]
    magnets: list[tuple[Part, float]]
    if run("rebuild_touching"):
        tissues, n_tissues = rebuild_touching(tissue_fits, [(p, sc) for p, sc, _, _ in magnet_fits], source,
                                              "tissue", refine, settings)
        magnets, n_magnets = rebuild_touching(magnet_fits, tissues, source, "magnet", refine, settings)
    else:
        tissues = [(p, sc) for p, sc, _, _ in tissue_fits]
        magnets = [(p, sc) for p, sc, _, _ in magnet_fits]
    rebuilt = {id(p): "tissue" for p in _new_parts(tissues, fitted_tissues)}
    rebuilt.update({id(p): "magnet" for p in _new_parts(magnets, fitted_magnets)})
    timings["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    sections, unpaired = pair_sections(tissues, magnets)
    sections = [_mark_rebuilt(s, rebuilt) for s in sections]
    unpaired = [_mark_rebuilt(s, rebuilt) for s in unpaired]
    recovered: list[Section] = []
    split: list[Section] = []
    if run("recover_partners"):
        recovered, unpaired = recover_partners(unpaired, reserve, source, refine)
    sections += recovered
    if run("split_tiny"):
        sections, split = split_tiny(sections, settings)
    # the wafer's own levels (tissue, magnet, bare wafer), from its paired sections
    levels = measure_levels(sections, source, settings)
    n_regrown = n_trimmed = 0
    if run("regrow_small"):
        sections, n_regrown = regrow_small(sections, source, refine, levels, settings)
    if refine and run("trim_gaps"):
        sections, n_trimmed = trim_gaps(sections, source, settings)
    strips_info: dict[str, Any] = {}
    if refine and run("trim_strips"):
        sections, strips_info = trim_merged_strips(sections, source, levels, settings)
    unpaired += split
    n_unpaired = len(unpaired)
    rejected: list[Section] = []

    # copies: the dropped parts, with why (report.json)
    def reject(parts: list[Section], reason: Callable[[Section], str | None]) -> None:
        rejected.extend(Section(s.tissue, s.magnet, s.dummy, s.score, {**s.extra, "rejected": reason(s)})
                        for s in parts)

    if run("drop_duplicates"):
        before = unpaired
        unpaired = drop_duplicates(sections, unpaired)
        kept = {id(s) for s in unpaired}
        reject([s for s in before if id(s) not in kept], lambda s: "duplicate")
    n_duplicates = n_unpaired - len(unpaired)
    split_whole: list[Section] = []
    if run("split_merged"):
        split_whole, unpaired = split_merged(unpaired, sections, source, levels, settings)
        sections += split_whole
    n_dummies = n_implausible = 0
    if run("drop_implausible"):
        before = unpaired
        why: dict[int, str] = {}
        unpaired, n_dummies, n_implausible = drop_implausible(unpaired, sections, settings, reasons=why)
        kept = {id(s) for s in unpaired}
        reject([s for s in before if id(s) not in kept], lambda s: why.get(id(s)))
    # a lone part with no visible outline is dropped unless its partner shows on the image; known
    # parts that partner strips must not cover are the paired and the visible lone ones
    unseen: list[Section] = []
    if run("split_unseen"):
        unpaired, unseen = split_unseen(unpaired, source, levels, settings)
    inferred: list[Section] = []
    rest = unpaired + unseen
    if run("complete_from_image"):
        inferred, rest = complete_from_image(sections, unpaired + unseen, source, refine,
                                             known=sections + unpaired, levels=levels, settings=settings)
    sections += inferred
    dropped = {id(s) for s in unseen}
    unpaired = [s for s in rest if id(s) not in dropped]
    reject([s for s in rest if id(s) in dropped], lambda s: "no visible outline")
    n_unseen = len(rest) - len(unpaired)
    consensus_info: dict[str, Any] = {}
    if run("consensus"):
        sections, consensus_info = tissue_consensus(sections, source, settings)
    timings["pairing"] = time.perf_counter() - t

    counts = {"tiles": len(all_tiles), "empty_tiles_skipped": len(all_tiles) - len(tiles),
              "raw_detections": len(raw), "parts": len(merged),
              "tissue_parts": len(tissues), "magnet_parts": len(magnets), "sections": len(sections),
              "unpaired": len(unpaired), "dropped_dummies": n_dummies, "dropped_implausible": n_implausible,
              "unpaired_tiny_parts": len(split), "regrown_small_parts": n_regrown, "gaps_trimmed": n_trimmed,
              "strips_trimmed": strips_info.get("trimmed", 0), "dropped_unseen": n_unseen,
              "rebuilt_parts": n_tissues + n_magnets,
              "recovered_parts": len(recovered), "reserve_detections": len(reserve),
              "duplicates_dropped": n_duplicates, "split_from_one_part": len(split_whole),
              "partners_from_image": len(inferred),
              "unfitted_parts": sum(p["polygon"] is None for p in parts),
              "poor_fits": int(sum(p["fit_iou"] is not None and p["fit_iou"] < POOR_FIT_IOU for p in parts)),
              "swapped_by_consensus": consensus_info.get("swapped", 0)}
    params = {"tile_size": tile_size, "overlap": overlap, "batch_size": batch_size,
              "score_threshold": score_threshold, "mask_threshold": mask_threshold,
              "section_size": section_size, "device": device, "refine": refine, "nms_overlap": nms_overlap,
              "skip_empty": skip_empty, "precision": precision, "proposals": proposals,
              "workers": n_workers,
              "source_size": list(source.source_size), "working_size": working_size,
              "fit_scale": fit_scale, "settings": settings.record(),
              "wafer_levels": None if levels is None else levels.record(), "consensus": consensus_info,
              "strips": strips_info,
              "model": model_info}
    return DetectionResult(sections, unpaired, parts, timings, float(scale), params, counts,
                           source.record(), scale_info, rejected)


def _new_parts(kept: list[tuple[Part, float]], fitted: list[Part]) -> list[Part]:
    """The parts of ``kept`` that are not among ``fitted`` (by identity): those a repair rebuilt."""
    known = {id(p) for p in fitted}
    return [p for p, _ in kept if id(p) not in known]


def _mark_rebuilt(section: Section, rebuilt: dict[int, str]) -> Section:
    """``section`` with ``extra["rebuilt"]`` naming its part rebuilt beside its partner, if any."""
    kinds = [rebuilt[id(p)] for p in (section.tissue, section.magnet) if p is not None and id(p) in rebuilt]
    if kinds:
        section.extra["rebuilt"] = "+".join(kinds)
    return section
