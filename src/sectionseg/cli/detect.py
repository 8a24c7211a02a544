"""``sectionseg detect``: find every section of a wafer image with the model and write the outputs."""
from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from pathlib import Path

from sectionseg.cli._checks import check_device, check_image_file, check_input_file, check_model_file, check_output_folder
from sectionseg.errors import InputError

log = logging.getLogger(__name__)

#: shortest image side detect accepts, px (a wafer overview has thousands)
MIN_IMAGE_SIDE = 16


def register(subparsers) -> None:
    from sectionseg.detection.inference import PRECISIONS
    from sectionseg.detection.parallel import MAX_AUTO_WORKERS
    from sectionseg.detection.pipeline import DEFAULT_MASK_THRESHOLD, DEFAULT_PROPOSALS, DEFAULT_SCORE_THRESHOLD

    p = subparsers.add_parser(
        "detect",
        help="detect the sections of a whole wafer image (model) and write MagC/CSV/overlay outputs",
        description="Detect tissue and magnetic parts on a wafer overview tile by tile with the Mask R-CNN "
                    "model, fit a quadrilateral to each part, pair them into sections and write "
                    "source_sections_{tissue,mag}.txt, sections.magc, sections.labelme.json, "
                    "sections.coco.json, sections.csv, overlay.png and report.json into the output "
                    "folder. Corners are written in the order of the original MagC files (tissue "
                    "clockwise on screen, first edge short and pointing away from the magnet).")
    p.add_argument("gray", help="brightfield (gray) wafer image: TIFF (memory-mapped), PNG or JPEG")
    p.add_argument("--fluo", help="fluorescence image of the same pixels (recommended: shows the magnets)")
    p.add_argument("--out", required=True, help="output folder (created; existing outputs are replaced)")
    p.add_argument("--model", help="model file (default: the model bundled with the package)")
    p.add_argument("--score-threshold", type=float, default=DEFAULT_SCORE_THRESHOLD,
                   help=f"minimum detection score (default {DEFAULT_SCORE_THRESHOLD})")
    p.add_argument("--mask-threshold", type=float, default=DEFAULT_MASK_THRESHOLD,
                   help=f"mask probability cut (default {DEFAULT_MASK_THRESHOLD})")
    p.add_argument("--tile-size", type=int, default=512, help="tile side at the working scale, px (default 512)")
    p.add_argument("--overlap", type=int, default=128, help="tile overlap, px (default 128)")
    p.add_argument("--batch-size", type=int, default=2, help="tiles per model call (default 2)")
    p.add_argument("--section-size", type=float,
                   help="long side of a section in image px; skips the automatic scale estimate")
    p.add_argument("--magc-dialect", choices=("magfinder", "sbemimage"), default="magfinder",
                   help="dialect of sections.magc (default magfinder)")
    p.add_argument("--landmarks", metavar="FILE",
                   help="landmarks for sections.magc: a text file, one 'x, y' per line in pixels of the "
                        "image (SBEMimage needs at least 3 to map the image to the stage)")
    p.add_argument("--pair-scale", type=float, default=1.0, metavar="S",
                   help="multiply the MagC pair's coordinates by S, e.g. 3 when the image is the "
                        "full-resolution wafer downsized by 3 (default 1; other files stay in image px)")
    p.add_argument("--pair-integers", action="store_true",
                   help="round the MagC pair's coordinates to whole pixels, as in the original MagC "
                        "files (default: up to 3 decimals)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device (default cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="arithmetic of the model: auto (default) = bf16 on CPUs that run it natively "
                        "(AVX512-BF16/AMX, about 1.5x faster), else fp32")
    p.add_argument("--proposals", type=int, default=DEFAULT_PROPOSALS,
                   help=f"region proposals per tile (default {DEFAULT_PROPOSALS})")
    p.add_argument("--workers", type=int,
                   help="processes for inference and fitting (default: one per core, at most "
                        f"{MAX_AUTO_WORKERS}, on the CPU; 1 with --device cuda)")
    from sectionseg.detection.settings import STEPS

    p.add_argument("--skip-repair", nargs="+", default=[], choices=STEPS, metavar="STEP",
                   help="repair steps after the model to switch off (all run by default; recorded in "
                        f"report.json): {', '.join(STEPS)}")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, check=check_args)


def check_args(args) -> None:
    """What :data:`sectionseg.cli._checks.OPTION_RANGES` cannot say, and the input files and output
    folder: all before any work (and before torch is imported)."""
    from sectionseg.cli._checks import check_memory
    from sectionseg.detection.parallel import BYTES_PER_BATCH_PIXEL, resolve_workers
    from sectionseg.io.images import image_size

    if args.overlap > args.tile_size // 2:
        raise InputError(f"--overlap must be at most half of --tile-size ({args.tile_size // 2}), got "
                         f"{args.overlap}")
    check_device(args.device)
    check_image_file(args.gray, "image file")
    if args.fluo is not None:
        check_image_file(args.fluo, "image file")
    if args.landmarks is not None:
        check_input_file(args.landmarks, "landmark file")
    check_model_file(args.model)
    if args.device == "cpu":
        workers = resolve_workers(args.workers, args.device)
        check_memory(workers * args.batch_size * args.tile_size ** 2 * BYTES_PER_BATCH_PIXEL,
                     f"inference with {workers} workers x --batch-size {args.batch_size} tiles of "
                     f"--tile-size {args.tile_size} px")
    width, height = image_size(args.gray)
    if min(width, height) < MIN_IMAGE_SIDE:
        raise InputError(f"the image is {width}x{height} px; a wafer image needs at least {MIN_IMAGE_SIDE} px "
                         "on each side", args.gray)
    check_output_folder(args.out)


def load_inputs(gray_path, fluo_path=None):
    """Read (memory-map) the gray and optional fluorescence images; InputError when they are unusable
    or of different sizes. Nothing is written."""
    from sectionseg.io.images import read_image

    gray = read_image(gray_path)
    fluo = None
    if fluo_path is not None:
        fluo = read_image(fluo_path)
        if fluo.shape != gray.shape:
            raise InputError(f"fluorescence image is {fluo.shape[1]}x{fluo.shape[0]} px but the gray image "
                             f"{gray_path} is {gray.shape[1]}x{gray.shape[0]} px; they must cover the same "
                             "pixels", fluo_path)
    return gray, fluo


def _warn_outside(landmarks, width: int, height: int, path) -> None:
    """Log a warning for landmarks outside the image (they are image px: likely another frame)."""
    outside = [k for k, (x, y) in enumerate(landmarks) if not (0 <= x <= width and 0 <= y <= height)]
    if outside:
        log.warning("%s: landmarks %s lie outside the %dx%d px image; landmarks are image pixels", path,
                    ", ".join(map(str, outside)), width, height)


def detect_files(gray_path, fluo_path, out_dir, *, model=None, magc_dialect: str = "magfinder",
                 progress: bool = True, landmarks_path=None, pair_scale: float = 1.0,
                 pair_integers: bool = False, **detect_kwargs):
    """Detect the sections of image files and write every output into ``out_dir``.

    All inputs (images, landmarks, model, parameters) are checked before ``out_dir`` is created, so
    a bad input leaves nothing behind. ``landmarks_path``: landmark file (image px) for
    ``sections.magc``; ``pair_scale``, ``pair_integers``: MagC pair only. Returns
    ``(DetectionResult, {output name: path}, report dict)``.
    """
    import numpy as np

    from sectionseg.detection import detect_wafer
    from sectionseg.detection.parallel import worker_peak_memory_mb
    from sectionseg.export import write_detection_outputs
    from sectionseg.formats import read_landmarks
    from sectionseg.io.images import is_constant
    from sectionseg.model import default_model_path

    gray, fluo = load_inputs(gray_path, fluo_path)
    for image, path in ((gray, gray_path), (fluo, fluo_path)):
        if image is not None and is_constant(image):
            raise InputError(f"the image has the value {np.asarray(image[0, 0]).item():g} everywhere: "
                             "nothing to detect", path)
    landmarks = None if landmarks_path is None else read_landmarks(landmarks_path)
    _warn_outside(landmarks or [], gray.shape[1], gray.shape[0], landmarks_path)
    model_path = Path(model) if model is not None else default_model_path()
    if model is None and not model_path.is_file():
        raise InputError("the bundled model is missing from this installation; pass --model FILE", model_path)
    if not model_path.is_file():
        raise InputError("model file not found" if not model_path.exists() else "model file expected, but "
                         "this is a folder", model_path)
    t0 = time.perf_counter()
    result = detect_wafer(gray, fluo, model=model_path, progress=progress, **detect_kwargs)
    seconds = time.perf_counter() - t0
    report = result.report()
    report.update({
        "inputs": {"gray": str(gray_path), "fluo": None if fluo_path is None else str(fluo_path),
                   "width": int(gray.shape[1]), "height": int(gray.shape[0]),
                   "landmarks": None if landmarks_path is None else str(landmarks_path)},
        "total_seconds": seconds,
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "worker_peak_memory_mb": worker_peak_memory_mb(),
        "magc_dialect": magc_dialect,
        "magc_pair": {"scale": float(pair_scale), "integers": bool(pair_integers)},
    })
    paths = write_detection_outputs(out_dir, result.sections, result.unpaired, overlay_image=gray,
                                    report=report, magc_dialect=magc_dialect, image_path=gray_path,
                                    image_size=(int(gray.shape[1]), int(gray.shape[0])),
                                    landmarks=landmarks, pair_scale=pair_scale,
                                    pair_integers=pair_integers)
    return result, paths, report


def run(args: argparse.Namespace) -> int:
    from sectionseg.detection.settings import RepairSettings

    result, paths, report = detect_files(
        args.gray, args.fluo, args.out, model=args.model, magc_dialect=args.magc_dialect,
        landmarks_path=args.landmarks, pair_scale=args.pair_scale, pair_integers=args.pair_integers,
        progress=not args.no_progress and sys.stderr.isatty(), tile_size=args.tile_size,
        overlap=args.overlap, batch_size=args.batch_size, score_threshold=args.score_threshold,
        mask_threshold=args.mask_threshold, section_size=args.section_size, device=args.device,
        precision=args.precision, proposals=args.proposals, workers=args.workers,
        settings=RepairSettings().without(*args.skip_repair))
    c = result.counts
    print(f"found {c['sections']} sections ({c['unpaired']} unpaired parts, {c['dropped_dummies']} "
          f"dummy-like parts dropped) on {c['tiles']} tiles at scale {result.scale:.3g} in "
          f"{report['total_seconds']:.1f} s")
    for name, path in sorted(paths.items()):
        print(f"  {name}: {os.fspath(path)}")
    return 0
