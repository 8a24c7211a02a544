"""COCO-style detection metrics through pycocotools (boxes and masks, per class and overall).

Inputs are plain per-image dicts so that metrics can be computed without a model:

- ground truth: ``{"boxes": [N, 4] XYXY px, "labels": [N] (1 tissue, 2 magnet), "masks": [N, H, W]
  (0/1) or a list of COCO RLE dicts}``; optional ``"size": (H, W)`` when there is no mask to read it from;
- prediction: the same plus ``"scores": [N]``; ``"masks"`` may also be probabilities ``[N, 1, H, W]``
  (thresholded at ``mask_threshold``).

Arrays may be numpy arrays or torch tensors.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

CLASS_NAMES = {1: "tissue", 2: "magnet"}
MAX_DETS = (1, 100, 300)


def as_numpy(x) -> np.ndarray:
    """numpy view of a tensor/array/list."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def masks_to_rles(masks, mask_threshold: float = 0.5) -> list[dict]:
    """COCO RLEs of ``masks`` ([N, H, W] or [N, 1, H, W], binary or probabilities); RLE lists pass through."""
    if isinstance(masks, (list, tuple)) and (not masks or isinstance(masks[0], dict)):
        return list(masks)
    arr = as_numpy(masks)
    if arr.ndim == 4:
        arr = arr[:, 0]
    if arr.shape[0] == 0:
        return []
    binary = (arr >= mask_threshold) if arr.dtype.kind == "f" else (arr > 0)
    return list(mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0).astype(np.uint8))))


def image_size(item: dict) -> tuple[int, int]:
    """``(H, W)`` of an image from its ``size`` entry or its masks."""
    if "size" in item:
        return int(item["size"][0]), int(item["size"][1])
    masks = item.get("masks")
    if isinstance(masks, (list, tuple)):
        if masks:
            return tuple(int(v) for v in masks[0]["size"])
        raise ValueError("an image without masks needs a 'size' entry (H, W)")
    shape = as_numpy(masks).shape
    return int(shape[-2]), int(shape[-1])


def _xywh(boxes) -> np.ndarray:
    b = as_numpy(boxes).reshape(-1, 4).astype(np.float64)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def build_coco(gts: list[dict], preds: list[dict], mask_threshold: float = 0.5):
    """``(coco_gt, detections)``: a pycocotools COCO of the ground truth and the result list.

    A ground truth with an ``ignore`` RLE (areas of unknown content) adds it as a crowd region of
    every class: detections inside it count neither as hits nor as false positives.
    """
    images, annotations, detections = [], [], []
    ann_id = 1
    for image_id, (gt, pred) in enumerate(zip(gts, preds), start=1):
        h, w = image_size(gt)
        images.append({"id": image_id, "height": h, "width": w})
        rles = masks_to_rles(gt["masks"], mask_threshold)
        for box, label, rle in zip(_xywh(gt["boxes"]), as_numpy(gt["labels"]).reshape(-1), rles):
            rle = dict(rle)
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": box.tolist(),
                    "area": float(mask_utils.area(rle)),
                    "iscrowd": 0,
                    "segmentation": _json_rle(rle),
                }
            )
            ann_id += 1
        if gt.get("ignore") is not None and mask_utils.area(gt["ignore"]) > 0:
            # COCO's crowd regions: a detection lying mostly inside one is neither a hit nor a miss
            for label in CLASS_NAMES:
                annotations.append(_crowd(ann_id, image_id, int(label), dict(gt["ignore"])))
                ann_id += 1
        rles = masks_to_rles(pred["masks"], mask_threshold)
        for box, label, score, rle in zip(
            _xywh(pred["boxes"]), as_numpy(pred["labels"]).reshape(-1), as_numpy(pred["scores"]).reshape(-1), rles
        ):
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": box.tolist(),
                    "score": float(score),
                    "segmentation": _json_rle(dict(rle)),
                }
            )
    coco_gt = COCO()
    coco_gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": v} for k, v in CLASS_NAMES.items()],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
    return coco_gt, detections


def _crowd(ann_id: int, image_id: int, label: int, rle: dict) -> dict:
    """A COCO ``iscrowd`` annotation of class ``label`` over the mask ``rle`` (an ignore area)."""
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": label,
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "area": float(mask_utils.area(rle)),
        "iscrowd": 1,
        "segmentation": _json_rle(rle),
    }


def _json_rle(rle: dict) -> dict:
    counts = rle["counts"]
    return {
        "size": [int(v) for v in rle["size"]],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def _mean_valid(values: np.ndarray):
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def run_cocoeval(coco_gt: COCO, detections: list[dict], iou_type: str, max_dets=MAX_DETS) -> COCOeval | None:
    """Evaluated and accumulated ``COCOeval`` (quiet); None when there are no detections."""
    if not detections:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes([dict(d) for d in detections])
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
    return ev


def summarize(ev: COCOeval | None, coco_gt: COCO) -> dict:
    """Per class and overall: ``ap50`` (AP at IoU 0.5), ``ap`` (AP at IoU .5:.95), ``recall50``.

    Values are read from ``ev.eval["precision"]`` / ``["recall"]`` (area range "all", the largest
    maxDets); classes without ground truth give None. Also ``pr50``: the precision at the 101
    recall thresholds at IoU 0.5, per class (for plotting).
    """
    out: dict = {}
    cat_ids = sorted(CLASS_NAMES)
    n_gt = {c: len(coco_gt.getAnnIds(catIds=[c], iscrowd=False)) for c in cat_ids}  # crowd: ignore areas
    if ev is None:  # no detection at all: everything with ground truth scores 0
        for c in cat_ids:
            zero = 0.0 if n_gt[c] else None
            out[CLASS_NAMES[c]] = {"ap50": zero, "ap": zero, "recall50": zero, "n_gt": n_gt[c]}
        valid = [out[CLASS_NAMES[c]]["ap"] for c in cat_ids if n_gt[c]]
        zero = 0.0 if valid else None
        out["overall"] = {"ap50": zero, "ap": zero, "recall50": zero, "n_gt": sum(n_gt.values())}
        out["pr50"] = {CLASS_NAMES[c]: [] for c in cat_ids}
        return out
    precision = ev.eval["precision"][:, :, :, 0, -1]  # [T, R, K] at area "all", largest maxDets
    recall = ev.eval["recall"][:, :, 0, -1]  # [T, K]
    k_of = {c: i for i, c in enumerate(ev.params.catIds)}
    for c in cat_ids:
        k = k_of[c]
        out[CLASS_NAMES[c]] = {
            "ap50": _mean_valid(precision[0, :, k]),
            "ap": _mean_valid(precision[:, :, k]),
            "recall50": _mean_valid(recall[0, k : k + 1]),
            "n_gt": n_gt[c],
        }
    out["overall"] = {
        "ap50": _mean_valid(precision[0]),
        "ap": _mean_valid(precision),
        "recall50": _mean_valid(recall[0]),
        "n_gt": sum(n_gt.values()),
    }
    out["pr50"] = {CLASS_NAMES[c]: precision[0, :, k_of[c]].tolist() for c in cat_ids}
    out["recall_thresholds"] = ev.params.recThrs.tolist()
    return out


def coco_metrics(gts: list[dict], preds: list[dict], mask_threshold: float = 0.5, max_dets=MAX_DETS) -> dict:
    """``{"bbox": summary, "segm": summary}`` (see :func:`summarize`) for matching image lists."""
    if len(gts) != len(preds):
        raise ValueError(f"{len(gts)} ground-truth images but {len(preds)} prediction images")
    coco_gt, detections = build_coco(gts, preds, mask_threshold)
    return {
        iou_type: summarize(run_cocoeval(coco_gt, detections, iou_type, max_dets), coco_gt)
        for iou_type in ("bbox", "segm")
    }
