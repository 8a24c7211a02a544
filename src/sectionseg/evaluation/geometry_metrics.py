"""Geometry errors that matter to the microscope, on matched parts.

Predicted and ground-truth parts of the same class are matched one-to-one (Hungarian assignment on
mask IoU, pairs kept at IoU >= ``iou_threshold``). For each match we compare

- the centre (px): centroid of the fitted quadrilateral vs. the ground-truth polygon's centroid;
- the long-axis angle (degrees, modulo 180): :func:`sectionseg.geometry.polygons.long_axis_angle`;
- the IoU (shapely) of the quadrilateral fitted to the predicted mask with the ground-truth polygon.

The quadrilateral is :func:`sectionseg.geometry.fitting.fit_mask_quad`: four lines fitted to the
sides of the mask's largest outer contour, grown so that its area equals the blob's pixel count
(contour points are boundary *pixel centres*). When the ground
truth has no ``"polygons"`` entry (list of ``(K, 2)`` arrays, x/y px), its polygon is fitted from
its mask the same way.
"""

from __future__ import annotations

import warnings

import numpy as np
import shapely
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

from sectionseg.evaluation.coco_metrics import CLASS_NAMES, as_numpy, masks_to_rles
from sectionseg.geometry.fitting import fit_mask_quad
from sectionseg.geometry.polygons import angle_difference, long_axis_angle, polygon_centroid


def _decode(rle: dict) -> np.ndarray:
    """(H, W) uint8 mask of a COCO RLE."""
    with warnings.catch_warnings():  # pycocotools' numpy-2 copy=False deprecation, harmless
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode([rle])[:, :, 0]


def match_parts(
    gt_rles: list, gt_labels, pred_rles: list, pred_labels, iou_threshold: float = 0.5
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(gt_index, pred_index, mask_iou)`` of same-class parts, IoU >= threshold."""
    gt_labels, pred_labels = as_numpy(gt_labels).reshape(-1), as_numpy(pred_labels).reshape(-1)
    matches = []
    for label in np.union1d(gt_labels, pred_labels):
        gi = np.flatnonzero(gt_labels == label)
        pi = np.flatnonzero(pred_labels == label)
        if not gi.size or not pi.size:
            continue
        iou = np.asarray(
            mask_utils.iou([pred_rles[i] for i in pi], [gt_rles[i] for i in gi], [0] * len(gi))
        )  # shape [n_pred, n_gt]
        rows, cols = linear_sum_assignment(-iou)
        matches += [
            (int(gi[c]), int(pi[r]), float(iou[r, c])) for r, c in zip(rows, cols) if iou[r, c] >= iou_threshold
        ]
    return matches


def _in_ignore(ignore: dict | None, pred_rles: list, matched: set[int]) -> np.ndarray:
    """Bool per prediction: unmatched and at least half inside the ``ignore`` RLE (an area of unknown
    content, as a COCO crowd region): neither right nor wrong, so not counted."""
    out = np.zeros(len(pred_rles), bool)
    if ignore is None or not pred_rles:
        return out
    inside = np.asarray(mask_utils.iou(pred_rles, [ignore], [1])).reshape(-1)  # crowd: share of the prediction
    out[:] = inside >= 0.5
    out[list(matched)] = False
    return out


def _stats(values: list[float], prefix: str) -> dict:
    if not values:
        return {f"{prefix}_median": None, f"{prefix}_p95": None}
    arr = np.asarray(values, dtype=np.float64)
    return {f"{prefix}_median": float(np.median(arr)), f"{prefix}_p95": float(np.percentile(arr, 95))}


def geometry_metrics(
    gts: list[dict],
    preds: list[dict],
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
    mask_threshold: float = 0.5,
) -> dict:
    """Per class and overall: counts, precision/recall at ``score_threshold`` and the geometry errors.

    Only predictions with score >= ``score_threshold`` take part; an unmatched one lying at least half
    inside the ground truth's ``ignore`` RLE (if any) is not counted. Returns for each of ``tissue``,
    ``magnet``, ``overall``: ``n_gt``, ``n_pred``, ``n_matched``, ``precision``, ``recall``,
    ``centre_error_px_{median,p95}``, ``angle_error_deg_{median,p95}``,
    ``quad_iou_{median,p95}`` and ``quad_iou_mean``.
    """
    per_class = {
        name: {"n_gt": 0, "n_pred": 0, "centre": [], "angle": [], "quad_iou": []} for name in CLASS_NAMES.values()
    }
    for gt, pred in zip(gts, preds):
        keep = as_numpy(pred["scores"]).reshape(-1) >= score_threshold
        pred_rles = [r for r, k in zip(masks_to_rles(pred["masks"], mask_threshold), keep) if k]
        pred_labels = as_numpy(pred["labels"]).reshape(-1)[keep]
        gt_rles = masks_to_rles(gt["masks"], mask_threshold)
        gt_labels = as_numpy(gt["labels"]).reshape(-1)
        matches = match_parts(gt_rles, gt_labels, pred_rles, pred_labels, iou_threshold)
        counted = ~_in_ignore(gt.get("ignore"), pred_rles, {p for _, p, _ in matches})
        for label, name in CLASS_NAMES.items():
            per_class[name]["n_gt"] += int((gt_labels == label).sum())
            per_class[name]["n_pred"] += int(((pred_labels == label) & counted).sum())
        gt_polys = gt.get("polygons")
        for g, p, _ in matches:
            quad = fit_mask_quad(_decode(pred_rles[p]))
            gt_poly = (
                np.asarray(gt_polys[g], dtype=np.float64)
                if gt_polys is not None
                else fit_mask_quad(_decode(gt_rles[g]))
            )
            if quad is None or gt_poly is None:
                continue
            acc = per_class[CLASS_NAMES[int(gt_labels[g])]]
            (px, py), (gx, gy) = polygon_centroid(quad), polygon_centroid(gt_poly)
            acc["centre"].append(float(np.hypot(px - gx, py - gy)))
            acc["angle"].append(angle_difference(long_axis_angle(quad), long_axis_angle(gt_poly)))
            a, b = shapely.make_valid(shapely.Polygon(quad)), shapely.make_valid(shapely.Polygon(gt_poly))
            union = a.union(b).area
            acc["quad_iou"].append(float(a.intersection(b).area / union) if union > 0 else 0.0)
    out = {name: _summary(acc) for name, acc in per_class.items()}
    merged = {
        "n_gt": sum(a["n_gt"] for a in per_class.values()),
        "n_pred": sum(a["n_pred"] for a in per_class.values()),
    }
    for key in ("centre", "angle", "quad_iou"):
        merged[key] = [v for a in per_class.values() for v in a[key]]
    out["overall"] = _summary(merged)
    out["score_threshold"] = score_threshold
    out["iou_threshold"] = iou_threshold
    return out


def _summary(acc: dict) -> dict:
    n = len(acc["quad_iou"])
    res = {
        "n_gt": acc["n_gt"],
        "n_pred": acc["n_pred"],
        "n_matched": n,
        "precision": n / acc["n_pred"] if acc["n_pred"] else None,
        "recall": n / acc["n_gt"] if acc["n_gt"] else None,
    }
    res.update(_stats(acc["centre"], "centre_error_px"))
    res.update(_stats(acc["angle"], "angle_error_deg"))
    res.update(_stats(acc["quad_iou"], "quad_iou"))
    res["quad_iou_mean"] = float(np.mean(acc["quad_iou"])) if n else None
    return res
