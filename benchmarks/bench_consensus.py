"""Which half is the tissue: how often each consensus feature has the sign the wafer-level consensus
expects, measured on the ground truth of simulated wafers of every style.

Usage::

    python benchmarks/bench_consensus.py [--work DIR] [--styles S ...] [--size PX] [--sections N]

For each style one wafer (``--size`` px square, ``--sections`` sections, simulated once into ``DIR``)
is read as detection reads it (:class:`sectionseg.detection.tiling.WaferSource`), and every feature
of :func:`sectionseg.detection.consensus.part_features`, and the ``dark_blobs`` of
:func:`~sectionseg.detection.consensus.blob_level`, is measured on the tissue and the magnet of each
ground-truth section. Prints one markdown row per style: for each feature the share of sections
whose (tissue - magnet) difference is positive / negative. A prior feature
(:data:`sectionseg.detection.consensus.PRIORS`) is safe on a style when the share with its expected
sign stays well above ``consensus_flip_agreement`` (0.35): the consensus would turn a correctly
labelled wafer round otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_STYLES = [
    "default",
    "crowded",
    "low-contrast",
    "realistic",
    "real-square",
    "real-dark-magnet",
    "held-bright",
    "held-debris",
    "held-mosaic-jpeg",
    "squat",
    "huge",
]


ALL = ("gray_level", "dark_structure", "specks", "fluo_level", "dark_blobs")


def feature_signs(folder: Path) -> tuple[int, dict[str, tuple[float, float]]]:
    """(sections measured, {feature: (share positive, share negative)}) of one simulated wafer."""
    from sectionseg.detection.consensus import blob_level, part_features
    from sectionseg.detection.tiling import WaferSource
    from sectionseg.formats import read_sections
    from sectionseg.io.images import read_image

    source = WaferSource(read_image(folder / "gray.tif"), read_image(folder / "fluo.tif"))
    rows = []
    for s in read_sections(folder / "sections.labelme.json"):
        if s.tissue is None or s.magnet is None:
            continue
        ft, fm = part_features(source, s.tissue.polygon), part_features(source, s.magnet.polygon)
        bt, bm = blob_level(source, s.tissue.polygon), blob_level(source, s.magnet.polygon)
        if ft is not None and fm is not None and bt is not None and bm is not None:
            rows.append([ft[k] - fm[k] for k in ALL[:-1]] + [bt - bm])
    d = np.asarray(rows).reshape(-1, len(ALL))
    return len(d), {k: (float(np.mean(d[:, i] > 0)), float(np.mean(d[:, i] < 0))) for i, k in enumerate(ALL)}


def main() -> None:
    from sectionseg.detection.consensus import PRIORS
    from sectionseg.simulation import simulate_wafer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("work_data/bench_consensus"))
    ap.add_argument("--styles", nargs="+", default=DEFAULT_STYLES)
    ap.add_argument("--size", type=int, default=2500)
    ap.add_argument("--sections", type=int, default=120)
    ap.add_argument("--seed", type=int, default=2100)
    args = ap.parse_args()
    names = [f"{k} (prior {'+' if PRIORS[k] > 0 else '-'})" if k in PRIORS else k for k in ALL]
    print("| style | sections | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(ALL))
    for i, style in enumerate(args.styles):
        folder = args.work / f"{style}-{args.seed + i}"
        if not (folder / "sections.labelme.json").is_file():
            simulate_wafer(
                folder, seed=args.seed + i, width=args.size, height=args.size, n_sections=args.sections, style=style
            )
        n, signs = feature_signs(folder)
        cells = [f"{signs[k][0]:.2f} / {signs[k][1]:.2f}" for k in ALL]
        print(f"| {style} | {n} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
