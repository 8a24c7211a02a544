"""``sectionseg detect``: find every section of a wafer image with the model and write the outputs."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from sectionseg.batch.wafer import SERIAL_ORDERS, detect_files
from sectionseg.cli._checks import (
    check_device,
    check_image_file,
    check_input_file,
    check_model_file,
    check_output_folder,
)
from sectionseg.errors import InputError

log = logging.getLogger(__name__)

#: shortest image side detect accepts, px (a wafer overview has thousands)
MIN_IMAGE_SIDE = 16


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "detect",
        help="detect the sections of a whole wafer image (model) and write MagC/CSV/overlay outputs",
        description="Detect tissue and magnetic parts on a wafer overview tile by tile with the Mask R-CNN "
        "model, fit a quadrilateral to each part, pair them into sections and write "
        "source_sections_{tissue,mag}.txt, sections.magc, sections.labelme.json, "
        "sections.coco.json, sections.csv, overlay.png and report.json into the output "
        "folder. Corners are written in the order of the original MagC files (tissue "
        "clockwise on screen, first edge short and pointing away from the magnet).",
    )
    p.add_argument(
        "gray",
        help="brightfield (gray) wafer image: TIFF (memory-mapped), PNG, JPEG, or a "
        "Zarr / OME-Zarr folder (read chunk by chunk; the highest resolution)",
    )
    p.add_argument("--fluo", help="fluorescence image of the same pixels (recommended: shows the magnets)")
    p.add_argument("--out", required=True, help="output folder (created; existing outputs are replaced)")
    p.add_argument(
        "--landmarks",
        metavar="FILE",
        help="landmarks for sections.magc: a text file, one 'x, y' per line in pixels of the "
        "image (SBEMimage needs at least 3 to map the image to the stage)",
    )
    add_detection_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, check=check_args)


def add_detection_arguments(p, *, workers: bool = True) -> None:
    """The options of a wafer's detection and of its outputs (``detect`` and ``detect-batch``;
    ``workers``: with ``--workers``)."""
    from sectionseg.detection.inference import PRECISIONS
    from sectionseg.detection.parallel import MAX_AUTO_WORKERS
    from sectionseg.detection.pipeline import DEFAULT_MASK_THRESHOLD, DEFAULT_PROPOSALS, DEFAULT_SCORE_THRESHOLD
    from sectionseg.detection.settings import STEPS

    p.add_argument("--model", help="model file (default: the model bundled with the package)")
    p.add_argument(
        "--score-threshold",
        type=float,
        default=DEFAULT_SCORE_THRESHOLD,
        help=f"minimum detection score (default {DEFAULT_SCORE_THRESHOLD})",
    )
    p.add_argument(
        "--mask-threshold",
        type=float,
        default=DEFAULT_MASK_THRESHOLD,
        help=f"mask probability cut (default {DEFAULT_MASK_THRESHOLD})",
    )
    p.add_argument("--tile-size", type=int, default=512, help="tile side at the working scale, px (default 512)")
    p.add_argument("--overlap", type=int, default=128, help="tile overlap, px (default 128)")
    p.add_argument(
        "--batch-size",
        type=int,
        help="tiles per model call (default 2 on the CPU, per worker process; 16 with --device cuda)",
    )
    p.add_argument(
        "--section-size", type=float, help="long side of a section in image px; skips the automatic scale estimate"
    )
    p.add_argument(
        "--magc-dialect",
        choices=("magfinder", "sbemimage"),
        default="magfinder",
        help="dialect of sections.magc (default magfinder)",
    )
    p.add_argument(
        "--pair-scale",
        type=float,
        default=1.0,
        metavar="S",
        help="multiply the MagC pair's coordinates by S, e.g. 3 when the image is the "
        "full-resolution wafer downsized by 3 (default 1; other files stay in image px)",
    )
    p.add_argument(
        "--pair-integers",
        action="store_true",
        help="round the MagC pair's coordinates to whole pixels, as in the original MagC "
        "files (default: up to 3 decimals)",
    )
    p.add_argument(
        "--serial-order",
        choices=SERIAL_ORDERS,
        default="index",
        help="serial order written into sections.magc: index (default: the section numbers, a "
        "placeholder; 'sectionseg order' puts the order from bead images there) or overview "
        "(needs --fluo: from the beads of each magnet in the fluorescence image, when the "
        "overview resolves them; its reliability goes into report.json, its report into "
        "OUT/order/; when the beads are not resolved the index order stays and report.json "
        "says why)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="arithmetic of the model: auto (default) = bf16 on CPUs that run it natively "
        "(AVX512-BF16/AMX, about 1.5x faster), else fp32; with --device cuda bf16 where "
        "the GPU has it, else fp16 (fp16: GPU only)",
    )
    p.add_argument(
        "--proposals",
        type=int,
        default=DEFAULT_PROPOSALS,
        help=f"region proposals per tile (default {DEFAULT_PROPOSALS})",
    )
    if workers:
        p.add_argument(
            "--workers",
            type=int,
            help="processes for inference and fitting (default: one per core, at most "
            f"{MAX_AUTO_WORKERS}, on the CPU; 1 with --device cuda, where the model runs "
            "in the main process and the workers fit the quads)",
        )
    p.add_argument(
        "--skip-repair",
        nargs="+",
        default=[],
        choices=STEPS,
        metavar="STEP",
        help="repair steps after the model to switch off (all run by default; recorded in "
        f"report.json): {', '.join(STEPS)}",
    )


def detection_options(args) -> dict:
    """Keyword arguments of :func:`sectionseg.batch.wafer.detect_files` from the options of
    :func:`add_detection_arguments` (model and progress excepted)."""
    from sectionseg.detection.settings import RepairSettings

    return dict(
        magc_dialect=args.magc_dialect,
        pair_scale=args.pair_scale,
        pair_integers=args.pair_integers,
        tile_size=args.tile_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
        score_threshold=args.score_threshold,
        mask_threshold=args.mask_threshold,
        section_size=args.section_size,
        device=args.device,
        precision=args.precision,
        proposals=args.proposals,
        workers=getattr(args, "workers", None),
        serial_order=args.serial_order,
        settings=RepairSettings().without(*args.skip_repair),
    )


def check_detection_arguments(args) -> None:
    """Checks of :func:`add_detection_arguments`'s options that relate several of them, the device,
    the model file and the memory of inference (before any work, before torch is imported unless the
    device is cuda)."""
    from sectionseg.cli._checks import check_memory
    from sectionseg.detection.inference import resolve_batch_size
    from sectionseg.detection.parallel import BYTES_PER_BATCH_PIXEL, resolve_workers

    if args.overlap > args.tile_size // 2:
        raise InputError(f"--overlap must be at most half of --tile-size ({args.tile_size // 2}), got {args.overlap}")
    check_device(args.device)
    if args.precision == "fp16" and not args.device.startswith("cuda"):
        raise InputError("--precision fp16 is for --device cuda; on the CPU use bf16 or fp32")
    check_model_file(args.model)
    if args.device == "cpu":
        workers = resolve_workers(getattr(args, "workers", None), args.device)
        batch = resolve_batch_size(args.batch_size, args.device)
        check_memory(
            workers * batch * args.tile_size**2 * BYTES_PER_BATCH_PIXEL,
            f"inference with {workers} workers x --batch-size {batch} tiles of --tile-size {args.tile_size} px",
        )


def check_args(args) -> None:
    """What :data:`sectionseg.cli._checks.OPTION_RANGES` cannot say, and the input files and output
    folder: all before any work (and before torch is imported)."""
    from sectionseg.io.images import image_size

    if args.serial_order == "overview" and args.fluo is None:
        raise InputError("--serial-order overview needs --fluo (the beads are seen in the fluorescence image)")
    check_detection_arguments(args)
    check_image_file(args.gray, "image file")
    if args.fluo is not None:
        check_image_file(args.fluo, "image file")
    if args.landmarks is not None:
        check_input_file(args.landmarks, "landmark file")
    width, height = image_size(args.gray)
    if min(width, height) < MIN_IMAGE_SIDE:
        raise InputError(
            f"the image is {width}x{height} px; a wafer image needs at least {MIN_IMAGE_SIDE} px on each side",
            args.gray,
        )
    check_output_folder(args.out)


def run(args: argparse.Namespace) -> int:
    result, paths, report = detect_files(
        args.gray,
        args.fluo,
        args.out,
        model=args.model,
        landmarks_path=args.landmarks,
        progress=not args.no_progress and sys.stderr.isatty(),
        **detection_options(args),
    )
    c = result.counts
    print(
        f"found {c['sections']} sections ({c['unpaired']} unpaired parts, {c['dropped_dummies']} "
        f"dummy-like parts dropped) on {c['tiles']} tiles at scale {result.scale:.3g} in "
        f"{report['total_seconds']:.1f} s"
    )
    so = report.get("serial_order", {})
    if so.get("source") == "overview":
        if so["proposed"]:
            print(
                f"serial order from the overview ({so['beads_per_magnet_median']:g} beads per magnet, "
                f"{so['links_doubtful']} of {so['links']} links doubtful, reliability {so['reliability']}) "
                "written into sections.magc"
            )
        else:
            print(f"no serial order from the overview: {so['reason']}")
    for name, path in sorted(paths.items()):
        print(f"  {name}: {os.fspath(path)}")
    return 0
