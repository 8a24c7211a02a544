"""Evaluation metrics on plain prediction lists (no model) and the evaluate CLI end to end."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from sectionseg.evaluation import (
    evaluate_predictions,
    format_table,
    geometry_metrics,
    masks_to_rles,
    match_parts,
)
from sectionseg.geometry.fitting import fit_mask_quad
from sectionseg.geometry.polygons import long_axis_angle
from sectionseg.geometry.raster import polygon_mask

H = W = 128


def _part(cx, cy, w, h, angle):
    return cv2.boxPoints(((cx, cy), (w, h), angle)).astype(np.float64)


def _instance_dict(polys, labels):
    masks = np.stack([polygon_mask(p, (H, W)).astype(np.uint8) for p in polys])
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return {"boxes": np.array(boxes, dtype=float), "labels": np.array(labels), "masks": masks, "polygons": polys}


def _ground_truth(seed=0, n_images=3):
    rng = np.random.default_rng(seed)
    gts = []
    for _ in range(n_images):
        polys, labels = [], []
        for k, (cx, cy) in enumerate([(32, 32), (96, 32), (32, 96), (96, 96)]):
            polys.append(_part(cx + rng.uniform(-4, 4), cy + rng.uniform(-4, 4), 40, 14, rng.uniform(0, 180)))
            labels.append(1 + k % 2)
        gts.append(_instance_dict(polys, labels))
    return gts


def _perfect(gts):
    return [
        {
            "boxes": g["boxes"].copy(),
            "labels": g["labels"].copy(),
            "masks": g["masks"].copy(),
            "scores": np.linspace(0.95, 0.6, len(g["labels"])),
        }
        for g in gts
    ]


def _shifted(gts, dx):
    out = []
    for g in gts:
        polys = [p + [dx, 0.0] for p in g["polygons"]]
        d = _instance_dict(polys, g["labels"])
        out.append({k: d[k] for k in ("boxes", "labels", "masks")} | {"scores": np.full(len(polys), 0.9)})
    return out


def test_perfect_predictions_give_ap_one_for_boxes_masks_and_both_classes():
    gts = _ground_truth()
    res = evaluate_predictions(gts, _perfect(gts))
    for iou_type in ("bbox", "segm"):
        for name in ("tissue", "magnet", "overall"):
            assert res[iou_type][name]["ap50"] == pytest.approx(1.0)
            assert res[iou_type][name]["ap"] == pytest.approx(1.0)
            assert res[iou_type][name]["recall50"] == pytest.approx(1.0)
    geo = res["geometry"]["overall"]
    assert geo["n_matched"] == geo["n_gt"] == 12
    assert geo["precision"] == geo["recall"] == 1.0
    assert geo["centre_error_px_p95"] < 0.6  # pixel quantisation only
    assert geo["angle_error_deg_p95"] < 3.0
    assert geo["quad_iou_median"] > 0.95
    assert "tissue" in format_table(res)


def test_shifted_predictions_score_lower_and_report_the_shift():
    gts = _ground_truth()
    res = evaluate_predictions(gts, _shifted(gts, 3.0))
    for iou_type in ("bbox", "segm"):
        assert res[iou_type]["overall"]["ap"] < 0.9  # strict IoUs fail
        assert res[iou_type]["overall"]["ap50"] <= 1.0
    assert res["segm"]["overall"]["ap"] < res["bbox"]["overall"]["ap"] + 0.2
    geo = res["geometry"]["overall"]
    if geo["n_matched"]:
        assert geo["centre_error_px_median"] == pytest.approx(3.0, abs=0.6)
    far = evaluate_predictions(gts, _shifted(gts, 30.0))
    assert far["segm"]["overall"]["ap50"] == pytest.approx(0.0)
    assert far["geometry"]["overall"]["n_matched"] == 0


def test_wrong_class_and_missing_predictions():
    gts = _ground_truth(n_images=1)
    preds = _perfect(gts)
    preds[0]["labels"] = 3 - preds[0]["labels"]  # swap tissue <-> magnet
    res = evaluate_predictions(gts, preds)
    assert res["segm"]["overall"]["ap50"] == pytest.approx(0.0)
    empty = [
        {
            "boxes": np.zeros((0, 4)),
            "labels": np.zeros(0, int),
            "masks": np.zeros((0, H, W), np.uint8),
            "scores": np.zeros(0),
        }
    ]
    res = evaluate_predictions(gts, empty)
    assert res["bbox"]["tissue"]["ap"] == 0.0 and res["geometry"]["overall"]["recall"] == 0.0


def test_detections_inside_an_ignore_area_are_neither_hits_nor_false_positives():
    gts = _ground_truth(n_images=1)
    preds = _perfect(gts)
    preds[0]["scores"] = np.array([0.6, 0.7, 0.9, 0.95])  # the unlabelled ones score highest
    # the ground truth forgets the two lower parts (an unlabelled section): the model still finds them
    keep = np.array([True, True, False, False])
    gt = {k: (v[keep] if isinstance(v, np.ndarray) else [p for p, f in zip(v, keep) if f]) for k, v in gts[0].items()}
    assert evaluate_predictions([gt], preds)["segm"]["overall"]["ap50"] < 0.9  # counted as false positives
    ignore = np.zeros((H, W), np.uint8)
    ignore[H // 2 + 8 :, :] = 1  # the lower half, where they lie
    res = evaluate_predictions([gt | {"ignore": masks_to_rles(ignore[None])[0]}], preds)
    for name in ("tissue", "magnet"):
        assert res["segm"][name]["ap50"] == pytest.approx(1.0)
        assert res["segm"][name]["n_gt"] == 1
    assert evaluate_predictions([gt], preds)["geometry"]["overall"]["precision"] == pytest.approx(0.5)
    assert res["geometry"]["overall"]["precision"] == pytest.approx(1.0)  # nor do the part counts


def test_class_without_ground_truth_is_none_not_zero():
    gts = _ground_truth(n_images=1)
    keep = gts[0]["labels"] == 1
    gt = {k: (v[keep] if isinstance(v, np.ndarray) else [p for p, f in zip(v, keep) if f]) for k, v in gts[0].items()}
    res = evaluate_predictions([gt], _perfect([gt]))
    assert res["segm"]["magnet"]["ap"] is None
    assert res["segm"]["tissue"]["ap"] == pytest.approx(1.0)


def test_score_threshold_limits_geometry_matches():
    gts = _ground_truth(n_images=1)
    preds = _perfect(gts)
    preds[0]["scores"] = np.array([0.9, 0.2, 0.9, 0.2])
    geo = geometry_metrics(gts, preds, score_threshold=0.5)
    assert geo["overall"]["n_matched"] == 2 and geo["overall"]["recall"] == 0.5


def test_quad_fit_recovers_centre_angle_and_shape():
    poly = _part(60.0, 64.0, 50, 16, 30.0)
    quad = fit_mask_quad(polygon_mask(poly, (H, W)))
    assert np.allclose(quad.mean(axis=0), poly.mean(axis=0), atol=0.3)
    diff = abs(long_axis_angle(quad) - long_axis_angle(poly)) % 180
    assert min(diff, 180 - diff) < 1.5
    assert fit_mask_quad(np.zeros((8, 8), np.uint8)) is None


def test_matching_is_one_to_one_by_class():
    gts = _ground_truth(n_images=1)[0]
    rles = masks_to_rles(gts["masks"])
    dup = rles + rles[:1]
    labels = np.concatenate([gts["labels"], gts["labels"][:1]])
    matches = match_parts(rles, gts["labels"], dup, labels)
    assert len(matches) == 4
    assert sorted(g for g, _, _ in matches) == [0, 1, 2, 3]
    assert all(math.isclose(iou, 1.0) for _, _, iou in matches)


def test_probability_masks_are_thresholded():
    gts = _ground_truth(n_images=1)
    preds = _perfect(gts)
    probs = preds[0]["masks"][:, None].astype(np.float32) * 0.8 + 0.1  # 0.9 inside, 0.1 outside
    preds[0]["masks"] = probs
    res = evaluate_predictions(gts, preds)
    assert res["segm"]["overall"]["ap"] == pytest.approx(1.0)


def _write_dataset(root, n_per_split=2):
    """A tiny dataset folder: PNG images with drawn sections and labelme annotations."""
    formats = pytest.importorskip("sectionseg.formats")
    from PIL import Image

    from sectionseg.geometry.raster import fill_polygon
    from sectionseg.geometry.section import Section

    rng = np.random.default_rng(1)
    splits = {}
    for split in ("train", "val", "test"):
        items = []
        for i in range(n_per_split):
            img = np.full((H, W, 3), 40, np.uint8)
            sections = []
            for cx, cy in [(40, 40), (88, 88)]:
                ang = rng.uniform(0, 180)
                c, s = math.cos(math.radians(ang)), math.sin(math.radians(ang))
                rot = np.array([[c, -s], [s, c]])
                tissue = np.array([[-20, -7], [20, -7], [20, 7], [-20, 7]]) @ rot.T + [cx, cy]
                magnet = np.array([[-20, 7], [20, 7], [20, 13], [-20, 13]]) @ rot.T + [cx, cy]
                fill_polygon(img, tissue, (200, 200, 60))
                fill_polygon(img, magnet, (90, 90, 220))
                sections.append(Section.from_arrays(tissue, magnet))
            stem = f"{split}{i}"
            (root / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / "images" / f"{stem}.png")
            formats.write_sections(root / "annotations" / f"{stem}.json", sections, fmt="labelme", image_size=(W, H))
            items.append({"image": f"images/{stem}.png", "annotations": f"annotations/{stem}.json", "source": "test"})
        splits[split] = items
    (root / "manifest.json").write_text(
        json.dumps({"format": "sectionseg-dataset", "version": 1, "classes": ["tissue", "magnet"], "splits": splits})
    )
    return root


def test_evaluate_cli_end_to_end(tmp_path, capsys):
    pytest.importorskip("sectionseg.datasets.torch_dataset")
    from sectionseg.cli.main import main
    from sectionseg.model import build_model, load_config, save_model

    data = _write_dataset(tmp_path / "data")
    cfg = load_config("tiny")
    cfg.model.box_score_thresh = 0.0
    save_model(tmp_path / "m.pt", build_model(cfg.model), cfg)
    out = tmp_path / "report"
    code = main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "m.pt"),
            "--data",
            str(data),
            "--split",
            "test",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "test" and report["n_images"] == 2
    assert report["bbox"]["tissue"]["n_gt"] == 4 and report["segm"]["magnet"]["n_gt"] == 4
    assert 0.0 <= report["segm"]["overall"]["ap50"] <= 1.0  # untrained model: low but defined
    assert (out / "pr_curve.png").stat().st_size > 1000
    assert "overall" in capsys.readouterr().out
    code = main(["evaluate", "--model", str(tmp_path / "missing.pt"), "--data", str(data), "--out", str(out)])
    assert code == 2
