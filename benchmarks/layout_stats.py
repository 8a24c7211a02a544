"""Compare random layouts (styles ``default`` and ``crowded``) with the real wafers' layouts.

Run: ``.venv/bin/python benchmarks/layout_stats.py [--seeds 3]``. Prints a markdown table of
:func:`sectionseg.simulation.layout_stats` (median [p5-p95] for distributions). Real layouts are read
from ../shared/data/real_layouts (MagC pairs at full resolution, scaled by 1/3); missing ones are
left out. Random layouts are drawn the way :func:`simulate_wafer` draws them, on a 4700 x 4700 px
image (about the real wafers' occupied extent), one per seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sectionseg.formats import read_sections
from sectionseg.simulation import get_style, layout_stats, random_layout

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_layouts"
SIZE = 4700


def style_layout(style: str, seed: int):
    rng = np.random.default_rng(seed)
    p = get_style(style).sample(rng)
    return random_layout(
        rng,
        SIZE,
        SIZE,
        density=p["density"],
        size_range=p["size_range"],
        aspect_range=p["aspect_range"],
        magnet_ratio_range=p["magnet_ratio_range"],
        trapezoid=p["taper_range"],
        dummy_probability=p["dummy_probability"],
        touching_fraction=p["touching_fraction"],
        region=p["region"],
        hole=p["hole"],
    )


def fmt(d) -> str:
    return f"{d['median']:.1f} [{d['p5']:.1f}-{d['p95']:.1f}]"


def row(name: str, s: dict) -> str:
    return (
        f"| {name} | {s['n']} | {fmt(s['tissue_long'])} | {fmt(s['tissue_short'])} | "
        f"{fmt(s['magnet_long'])} | {fmt(s['magnet_short'])} | {s['tissue_aspect']['median']:.2f} | "
        f"{fmt(s['nn_distance'])} | {s['touching_fraction']:.2f} | {s['overlap_pairs']} | {s['density']:.1f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print(
        "| layout | n | tissue long px | tissue short px | magnet long px | magnet short px | aspect | "
        "NN centre dist px | touching | overlap pairs | sections/MP (bbox) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for wafer in ("wafer1", "wafer2"):
        path = REAL / wafer / "source_sections_tissue.txt"
        if path.is_file():
            print(row(f"real {wafer}", layout_stats(read_sections(path, scale=1 / 3))))
    print(row("random `random_layout()` defaults", layout_stats(random_layout(np.random.default_rng(0), SIZE, SIZE))))
    for style in ("default", "crowded", "sparse"):
        for seed in range(args.seeds):
            print(row(f"random style {style}, seed {seed}", layout_stats(style_layout(style, seed))))


if __name__ == "__main__":
    main()
