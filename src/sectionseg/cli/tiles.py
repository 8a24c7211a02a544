"""``sectionseg tiles``: cut a labelled wafer image into overlapping training patches (the arguments of
:func:`sectionseg.workflows.labelled.write_tile_set`)."""

from __future__ import annotations

from pathlib import Path

from sectionseg.cli._wafer_args import add_labelled_wafer_arguments, check_labelled_wafer_arguments
from sectionseg.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tiles",
        help="cut a labelled wafer image into overlapping patches with clipped ground truth",
        description="Cut a wafer image into SIZE x SIZE patches overlapping by OVERLAP px (the last "
        "patch of a row/column is flush with the border). Sections cut by a patch border "
        "keep their clipped part. Writes OUT/images/*.png, OUT/annotations/*.json (labelme), "
        "OUT/masks/*.png (uint16 instance ids) and OUT/manifest.json (all patches in 'train'), "
        "as one set: OUT holds the whole new dataset or what it held before.",
    )
    add_labelled_wafer_arguments(p, "RGB_OR_GRAY")
    p.add_argument("--out", required=True, help="output dataset folder (empty, or see --overwrite)")
    p.add_argument("--size", type=int, default=512, help="patch side in px (default: 512)")
    p.add_argument("--overlap", type=int, default=64, help="overlap of neighbouring patches in px (default: 64)")
    p.add_argument(
        "--min-area", type=float, default=20.0, help="drop clipped parts smaller than this many px^2 (default: 20)"
    )
    p.add_argument("--skip-empty", action="store_true", help="do not write patches without any section")
    p.set_defaults(func=run, check=check_args)


def check_args(args) -> None:
    if args.overlap >= args.size:
        raise InputError(f"--overlap must be smaller than --size ({args.size}), got {args.overlap}")
    check_labelled_wafer_arguments(args)


def run(args) -> int:
    from sectionseg.workflows.labelled import write_tile_set

    items, sections = write_tile_set(
        args.image,
        args.labels,
        args.out,
        fluo=args.fluo,
        label_scale=args.scale,
        size=args.size,
        overlap=args.overlap,
        min_area=args.min_area,
        keep_empty=not args.skip_empty,
    )
    print(f"{len(items)} patches of {args.size} px from {len(sections)} sections written to {Path(args.out)}")
    return 0
