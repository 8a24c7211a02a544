"""Adaptation benchmark: base model vs the model fine-tuned on a few labelled sections of a new wafer.

Usage::

    python benchmarks/bench_finetune.py [--work DIR] [--styles squat huge low-contrast] [--size 3000]
        [--labels 12] [--curve-style squat] [--curve 3 6 12 24] [--epochs 10] [--synthetic 120]
        [--base-model FILE] [--threads 2] [--heads-only] [--redetect]

For every style (styles the bundled model was not trained on) a wafer is simulated with a held-out
seed into ``--work`` (default ``work_data/bench_finetune``); ``--labels`` sections, drawn at random
among those fully inside the image, are written as the hand labels (labelme JSON). Then:

- base: ``detect`` with the base model on the whole wafer;
- adapted: ``sectionseg finetune ... --detect`` (timed as a whole: data, training, validation,
  detection) and its detection.

Both detections are compared with the ground truth on the *held-out* sections only (labelled
sections removed from both sides). ``--curve`` repeats the adaptation on ``--curve-style`` with
3, 6, 12, 24 labelled sections. Results are cached as JSON in ``WORK/results`` (resumable: delete a
file to rerun it). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sectionseg.workflows.finetune import DEFAULT_EPOCHS, DEFAULT_SYNTHETIC

# held-bright: the "alien" family (sections lighter than the wafer), never trained on; gray alone the
# bundled model's section F1 is 0.22 on its 5000 px benchmark wafer and 0.67 on this 3000 px draw (0.56 for
# the previous model; BENCHMARKS.md)
STYLE_SEEDS = {"squat": 3000, "huge": 3001, "low-contrast": 3002, "held-bright": 3003, "realistic": 3004}


def pick_labels(truth, n: int, width: int, height: int, seed: int) -> list:
    """``n`` random sections with both parts, fully inside the image (at least 8 px from the border)."""
    import numpy as np

    inside = []
    for s in truth:
        if s.tissue is None or s.magnet is None:
            continue
        pts = np.concatenate([p.polygon for p in s.parts().values()])
        if pts.min() >= 8 and pts[:, 0].max() <= width - 8 and pts[:, 1].max() <= height - 8:
            inside.append(s)
    order = np.random.default_rng(seed).permutation(len(inside))[:n]
    return [inside[i] for i in sorted(order)]


def _row(metrics: dict) -> dict:
    return {
        "tissue_p": metrics["tissue"]["precision"],
        "tissue_r": metrics["tissue"]["recall"],
        "magnet_p": metrics["magnet"]["precision"],
        "magnet_r": metrics["magnet"]["recall"],
        "centre_med": metrics["tissue"]["centre_error_median"],
        "angle_med": metrics["tissue"]["angle_error_median"],
        "pairing": metrics["pairing_accuracy"],
        "section_recall": metrics["section_recall"],
        "section_f1": metrics["section_f1"],
        "swapped": metrics["swapped_fraction"],
    }


def run_case(work: Path, style: str, seed: int, size: int, n_labels: int, args) -> dict:
    """Simulate (once), base detection (once), adaptation with ``n_labels`` labels; cached.

    With ``args.redetect`` the cached models are kept and only both detections are redone (after a
    change of the detection pipeline); the adaptation time stays the one measured when training.
    """
    from sectionseg.cli.main import main
    from sectionseg.evaluation import compare_sections, held_out
    from sectionseg.formats import read_sections, write_sections
    from sectionseg.simulation import simulate_wafer

    # finetune trains every layer by default since 2026-11-30 (before: the heads); both tagged
    tag = f"{style}_{n_labels}" + ("_heads" if args.heads_only else "_all") + ("_gray" if args.gray_only else "")
    # results cached before 2026-12-01 were made with 6 epochs x 80 images (the defaults then): untagged
    tag += "" if (args.epochs, args.synthetic) == (6, 80) else f"_e{args.epochs}x{args.synthetic}"
    # results cached before 2026-12-01 painted the unknown areas over (--crowd paint): untagged
    tag += "" if args.crowd == "paint" else f"_{args.crowd}"
    tag += "" if args.seed == 0 else f"_s{args.seed}"
    cache = work / "results" / f"{tag}.json"
    old = json.loads(cache.read_text()) if cache.is_file() else None
    if old is not None and not args.redetect:
        return old
    wafer = work / f"wafer_{style}"
    if not (wafer / "simulation.json").is_file():
        simulate_wafer(wafer, seed=seed, style=style, width=size, height=size)
    truth = read_sections(wafer / "sections.labelme.json")
    labels = pick_labels(truth, n_labels, size, size, seed + n_labels)
    label_file = work / f"labels_{style}_{n_labels}.json"
    write_sections(label_file, labels, fmt="labelme", image_path="gray.tif", image_size=(size, size))
    common = ["--no-progress"] if args.gray_only else ["--fluo", str(wafer / "fluo.tif"), "--no-progress"]
    base_dir = wafer / ("detect_base_gray" if args.gray_only else "detect_base")
    t0 = time.perf_counter()
    if args.redetect or not (base_dir / "report.json").is_file():
        base_args = ["--model", args.base_model] if args.base_model else []
        assert main(["detect", str(wafer / "gray.tif"), "--out", str(base_dir), *common, *base_args]) == 0
    base_seconds = time.perf_counter() - t0
    out = work / f"finetune_{tag}"
    if old is None:
        t0 = time.perf_counter()
        cmd = [
            "finetune",
            str(wafer / "gray.tif"),
            "--labels",
            str(label_file),
            "--out",
            str(out),
            "--detect",
            "--epochs",
            str(args.epochs),
            "--synthetic",
            str(args.synthetic),
            *common,
        ]
        if args.base_model:
            cmd += ["--base-model", args.base_model]
        if args.heads_only:
            cmd.append("--heads-only")
        cmd += ["--crowd", args.crowd, "--seed", str(args.seed)]
        if (out / "run" / "last.pt").exists():
            cmd.append("--resume")
        assert main(cmd) == 0
        adapt_seconds = time.perf_counter() - t0
    else:
        adapt_seconds = old["adapt_seconds"]
        assert (
            main(
                [
                    "detect",
                    str(wafer / "gray.tif"),
                    "--out",
                    str(out / "detection"),
                    "--model",
                    str(out / "model.pt"),
                    *common,
                ]
            )
            == 0
        )
    report = json.loads((out / "finetune_report.json").read_text())
    result = {
        "style": style + (" (heads only)" if args.heads_only else "") + (" gray only" if args.gray_only else ""),
        "n_sections": len(truth),
        "n_labels": len(labels),
        "adapt_seconds": adapt_seconds,
        "base_detect_seconds": base_seconds,
        "finetune_timings": report["timings_s"],
        "section_size": report["section_size"],
        "validation_mask": report["validation_mask"],
    }
    for name, folder in (("base", base_dir), ("adapted", out / "detection")):
        found = read_sections(folder / "sections.magc")
        t_rest, f_rest = held_out(truth, found, labels)
        result[name] = _row(compare_sections(t_rest, f_rest))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=1))
    return result


def _fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def print_table(results: list[dict]) -> None:
    print(
        "| wafer style | labels | model | tissue P / R | magnet P / R | centre err px | angle err deg "
        "| pairing | section F1 | swapped | adapt time |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for name in ("base", "adapted"):
            m = r[name]
            t = f"{r['adapt_seconds'] / 60:.1f} min" if name == "adapted" else ""
            print(
                f"| {r['style']} ({r['n_sections']} sections) | {r['n_labels']} | {name} | "
                f"{_fmt(m['tissue_p'])} / {_fmt(m['tissue_r'])} | {_fmt(m['magnet_p'])} / {_fmt(m['magnet_r'])} "
                f"| {_fmt(m['centre_med'], '.2f')} | {_fmt(m['angle_med'], '.2f')} | {_fmt(m['pairing'])} "
                f"| {_fmt(m.get('section_f1'))} | {_fmt(m.get('swapped'))} | {t} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="work_data/bench_finetune")
    parser.add_argument("--styles", nargs="+", default=list(STYLE_SEEDS))
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--labels", type=int, default=12)
    parser.add_argument("--curve-style", default="squat")
    parser.add_argument("--curve", type=int, nargs="*", default=[3, 6, 12, 24])
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--synthetic", type=int, default=DEFAULT_SYNTHETIC)
    parser.add_argument("--crowd", choices=("ignore", "paint"), default="paint", help="see finetune --crowd")
    parser.add_argument("--seed", type=int, default=0, help="finetune --seed: another draw of the same recipe")
    parser.add_argument("--base-model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--heads-only", action="store_true", help="fine-tune the heads and FPN only (separate results)")
    parser.add_argument("--gray-only", action="store_true", help="no fluorescence image (separate results)")
    parser.add_argument(
        "--redetect", action="store_true", help="keep the cached models, redo both detections (after a pipeline change)"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    results = [
        run_case(work, style, STYLE_SEEDS.get(style, 3100), args.size, args.labels, args) for style in args.styles
    ]
    print_table(results)
    if args.curve:
        seed = STYLE_SEEDS.get(args.curve_style, 3100)
        curve = [run_case(work, args.curve_style, seed, args.size, n, args) for n in args.curve]
        print()
        print_table(curve)


if __name__ == "__main__":
    main()
