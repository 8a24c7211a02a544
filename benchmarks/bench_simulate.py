"""Time the rendering of a 5000 x 5000 px wafer with 500 sections (default style, 8 bit).

Run: ``.venv/bin/python benchmarks/bench_simulate.py [--size 5000] [--sections 500] [--repeat 3]``.
Prints the timings and a markdown table row ready to append to a results table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import cv2
import numpy as np

from sectionseg.simulation import get_style, random_layout, render_wafer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--sections", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (1 = one core)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(0)
    params = get_style("default").sample(rng)
    params["bit_depth"] = 8
    t0 = time.perf_counter()
    sections = random_layout(
        rng, args.size, args.size, n_sections=args.sections, size_range=params["size_range"], region="full"
    )
    layout_s = time.perf_counter() - t0
    times = []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        render_wafer(sections, args.size, args.size, params, np.random.default_rng(i))
        times.append(time.perf_counter() - t0)
    best, med = min(times), float(np.median(times))
    print(f"layout: {len(sections)} sections in {layout_s:.2f} s")
    print(
        f"render {args.size}x{args.size}, {len(sections)} sections: best {best:.2f} s, median {med:.2f} s "
        f"({args.repeat} runs, {args.threads} OpenCV thread(s))"
    )
    print("| benchmark | size | sections | layout s | render s (best / median) | cpu |")
    print("|---|---|---|---|---|---|")
    print(
        f"| render_wafer | {args.size}x{args.size} | {len(sections)} | {layout_s:.2f} | {best:.2f} / {med:.2f} "
        f"| {platform.processor() or platform.machine()}, {os.cpu_count()} cores |"
    )


if __name__ == "__main__":
    main()
