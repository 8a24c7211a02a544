"""``sectionseg simulate``: write a realistic synthetic wafer (images + ground truth) into a folder."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from sectionseg.simulation.styles import style_names

    p = subparsers.add_parser(
        "simulate",
        help="simulate a wafer: gray/fluo/rgb images and ground truth in every format",
        description="Simulate a MagC wafer overview (brightfield + fluorescence) with its ground truth.",
    )
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--seed", type=int, required=True, help="random seed (same seed, same files)")
    p.add_argument("--width", type=int, help="image width, px (default 5000, or the layout extent)")
    p.add_argument("--height", type=int, help="image height, px (default 5000, or the layout extent)")
    count = p.add_mutually_exclusive_group()
    count.add_argument("--sections", type=int, help="number of sections (random layout)")
    count.add_argument("--density", type=float, help="sections per megapixel (random layout)")
    p.add_argument("--style", default="default", help=f"appearance style: {', '.join(style_names())}")
    p.add_argument("--layout", help="take the sections from this annotation file (any supported format)")
    p.add_argument(
        "--layout-scale",
        type=float,
        default=1.0,
        help="multiply layout coordinates by this (e.g. 0.3333 for full-resolution MagC files)",
    )
    p.add_argument("--no-dummies", action="store_true", help="no dummy strips")
    beads = p.add_argument_group("bead images (section order retrieval, see 'sectionseg order')")
    beads.add_argument(
        "--beads",
        action="store_true",
        help="also write the sections' bead images into OUT/beads (MagC layout, same section "
        "ids, true serial order in OUT/beads/ground_truth.json)",
    )
    beads.add_argument("--bead-channels", type=int, choices=(1, 2), default=1, help="bead channels (488, 546)")
    beads.add_argument("--bead-damaged", type=float, default=0.02, help="share of damaged sections (default 0.02)")
    beads.add_argument(
        "--bead-missing",
        type=float,
        default=0.0,
        help="share of sections lost while cutting (gaps in the series; default 0)",
    )
    beads.add_argument(
        "--overview-beads",
        type=float,
        metavar="UM",
        help="with --beads: the fluorescence image's magnets show their section's own beads "
        "(the same block as the bead images) at UM micrometres per wafer px, so that "
        "'detect --serial-order overview' can be checked against the truth (default: "
        "random beads, the images of earlier versions)",
    )
    p.set_defaults(func=run, check=check_args)


def check_args(args: argparse.Namespace) -> None:
    """Style, sizes, counts, memory, the layout file and the output folder, before any work."""
    from sectionseg.cli._checks import check_input_path, check_memory, check_output_folder
    from sectionseg.errors import InputError
    from sectionseg.simulation.styles import get_style
    from sectionseg.simulation.wafer import check_request, memory_needed

    get_style(args.style)
    if args.overview_beads is not None and not args.beads:
        raise InputError("--overview-beads needs --beads")
    check_request(args.width, args.height, args.sections, args.density, layout=args.layout is not None)
    if args.layout is not None:
        check_input_path(args.layout, "layout file")
    else:
        check_memory(memory_needed(args.width, args.height), "simulating a wafer of this size")
    check_output_folder(args.out)


def run(args: argparse.Namespace) -> int:
    from sectionseg.simulation.beads import BeadSettings
    from sectionseg.simulation.wafer import simulate_wafer

    beads = None
    if args.beads:
        beads = BeadSettings(
            channels=args.bead_channels, damaged=args.bead_damaged, missing=args.bead_missing
        ).checked()

    summary = simulate_wafer(
        args.out,
        seed=args.seed,
        width=args.width,
        height=args.height,
        n_sections=args.sections,
        density=args.density,
        style=args.style,
        layout_path=args.layout,
        layout_scale=args.layout_scale,
        dummies=not args.no_dummies,
        beads=beads,
        overview_beads_um=args.overview_beads,
    )
    print(
        f"simulated {summary['width']}x{summary['height']} px wafer, style {summary['style']}, "
        f"seed {summary['seed']}: {summary['n_sections']} sections ({summary['n_dummies']} with "
        f"dummies), {summary['bit_depth']}-bit -> {args.out}"
        + (f"; bead images in {args.out}/beads" if beads is not None else "")
    )
    return 0
