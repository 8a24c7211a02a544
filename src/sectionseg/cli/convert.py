"""``sectionseg convert IN OUT``: convert section annotations between formats.

Formats: ``magc-pair`` (folder with source_sections_tissue.txt + source_sections_mag.txt),
``magc`` (.magc INI, MagFinder or SBEMimage dialect), ``labelme`` (.json), ``coco`` (.json).
"""
from __future__ import annotations

from pathlib import Path

from sectionseg.formats import (DIALECTS, FORMATS, check_format, guess_format, read_magc,
                                read_sections, write_sections)
from sectionseg.formats.common import check_scale


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert section annotations between MagC pair, .magc, labelme and COCO",
        description="Convert section annotations. Formats are told from the names: a folder or a "
                    "name without extension is a MagC pair (source_sections_tissue.txt + "
                    "source_sections_mag.txt), .magc is the MagFinder/SBEMimage INI file, .json is "
                    "labelme on output (unless --to coco or *.coco.json) and sniffed on input.")
    p.add_argument("input", metavar="IN", help="annotation file or MagC-pair folder to read")
    p.add_argument("output", metavar="OUT", help="file or folder to write")
    p.add_argument("--from", dest="from_fmt", choices=FORMATS, help="input format (default: guessed)")
    p.add_argument("--to", dest="to_fmt", choices=FORMATS, help="output format (default: guessed)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every coordinate on read, e.g. 0.3333333 for full-resolution "
                        "MagC ground truth on images downsized by 3 (default: 1)")
    p.add_argument("--magc-dialect", choices=DIALECTS, default=None,
                   help="dialect of a .magc output (default: that of a .magc input, else magfinder)")
    p.add_argument("--image-size", nargs=2, type=int, metavar=("W", "H"),
                   help="image width and height in pixels for labelme/COCO output (default: the "
                        "ceil of the polygons' max x and y)")
    p.add_argument("--image-path", help="image file name to record in labelme/COCO output")
    p.set_defaults(func=run)


def run(args) -> int:
    scale = check_scale(args.scale)
    src, dst = Path(args.input), Path(args.output)
    in_fmt = check_format(args.from_fmt) if args.from_fmt else guess_format(src, for_write=False)
    out_fmt = check_format(args.to_fmt) if args.to_fmt else guess_format(dst, for_write=True)
    dialect, orders = args.magc_dialect, {}
    if in_fmt == "magc":
        # Keep what only a .magc carries (orders, dialect) when writing a .magc again.
        magc = read_magc(src, scale)
        sections = magc.sections
        dialect = dialect or magc.dialect
        orders = {"serial_order": magc.serial_order, "stage_order": magc.stage_order}
    else:
        sections = read_sections(src, in_fmt, scale)
    write_sections(dst, sections, out_fmt, magc_dialect=dialect or "magfinder",
                   image_path=args.image_path,
                   image_size=tuple(args.image_size) if args.image_size else None,
                   **(orders if out_fmt == "magc" else {}))
    print(f"{len(sections)} sections read from {src} ({in_fmt}), written to {dst} ({out_fmt})")
    return 0
