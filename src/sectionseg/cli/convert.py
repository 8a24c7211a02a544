"""``sectionseg convert IN OUT``: convert section annotations between formats.

Formats: ``magc-pair`` (folder with source_sections_tissue.txt + source_sections_mag.txt),
``magc`` (.magc INI, MagFinder or SBEMimage dialect), ``labelme`` (.json), ``coco`` (.json).
Corners are written in the canonical order (:mod:`sectionseg.geometry.orientation`). A ``.magc``
read and written again keeps its orders, landmarks and the entries sectionseg does not interpret
(ROIs, focus points...); another output format says (a warning) what of it is lost.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sectionseg.errors import InputError
from sectionseg.formats import (
    DIALECTS,
    FORMATS,
    check_format,
    dropped_by,
    guess_format,
    image_path_for,
    read_landmarks,
    read_magc,
    read_sections,
    write_sections,
)
from sectionseg.formats.common import check_scale
from sectionseg.formats.magc_pair import pair_folder
from sectionseg.io.outset import output_set

log = logging.getLogger(__name__)


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
    if out_fmt == "magc-pair":
        check_output_folder(pair_folder(args.output))
    else:
        check_output_file(args.output)


def _image_args(args, dst: Path, out_fmt: str) -> tuple[str | None, tuple[int, int] | None]:
    """``(image path to record, (width, height))`` for a labelme/COCO output."""
    from sectionseg.io.images import image_size

    size = tuple(args.image_size) if args.image_size else None
    path = args.image_path
    if out_fmt not in ("labelme", "coco"):
        return path, size
    if path is not None:
        if Path(path).is_file():
            size = size or image_size(path)
            path = image_path_for(path, dst)
        else:
            log.warning("%s: no such image file here; recorded as given", path)
    if size is None and out_fmt == "labelme":
        log.warning(
            "%s: image size guessed from the polygons; labelme refuses a wrong size: pass --image-path or --image-size",
            dst,
        )
    return path, size


def run(args) -> int:
    scale = check_scale(args.scale)
    src, dst = Path(args.input), Path(args.output)
    in_fmt = check_format(args.from_fmt) if args.from_fmt else guess_format(src, for_write=False)
    out_fmt = check_format(args.to_fmt) if args.to_fmt else guess_format(dst, for_write=True)
    if args.pair_integers and out_fmt != "magc-pair":
        raise InputError(f"--pair-integers applies to a MagC pair output, not {out_fmt}")
    landmarks = None if args.landmarks is None else read_landmarks(args.landmarks, scale)
    dialect, kept, lost = args.magc_dialect, {}, []
    if in_fmt == "magc":
        # Keep what only a .magc carries (orders, dialect, landmarks, other entries) in a .magc output.
        magc = read_magc(src, scale)
        sections = magc.sections
        dialect = dialect or magc.dialect
        kept = {"serial_order": magc.serial_order, "stage_order": magc.stage_order, "magc_entries": magc.entries}
        landmarks = magc.landmarks if landmarks is None else landmarks
        lost = magc.unwritten_by(out_fmt)
    else:
        sections = read_sections(src, in_fmt, scale)
    lost = dropped_by(out_fmt, sections) + lost
    if lost:
        log.warning("%s: not written to %s (a %s file has no place for them): %s", src, dst, out_fmt, ", ".join(lost))
    image_path, image_size = _image_args(args, dst, out_fmt)
    options = dict(
        magc_dialect=dialect or "magfinder",
        image_path=image_path,
        image_size=image_size,
        pair_integers=args.pair_integers,
        landmarks=landmarks if out_fmt == "magc" or args.landmarks else None,
        **(kept if out_fmt == "magc" else {}),
    )
    if out_fmt == "magc-pair":  # two files: both new or both as they were
        with output_set(pair_folder(dst), "convert") as stage:
            write_sections(stage, sections, out_fmt, **options)
    else:
        write_sections(dst, sections, out_fmt, **options)
    print(
        f"{len(sections)} sections read from {src} ({in_fmt}), written to {dst} ({out_fmt})"
        + (f"; dropped: {', '.join(lost)}" if lost else "")
    )
    return 0
