"""Section order retrieval benchmark: simulated bead series, found order vs the truth.

Usage::

    python benchmarks/bench_order.py [--sections 500] [--seeds 1 2 3] [--sweep-sections 200]
        [--densities 1 2 4 8 16] [--noises 0.05 0.1 0.2 0.3 0.5] [--large 500] [--cli] [--work DIR] [--quick]

Every series is simulated by :func:`sectionseg.simulation.beads.simulate_bead_sections` (default
:class:`BeadSettings`: 256 x 256 px at 0.5 um/px, ~1 um beads, 50 nm sections, read noise 5 % of a
typical bead's peak, exposure x0.6-1.6, 30 % of the sections mirrored, random turns and shifts,
bleached beads and dust spots). Tables (markdown):

1. ``realistic``: ``--sections`` sections, no damage, per seed: share of the true consecutive pairs
   found consecutive, |Kendall tau|, wrong links, doubtful links, time (bead detection on the
   in-memory images + ordering; one thread for OpenCV); plus seed 1 with two bead channels, and
   (``--large N``) N sections of 1024 x 1024 px fields (~2000 beads each);
2. ``damaged``: the same with 2 % damaged sections (torn, dusty, out of focus) and 1 % lost ones:
   also whether every wrong link is flagged, and how many gaps (links over a lost section) are flagged;
3. accuracy against bead density and against noise (``--sweep-sections`` sections, seed 1): where it
   breaks;
4. ``--cli``: the ``sectionseg order`` command on a written folder of ``--sections`` sections
   (reading the TIFFs, report, pictures of the doubtful links), wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def run_series(n: int, seed: int, **changes) -> dict:
    from sectionseg.serial import OrderSettings, order_metrics, order_sections, section_beads, wrong_links
    from sectionseg.simulation.beads import BeadSettings, simulate_bead_sections

    series = simulate_bead_sections(np.random.default_rng(seed), BeadSettings(n_sections=n, **changes))
    settings = OrderSettings()
    t0 = time.perf_counter()
    beads = {sid: section_beads(images, settings) for sid, images in series.images.items()}
    t_detect = time.perf_counter() - t0
    result = order_sections(beads, settings)
    total = time.perf_counter() - t0
    metrics = order_metrics(result.order, series.serial_order)
    wrong = wrong_links(result.order, series.serial_order)
    flagged = {frozenset((link["from"], link["to"])) for link in result.links if link["doubts"]}
    cut = series.cut_index
    gaps = [
        link
        for link in result.links
        if abs(cut[link["from"]] - cut[link["to"]]) == 2
        and (cut[link["from"]] + cut[link["to"]]) // 2 in series.missing
    ]
    return {
        "n": n,
        "seed": seed,
        "changes": changes,
        **metrics,
        "wrong_unflagged": sum(frozenset(w) not in flagged for w in wrong),
        "doubtful_links": len(flagged),
        "doubtful_sections": len(result.doubtful_sections),
        "damaged": len(series.damaged),
        "lost": len(series.missing),
        "gaps": len(gaps),
        "gaps_flagged": sum("gap" in link["doubts"] for link in gaps),
        "beads_median": float(np.median([b.n_strong for b in beads.values()])),
        "compared_pairs": len(result.matches),
        "time_s": round(total, 2),
        "detect_s": round(t_detect, 2),
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
    }


def _row(r: dict, label: str) -> str:
    return (
        f"| {label} | {r['n']} | {r['beads_median']:.0f} | {100 * r['consecutive']:.2f} % | "
        f"{r['kendall_tau']:.5f} | {r['wrong_links']} | {r['doubtful_links']} | {r['wrong_unflagged']} | "
        f"{r['time_s']:.1f} s |"
    )


HEADER = (
    "| series | sections | strong beads / section | consecutive pairs right | Kendall tau | wrong links | "
    "doubtful links | wrong and not flagged | time |\n|---|---|---|---|---|---|---|---|---|"
)


HEADER_DAMAGED = HEADER.splitlines()[0] + " gaps flagged |\n" + HEADER.splitlines()[1] + "---|"


def cli_run(work: Path, n: int) -> dict:
    from sectionseg.simulation.beads import BeadSettings, simulate_bead_sections, write_bead_folder

    folder = work / f"beads_{n}"
    if not (folder / "ground_truth.json").is_file():
        series = simulate_bead_sections(np.random.default_rng(1), BeadSettings(n_sections=n, damaged=0.02))
        write_bead_folder(folder, series)
    out = work / f"order_{n}"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sectionseg.cli.main", "order", str(folder), "--out", str(out)],
        check=True,
        env={"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"},
    )
    return {"n": n, "wall_s": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", type=int, default=500)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--sweep-sections", type=int, default=200)
    p.add_argument("--densities", type=float, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--noises", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.5])
    p.add_argument("--large", type=int, default=0, help="also a series of this many 1024 x 1024 px fields")
    p.add_argument("--cli", action="store_true", help="also time the order command on a written folder")
    p.add_argument("--work", default=str(REPO / "work_data" / "bench_order"))
    p.add_argument("--quick", action="store_true", help="60 sections, one seed, short sweeps (a smoke run)")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    if args.quick:
        args.sections, args.seeds, args.sweep_sections = 60, [1], 40
        args.densities, args.noises = [2, 8], [0.05, 0.3]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = {"realistic": [], "damaged": [], "density": [], "noise": []}
    print("## realistic noise, no damage\n\n" + HEADER)
    for seed in args.seeds:
        r = run_series(args.sections, seed)
        results["realistic"].append(r)
        print(_row(r, f"seed {seed}"), flush=True)
    r = run_series(args.sections, args.seeds[0], channels=2)
    results["realistic"].append(r)
    print(_row(r, f"seed {args.seeds[0]}, 2 channels"), flush=True)
    if args.large:
        r = run_series(args.large, args.seeds[0], image_size_px=(1024, 1024))
        results["realistic"].append(r)
        print(_row(r, f"seed {args.seeds[0]}, 1024 px fields"), flush=True)
    print("\n## 2 % damaged, 1 % lost\n\n" + HEADER_DAMAGED)
    for seed in args.seeds:
        r = run_series(args.sections, seed, damaged=0.02, missing=0.01)
        results["damaged"].append(r)
        print(_row(r, f"seed {seed}") + f" {r['gaps_flagged']} / {r['gaps']} |", flush=True)
    print(f"\n## bead density (beads per 1000 um^3; {args.sweep_sections} sections, seed 1)\n\n" + HEADER)
    for d in args.densities:
        r = run_series(args.sweep_sections, 1, density=d)
        results["density"].append(r)
        print(_row(r, f"density {d:g}"), flush=True)
    print(f"\n## read noise (fraction of a typical bead's peak; {args.sweep_sections} sections, seed 1)\n\n" + HEADER)
    for v in args.noises:
        r = run_series(args.sweep_sections, 1, noise=v)
        results["noise"].append(r)
        print(_row(r, f"noise {v:g}"), flush=True)
    if args.cli:
        results["cli"] = cli_run(work, args.sections)
        print(
            f"\n`sectionseg order` on {args.sections} sections written as MagC TIFFs: {results['cli']['wall_s']} s wall"
        )
    (work / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
