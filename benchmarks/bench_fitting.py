"""Quad fitting accuracy on simulated wafers, with Mask R-CNN-like masks (no model needed).

Usage::

    python benchmarks/bench_fitting.py [--styles default low-contrast crowded] [--seed 1000]
        [--size 1500] [--sections 60] [--grow 3] [--shift 1.5]

For every ground-truth tissue and magnet part of a simulated wafer, a model-like mask is made: the
part's exact mask is resampled to a 28x28 grid over its box (as Mask R-CNN's mask head), pasted back
bilinearly and thresholded at 0.5, then dilated by ``--grow`` px (masks come out too large) and
shifted by a random vector of length ``--shift`` px (and they are not centred either). The
quad is fitted from the mask alone (``refine=False``) and refined against the simulated gray image;
the table gives median / 95th percentile centre error (px), long-axis angle error (degrees) and
median polygon IoU against the ground truth.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import shapely

from sectionseg.formats import read_sections
from sectionseg.geometry.fitting import fit_quadrilateral
from sectionseg.geometry.polygons import angle_difference, long_axis_angle, polygon_centroid
from sectionseg.geometry.raster import polygon_mask
from sectionseg.io.images import read_image
from sectionseg.simulation import simulate_wafer

MARGIN = 12


def model_like_mask(polygon: np.ndarray, shape, origin, grow: int) -> np.ndarray:
    """Exact mask -> 28x28 over its box -> bilinear paste -> > 0.5 -> dilated by ``grow`` px."""
    exact = polygon_mask(polygon, shape, offset=origin).astype(np.float32)
    ys, xs = np.nonzero(exact)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    coarse = cv2.resize(exact[y0:y1, x0:x1], (28, 28), interpolation=cv2.INTER_AREA)
    pasted = np.zeros(shape, np.float32)
    pasted[y0:y1, x0:x1] = cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    mask = (pasted > 0.5).astype(np.uint8)
    if grow > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
    return mask > 0


def _errors(quad, truth):
    c = float(np.hypot(*np.subtract(polygon_centroid(quad), polygon_centroid(truth))))
    a = angle_difference(long_axis_angle(quad), long_axis_angle(truth))
    pa, pb = shapely.Polygon(quad), shapely.Polygon(truth)
    return c, a, pa.intersection(pb).area / pa.union(pb).area


def run(style: str, seed: int, size: int, sections: int, grow: int, shift: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        simulate_wafer(tmp, seed=seed, width=size, height=size, n_sections=sections, style=style)
        gray = np.asarray(read_image(Path(tmp) / "gray.tif")).astype(np.float32)
        truth = read_sections(Path(tmp) / "sections.labelme.json")
    h, w = gray.shape
    rows = {"mask": [], "refined": []}
    rng = np.random.default_rng(seed)
    seconds = 0.0
    for s in truth:
        for part in (s.tissue, s.magnet):
            poly = part.polygon
            x0, y0 = np.maximum(np.floor(poly.min(axis=0)).astype(int) - MARGIN, 0)
            x1, y1 = np.minimum(np.ceil(poly.max(axis=0)).astype(int) + MARGIN, [w, h])
            phi = rng.uniform(0, 2 * np.pi)
            moved = poly + shift * np.array([np.cos(phi), np.sin(phi)])
            mask = model_like_mask(moved, (y1 - y0, x1 - x0), (x0, y0), grow)
            rows["mask"].append(_errors(fit_quadrilateral(mask, (x0, y0), refine=False), poly))
            t = time.perf_counter()
            quad = fit_quadrilateral(mask, (x0, y0), gray[y0:y1, x0:x1])
            seconds += time.perf_counter() - t
            rows["refined"].append(_errors(quad, poly))
    out = {}
    for key, vals in rows.items():
        v = np.array(vals)
        out[key] = (
            np.median(v[:, 0]),
            np.percentile(v[:, 0], 95),
            np.median(v[:, 1]),
            np.percentile(v[:, 1], 95),
            np.median(v[:, 2]),
        )
    out["ms_per_part"] = 1000 * seconds / max(1, len(rows["refined"]))
    out["n"] = len(rows["refined"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--styles", nargs="+", default=["default", "low-contrast", "crowded"])
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--size", type=int, default=1500)
    ap.add_argument("--sections", type=int, default=60)
    ap.add_argument("--grow", type=int, default=3)
    ap.add_argument("--shift", type=float, default=1.5)
    args = ap.parse_args()
    print(
        "| style | fit | parts | centre px median | centre px p95 | angle deg median | angle deg p95 "
        "| IoU median | ms/part |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for style in args.styles:
        r = run(style, args.seed, args.size, args.sections, args.grow, args.shift)
        for key in ("mask", "refined"):
            c, c95, a, a95, iou = r[key]
            ms = f"{r['ms_per_part']:.1f}" if key == "refined" else ""
            print(f"| {style} | {key} | {r['n']} | {c:.2f} | {c95:.2f} | {a:.2f} | {a95:.2f} | {iou:.3f} | {ms} |")


if __name__ == "__main__":
    main()
