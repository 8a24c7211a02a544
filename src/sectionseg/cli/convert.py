"""``sectionseg convert IN OUT``: convert section annotations between formats
(:func:`sectionseg.workflows.convert.convert_annotations` does the work).

Formats: ``magc-pair`` (folder with source_sections_tissue.txt + source_sections_mag.txt),
``magc`` (.magc INI, MagFinder or SBEMimage dialect), ``labelme`` (.json), ``coco`` (.json).
Corners are written in the canonical order (:mod:`sectionseg.geometry.orientation`). A ``.magc``
read and written again keeps its orders, landmarks and the entries sectionseg does not interpret
(ROIs, focus points...); another output format says (a warning) what of it is lost.
"""

from __future__ import annotations

from pathlib import Path

from sectionseg.errors import InputError
from sectionseg.formats import DIALECTS, FORMATS, check_format, guess_format
from sectionseg.formats.magc_pair import pair_folder


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert section annotations between MagC pair, .magc, labelme and COCO",
        description="Convert section annotations. Formats are told from the names: a folder or a "
        "name without extension is a MagC pair (source_sections_tissue.txt + "
        "source_sections_mag.txt), .magc is the MagFinder/SBEMimage INI file, .json is "
        "labelme on output (unless --to coco or *.coco.json) and sniffed on input. "
        "Corners are written in the order of the original MagC files (tissue clockwise "
        "on screen, first edge short and pointing away from the magnet).",
    )
    p.add_argument("input", metavar="IN", help="annotation file or MagC-pair folder to read")
    p.add_argument("output", metavar="OUT", help="file or folder to write")
    p.add_argument("--from", dest="from_fmt", choices=FORMATS, help="input format (default: guessed)")
    p.add_argument("--to", dest="to_fmt", choices=FORMATS, help="output format (default: guessed)")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every coordinate read (annotations and --landmarks), e.g. 0.3333333 "
        "for full-resolution MagC ground truth on images downsized by 3, or 3 for a "
        "full-resolution MagC pair from detections on such images (default: 1)",
    )
    p.add_argument(
        "--pair-integers",
        action="store_true",
        help="round the coordinates of a MagC pair output to whole pixels, as in the "
        "original MagC files (default: up to 3 decimals)",
    )
    p.add_argument(
        "--magc-dialect",
        choices=DIALECTS,
        default=None,
        help="dialect of a .magc output (default: that of a .magc input, else magfinder)",
    )
    p.add_argument(
        "--landmarks",
        metavar="FILE",
        help="landmarks for a .magc output: a text file, one 'x, y' per line in image "
        "pixels (replaces those of a .magc input; SBEMimage needs at least 3)",
    )
    p.add_argument(
        "--image-size",
        nargs=2,
        type=int,
        metavar=("W", "H"),
        help="image width and height in pixels for labelme/COCO output (default: read "
        "from --image-path, else the ceil of the polygons' max x and y)",
    )
    p.add_argument(
        "--image-path",
        help="the image file, for labelme/COCO output: recorded relative to the JSON file "
        "(as labelme resolves it) and its size read from it when it exists",
    )
    p.set_defaults(func=run, check=check_args)


def check_args(args) -> None:
    """Input and landmark files, and the output place, before reading anything."""
    from sectionseg.cli._checks import check_input_file, check_input_path, check_output_file, check_output_folder

    check_input_path(args.input, "file")
    if args.landmarks is not None:
        check_input_file(args.landmarks, "landmark file")
    out_fmt = check_format(args.to_fmt) if args.to_fmt else guess_format(Path(args.output), for_write=True)
    if args.pair_integers and out_fmt != "magc-pair":
        raise InputError(f"--pair-integers applies to a MagC pair output, not {out_fmt}")
    if out_fmt == "magc-pair":
        check_output_folder(pair_folder(args.output))
    else:
        check_output_file(args.output)


def run(args) -> int:
    from sectionseg.workflows.convert import convert_annotations

    done = convert_annotations(
        args.input,
        args.output,
        from_format=args.from_fmt,
        to_format=args.to_fmt,
        scale=args.scale,
        pair_integers=args.pair_integers,
        magc_dialect=args.magc_dialect,
        landmarks=args.landmarks,
        image_path=args.image_path,
        image_size=tuple(args.image_size) if args.image_size else None,
    )
    print(
        f"{done.n_sections} sections read from {args.input} ({done.in_format}), written to {args.output} "
        f"({done.out_format})" + (f"; dropped: {', '.join(done.dropped)}" if done.dropped else "")
    )
    return 0
