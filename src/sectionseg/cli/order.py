"""``sectionseg order``: the serial order of the sections from their fluorescent-bead images."""
from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    from sectionseg.serial.report import PICTURES
    from sectionseg.serial.settings import COSTS, OrderSettings

    d = OrderSettings()
    p = subparsers.add_parser(
        "order", help="serial order of the sections from bead images (MagC section order retrieval)",
        description="Find the serial (cutting) order of the sections from images of their fluorescent beads: "
                    "MagC's folder layout (section_NNNN/section_NNNN_channel_CCC_tileId_00-00-mag.tif, one or "
                    "two channels) or a plain folder of one image per section. Writes OUT/serial_order.txt "
                    "(section ids, one a line), OUT/order_report.json (links, costs, doubtful links), "
                    "distance matrix and pictures.")
    p.add_argument("beads", metavar="BEADS_DIR", help="folder of bead images")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--sections", metavar="DETECTION",
                   help="detection folder (its sections.magc) or .magc file: its serial_order is replaced "
                        "by the found one, everything else kept; its sections must be the bead folder's ids")
    p.add_argument("--first", type=int, help="section id to start the order from (default: the path end "
                                               "with the smaller id; beads cannot tell the cutting direction)")
    p.add_argument("--pictures", choices=PICTURES, default="doubtful",
                   help="which links get a side-by-side picture in OUT/links (default: doubtful)")
    p.add_argument("--bead-sigma", type=float, default=d.bead_sigma_px,
                   help=f"Gaussian sigma of a bead spot, px (default {d.bead_sigma_px})")
    p.add_argument("--threshold", type=float, default=d.threshold,
                   help=f"bead detection level, in noise s.d. (default {d.threshold})")
    p.add_argument("--candidates", type=int, default=d.candidates,
                   help=f"partners aligned per section, picked by shared bead constellations (default {d.candidates})")
    p.add_argument("--cost", choices=COSTS, default=d.cost,
                   help="flux: brightness-weighted share of unmatched bead signal; count: share of unmatched beads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sectionseg.cli._checks import check_output_folder
    from sectionseg.errors import InputError
    from sectionseg.io.images import read_image
    from sectionseg.serial import find_bead_images, order_sections, section_beads
    from sectionseg.serial.magc import check_ids, magc_path, set_serial_order
    from sectionseg.serial.report import write_order_outputs
    from sectionseg.serial.settings import OrderSettings

    out = check_output_folder(args.out)
    settings = OrderSettings(bead_sigma_px=args.bead_sigma, threshold=args.threshold,
                             candidates=args.candidates, cost=args.cost).checked()
    files = find_bead_images(args.beads)
    if len(files) < 2:
        raise InputError(f"{len(files)} section with bead images; an order needs at least 2", args.beads)
    if args.sections is not None:
        check_ids(args.sections, files)

    def load(section_id: int):
        images = [read_image(path) for _, path in sorted(files[section_id].items())]
        if len({im.shape for im in images}) > 1:
            raise InputError(f"section {section_id}: its channel images differ in size",
                             next(iter(files[section_id].values())).parent)
        return images

    beads = {}
    for sid in files:
        beads[sid] = section_beads(load(sid), settings)
        if len(beads[sid]) == 0:
            log.warning("%s: no beads found", next(iter(files[sid].values())))
    result = order_sections(beads, settings, first=args.first)
    if not any(m.ok for m in result.matches.values()):
        strong = sorted(b.n_strong for b in beads.values())
        raise InputError(f"no two sections could be aligned (median {strong[len(strong) // 2]} beads found per "
                         f"section): are these bead images? try --bead-sigma or --threshold", args.beads)
    extra = {"beads_dir": str(args.beads), "channels": sorted(next(iter(files.values())))}
    written = None
    if args.sections is not None:
        extra["magc_updated"] = str(magc_path(args.sections))
    write_order_outputs(out, result, settings=settings, load_images=load, pictures=args.pictures, extra=extra)
    if args.sections is not None:
        written = set_serial_order(args.sections, result.order)
    n_doubt = len(result.doubtful)
    print(f"ordered {len(result.order)} sections: {n_doubt} doubtful link{'s' * (n_doubt != 1)} "
          f"(see {out / 'order_report.json'}) -> {out / 'serial_order.txt'}"
          + (f"; serial_order written into {written}" if written else ""))
    return 0
