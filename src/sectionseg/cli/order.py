"""``sectionseg order``: the serial order of the sections from their fluorescent-bead images
(the arguments of :func:`sectionseg.workflows.order_bead_folder`)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from sectionseg.serial.report import PICTURES
    from sectionseg.serial.settings import COSTS, OrderSettings

    d = OrderSettings()
    p = subparsers.add_parser(
        "order",
        help="serial order of the sections from bead images (MagC section order retrieval)",
        description="Find the serial (cutting) order of the sections from images of their fluorescent beads: "
        "MagC's folder layout (section_NNNN/section_NNNN_channel_CCC_tileId_00-00-mag.tif, one or "
        "two channels) or a plain folder of one image per section. Writes OUT/serial_order.txt "
        "(section ids, one a line), OUT/order_report.json (links, costs, doubtful links), "
        "distance matrix and pictures.",
    )
    p.add_argument("beads", metavar="BEADS_DIR", help="folder of bead images")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument(
        "--sections",
        metavar="DETECTION",
        help="detection folder (its sections.magc) or .magc file: its serial_order is replaced "
        "by the found one, everything else kept; its sections must be the bead folder's ids",
    )
    p.add_argument(
        "--first",
        type=int,
        help="section id to start the order from (default: the path end "
        "with the smaller id; beads cannot tell the cutting direction)",
    )
    p.add_argument(
        "--pictures",
        choices=PICTURES,
        default="doubtful",
        help="which links get a side-by-side picture in OUT/links (default: doubtful)",
    )
    p.add_argument(
        "--bead-sigma",
        type=float,
        default=d.bead_sigma_px,
        help=f"Gaussian sigma of a bead spot, px (default {d.bead_sigma_px})",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=d.threshold,
        help=f"bead detection level, in noise s.d. (default {d.threshold})",
    )
    p.add_argument(
        "--candidates",
        type=int,
        default=d.candidates,
        help=f"partners aligned per section, picked by shared bead constellations (default {d.candidates})",
    )
    p.add_argument(
        "--cost",
        choices=COSTS,
        default=d.cost,
        help="flux: brightness-weighted share of unmatched bead signal; count: share of unmatched beads",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sectionseg.cli._checks import check_output_folder
    from sectionseg.serial.settings import OrderSettings
    from sectionseg.workflows.order import order_bead_folder

    out = check_output_folder(args.out)
    settings = OrderSettings(
        bead_sigma_px=args.bead_sigma, threshold=args.threshold, candidates=args.candidates, cost=args.cost
    ).checked()
    result, written = order_bead_folder(
        args.beads, out, settings=settings, sections=args.sections, first=args.first, pictures=args.pictures
    )
    n_doubt = len(result.doubtful)
    print(
        f"ordered {len(result.order)} sections: {n_doubt} doubtful link{'s' * (n_doubt != 1)} "
        f"(see {out / 'order_report.json'}) -> {out / 'serial_order.txt'}"
        + (f"; serial_order written into {written}" if written else "")
    )
    return 0
