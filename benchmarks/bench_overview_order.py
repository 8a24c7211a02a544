"""Serial order from the overview's magnets (``detect --serial-order overview``) against the truth
and against the order from the bead images of the same sections.

Usage::

    python benchmarks/bench_overview_order.py [--lengths 40 60 100 200] [--densities 8 16]
        [--seeds 1 2] [--sections 100] [--magnet-um 300] [--corner-noise 1.0] [--work DIR] [--json OUT]

Each wafer is simulated with :func:`sectionseg.simulation.simulate_wafer` (style ``default`` with
the tissue long side fixed to L px, so the magnet is about L px long; no damaged sections) with
``beads=BeadSettings(density=d)`` and ``overview_beads_um = magnet_um / L``: the fluorescence
overview's magnets show their own section's beads from the same simulated block as the bead images,
a magnet of ``magnet_um`` um drawn L px long. The overview order runs on the true section quads
with ``--corner-noise`` px (s.d.) of noise added to every corner (detected corners are not
exact). Per wafer: whether an order is proposed (and why not), beads per magnet, the share of true
consecutive pairs found consecutive, |Kendall tau|, wrong links, doubtful links, the precision
(share of doubtful links that are wrong) and recall (share of wrong links that are doubtful) of
the doubts, the report's estimate (confident link share, reliability band), and the same accuracy
for the bead-image order (``order_sections`` on ``beads/``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def run_wafer(
    work: Path, length: float, density: float, seed: int, n: int, magnet_um: float, corner_noise: float
) -> dict:
    from sectionseg.formats import read_sections
    from sectionseg.geometry.section import Section
    from sectionseg.io.images import read_image
    from sectionseg.serial import (
        OrderSettings,
        find_bead_images,
        order_metrics,
        order_sections,
        section_beads,
        wrong_links,
    )
    from sectionseg.serial.overview import overview_order
    from sectionseg.simulation import get_style, simulate_wafer
    from sectionseg.simulation.beads import BeadSettings

    style = get_style("default").replace(name="bench-overview", section_size=(length, length))
    side = int(max(1200, 2.4 * length * np.sqrt(n)))
    out = work / f"w_{length:g}_{density:g}_{seed}"
    pixel_um = magnet_um / length
    t0 = time.perf_counter()
    simulate_wafer(
        out,
        seed=seed,
        width=side,
        height=side,
        n_sections=n,
        style=style,
        beads=BeadSettings(density=density, damaged=0.0),
        overview_beads_um=pixel_um,
    )
    t_sim = time.perf_counter() - t0
    truth = json.loads((out / "beads" / "ground_truth.json").read_text())["serial_order"]
    rng = np.random.default_rng(seed + 1000)
    sections = [
        Section.from_arrays(
            s.tissue.polygon + rng.normal(0, corner_noise, s.tissue.polygon.shape),
            s.magnet.polygon + rng.normal(0, corner_noise, s.magnet.polygon.shape),
        )
        for s in read_sections(out / "sections.magc")
    ]
    fluo = read_image(out / "fluo.tif")
    t0 = time.perf_counter()
    ov = overview_order(fluo, sections)
    t_ov = time.perf_counter() - t0
    row = {
        "length": length,
        "density": density,
        "seed": seed,
        "n": len(sections),
        "pixel_um": pixel_um,
        "simulate_s": round(t_sim, 2),
        "overview_s": round(t_ov, 2),
        **{f"ov_{k}": v for k, v in ov.summary().items() if k != "settings"},
    }
    if ov.result is not None:
        found = ov.result.order
        m = order_metrics(found, truth)
        wrong = {frozenset(w) for w in wrong_links(found, truth)}
        flagged = {frozenset((link["from"], link["to"])) for link in ov.result.links if link["doubts"]}
        row.update(
            {
                "ov_consecutive": m["consecutive"],
                "ov_tau": m["kendall_tau"],
                "ov_wrong": len(wrong),
                "ov_flagged": len(flagged),
                "ov_flag_precision": len(wrong & flagged) / len(flagged) if flagged else None,
                "ov_flag_recall": len(wrong & flagged) / len(wrong) if wrong else None,
                "ov_right_share": 1 - len(wrong) / max(len(found) - 1, 1),
            }
        )
    files = find_bead_images(out / "beads")
    settings = OrderSettings()
    t0 = time.perf_counter()
    beads = {sid: section_beads([read_image(p) for _, p in sorted(ch.items())], settings) for sid, ch in files.items()}
    res = order_sections(beads, settings)
    m = order_metrics(res.order, truth)
    row.update(
        {
            "bead_consecutive": m["consecutive"],
            "bead_tau": m["kendall_tau"],
            "bead_wrong": m["wrong_links"],
            "bead_s": round(time.perf_counter() - t0, 2),
        }
    )
    return row


def _f(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(rows: list[dict]) -> str:
    head = (
        "| magnet px | um/px | beads per 1000 um^3 | seed | beads / magnet | proposed | consecutive right | "
        "Kendall tau | wrong links | doubtful | flag precision | flag recall | estimate (confident share, band) "
        "| bead images: consecutive, tau |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        est = (
            "-"
            if r.get("ov_confident_link_share") is None
            else f"{r['ov_confident_link_share']:.2f} {r.get('ov_reliability') or '(not proposed)'}"
        )
        lines.append(
            f"| {r['length']:g} | {r['pixel_um']:.2f} | {r['density']:g} | {r['seed']} | "
            f"{_f(r['ov_beads_per_magnet_median'], 1)} | {'yes' if r['ov_proposed'] else 'no: ' + r['ov_reason']} | "
            f"{_f(r.get('ov_consecutive'))} | {_f(r.get('ov_tau'))} | {_f(r.get('ov_wrong'))} | "
            f"{_f(r.get('ov_flagged'))} | {_f(r.get('ov_flag_precision'), 2)} | {_f(r.get('ov_flag_recall'), 2)} | "
            f"{est} | {_f(r['bead_consecutive'])}, {_f(r['bead_tau'])} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=float, nargs="+", default=[40, 60, 100, 200])
    ap.add_argument("--densities", type=float, nargs="+", default=[8, 16])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sections", type=int, default=100)
    ap.add_argument("--magnet-um", type=float, default=300.0)
    ap.add_argument("--corner-noise", type=float, default=1.0)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for length in args.lengths:
            for density in args.densities:
                for seed in args.seeds:
                    row = run_wafer(work, length, density, seed, args.sections, args.magnet_um, args.corner_noise)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
