"""``sectionseg demo``: the README's first command, on an embedded default.

For now it simulates a crowded wafer with the default style, draws its ground truth and reads the
written annotation files back; detection joins it once a bundled model exists.
"""
from __future__ import annotations

import time
from pathlib import Path

from sectionseg.formats import read_sections
from sectionseg.io.images import read_image, write_image
from sectionseg.simulation import simulate_wafer
from sectionseg.visualize import draw_overlay


def register(sub) -> None:
    p = sub.add_parser("demo", help="simulate a wafer with the embedded defaults and draw its ground truth",
                       description="Simulate a 2000x2000 px wafer (default style), write it with its ground "
                                   "truth in every format, and draw the ground truth over it.")
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=2000, help="wafer side in px")
    p.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out)
    t0 = time.perf_counter()
    summary = simulate_wafer(out, seed=args.seed, width=args.size, height=args.size)
    t_sim = time.perf_counter() - t0
    sections = read_sections(out / "sections.labelme.json")
    write_image(out / "overlay.png", draw_overlay(read_image(out / "gray.tif"), sections,
                                                  max_side=2000))
    print(f"simulated {len(sections)} sections on a {args.size}x{args.size} px wafer in {t_sim:.1f} s")
    print(f"  style: {summary.get('style', 'default')}, seed: {args.seed}")
    for name in ("gray.tif", "fluo.tif", "rgb.tif", "sections.magc", "sections.labelme.json",
                 "sections.coco.json", "magc", "overlay.png"):
        print(f"  {out / name}")
    return 0
