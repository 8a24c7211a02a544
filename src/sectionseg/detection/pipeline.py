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
import shapely

from sectionseg.datasets.labels import REFERENCE_SECTION_SIZE
from sectionseg.detection.inference import Detection, model_predictor, predict_tiles, resolve_precision
from sectionseg.detection.merge import merge_detections
from sectionseg.detection.content import content_flags
from sectionseg.detection.evidence import mean_level, quarters, sides_shown
from sectionseg.detection.parallel import fork_map, resolve_workers
from sectionseg.detection.scale import estimate_scale, scale_from_section_size
from sectionseg.detection.tiling import WaferSource, plan_tiles
from sectionseg.errors import InputError
from sectionseg.geometry import Part, Section
from sectionseg.geometry.beside import long_sides, strip_beside
from sectionseg.geometry.fitting import fit_quadrilateral, order_corners, refine_quad
from sectionseg.geometry.pairing import pair_parts
from sectionseg.geometry.polygons import rect_sides
from sectionseg.geometry.raster import polygon_mask

log = logging.getLogger(__name__)

DEFAULT_SCORE_THRESHOLD = 0.7  # tuned on 4 held-out 2000 px wafers (see the report of issue 4)
DEFAULT_MASK_THRESHOLD = 0.5
DEFAULT_PROPOSALS = 300    # region proposals per tile at inference (None: the model's own); 300 found
                           # the same parts as 500 on the 5 benchmark wafers, 20 % faster
FIT_MARGIN = 6         # px of image around a mask crop for the edge refinement
POOR_FIT_IOU = 0.8     # quads whose IoU with their mask is lower are counted as poor fits
DUMMY_AREA_FRACTION = 0.5  # unpaired tissue smaller than this x the median tissue area = dummy strip
MIN_AREA_FRACTION = 0.4    # other unpaired parts outside [this, MAX_AREA_FACTOR] x their kind's median
MAX_AREA_FACTOR = 1.6      # area are not reported (debris, shading, merged junk)
LONE_SCORE = 0.9           # a part without a partner needs this score to be reported (no pairing evidence)
# A part's fit is suspect (touching parts seen as one region) when its quad fits its mask worse than
# this, or its area exceeds its kind's median by this factor; suspects are rebuilt beside their partners.
SUSPECT_FIT_IOU = 0.8
SUSPECT_AREA_FACTOR = 1.3
# Detections scoring between this and the score threshold are kept in reserve: one is reported only
# when it pairs with a confident part that found no partner (the pairing is the extra evidence).
RESERVE_SCORE = 0.3
SMALL_AREA_FRACTION = 0.7  # paired parts smaller than this x their kind's median are regrown if possible
PARTNER_MAX_OVERLAP = 0.3   # a partner found on the image may overlap known parts by this fraction
                           # (sections on real wafers overlap their neighbours by up to ~20 %)
EDGE_SIDES = 3             # a lone part must differ from its surroundings across this many sides


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


def resolve_model(model, device: str = "cpu", score_threshold: float | None = None,
                  precision: str = "fp32", proposals: int | None = None):
    """``(predictor, info)`` for a model path, a loaded ``(model, config, meta)`` tuple, a bare
    torch module, or None (the bundled model; InputError when it is missing). With
    ``score_threshold`` the model's own box score threshold is set to it, with ``proposals`` its
    number of region proposals per tile (the model is changed). ``precision``: see
    :func:`~sectionseg.detection.inference.resolve_precision`."""
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
    if proposals is not None:
        set_proposals(model, proposals)
    info["precision"] = resolve_precision(precision, device)
    info["proposals"] = getattr(getattr(model, "rpn", None), "_post_nms_top_n", {}).get("testing")
    return model_predictor(model, device, info["precision"]), info


def set_proposals(model, proposals: int) -> None:
    """Keep ``proposals`` region proposals per tile at inference (torchvision's
    ``rpn_post_nms_top_n_test``; pre-NMS candidates at least twice as many)."""
    if not proposals >= 1:
        raise InputError(f"proposals must be a positive integer, got {proposals}")
    rpn = model.rpn
    rpn._post_nms_top_n["testing"] = int(proposals)
    rpn._pre_nms_top_n["testing"] = max(int(rpn._pre_nms_top_n["testing"]), 2 * int(proposals))


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


def _gray_box(source: WaferSource, x0: int, y0: int, x1: int, y1: int) -> np.ndarray | None:
    """Gray crop ``[x0, x1) x [y0, y1)`` of the working frame; parts outside the wafer repeat its edge
    (None when the box misses the wafer)."""
    w, h = source.size
    gx0, gy0, gx1, gy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if gx1 <= gx0 or gy1 <= gy0:
        return None
    win = source.gray_window(gx0, gy0, gx1, gy1)
    return np.pad(win, ((gy0 - y0, y1 - gy1), (gx0 - x0, x1 - gx1)), mode="edge")


def fit_part(det: Detection, source: WaferSource, refine: bool = True) -> np.ndarray | None:
    """Quad (4, 2) of a merged detection in *source* px (edges refined on the gray image)."""
    m = FIT_MARGIN
    mask = np.pad(det.mask, m)
    x0, y0 = det.origin[0] - m, det.origin[1] - m
    image = _gray_box(source, x0, y0, x0 + mask.shape[1], y0 + mask.shape[0]) if refine else None
    quad = fit_quadrilateral(mask, (x0, y0), image, refine=refine and image is not None)
    return None if quad is None else source.to_source(quad)


def fit_parts(dets: list[Detection], source: WaferSource, refine: bool = True, workers: int = 1,
              chunk: int = 32) -> list[tuple[np.ndarray | None, float | None]]:
    """``(quad in source px or None, IoU of the quad with its mask or None)`` of every detection, in
    order; chunks of ``chunk`` detections go to ``workers`` forked processes."""
    def fit_chunk(start: int) -> list:
        found = []
        for det in dets[start:start + chunk]:
            quad = fit_part(det, source, refine=refine)
            found.append((quad, None if quad is None else fit_iou(det, quad * source.scale)))
        return found

    chunks = fork_map(fit_chunk, range(0, len(dets), chunk), workers)
    return [fit for found in chunks for fit in found]


def _window(source: WaferSource, quad: np.ndarray, margin: int = FIT_MARGIN):
    """Gray crop (working frame) around a working-px quad, and its origin (see :func:`_gray_box`)."""
    x0, y0 = (np.floor(quad.min(axis=0)) - margin).astype(int)
    x1, y1 = (np.ceil(quad.max(axis=0)) + margin).astype(int)
    return _gray_box(source, int(x0), int(y0), int(x1), int(y1)), (int(x0), int(y0))


def _short_side(part: Part) -> float:
    return rect_sides(part.polygon)[1]


def _mask_points(det: Detection) -> np.ndarray:
    """Working-px centres of a detection's mask pixels."""
    rows, cols = np.nonzero(det.mask)
    return np.column_stack([cols + det.origin[0] + 0.5, rows + det.origin[1] + 0.5])


def rebuild_touching(parts: list[tuple[Part, float, Detection, float]], partners: list[tuple[Part, float]],
                     source: WaferSource, kind: str = "tissue", refine: bool = True):
    """Replace suspect fits of one kind by strips beside the partners left without a part of that kind.

    ``parts``: ``(part in source px, score, detection, fit IoU)`` of one kind (``kind``: "tissue" or
    "magnet"); ``partners``: ``(part, score)`` of the other kind. Suspects (:data:`SUSPECT_FIT_IOU`,
    :data:`SUSPECT_AREA_FACTOR`) are usually two touching parts seen as one region; every partner
    that the other parts do not pair with gets a part rebuilt from the suspects' mask pixels in front
    of its long side (:func:`strip_beside`), refined on the image. Returns ``(parts as (part, score),
    number rebuilt)``; suspects that gave no rebuilt part stay as they were.
    """
    plain = [(p, sc) for p, sc, _, _ in parts]
    if len(parts) < 5:
        return plain, 0
    median_area = float(np.median([p.area for p, *_ in parts]))
    is_suspect = [iou < SUSPECT_FIT_IOU or p.area > SUSPECT_AREA_FACTOR * median_area for p, _, _, iou in parts]
    good = [t for t, bad in zip(parts, is_suspect) if not bad]
    suspects = [t for t, bad in zip(parts, is_suspect) if bad]
    if not suspects or len(good) < 3:
        return plain, 0
    scale = source.scale
    width = float(np.median([_short_side(p) for p, *_ in good])) * scale  # working px
    own, other = [p for p, *_ in good], [m for m, _ in partners]
    if kind == "tissue":
        _, _, lone = pair_parts(own, other)  # magnets without a tissue
    else:
        _, lone, _ = pair_parts(other, own)  # tissues without a magnet
    points = [_mask_points(det) for _, _, det, _ in suspects]
    boxes = np.array([det.box for _, _, det, _ in suspects], dtype=np.float64)
    used, rebuilt = set(), []
    for j in lone:
        anchor = partners[j][0].polygon * scale
        lo, hi = anchor.min(axis=0) - 1.5 * width, anchor.max(axis=0) + 1.5 * width
        near = np.flatnonzero((boxes[:, 0] < hi[0]) & (boxes[:, 2] > lo[0]) & (boxes[:, 1] < hi[1])
                              & (boxes[:, 3] > lo[1]))
        if near.size == 0:
            continue
        quad = strip_beside(anchor, np.concatenate([points[k] for k in near]), width)
        if quad is None:
            continue
        if refine:
            image, origin = _window(source, quad)
            if image is not None:
                quad = refine_quad(quad - origin, image) + origin
        used.update(int(k) for k in near)
        rebuilt.append((Part(source.to_source(quad)), max(suspects[k][1] for k in near)))
    kept = [(p, sc) for k, (p, sc, _, _) in enumerate(suspects) if k not in used]
    return [(p, sc) for p, sc, _, _ in good] + rebuilt + kept, len(rebuilt)


def recover_partners(unpaired: list[Section], reserve: list[Detection], source: WaferSource,
                     refine: bool = True) -> tuple[list[Section], list[Section]]:
    """Pair lone confident parts with reserve (low-score) detections of the other class.

    ``unpaired``: one-part sections; ``reserve``: merged detections below the score threshold.
    Returns ``(new sections, still unpaired)``; reserve parts that pair with nothing are dropped.
    """
    lone_t = [s for s in unpaired if s.tissue is not None]
    lone_m = [s for s in unpaired if s.magnet is not None]
    if not reserve or not unpaired:
        return [], unpaired
    centres = np.array([s.parts()["tissue" if s.tissue is not None else "magnet"].centre for s in unpaired])
    reach = 2.0 * max(float(np.sqrt(s.parts()["tissue" if s.tissue is not None else "magnet"].area))
                      for s in unpaired)
    fitted: dict[int, list[tuple[Part, float]]] = {1: [], 2: []}
    for det in reserve:
        wanted = 2 if det.label == 2 else 1
        if not (lone_t if wanted == 2 else lone_m):
            continue
        x0, y0, x1, y1 = np.asarray(det.box, dtype=np.float64) / source.scale
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        if np.min(np.hypot(*(centres - centre).T)) > reach:
            continue
        quad = fit_part(det, source, refine=refine)
        if quad is not None:
            fitted[det.label].append((Part(quad), det.score))
    new, used_t, used_m = [], set(), set()
    pairs, _, _ = pair_parts([s.tissue for s in lone_t], [p for p, _ in fitted[2]])
    for i, j in pairs:
        part, score = fitted[2][j]
        new.append(Section(lone_t[i].tissue, part, score=min(lone_t[i].score, score),
                           extra={**lone_t[i].extra, "magnet_score": score, "recovered": "magnet"}))
        used_t.add(i)
    pairs, _, _ = pair_parts([p for p, _ in fitted[1]], [s.magnet for s in lone_m])
    for i, j in pairs:
        part, score = fitted[1][i]
        new.append(Section(part, lone_m[j].magnet, score=min(lone_m[j].score, score),
                           extra={**lone_m[j].extra, "tissue_score": score, "recovered": "tissue"}))
        used_m.add(j)
    rest = [s for k, s in enumerate(lone_t) if k not in used_t] + [s for k, s in enumerate(lone_m) if k not in used_m]
    return new, rest


def _sides_beside(quad: np.ndarray, width: float) -> list[np.ndarray]:
    """The two strips ``width`` px wide beside the long sides of a working-px quad (outside it)."""
    return [np.array([p0, p1, p1 + width * n, p0 + width * n]) for p0, p1, n, _ in long_sides(quad)]


def partner_from_image(part: Part, kind: str, source: WaferSource, width: float,
                       refine: bool = True) -> Part | None:
    """The missing partner of a lone part, found on the image beside one of its long sides.

    ``kind``: what is missing, ``"tissue"`` (the darker strip of the gray image: tissue is darker than
    magnetic resin) or ``"magnet"`` (the brighter strip of the fluorescence: the resin's beads);
    ``width``: the wafer's typical short side of that kind (source px). The strip is refined on the
    gray image. None when neither side clearly shows the partner (or, for a magnet, without fluo).
    """
    scale = source.scale
    quad = part.polygon * scale
    channel, sign = ("gray", -1.0) if kind == "tissue" else ("fluo", 1.0)
    own = mean_level(source, quad, channel)
    levels = [(mean_level(source, strip, channel), strip) for strip in _sides_beside(quad, width * scale)]
    levels = [(level, strip) for level, strip in levels if level is not None]
    if own is None or not levels:
        return None
    level, strip = max(levels, key=lambda t: sign * t[0])
    # tissue at least 3 % darker than its magnet; magnet fluorescence clearly above the tissue's;
    # along the whole strip, not on average (a strip half on a neighbour's magnet is no partner)
    for quarter in [strip] + quarters(strip):
        level = mean_level(source, quarter, channel)
        if level is None or (kind == "tissue" and level > 0.97 * own) or (kind == "magnet" and level < own + 20.0):
            return None
    if refine:
        image, origin = _window(source, strip)
        if image is not None:
            strip = refine_quad(strip - origin, image) + origin
    return Part(source.to_source(order_corners(strip)))


def complete_from_image(sections: list[Section], unpaired: list[Section], source: WaferSource,
                        refine: bool = True) -> tuple[list[Section], list[Section]]:
    """Give lone parts their partner found on the image (:func:`partner_from_image`), unless the
    strip overlaps a part already found (of either kind) by more than :data:`PARTNER_MAX_OVERLAP`
    of its area. Returns ``(new sections, still unpaired)``."""
    new, rest = [], []
    for kind, have in (("tissue", "magnet"), ("magnet", "tissue")):
        found = [getattr(s, kind) for s in sections + unpaired if getattr(s, kind) is not None]
        lone = [s for s in unpaired if getattr(s, have) is not None and getattr(s, kind) is None]
        if len(found) < 3:
            rest += lone
            continue
        width = float(np.median([_short_side(p) for p in found]))
        # every part known (the lone part itself only touches the strip)
        shapes = [shapely.Polygon(p.polygon) for s in sections + unpaired for p in (s.tissue, s.magnet)
                  if p is not None]
        tree = shapely.STRtree(shapes)
        for s in lone:
            part = partner_from_image(getattr(s, have), kind, source, width, refine)
            poly = None if part is None else shapely.Polygon(part.polygon)
            if poly is None or any(poly.intersection(shapes[i]).area > PARTNER_MAX_OVERLAP * poly.area
                                   for i in tree.query(poly)):
                rest.append(s)
                continue
            parts = {have: getattr(s, have), kind: part}
            new.append(Section(parts["tissue"], parts["magnet"], score=s.score,
                               extra={**s.extra, "recovered": f"{kind} from image"}))
    return new, rest


def drop_duplicates(sections: list[Section], unpaired: list[Section], overlap: float = 0.5) -> list[Section]:
    """Lone parts that mostly overlap a paired part of the same kind (a duplicate the merge missed)
    are dropped; returns the unpaired parts that remain."""
    keep = []
    for kind in ("tissue", "magnet"):
        shapes = [shapely.Polygon(getattr(s, kind).polygon) for s in sections]
        tree = shapely.STRtree(shapes) if shapes else None
        for s in unpaired:
            part = getattr(s, kind)
            if part is None:
                continue
            poly = shapely.Polygon(part.polygon)
            hits = [] if tree is None else tree.query(poly)
            if not any(poly.intersection(shapes[i]).area > overlap * min(poly.area, shapes[i].area) for i in hits):
                keep.append(s)
    return keep


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


def regrow_small(sections: list[Section], source: WaferSource, refine: bool = True) -> tuple[list[Section], int]:
    """Paired parts much smaller than their kind's median (:data:`SMALL_AREA_FRACTION`: the model saw
    only part of a faint tissue, or stopped at a shading seam) are replaced by the strip of typical
    width beside their partner (:func:`partner_from_image`), when that strip lies on the small part's
    side, shows the part's contrast all along and overlaps no other part. Returns
    ``(sections, number of parts replaced)``."""
    if len(sections) < 3:
        return sections, 0
    out, n = list(sections), 0
    for kind, have in (("tissue", "magnet"), ("magnet", "tissue")):
        areas = [getattr(s, kind).area for s in out]
        median = float(np.median(areas))
        width = float(np.median([_short_side(getattr(s, kind)) for s in out]))
        shapes = [shapely.Polygon(p.polygon) for s in out for p in (s.tissue, s.magnet)]
        tree = shapely.STRtree(shapes)
        for k, s in enumerate(out):
            small = getattr(s, kind)
            if small.area >= SMALL_AREA_FRACTION * median:
                continue
            part = partner_from_image(getattr(s, have), kind, source, width, refine)
            if part is None:
                continue
            poly, own = shapely.Polygon(part.polygon), shapely.Polygon(small.polygon)
            if poly.intersection(own).area < 0.5 * own.area:
                continue  # the strip is on the other side: not this part
            others = [i for i in tree.query(poly) if i not in (2 * k, 2 * k + 1)]
            if any(poly.intersection(shapes[i]).area > PARTNER_MAX_OVERLAP * poly.area for i in others):
                continue
            parts = {have: getattr(s, have), kind: part}
            out[k] = Section(parts["tissue"], parts["magnet"], score=s.score,
                             extra={**s.extra, "regrown": kind})
            n += 1
    return out, n


def split_tiny(sections: list[Section]) -> tuple[list[Section], list[Section]]:
    """Unpair sections with a part smaller than :data:`MIN_AREA_FRACTION` x its kind's median (a
    dummy strip or a speck paired with a magnet, or junk pairs nested in a real section): the tiny
    part is dropped and the other one becomes a lone part, judged as such later. Returns
    ``(sections kept, lone parts)``."""
    if len(sections) < 3:
        return sections, []
    median = {k: float(np.median([getattr(s, k).area for s in sections])) for k in ("tissue", "magnet")}
    kept, lone = [], []
    for s in sections:
        tiny = {k for k in ("tissue", "magnet") if getattr(s, k).area < MIN_AREA_FRACTION * median[k]}
        if not tiny:
            kept.append(s)
        elif len(tiny) == 1:
            k = "magnet" if "tissue" in tiny else "tissue"
            score = s.extra.get(f"{k}_score", s.score)
            lone.append(Section(getattr(s, k) if k == "tissue" else None, getattr(s, k) if k == "magnet" else None,
                                score=score, extra={f"{k}_score": score}))
    return kept, lone


def drop_unseen(unpaired: list[Section], source: WaferSource) -> tuple[list[Section], int]:
    """Remove lone parts whose outline does not show on the image on at least :data:`EDGE_SIDES`
    sides (:func:`~sectionseg.detection.evidence.sides_shown`): a darker patch of mosaic shading
    taken for tissue has no edges of its own. Returns ``(kept, number removed)``."""
    keep = []
    for s in unpaired:
        kind = "tissue" if s.tissue is not None else "magnet"
        shown = sides_shown(source, getattr(s, kind).polygon * source.scale, kind)
        if shown is None or shown >= EDGE_SIDES:
            keep.append(s)
    return keep, len(unpaired) - len(keep)


def drop_implausible(unpaired: list[Section], sections: list[Section]) -> tuple[list[Section], int, int]:
    """Remove lone parts scoring below :data:`LONE_SCORE` (no pairing evidence) or whose area is far
    from the paired parts' of their kind: tissue smaller than :data:`DUMMY_AREA_FRACTION` x the
    median (dummy strips), or any part outside [:data:`MIN_AREA_FRACTION`, :data:`MAX_AREA_FACTOR`] x
    the median (shading, debris, merged junk). Returns ``(kept, dummies, others)`` (others: all the
    rest removed)."""
    if not sections:
        return unpaired, 0, 0
    median = {k: float(np.median([getattr(s, k).area for s in sections])) for k in ("tissue", "magnet")}
    keep, dummies, other = [], 0, 0
    for s in unpaired:
        kind = "tissue" if s.tissue is not None else "magnet"
        area = getattr(s, kind).area
        if s.score is not None and s.score < LONE_SCORE:
            other += 1
        elif kind == "tissue" and area < DUMMY_AREA_FRACTION * median[kind]:
            dummies += 1
        elif area < MIN_AREA_FRACTION * median[kind] or area > MAX_AREA_FACTOR * median[kind]:
            other += 1
        else:
            keep.append(s)
    return keep, dummies, other


def detect_wafer(gray: np.ndarray, fluo: np.ndarray | None = None, *, model=None, predictor=None,
                 tile_size: int = 512, overlap: int = 128, batch_size: int = 2,
                 score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 mask_threshold: float = DEFAULT_MASK_THRESHOLD, section_size: float | None = None,
                 scale: float | None = None, device: str = "cpu",
                 refine: bool = True, nms_overlap: float | None = None, skip_empty: bool = True,
                 precision: str = "auto", proposals: int | None = DEFAULT_PROPOSALS,
                 workers: int | None = None, progress: bool = True) -> DetectionResult:
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
    - ``skip_empty``: do not run the model on tiles showing only bare wafer
      (:mod:`sectionseg.detection.content`).
    - ``precision``: ``auto`` (bf16 on CPUs that run it natively, else fp32), ``fp32`` or ``bf16``;
      ``proposals``: region proposals per tile (None: the model's own setting).
    - ``workers``: processes for inference and quad fitting (None: one per core up to 8 on the CPU,
      1 on a GPU or with a ``predictor``; see :mod:`sectionseg.detection.parallel`).
    - ``nms_overlap``: after merging, of two same-class detections overlapping by more than this
      fraction of the smaller one only the higher-scoring one stays (None: off).
    """
    timings: dict[str, float] = {}
    t = time.perf_counter()
    # a caller's own predictor may keep state (tests): it runs in this process unless told otherwise
    n_workers = resolve_workers(workers, device) if predictor is None or workers is not None else 1
    reserve_threshold = min(score_threshold, RESERVE_SCORE)
    if predictor is None:
        predictor, model_info = resolve_model(model, device, reserve_threshold, precision, proposals)
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
    all_tiles = plan_tiles(*source.size, tile_size=tile_size, overlap=overlap)
    tiles = all_tiles
    if skip_empty and len(all_tiles) > 1:
        tiles = [t for t, busy in zip(all_tiles, content_flags(source, all_tiles)) if busy]
    raw = predict_tiles(source, tiles, predictor, batch_size=batch_size, score_threshold=reserve_threshold,
                        mask_threshold=mask_threshold, workers=n_workers, progress=progress)
    timings["inference"] = time.perf_counter() - t

    t = time.perf_counter()
    merged = merge_detections(raw, nms_overlap=nms_overlap)
    reserve = [d for d in merged if d.score < score_threshold]
    merged = [d for d in merged if d.score >= score_threshold]
    timings["merge"] = time.perf_counter() - t

    t = time.perf_counter()
    parts, tissues, magnets = [], [], []
    for det, (quad, iou) in zip(merged, fit_parts(merged, source, refine, n_workers)):
        parts.append({"label": det.label, "name": det.name, "score": det.score,
                      "polygon": None if quad is None else quad.tolist(), "area_px": det.area / scale ** 2,
                      "fit_iou": iou})
        if quad is not None:
            (tissues if det.label == 1 else magnets).append((Part(quad), det.score, det, iou))
    # touching parts seen as one region: rebuilt beside their clean partners, tissues first
    tissues, n_tissues = rebuild_touching(tissues, [(p, sc) for p, sc, _, _ in magnets], source, "tissue", refine)
    magnets, n_magnets = rebuild_touching(magnets, tissues, source, "magnet", refine)
    timings["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    sections, unpaired = pair_sections(tissues, magnets)
    recovered, unpaired = recover_partners(unpaired, reserve, source, refine)
    sections += recovered
    sections, split = split_tiny(sections)
    sections, n_regrown = regrow_small(sections, source, refine)
    unpaired += split
    n_unpaired = len(unpaired)
    unpaired = drop_duplicates(sections, unpaired)
    n_duplicates = n_unpaired - len(unpaired)
    unpaired, n_dummies, n_implausible = drop_implausible(unpaired, sections)
    unpaired, n_unseen = drop_unseen(unpaired, source)
    inferred, unpaired = complete_from_image(sections, unpaired, source, refine)
    sections += inferred
    timings["pairing"] = time.perf_counter() - t

    counts = {"tiles": len(all_tiles), "empty_tiles_skipped": len(all_tiles) - len(tiles), "raw_detections": len(raw), "parts": len(merged),
              "tissue_parts": len(tissues), "magnet_parts": len(magnets), "sections": len(sections),
              "unpaired": len(unpaired), "dropped_dummies": n_dummies, "dropped_implausible": n_implausible,
              "unpaired_tiny_parts": len(split), "regrown_small_parts": n_regrown, "dropped_unseen": n_unseen, "rebuilt_parts": n_tissues + n_magnets,
              "recovered_parts": len(recovered), "reserve_detections": len(reserve),
              "duplicates_dropped": n_duplicates, "partners_from_image": len(inferred),
              "unfitted_parts": sum(p["polygon"] is None for p in parts),
              "poor_fits": int(sum(p["fit_iou"] is not None and p["fit_iou"] < POOR_FIT_IOU for p in parts))}
    params = {"tile_size": tile_size, "overlap": overlap, "batch_size": batch_size,
              "score_threshold": score_threshold, "mask_threshold": mask_threshold,
              "section_size": section_size, "device": device, "refine": refine, "nms_overlap": nms_overlap,
              "skip_empty": skip_empty, "precision": precision, "proposals": proposals,
              "workers": n_workers,
              "source_size": list(source.source_size), "working_size": list(source.size), "model": model_info}
    return DetectionResult(sections, unpaired, parts, timings, float(scale), params, counts,
                           source.record(), scale_info)
