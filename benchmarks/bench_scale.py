"""Scale-estimate benchmark: how far the automatic working scale is from the true one, with and
without the fluorescence image, over section sizes from about 45 to 330 px and on the real picture.

Usage::

    python benchmarks/bench_scale.py [--model FILE] [--work DIR] [--styles S ...] [--factors F ...]

Each style's wafer (2000 x 2000 px, 40 sections, simulated once into ``DIR``) is resampled by each
factor, so its sections are ``factor`` times their simulated size; the true scale is what
``--section-size`` with the ground truth's median section long side gives
(:func:`sectionseg.detection.scale.scale_from_section_size`). Prints one markdown row per style and
mode: estimated / true scale per factor (1.00 = right; the detection needs it within about
0.8-1.25), then a summary: the share of estimates within 15 % and within 25 %, and the worst ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PANEL = REPO.parent / "shared" / "real" / "panel_b"
PANEL_SECTION_SIZE = 185.0  # px, the real picture's whole section (its README, bench_real_picture.py)
DEFAULT_STYLES = ["realistic", "real-square", "real-dark-magnet", "low-contrast", "held-bright", "held-debris"]
DEFAULT_FACTORS = [0.5, 0.75, 1.0, 1.5, 2.2]


def _wafer(work: Path, style: str, seed: int):
    from sectionseg.formats import read_sections
    from sectionseg.geometry.scale import median_section_size
    from sectionseg.io.images import read_image
    from sectionseg.simulation import simulate_wafer

    folder = work / f"{style}-{seed}"
    if not (folder / "sections.labelme.json").is_file():
        simulate_wafer(folder, seed=seed, width=2000, height=2000, n_sections=40, style=style)
    sections = [s for s in read_sections(folder / "sections.labelme.json") if s.tissue and s.magnet]
    return read_image(folder / "gray.tif"), read_image(folder / "fluo.tif"), median_section_size(sections)


def _resized(image: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def estimate(gray, fluo, predictor, reference: float) -> tuple[float, float]:
    """(estimated scale, seconds): the estimate, then the polarity trial (which estimates again on a
    wafer it reads dark for light), as ``detect`` runs them."""
    from sectionseg.detection.scale import choose_polarity, estimate_scale
    from sectionseg.detection.tiling import WaferSource

    t = time.perf_counter()
    source = WaferSource(gray, fluo)
    scale, info = estimate_scale(source, predictor, reference=reference)
    _, scale, _ = choose_polarity(source, predictor, scale, info, reference=reference)
    return scale, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model file (default: the bundled model)")
    ap.add_argument("--work", default=str(REPO / "work_data" / "bench_scale"))
    ap.add_argument("--styles", nargs="*", default=DEFAULT_STYLES)
    ap.add_argument("--factors", type=float, nargs="*", default=DEFAULT_FACTORS)
    ap.add_argument("--seed", type=int, default=1100)
    args = ap.parse_args(argv)

    from sectionseg.detection.pipeline import DEFAULT_SCORE_THRESHOLD
    from sectionseg.detection.predictor import resolve_model
    from sectionseg.detection.scale import scale_from_section_size
    from sectionseg.io.images import read_image

    predictor, info = resolve_model(args.model, "cpu", DEFAULT_SCORE_THRESHOLD, "auto", 300, mask_threshold=0.5)
    reference = info["reference_size"]
    work = Path(args.work)
    ratios: dict[str, list[float]] = {"gray+fluo": [], "gray only": []}
    seconds = []
    header = " | ".join(f"x{f:g}" for f in args.factors)
    print(f"| wafer | mode | section px at x1 | {header} |")
    print("|---|---|---|" + "---|" * len(args.factors))
    for k, style in enumerate(args.styles):
        gray, fluo, size = _wafer(work, style, args.seed + k)
        for mode in ratios:
            cells = []
            for f in args.factors:
                true = scale_from_section_size(size * f, reference)
                est, sec = estimate(
                    _resized(gray, f), _resized(fluo, f) if mode == "gray+fluo" else None, predictor, reference
                )
                ratios[mode].append(est / true)
                seconds.append(sec)
                cells.append(f"{est / true:.2f}")
            print(f"| {style} | {mode} | {size:.0f} | " + " | ".join(cells) + " |", flush=True)
    if PANEL.is_dir():
        gray, fluo = read_image(PANEL / "gray.png"), read_image(PANEL / "fluo.png")
        true = scale_from_section_size(PANEL_SECTION_SIZE, reference)
        for mode in ratios:
            est, _ = estimate(gray, fluo if mode == "gray+fluo" else None, predictor, reference)
            print(f"| real picture (panel b) | {mode} | {PANEL_SECTION_SIZE:.0f} | {est / true:.2f} (x1 only) |")
    print("\n| mode | estimates | within 15 % | within 25 % | worst ratio |\n|---|---|---|---|---|")
    for mode, r in ratios.items():
        a = np.abs(np.log(np.asarray(r)))
        worst = r[int(np.argmax(a))]
        print(
            f"| {mode} | {len(r)} | {np.mean(a <= np.log(1.15)):.0%} | {np.mean(a <= np.log(1.25)):.0%} | {worst:.2f} |"
        )
    print(f"\nmedian time per estimate: {np.median(seconds):.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
