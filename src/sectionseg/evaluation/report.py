"""Evaluate a model file on a dataset split: predictions, metrics, JSON report, PR plot, table."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sectionseg.errors import InputError
from sectionseg.evaluation.coco_metrics import CLASS_NAMES, as_numpy, coco_metrics, masks_to_rles
from sectionseg.evaluation.geometry_metrics import geometry_metrics
from sectionseg.io.atomic import atomic_path, write_text
from sectionseg.io.jsontext import dumps as strict_json
from sectionseg.io.outset import output_set


def evaluate_predictions(
    gts: list[dict],
    preds: list[dict],
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
    mask_threshold: float = 0.5,
) -> dict:
    """All metrics for per-image ground truth and predictions (see :mod:`.coco_metrics` for the dicts).

    Returns ``{"bbox": ..., "segm": ..., "geometry": ..., "n_images": int}``: COCO metrics use every
    prediction (ranked by score); the geometry block uses predictions with score >= ``score_threshold``.
    """
    return {
        "n_images": len(gts),
        **coco_metrics(gts, preds, mask_threshold),
        "geometry": geometry_metrics(gts, preds, score_threshold, iou_threshold, mask_threshold),
    }


@torch.no_grad()
def predict_dataset(
    model, dataset, device="cpu", mask_threshold: float = 0.5, progress: bool = True
) -> tuple[list[dict], list[dict]]:
    """Run ``model`` (eval mode) over ``dataset`` (image, target) pairs, one image at a time.

    Returns ``(gts, preds)`` with masks as COCO RLEs (compact), boxes/labels/scores as numpy. When
    the dataset can give raw sections (``dataset.load(i)``), the ground truth also carries the
    part ``polygons`` (x, y px) for the geometry metrics; a sample with an ignore mask gives ``ignore``
    (its RLE; see :func:`sectionseg.evaluation.coco_metrics.build_coco`).
    """
    model.eval()
    gts, preds = [], []
    for index in tqdm(range(len(dataset)), desc="predict", disable=not progress, leave=False):
        image, target = dataset[index]
        out = model([image.as_subclass(torch.Tensor).to(device)])[0]
        h, w = image.shape[-2:]
        gt = {
            "boxes": as_numpy(target["boxes"].as_subclass(torch.Tensor)),
            "labels": as_numpy(target["labels"]),
            "masks": masks_to_rles(target["masks"]),
            "size": (int(h), int(w)),
        }
        if "ignore" in target:  # areas of unknown content: detections there are neither right nor wrong
            gt["ignore"] = masks_to_rles(target["ignore"].as_subclass(torch.Tensor)[None])[0]
        polygons = _gt_polygons(dataset, index, len(gt["labels"]))
        if polygons is not None:
            gt["polygons"] = polygons
        gts.append(gt)
        preds.append(
            {
                "boxes": as_numpy(out["boxes"]),
                "labels": as_numpy(out["labels"]),
                "scores": as_numpy(out["scores"]),
                "masks": masks_to_rles(out["masks"], mask_threshold),
                "size": (int(h), int(w)),
            }
        )
    return gts, preds


def _gt_polygons(dataset, index: int, n_instances: int):
    """Part polygons in target order when the dataset exposes its sections, else None."""
    if not hasattr(dataset, "load"):
        return None
    try:
        from sectionseg.datasets.labels import instances
        from sectionseg.geometry.raster import polygon_mask
    except ImportError:
        return None
    rgb, sections = dataset.load(index)
    h, w = rgb.shape[:2]
    # make_target keeps instances that cover a pixel centre, in this order
    polygons = [poly for _, poly in instances(sections) if polygon_mask(poly, (h, w)).any()]
    return polygons if len(polygons) == n_instances else None


def format_table(results: dict) -> str:
    """Short plain-text table: AP50, AP, recall50 for boxes and masks, and the geometry errors."""

    def f(v, fmt="{:.3f}"):
        return "-" if v is None else fmt.format(v)

    lines = [
        f"{'class':8} {'box AP50':>8} {'box AP':>7} {'box R50':>7} {'mask AP50':>9} {'mask AP':>7} "
        f"{'mask R50':>8} {'centre px':>9} {'angle deg':>9} {'quad IoU':>8}"
    ]
    for name in list(CLASS_NAMES.values()) + ["overall"]:
        b, s, g = results["bbox"][name], results["segm"][name], results["geometry"][name]
        lines.append(
            f"{name:8} {f(b['ap50']):>8} {f(b['ap']):>7} {f(b['recall50']):>7} "
            f"{f(s['ap50']):>9} {f(s['ap']):>7} {f(s['recall50']):>8} "
            f"{f(g['centre_error_px_median'], '{:.2f}'):>9} "
            f"{f(g['angle_error_deg_median'], '{:.2f}'):>9} {f(g['quad_iou_median']):>8}"
        )
    lines.append(
        "(centre/angle: median over parts matched at mask IoU >= "
        f"{results['geometry']['iou_threshold']}, score >= {results['geometry']['score_threshold']})"
    )
    return "\n".join(lines)


def plot_pr_curves(path: str | os.PathLike, results: dict) -> None:
    """Precision-recall curves at IoU 0.5 per class, boxes and masks side by side (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    for ax, iou_type in zip(axes, ("bbox", "segm")):
        block = results[iou_type]
        recall = np.asarray(block.get("recall_thresholds", np.linspace(0, 1, 101)))
        for name in CLASS_NAMES.values():
            prec = np.asarray(block["pr50"].get(name, []), dtype=float)
            if prec.size and (prec > -1).any():
                ax.plot(recall, np.where(prec > -1, prec, np.nan), label=f"{name} (AP50 {block[name]['ap50']:.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{'boxes' if iou_type == 'bbox' else 'masks'}, IoU 0.5")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def write_report(out_dir: str | os.PathLike, results: dict, info: dict | None = None) -> str:
    """Write ``report.json``, ``pr_curve.png`` and ``summary.txt`` into ``out_dir`` as one set
    (:mod:`sectionseg.io.outset`: the three new files or the previous ones); return the table."""
    table = format_table(results)
    with output_set(out_dir, "evaluate") as stage:
        write_text(stage / "report.json", strict_json({**(info or {}), **results}, indent=1) + "\n")
        write_text(stage / "summary.txt", table + "\n")
        plot_pr_curves(stage / "pr_curve.png", results)
    return table


def evaluate_model(
    model_path,
    data_root,
    out_dir,
    split: str = "test",
    score_threshold: float = 0.5,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[dict, str]:
    """Evaluate the model file on ``split`` of the dataset folder; write the report; return (results, table)."""
    from sectionseg.datasets.torch_dataset import SectionDataset
    from sectionseg.model.checkpoint import load_model

    dataset = SectionDataset(data_root, split, transforms=None)
    if len(dataset) == 0:
        raise InputError(f"split {split!r} has no images: nothing to evaluate", Path(data_root) / "manifest.json")
    model, config, meta = load_model(model_path, device)
    gts, preds = predict_dataset(model, dataset, device, progress=progress)
    results = evaluate_predictions(gts, preds, score_threshold)
    info = {
        "model": str(model_path),
        "data": str(data_root),
        "split": split,
        "classes": meta["classes"],
        "epoch": meta.get("epoch"),
    }
    return results, write_report(out_dir, results, info)
