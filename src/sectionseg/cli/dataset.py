"""``sectionseg dataset``: build a train/val/test dataset from simulated wafers (tiles + synthetic pastes)."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "dataset",
        help="simulate wafers and build a split training dataset (tiles + synthetic images)",
        description="Simulate N wafers (styles cycled) into OUT/wafers/, cut them into overlapping "
        "patches, generate synthetic images from their sections, and split the images into "
        "train/val/test by wafer (held-out wafers for val and test when N >= 3). Writes "
        "OUT/images, OUT/annotations (labelme), OUT/masks and OUT/manifest.json.",
    )
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--wafers", type=int, default=4, help="number of simulated wafers (default: 4)")
    p.add_argument("--wafer-size", type=int, default=2048, help="simulated wafer side in px (default: 2048)")
    p.add_argument(
        "--styles",
        default="default",
        help="comma-separated simulation styles cycled over the wafers, e.g. default,low-contrast,crowded",
    )
    p.add_argument(
        "--synthetic",
        type=int,
        default=None,
        help="total number of synthetic images (default: with --split, as many as the tiles do "
        "not fill; with --fractions, none)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--split",
        type=int,
        nargs=3,
        default=None,
        metavar=("TRAIN", "VAL", "TEST"),
        help="number of images per split (default: 900 90 50)",
    )
    group.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=None,
        metavar=("TRAIN", "VAL", "TEST"),
        help="share of wafers/tiles/synthetic images per split instead of counts, e.g. 0.8 0.1 0.1",
    )
    p.add_argument("--patch-size", type=int, default=512, help="patch side in px (default: 512)")
    p.add_argument("--overlap", type=int, default=64, help="overlap of neighbouring tiles in px (default: 64)")
    p.add_argument(
        "--sections-per-image",
        type=int,
        nargs=2,
        default=(3, 8),
        metavar=("MIN", "MAX"),
        help="pasted sections per synthetic image, inclusive range (default: 3 8)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same dataset (default: 0)")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="cut the images from the wafers brought to this scale, for a model that works on "
        "sections this many times the simulator's size (e.g. 0.5: 4x fewer tiles per wafer "
        "at detection); --wafer-size stays the simulated size (default: 1)",
    )
    p.add_argument("--jobs", type=int, default=1, help="processes for simulating and cutting (default: 1)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace what OUT holds (without it a folder holding files is refused)"
    )
    p.set_defaults(func=run, check=check_args)


def check_args(args) -> None:
    """Styles, memory and the output folder (empty unless --overwrite); build_dataset checks the rest
    before any work too."""
    from sectionseg.cli._checks import check_empty_or_overwrite, check_memory, check_output_folder
    from sectionseg.errors import InputError
    from sectionseg.simulation.styles import get_style
    from sectionseg.simulation.wafer import check_request, memory_needed

    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    if not styles:
        raise InputError("--styles names no style")
    for style in styles:
        get_style(style)
    check_request(args.wafer_size, args.wafer_size)
    check_memory(
        memory_needed(args.wafer_size, args.wafer_size) * min(args.jobs, args.wafers),
        f"simulating {min(args.jobs, args.wafers)} wafers of {args.wafer_size} px at once",
    )
    check_output_folder(args.out)
    check_empty_or_overwrite(args.out, args.overwrite)


def run(args) -> int:
    from sectionseg.datasets.build import build_dataset

    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    manifest = build_dataset(
        args.out,
        n_wafers=args.wafers,
        wafer_size=args.wafer_size,
        styles=styles,
        n_synthetic=args.synthetic,
        split=tuple(args.split) if args.split else (900, 90, 50),
        fractions=tuple(args.fractions) if args.fractions else None,
        patch_size=args.patch_size,
        overlap=args.overlap,
        seed=args.seed,
        sections_per_image=tuple(args.sections_per_image),
        overwrite=args.overwrite,
        scale=args.scale,
        jobs=args.jobs,
    )
    counts = manifest["params"]["counts"]
    summary = ", ".join(
        f"{s}: {len(manifest['splits'][s])} ({c['tiles']} tiles, {c['synthetic']} synthetic)" for s, c in counts.items()
    )
    print(f"dataset written to {args.out}: {summary}")
    return 0
