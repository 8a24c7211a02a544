"""Whole-wafer detection: tiles -> predictor -> merge -> quadrilaterals -> tissue/magnet pairs.

:func:`detect_wafer` is the Python API behind ``sectionseg detect``. Inputs are the source images
(2-D arrays, np.memmap welcome); every polygon of the result is in source pixels (x, y, origin at
the top-left corner of the top-left pixel).

Three frames, three :class:`~sectionseg.detection.tiling.WaferSource` of the same images:
``source`` (the user's pixels), ``working`` (``scale``: where sections look as large as in the
model's training data; the model's tiles) and ``fit`` (where sections are
:data:`~sectionseg.geometry.scale.REFERENCE_SECTION_SIZE` px long). The merged detections are moved
to the fit frame, and from there on detection works in that one frame: quads are fitted there, and
candidates, parts and sections stay there through the pairing, every repair and the consensus, each
step reading the image of ``fit``. :func:`_in_source_px` converts the sections, lone parts and
rejected parts to source px once, at the end (the part records are converted as they are written);
the gray-only second look (:mod:`sectionseg.detection.gray_look`) is a whole detection of its own and
is matched after that, in source px.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sectionseg.detection.consensus import tissue_consensus
from sectionseg.detection.content import content_flags
from sectionseg.detection.evidence import WaferLevels, measure_levels
from sectionseg.detection.gray_look import lone_magnets, needs_gray_look, partners_from_gray
from sectionseg.detection.inference import Detection, Predictor, predict_tiles, resolve_batch_size
from sectionseg.detection.merge import merge_detections
from sectionseg.detection.merged import set_aside_whole, split_merged
from sectionseg.detection.parallel import resolve_workers
from sectionseg.detection.predictor import resolve_model
from sectionseg.detection.refine import Candidate, fit_candidates, to_fit_frame
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
from sectionseg.detection.reserve import reserve_sections
from sectionseg.detection.scale import (
    bracket_scale,
    choose_polarity,
    estimate_scale,
    is_estimated,
    scale_from_section_size,
)
from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.strips import trim_merged_strips
from sectionseg.detection.tiling import WaferSource, plan_tiles
from sectionseg.errors import InputError
from sectionseg.geometry import Section
from sectionseg.geometry.scale import REFERENCE_SECTION_SIZE, snap_scale

log = logging.getLogger(__name__)

DEFAULT_SCORE_THRESHOLD = 0.7  # tuned on 4 held-out 2000 px wafers; the whole-wafer figures at it: BENCHMARKS.md
DEFAULT_MASK_THRESHOLD = 0.5
# region proposals per tile at inference (None: the model's own); 300 found the same parts as 500 on
# the 5 benchmark wafers, 20 % faster
DEFAULT_PROPOSALS = 300
POOR_FIT_IOU = 0.8  # quads whose IoU with their mask is lower are counted as poor fits


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
        return {
            "counts": self.counts,
            "params": params,
            "model": self.params.get("model"),
            "scale": self.scale,
            "scale_estimate": self.scale_info,
            "timings_s": self.timings,
            "normalisation": self.normalisation,
        }


def detect_wafer(
    gray: np.ndarray,
    fluo: np.ndarray | None = None,
    *,
    model: Any = None,
    predictor: Predictor | None = None,
    tile_size: int = 512,
    overlap: int = 128,
    batch_size: int | None = None,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    section_size: float | None = None,
    scale: float | None = None,
    device: str = "cpu",
    refine: bool = True,
    nms_overlap: float | None = None,
    skip_empty: bool = True,
    precision: str = "auto",
    proposals: int | None = DEFAULT_PROPOSALS,
    workers: int | None = None,
    progress: bool = True,
    settings: RepairSettings | None = None,
    reuse_model: bool = False,
) -> DetectionResult:
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
    t = time.perf_counter()
    # a caller's own predictor may keep state (tests): it runs in this process unless told otherwise
    n_workers = resolve_workers(workers, device) if predictor is None or workers is not None else 1
    batch_size = resolve_batch_size(batch_size, device)
    on_gpu = str(device).startswith("cuda")
    reserve_threshold = min(score_threshold, settings.reserve_score)
    if predictor is None:
        predictor, model_info = resolve_model(
            model, device, reserve_threshold, precision, proposals, reuse=reuse_model, mask_threshold=mask_threshold
        )
    else:
        model_info = {"predictor": getattr(predictor, "__name__", type(predictor).__name__)}
    if model_info.get("adapted"):
        # a model fine-tuned on this wafer's own labelled sections learnt which half is its tissue: the
        # priors (the blobs) that turn a base model's labelling round would overrule the user's labels,
        # and the per-section exchange by the wafer's relation turned right sections round (alien
        # benchmark wafer, gray alone: every swapped section was one it exchanged; BENCHMARKS.md);
        # the gray image is read as it is: the model learnt this wafer so
        settings = settings.without("turn_wafer", "orient_by_split", "polarity", "consensus")
        log.info("adapted model: its labels decide which half is the tissue (no consensus, gray read as it is)")
    if fluo is None:  # the bundled model is trained with half of its samples gray-only
        log.info("no fluorescence image: gray-only detection (the third channel repeats gray)")
    source = WaferSource(gray, fluo)  # the user's pixels (scale 1)
    timings["setup"] = time.perf_counter() - t

    t = time.perf_counter()
    reference = model_info.get("reference_size", REFERENCE_SECTION_SIZE)
    # how the scale estimate and the polarity trial look at the sample tiles
    look: dict[str, Any] = dict(
        tile_size=tile_size,
        batch_size=batch_size,
        score_threshold=score_threshold,
        mask_threshold=mask_threshold,
        reference=reference,
        settings=settings,
    )
    if scale is not None:
        scale_info: dict[str, Any] = {"method": "given"}
    elif section_size is not None or model_info.get("section_size"):
        size = section_size if section_size is not None else model_info["section_size"]
        if not size > 0:
            raise InputError(f"section size must be positive, got {size}")
        scale = scale_from_section_size(size, reference)
        scale_info = {"method": "section_size" if section_size is not None else "model_file"}
        if section_size is None and settings.runs("scale_bracket"):
            # an adapted model may see its wafer's sections better a little larger or smaller than labelled
            scale, scale_info = bracket_scale(source, predictor, scale, **look)
    else:
        scale, scale_info = estimate_scale(source, predictor, **look)
    if settings.runs("polarity"):  # sections lighter than the wafer: read the gray image dark for light
        source, scale, scale_info = choose_polarity(source, predictor, scale, scale_info, **look)
    if fluo is not None and is_estimated(scale_info):
        # an estimate gives the training size; with a fluorescence image the model finds more a little larger
        scale = snap_scale(scale * settings.fluo_scale_factor)
        scale_info = {**scale_info, "fluo_scale_factor": settings.fluo_scale_factor}
    working = source.rescaled(scale)  # the model's frame
    timings["scale"] = time.perf_counter() - t

    t = time.perf_counter()
    all_tiles = plan_tiles(*working.size, tile_size=tile_size, overlap=overlap)
    tiles = all_tiles
    if skip_empty and len(all_tiles) > 1:
        tiles = [t for t, busy in zip(all_tiles, content_flags(working, all_tiles)) if busy]
    # a GPU runs the model in this process (CUDA does not survive fork); workers fit the quads only
    raw = predict_tiles(
        working,
        tiles,
        predictor,
        batch_size=batch_size,
        score_threshold=reserve_threshold,
        mask_threshold=mask_threshold,
        workers=1 if on_gpu else n_workers,
        progress=progress,
        prefetch=on_gpu,
    )
    timings["inference"] = time.perf_counter() - t

    t = time.perf_counter()
    # the frame of everything after the model: the scale where sections are REFERENCE_SECTION_SIZE long
    merged, fit, fit_reach = to_fit_frame(merge_detections(raw, nms_overlap=nms_overlap), working, reference)
    reserve = [d for d in merged if d.score < score_threshold]
    merged = [d for d in merged if d.score >= score_threshold]
    timings["merge"] = time.perf_counter() - t

    t = time.perf_counter()
    fits = fit_candidates(merged, fit, refine, n_workers, reach=fit_reach)
    tissues = [c for det, c in zip(merged, fits) if c is not None and det.label == 1]
    magnets = [c for det, c in zip(merged, fits) if c is not None and det.label != 1]
    whole: list[Section] = []
    # gray alone, whole sections seen as one part: split later, never paired (with a fluorescence
    # image the model tells the halves apart; there such parts were two neighbours' parts)
    if settings.runs("split_merged") and settings.runs("split_by_shape") and fluo is None:
        tissues, magnets, whole = set_aside_whole(tissues, magnets, settings)
    # touching parts seen as one region: rebuilt beside their clean partners, tissues first
    n_tissues = n_magnets = 0
    if settings.runs("rebuild_touching"):
        tissues, n_tissues = rebuild_touching(tissues, magnets, fit, "tissue", refine, settings)
        magnets, n_magnets = rebuild_touching(magnets, tissues, fit, "magnet", refine, settings)
    timings["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    # everything so far in fit px; the one conversion to source px
    done = _in_source_px(_repair(tissues, magnets, whole, reserve, fit, refine, settings), fit)
    parts = [_part_record(det, c, fit) for det, c in zip(merged, fits)]
    timings["pairing"] = time.perf_counter() - t

    # a second, gray-only detection (source px, as its result) for the lone magnets, matched in source px
    n_gray = 0
    if fluo is not None and settings.runs("gray_look") and needs_gray_look(done.sections, done.unpaired, settings):
        t = time.perf_counter()
        log.info("%d magnets without a tissue: a second look at the gray image alone", len(lone_magnets(done.unpaired)))
        second = detect_wafer(
            gray,
            None,
            predictor=predictor,
            tile_size=tile_size,
            overlap=overlap,
            batch_size=batch_size,
            score_threshold=score_threshold,
            mask_threshold=mask_threshold,
            scale=scale,
            device=device,
            refine=refine,
            nms_overlap=nms_overlap,
            skip_empty=skip_empty,
            workers=n_workers,
            progress=False,
            settings=settings.without("gray_look"),
        )
        found, done.unpaired = partners_from_gray(done.unpaired, second.sections, min_iou=settings.gray_look_min_iou)
        done.sections += found
        n_gray = len(found)
        timings["gray_look"] = time.perf_counter() - t

    n = done.counts
    counts = {
        "tiles": len(all_tiles),
        "empty_tiles_skipped": len(all_tiles) - len(tiles),
        "raw_detections": len(raw),
        "parts": len(merged),
        "tissue_parts": len(tissues),
        "magnet_parts": len(magnets),
        "sections": len(done.sections),
        "unpaired": len(done.unpaired),
        "dropped_dummies": n["dummies"],
        "dropped_implausible": n["implausible"],
        "unpaired_tiny_parts": n["tiny"],
        "regrown_small_parts": n["regrown"],
        "gaps_trimmed": n["trimmed"],
        "strips_trimmed": done.strips.get("trimmed", 0),
        "dropped_unseen": n["unseen"],
        "rebuilt_parts": n_tissues + n_magnets,
        "recovered_parts": n["recovered"],
        "reserve_detections": len(reserve),
        "duplicates_dropped": n["duplicates"],
        "split_from_one_part": n["split_whole"],
        "partners_from_image": n["inferred"],
        "sections_from_reserve": n["reserve"],
        "unfitted_parts": sum(p["polygon"] is None for p in parts),
        "poor_fits": int(sum(p["fit_iou"] is not None and p["fit_iou"] < POOR_FIT_IOU for p in parts)),
        "swapped_by_consensus": done.consensus.get("swapped", 0),
        "tissues_from_gray_look": n_gray,
    }
    params = {
        "tile_size": tile_size,
        "overlap": overlap,
        "batch_size": batch_size,
        "score_threshold": score_threshold,
        "mask_threshold": mask_threshold,
        "section_size": section_size,
        "device": device,
        "refine": refine,
        "nms_overlap": nms_overlap,
        "skip_empty": skip_empty,
        "precision": precision,
        "proposals": proposals,
        "workers": n_workers,
        "source_size": list(source.source_size),
        "gray_inverted": source.gray_inverted,
        "working_size": list(working.size),
        "fit_scale": fit.scale,
        "settings": settings.record(),
        "wafer_levels": None if done.levels is None else done.levels.record(),
        "consensus": done.consensus,
        "strips": done.strips,
        "model": model_info,
    }
    return DetectionResult(
        done.sections,
        done.unpaired,
        parts,
        timings,
        float(scale),
        params,
        counts,
        source.record(),
        scale_info,
        done.rejected,
    )


def _part_record(det: Detection, fitted: Candidate | None, fit: WaferSource) -> dict[str, Any]:
    """``DetectionResult.parts``' entry of a merged detection and its candidate (both in the frame of
    ``fit``), polygon and area in source px."""
    return {
        "label": det.label,
        "name": det.name,
        "score": det.score,
        "polygon": None if fitted is None else fit.to_source(fitted.part.polygon).tolist(),
        "area_px": det.area / fit.scale**2,
        "fit_iou": None if fitted is None else fitted.fit_iou,
    }


@dataclass
class _Repaired:
    """What the steps after the fit give: sections, lone parts, the lone parts dropped (with why),
    numbers per step, the wafer's levels and the records of the strip and consensus steps."""

    sections: list[Section]
    unpaired: list[Section]
    rejected: list[Section]
    counts: dict[str, int]
    levels: WaferLevels | None
    strips: dict[str, Any]
    consensus: dict[str, Any]


def _repair(
    tissues: list[Candidate],
    magnets: list[Candidate],
    whole: list[Section],
    reserve: list[Detection],
    fit: WaferSource,
    refine: bool,
    settings: RepairSettings,
) -> _Repaired:
    """Pairing and the repair steps after it, in their order (``settings`` says which run); parts,
    reserve detections and the result in the frame of ``fit`` (fit px), the frame of its image;
    ``whole``: lone parts set aside as whole sections (:func:`set_aside_whole`)."""
    run = settings.runs
    n = dict.fromkeys(
        (
            "recovered",
            "tiny",
            "regrown",
            "trimmed",
            "duplicates",
            "split_whole",
            "dummies",
            "implausible",
            "unseen",
            "inferred",
            "reserve",
        ),
        0,
    )
    sections, unpaired = pair_sections(tissues, magnets, fit, settings)
    split: list[Section] = []
    if run("recover_partners"):
        recovered, unpaired = recover_partners(unpaired, reserve, fit, refine)
        sections += recovered
        n["recovered"] = len(recovered)
    if run("split_tiny"):
        sections, split = split_tiny(sections, settings)
        n["tiny"] = len(split)
    # the wafer's own levels (tissue, magnet, bare wafer), from its paired sections
    levels = measure_levels(sections, fit, settings)
    if run("regrow_small"):
        sections, n["regrown"] = regrow_small(sections, fit, refine, levels, settings)
    if refine and run("trim_gaps"):
        sections, n["trimmed"] = trim_gaps(sections, fit, settings)
    strips_info: dict[str, Any] = {}
    if refine and run("trim_strips"):
        sections, strips_info = trim_merged_strips(sections, fit, levels, settings)
    unpaired += split + whole
    rejected: list[Section] = []

    # copies: the dropped parts, with why (report.json)
    def reject(parts: list[Section], reason: Callable[[Section], str | None]) -> None:
        rejected.extend(
            Section(s.tissue, s.magnet, s.dummy, s.score, {**s.extra, "rejected": reason(s)}) for s in parts
        )

    if run("drop_duplicates"):
        before = unpaired
        unpaired = drop_duplicates(sections, unpaired)
        kept = {id(s) for s in unpaired}
        reject([s for s in before if id(s) not in kept], lambda s: "duplicate")
        n["duplicates"] = len(before) - len(unpaired)
    # gray alone: with a fluorescence image the model tells the halves apart, and a lone part too large
    # for the wafer is no whole section (real-dark-magnet: 0.959 with the split, 0.969 without; BENCHMARKS.md)
    if run("split_merged") and fit.fluo is None:
        split_whole, unpaired = split_merged(unpaired, sections, fit, levels, settings)
        sections += split_whole
        n["split_whole"] = len(split_whole)
    if run("drop_implausible"):
        before = unpaired
        why: dict[int, str] = {}
        unpaired, n["dummies"], n["implausible"] = drop_implausible(unpaired, sections, settings, reasons=why)
        kept = {id(s) for s in unpaired}
        reject([s for s in before if id(s) not in kept], lambda s: why.get(id(s)))
    # a lone part with no visible outline is dropped unless its partner shows on the image; known
    # parts that partner strips must not cover are the paired and the visible lone ones
    unseen: list[Section] = []
    if run("split_unseen"):
        unpaired, unseen = split_unseen(unpaired, fit, levels, settings)
    rest = unpaired + unseen
    if run("complete_from_image"):
        inferred, rest = complete_from_image(
            sections, unpaired + unseen, fit, refine, known=sections + unpaired, levels=levels, settings=settings
        )
        sections += inferred
        n["inferred"] = len(inferred)
    dropped = {id(s) for s in unseen}
    unpaired = [s for s in rest if id(s) not in dropped]
    reject([s for s in rest if id(s) in dropped], lambda s: "no visible outline")
    n["unseen"] = len(rest) - len(unpaired)
    if run("reserve_sections"):  # low-score sections where nothing confident lies
        found = reserve_sections(reserve, sections, unpaired + rejected, fit, refine, levels, settings)
        sections += found
        n["reserve"] = len(found)
    consensus_info: dict[str, Any] = {}
    if run("consensus"):
        sections, consensus_info = tissue_consensus(sections, fit, settings)
    return _Repaired(sections, unpaired, rejected, n, levels, strips_info, consensus_info)


def _in_source_px(done: _Repaired, fit: WaferSource) -> _Repaired:
    """``done`` with its sections, lone parts and rejected parts moved from the frame of ``fit`` (fit
    px) to source px: the one conversion of the parts :func:`detect_wafer` finds."""

    def moved(sections: list[Section]) -> list[Section]:
        return [s.transformed(1.0 / fit.scale) for s in sections]

    return replace(done, sections=moved(done.sections), unpaired=moved(done.unpaired), rejected=moved(done.rejected))
