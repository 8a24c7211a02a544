"""``sectionseg evaluate``: COCO metrics and geometry errors of a model on a dataset split."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model on a dataset split (COCO metrics, geometry errors)",
        description="Run a model file on a split of a dataset folder; write report.json, "
        "pr_curve.png and summary.txt into --out and print a short table. COCO AP "
        "(pycocotools) uses every detection; the geometry errors use detections with "
        "score >= --score-threshold matched at mask IoU >= 0.5.",
    )
    parser.add_argument("--model", help="model file (.pt) written by train/export (default: the bundled model)")
    parser.add_argument("--data", required=True, help="dataset folder (with manifest.json)")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument(
        "--score-threshold", type=float, default=0.5, help="minimum score for the geometry metrics (default: 0.5)"
    )
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, check=check_args)


def check_args(args: argparse.Namespace) -> None:
    """Device, model file, dataset split (it must hold images, all present) and report folder."""
    from sectionseg.cli._checks import check_dataset_folder, check_device, check_model_file, check_output_folder
    from sectionseg.datasets.samples import check_split

    check_device(args.device)
    args.model = check_model_file(args.model)
    check_output_folder(args.out)
    check_split(check_dataset_folder(args.data), args.split)


def run(args: argparse.Namespace) -> int:
    from sectionseg.evaluation.report import evaluate_model

    _, table = evaluate_model(
        args.model,
        args.data,
        args.out,
        split=args.split,
        score_threshold=args.score_threshold,
        device=args.device,
        progress=not args.no_progress,
    )
    print(table)
    return 0
