"""``sectionseg demo``: the README's first command, on an embedded default.

Simulates a wafer (default style, 2000 x 2000 px, seed 0), detects its sections with the bundled
model, compares them with the simulator's ground truth and prints a table (precision, recall,
centre and angle errors, time) and the output paths.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from sectionseg.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("demo", help="simulate a wafer, detect its sections with the bundled model, compare "
                                    "with the ground truth",
                       description="Simulate a 2000x2000 px wafer (default style) with its ground truth, "
                                   "detect the sections with the bundled model (folder OUT/detection) and "
                                   "print precision, recall and geometry errors against the ground truth.")
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=2000, help="wafer side in px")
    p.add_argument("--model", help=argparse.SUPPRESS)  # another model file (tests, development)
    p.set_defaults(func=run, check=check_args)


def check_args(args) -> None:
    """The model (bundled, or the hidden --model), memory and the output folder, before simulating."""
    from sectionseg.cli._checks import check_memory, check_model_file, check_output_folder
    from sectionseg.simulation.wafer import memory_needed

    check_model_file(args.model)
    check_memory(memory_needed(args.size, args.size), f"simulating a {args.size} px wafer")
    check_output_folder(args.out)


def run(args) -> int:
    from sectionseg.batch.wafer import detect_files
    from sectionseg.evaluation import compare_sections, format_comparison
    from sectionseg.formats import read_sections
    from sectionseg.model import default_model_path
    from sectionseg.simulation import simulate_wafer

    model = Path(args.model) if args.model else default_model_path()
    if not model.is_file():  # say so before simulating anything
        raise InputError("the bundled model is missing from this installation (the demo needs it)", model)
    out = Path(args.out)
    t0 = time.perf_counter()
    summary = simulate_wafer(out, seed=args.seed, width=args.size, height=args.size)
    t_sim = time.perf_counter() - t0
    print(f"simulated {summary['n_sections']} sections on a {args.size}x{args.size} px wafer "
          f"(style {summary['style']}, seed {args.seed}) in {t_sim:.1f} s")
    t0 = time.perf_counter()
    result, paths, _ = detect_files(out / "gray.tif", out / "fluo.tif", out / "detection", model=model,
                                    progress=False)
    t_detect = time.perf_counter() - t0
    truth = read_sections(out / "sections.labelme.json")
    metrics = compare_sections(truth, result.sections + result.unpaired)
    print(f"detected {len(result.sections)} sections and {len(result.unpaired)} unpaired parts "
          f"(scale {result.scale:.3g}):")
    print(format_comparison(metrics, t_detect))
    print("ground truth:")
    for name in ("gray.tif", "fluo.tif", "sections.labelme.json", "sections.magc"):
        print(f"  {out / name}")
    print("detection:")
    for name, path in sorted(paths.items()):
        print(f"  {name}: {path}")
    return 0
