"""Whole-wafer detection: tiles -> predictor -> merge -> quadrilaterals -> tissue/magnet pairs.

:func:`detect_wafer` is the Python API behind ``sectionseg detect``. Inputs are the source images
(2-D arrays, np.memmap welcome); every polygon of the result is in source pixels (x, y, origin at
the top-left corner of the top-left pixel).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sectionseg.detection.inference import Detection, model_predictor, predict_tiles
from sectionseg.detection.merge import merge_detections
from sectionseg.datasets.labels import REFERENCE_SECTION_SIZE
from sectionseg.detection.scale import estimate_scale, scale_from_section_size
from sectionseg.detection.tiling import WaferSource, plan_tiles
from sectionseg.errors import InputError
from sectionseg.geometry import Part, Section
from sectionseg.geometry.fitting import fit_quadrilateral
from sectionseg.geometry.pairing import pair_parts
from sectionseg.geometry.raster import polygon_mask

log = logging.getLogger(__name__)

DEFAULT_SCORE_THRESHOLD = 0.7  # tuned on 4 held-out 2000 px wafers (see the report of issue 4)
DEFAULT_MASK_THRESHOLD = 0.5
FIT_MARGIN = 6         # px of image around a mask crop for the edge refinement
POOR_FIT_IOU = 0.8     # quads whose IoU with their mask is lower are counted as poor fits
DUMMY_AREA_FRACTION = 0.5  # unpaired tissue smaller than this x the median tissue area = dummy strip


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
      ``normalisation``: the intensity normalisation record; ``scale_info``: the scale estimate's trials.
    """

    sections: list[Section]
    unpaired: list[Section]
    parts: list[dict]
    timings: dict
    scale: float
    params: dict
    counts: dict = field(default_factory=dict)
    normalisation: dict = field(default_factory=dict)
    scale_info: dict = field(default_factory=dict)

    def report(self) -> dict:
        """JSON-ready summary (no polygons); the model's identity is under ``"model"``."""
        params = {k: v for k, v in self.params.items() if k != "model"}
        return {"counts": self.counts, "params": params, "model": self.params.get("model"),
                "scale": self.scale, "scale_estimate": self.scale_info, "timings_s": self.timings,
                "normalisation": self.normalisation}


def resolve_model(model, device: str = "cpu", score_threshold: float | None = None):
    """``(predictor, info)`` for a model path, a loaded ``(model, config, meta)`` tuple, a bare
    torch module, or None (the bundled model; InputError when it is missing). With
    ``score_threshold`` the model's own box score threshold is set to it (the model is changed)."""
    import torch

    from sectionseg.model import default_model_path, load_model

    info: dict = {}
    if model is None:
        model = default_model_path()
        if not Path(model).is_file():
            raise InputError("the bundled model is missing (train one with 'sectionseg train' and pass "
                             "--model)", model)
    if isinstance(model, (str, os.PathLike)):
        info = model_identity(model)
        model = load_model(model, device=device)
    if isinstance(model, tuple):
        net, config, meta = model
        info.setdefault("epoch", meta.get("epoch"))
        info["reference_size"] = float(config.data.section_size)
        model = net
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a path, a load_model() tuple or a torch module, not {type(model)}")
    model.to(device).eval()
    if score_threshold is not None and hasattr(getattr(model, "roi_heads", None), "score_thresh"):
        # boxes below the threshold would be dropped anyway: skip their mask head and (H, W) masks
        model.roi_heads.score_thresh = float(score_threshold)
    return model_predictor(model, device), info


def model_identity(path) -> dict:
    """Path, sha256 prefix, config name and epoch of a model file (for reports)."""
    import hashlib

    import torch

    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    info = {"path": str(path), "sha256": digest.hexdigest()[:16]}
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        extra = payload.get("extra") or {}
        training = payload.get("training") or {}
        m = (payload.get("config") or {}).get("model") or {}
        info["config"] = extra.get("config_name") or extra.get("preset") or (
            f"{m.get('backbone')} width {m.get('backbone_width')}, {m.get('norm')} norm, "
            f"FPN {m.get('fpn_channels')}")
        info["epoch"] = training.get("epoch", extra.get("epoch"))
        if extra.get("section_size"):  # an adapted model knows its wafer's section size
            info["section_size"] = float(extra["section_size"])
    except Exception:  # identity is informative only; load_model reports real problems
        pass
    return info


def fit_iou(det: Detection, quad_working: np.ndarray) -> float:
    """IoU of a quad (working px) with the detection's mask: low values flag a poor fit."""
    x0, y0, x1, y1 = det.box
    m = 4
    inside = polygon_mask(quad_working, (y1 - y0 + 2 * m, x1 - x0 + 2 * m), offset=(x0 - m, y0 - m))
    mask = np.pad(det.mask, m)
    union = np.count_nonzero(inside | mask)
    return float(np.count_nonzero(inside & mask)) / union if union else 0.0


def fit_part(det: Detection, source: WaferSource, refine: bool = True) -> np.ndarray | None:
    """Quad (4, 2) of a merged detection in *source* px (edges refined on the gray image)."""
    m = FIT_MARGIN
    mask = np.pad(det.mask, m)
    x0, y0 = det.origin[0] - m, det.origin[1] - m
    w, h = source.size
    image = None
    if refine:
        # the gray window of the padded crop; parts of it outside the wafer repeat the edge
        gx0, gy0 = max(0, x0), max(0, y0)
        gx1, gy1 = min(w, x0 + mask.shape[1]), min(h, y0 + mask.shape[0])
        win = source.gray_window(gx0, gy0, gx1, gy1)
        image = np.pad(win, ((gy0 - y0, y0 + mask.shape[0] - gy1), (gx0 - x0, x0 + mask.shape[1] - gx1)),
                       mode="edge")
    quad = fit_quadrilateral(mask, (x0, y0), image, refine=refine)
    return None if quad is None else source.to_source(quad)


def pair_sections(tissues: list[tuple[Part, float]], magnets: list[tuple[Part, float]]):
    """Pair tissue and magnet parts (F's :func:`sectionseg.geometry.pairing.pair_parts`);
    ``(paired sections, unpaired sections)`` with scores."""
    pairs, lone_t, lone_m = pair_parts([p for p, _ in tissues], [p for p, _ in magnets])
    sections = []
    for i, j in pairs:
        (t, ts), (mg, ms) = tissues[i], magnets[j]
        sections.append(Section(t, mg, score=min(ts, ms), extra={"tissue_score": ts, "magnet_score": ms}))
    unpaired = [Section(tissues[i][0], None, score=tissues[i][1], extra={"tissue_score": tissues[i][1]})
                for i in lone_t]
    unpaired += [Section(None, magnets[j][0], score=magnets[j][1], extra={"magnet_score": magnets[j][1]})
                 for j in lone_m]
    return sections, unpaired


def _drop_dummies(unpaired: list[Section], tissue_areas: list[float]) -> tuple[list[Section], int]:
    """Remove unpaired tissue detections much smaller than the median tissue (dummy strips)."""
    if not tissue_areas:
        return unpaired, 0
    limit = DUMMY_AREA_FRACTION * float(np.median(tissue_areas))
    keep = [s for s in unpaired if s.tissue is None or s.tissue.area >= limit]
    return keep, len(unpaired) - len(keep)


def detect_wafer(gray: np.ndarray, fluo: np.ndarray | None = None, *, model=None, predictor=None,
                 tile_size: int = 512, overlap: int = 128, batch_size: int = 2,
                 score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 mask_threshold: float = DEFAULT_MASK_THRESHOLD, section_size: float | None = None,
                 scale: float | None = None, device: str = "cpu",
                 refine: bool = True, nms_overlap: float | None = None,
                 progress: bool = True) -> DetectionResult:
    """Find the sections of a whole wafer.

    - ``gray``/``fluo``: 2-D source images of the same shape (np.memmap welcome; read tile by tile).
    - ``model``: model file path, ``load_model`` tuple or torch module; None = the bundled model.
      ``predictor`` (callable on a list of ``(3, H, W)`` float tensors, torchvision-style outputs)
      replaces the model (tests).
    - ``tile_size``/``overlap``: working-frame tiles (px); ``batch_size`` tiles per predictor call.
    - ``score_threshold``: minimum detection score; ``mask_threshold``: mask probability cut.
    - ``section_size``: the sections' long side in source px (skips the scale estimate); when None
      and the model file records one (an adapted model), that one is used;
      ``scale``: the working scale itself (working px per source px), overrides ``section_size``.
    - ``refine``: refine quad edges against the gray image.
    - ``nms_overlap``: after merging, of two same-class detections overlapping by more than this
      fraction of the smaller one only the higher-scoring one stays (None: off).
    """
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if predictor is None:
        predictor, model_info = resolve_model(model, device, score_threshold)
    else:
        model_info = {"predictor": getattr(predictor, "__name__", type(predictor).__name__)}
    if fluo is None:
        log.warning("no fluorescence image: the model sees gray in its third channel and finds magnets "
                    "less reliably")
    source = WaferSource(gray, fluo)
    timings["setup"] = time.perf_counter() - t

    t = time.perf_counter()
    scale_info: dict = {}
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
    timings["scale"] = time.perf_counter() - t

    t = time.perf_counter()
    tiles = plan_tiles(*source.size, tile_size=tile_size, overlap=overlap)
    raw = predict_tiles(source, tiles, predictor, batch_size=batch_size, score_threshold=score_threshold,
                        mask_threshold=mask_threshold, progress=progress)
    timings["inference"] = time.perf_counter() - t

    t = time.perf_counter()
    merged = merge_detections(raw, nms_overlap=nms_overlap)
    timings["merge"] = time.perf_counter() - t

    t = time.perf_counter()
    parts, tissues, magnets = [], [], []
    for det in merged:
        quad = fit_part(det, source, refine=refine)
        parts.append({"label": det.label, "name": det.name, "score": det.score,
                      "polygon": None if quad is None else quad.tolist(), "area_px": det.area / scale ** 2,
                      "fit_iou": None if quad is None else fit_iou(det, quad * scale)})
        if quad is not None:
            (tissues if det.label == 1 else magnets).append((Part(quad), det.score))
    timings["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    sections, unpaired = pair_sections(tissues, magnets)
    unpaired, n_dummies = _drop_dummies(unpaired, [s.tissue.area for s in sections])
    timings["pairing"] = time.perf_counter() - t

    counts = {"tiles": len(tiles), "raw_detections": len(raw), "parts": len(merged),
              "tissue_parts": len(tissues), "magnet_parts": len(magnets), "sections": len(sections),
              "unpaired": len(unpaired), "dropped_dummies": n_dummies,
              "unfitted_parts": sum(p["polygon"] is None for p in parts),
              "poor_fits": int(sum(p["fit_iou"] is not None and p["fit_iou"] < POOR_FIT_IOU for p in parts))}
    params = {"tile_size": tile_size, "overlap": overlap, "batch_size": batch_size,
              "score_threshold": score_threshold, "mask_threshold": mask_threshold,
              "section_size": section_size, "device": device, "refine": refine, "nms_overlap": nms_overlap,
              "source_size": list(source.source_size), "working_size": list(source.size), "model": model_info}
    return DetectionResult(sections, unpaired, parts, timings, float(scale), params, counts,
                           source.record(), scale_info)
