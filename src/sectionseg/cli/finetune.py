"""``sectionseg finetune``: adapt a model to a new wafer from a dozen hand-labelled sections.

The arguments of :func:`sectionseg.workflows.adapt_to_wafer`, which does the work (its module,
:mod:`sectionseg.workflows.finetune`, lists the stages), and a printed summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sectionseg.cli._checks import (
    check_device,
    check_image_file,
    check_input_file,
    check_input_path,
    check_output_folder,
)
from sectionseg.workflows.finetune import DEFAULT_EPOCHS, DEFAULT_SYNTHETIC, REPORT_NAME, check_adaptation_folder


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune",
        help="adapt a model to a new wafer from a dozen hand-labelled sections",
        description="Build artificial training images from the labelled sections of this wafer (pasted onto "
        "its own background) plus tiles around them, fine-tune the base model (every "
        "layer; --heads-only: the heads and FPN), write DIR/model.pt (use it with 'detect --model'), "
        "its loss curves and DIR/finetune_report.json; optionally detect on the whole wafer (--detect).",
    )
    p.add_argument("gray", help="brightfield (gray) wafer image: TIFF, PNG or JPEG")
    p.add_argument("--fluo", help="fluorescence image of the same pixels (recommended)")
    p.add_argument(
        "--labels",
        required=True,
        help="a dozen or so labelled sections of this wafer: labelme JSON, MagC pair or .magc",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply label coordinates, e.g. 0.3333 for full-resolution labels (default 1)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--base-model", help="model to start from (default: the bundled model)")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"fine-tuning epochs (default {DEFAULT_EPOCHS})")
    layers = p.add_mutually_exclusive_group()
    layers.add_argument(
        "--heads-only",
        action="store_true",
        help="train only the heads and the FPN, the backbone body frozen (default: every layer)",
    )
    layers.add_argument("--all-layers", action="store_true", help="train every layer (the default; kept for scripts)")
    p.add_argument("--lr", type=float, help="learning rate (default 3e-4)")
    p.add_argument(
        "--synthetic",
        type=int,
        default=DEFAULT_SYNTHETIC,
        help=f"synthetic training images (default {DEFAULT_SYNTHETIC})",
    )
    p.add_argument("--val", type=int, default=10, help="synthetic validation images (default 10)")
    p.add_argument("--image-size", type=int, default=512, help="side of the generated images, px (default 512)")
    p.add_argument("--max-iters-per-epoch", type=int, help="cap on iterations per epoch")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted fine-tuning in --out")
    p.add_argument("--detect", action="store_true", help="then detect on the whole wafer (DIR/detection)")
    p.add_argument(
        "--no-content-regions",
        action="store_true",
        help="paint out only what the detectors find, not every area that is no bare wafer "
        "(for comparison; the default paints out both)",
    )
    p.add_argument(
        "--crowd",
        choices=("ignore", "paint"),
        default="paint",
        help="unlabelled sections and other content in the training images: painted over with background "
        "(paint, the default) or kept and left out of the loss (ignore; no better on the benchmark, BENCHMARKS.md)",
    )
    p.add_argument(
        "--score-threshold", type=float, default=None, help="minimum detection score for --detect (default: detect's)"
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run, check=check_args)


def check_args(args) -> None:
    """Device, input files, base model and output folder (option ranges: ``_checks.OPTION_RANGES``),
    before torch is imported and before anything is written."""
    check_device(args.device)
    check_image_file(args.gray, "image file")
    if args.fluo is not None:
        check_image_file(args.fluo, "image file")
    check_input_path(args.labels, "label file")
    if args.base_model is not None:
        check_input_file(args.base_model, "base model file")
    check_adaptation_folder(check_output_folder(args.out), args.resume)


def run(args: argparse.Namespace) -> int:
    from sectionseg.workflows.finetune import adapt_to_wafer

    report = adapt_to_wafer(
        args.gray,
        args.labels,
        args.out,
        fluo=args.fluo,
        label_scale=args.scale,
        base_model=args.base_model,
        epochs=args.epochs,
        all_layers=not args.heads_only,
        lr=args.lr,
        n_synthetic=args.synthetic,
        n_val=args.val,
        image_size=args.image_size,
        max_iters_per_epoch=args.max_iters_per_epoch,
        seed=args.seed,
        resume=args.resume,
        use_content_regions=not args.no_content_regions,
        crowd=args.crowd,
        detect=args.detect,
        score_threshold=args.score_threshold,
        device=args.device,
        progress=not args.no_progress,
    )
    _print_summary(report, Path(args.out))
    return 0


def _print_summary(report: dict, out: Path) -> None:
    val = report["validation_mask"]
    print(
        f"adapted model: {report['model']} ({report['n_labelled']} labelled sections, section size "
        f"{report['section_size']:.0f} px, {report['total_seconds']:.0f} s)"
    )
    print("validation mask AP50 / recall50   base -> adapted")
    for name in ("tissue", "magnet"):
        b, a = val["base"].get(name, {}), val["adapted"].get(name, {})
        print(
            f"  {name:7s} {_fmt(b.get('AP50'))} / {_fmt(b.get('R50'))} -> {_fmt(a.get('AP50'))} / {_fmt(a.get('R50'))}"
        )
    if "detection" in report:
        c = report["detection"]["counts"]
        print(f"detection: {c['sections']} sections, {c['unpaired']} unpaired parts -> {out / 'detection'}")
    print(f"report: {out / REPORT_NAME}")


def _fmt(value) -> str:
    return "  -  " if value is None else f"{value:.3f}"
