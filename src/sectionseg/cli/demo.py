"""``sectionseg demo``: the README's first command, on an embedded default.

Simulates a wafer (default style, 2000 x 2000 px, seed 0), detects its sections with the bundled
model, compares them with the simulator's ground truth (:func:`sectionseg.workflows.run_demo`) and
prints a table (precision, recall, centre and angle errors, time) and the output paths.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate a wafer, detect its sections with the bundled model, compare with the ground truth",
        description="Simulate a 2000x2000 px wafer (default style) with its ground truth, "
        "detect the sections with the bundled model (folder OUT/detection) and "
        "print precision, recall and geometry errors against the ground truth.",
    )
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
    from sectionseg.evaluation import format_comparison
    from sectionseg.workflows.demo import run_demo

    out = Path(args.out)

    def simulated(summary, seconds):
        print(
            f"simulated {summary['n_sections']} sections on a {args.size}x{args.size} px wafer "
            f"(style {summary['style']}, seed {args.seed}) in {seconds:.1f} s"
        )

    demo = run_demo(out, seed=args.seed, size=args.size, model=args.model, on_simulated=simulated)
    result = demo.detection
    print(
        f"detected {len(result.sections)} sections and {len(result.unpaired)} unpaired parts "
        f"(scale {result.scale:.3g}):"
    )
    print(format_comparison(demo.metrics, demo.detect_seconds))
    print("ground truth:")
    for name in ("gray.tif", "fluo.tif", "sections.labelme.json", "sections.magc"):
        print(f"  {out / name}")
    print("detection:")
    for name, path in sorted(demo.outputs.items()):
        print(f"  {name}: {path}")
    return 0
