"""Real-picture benchmark: detection on ``../shared/real/panel_b`` (a crop of a real MagC wafer, EPFL
project brief) with and without its fluorescence image, automatic scale and a given section size.

Usage::

    python benchmarks/bench_real_picture.py [--model FILE] [--out DIR] [--no-consensus]

Prints a markdown table: the whole section found and correctly paired (0/1), found with tissue and
magnet swapped, false parts (found parts that are neither true nor over an ignored part; those lying
on a dummy strip in brackets), the working scale. Overlays go to ``DIR`` (default
``work_data/bench_real_picture``): look at them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PANEL = REPO.parent / "shared" / "real" / "panel_b"
SECTION_SIZE = 185.0  # px: long side of the whole section's tissue in the picture (ground truth)


def run(model=None, out: Path | None = None, consensus: bool = True) -> list[dict]:
    from sectionseg.detection import detect_wafer
    from sectionseg.detection.settings import RepairSettings
    from sectionseg.evaluation.picture import score_picture
    from sectionseg.io.images import read_image, write_image
    from sectionseg.visualize import draw_overlay

    gray = read_image(PANEL / "gray.png")
    fluo = read_image(PANEL / "fluo.png")
    rows = []
    for with_fluo in (True, False):
        for size in (None, SECTION_SIZE):
            result = detect_wafer(
                gray,
                fluo if with_fluo else None,
                model=model,
                section_size=size,
                progress=False,
                settings=RepairSettings() if consensus else RepairSettings().without("consensus"),
            )
            found = result.sections + result.unpaired
            m = score_picture(found, PANEL / "gt")
            name = f"{'gray+fluo' if with_fluo else 'gray only'}, {'auto scale' if size is None else f'size {size:g}'}"
            rows.append({"case": name, "scale": result.scale, **m})
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                write_image(out / f"{name.replace(' ', '_').replace(',', '')}.png", draw_overlay(gray, found))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--out", default=str(REPO / "work_data" / "bench_real_picture"))
    ap.add_argument("--no-consensus", action="store_true")
    args = ap.parse_args(argv)
    if not PANEL.is_dir():
        print(f"no real picture at {PANEL}", file=sys.stderr)
        return 2
    rows = run(args.model, Path(args.out), not args.no_consensus)
    print("| case | whole section found | swapped | false parts (on dummies) | parts found | scale |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        n_parts = r["tissue"]["n_found"] + r["magnet"]["n_found"]
        print(
            f"| {r['case']} | {r['sections_correct']}/{r['n_truth']} | {r['sections_swapped']} | "
            f"{r['false_parts']} ({r['false_on_dummies']}) | {n_parts} | {r['scale']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
