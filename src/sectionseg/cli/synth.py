"""``sectionseg synth``: artificial training images from the labelled sections of one wafer (the arguments
of :func:`sectionseg.workflows.labelled.write_synthetic_set`)."""

from __future__ import annotations

from pathlib import Path

from sectionseg.cli._wafer_args import add_labelled_wafer_arguments, check_labelled_wafer_arguments
from sectionseg.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth",
        help="paste a wafer's labelled sections onto its background: artificial training images",
        description="Cut every labelled section (tissue, magnet, dummy, with a small margin) out of the "
        "wafer and paste them at random positions and angles, without overlap, onto "
        "section-free background of the same wafer. Writes OUT/images, OUT/annotations "
        "(labelme), OUT/masks and OUT/manifest.json (all images in 'train'), as one set: OUT "
        "holds the whole new set or what it held before.",
    )
    add_labelled_wafer_arguments(p, "WAFER_RGB_OR_GRAY")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--count", type=int, required=True, help="number of images to generate")
    p.add_argument("--size", type=int, default=512, help="image side in px (default: 512)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default: 0)")
    p.add_argument(
        "--sections-per-image",
        type=int,
        nargs=2,
        default=(3, 8),
        metavar=("MIN", "MAX"),
        help="number of pasted sections per image, inclusive range (default: 3 8)",
    )
    p.add_argument("--margin", type=int, default=6, help="background margin cut with each section, px (default: 6)")
    p.set_defaults(func=run, check=check_args)


def check_args(args) -> None:
    lo, hi = args.sections_per_image
    if lo > hi:
        raise InputError(f"--sections-per-image: MIN must not exceed MAX, got {lo} {hi}")
    if args.margin > args.size // 4:
        raise InputError(f"--margin must be at most a quarter of --size ({args.size // 4} px), got {args.margin}")
    check_labelled_wafer_arguments(args)


def run(args) -> int:
    from sectionseg.workflows.labelled import write_synthetic_set

    items = write_synthetic_set(
        args.image,
        args.labels,
        args.out,
        count=args.count,
        fluo=args.fluo,
        label_scale=args.scale,
        size=args.size,
        seed=args.seed,
        sections_per_image=tuple(args.sections_per_image),
        margin=args.margin,
    )
    print(f"{len(items)} synthetic images of {args.size} px written to {Path(args.out)}")
    return 0
