"""``sectionseg evaluate``: COCO metrics and geometry errors of a model on a dataset split."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a model on a dataset split (COCO metrics, geometry errors)",
        description="Run a model file on a split of a dataset folder; write report.json, "
                    "pr_curve.png and summary.txt into --out and print a short table. COCO AP "
                    "(pycocotools) uses every detection; the geometry errors use detections with "
                    "score >= --score-threshold matched at mask IoU >= 0.5.")
    parser.add_argument("--model", help="model file (.pt) written by train/export (default: the bundled model)")
    parser.add_argument("--data", required=True, help="dataset folder (with manifest.json)")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--score-threshold", type=float, default=0.5,
                        help="minimum score for the geometry metrics (default: 0.5)")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from sectionseg.errors import InputError
    from sectionseg.evaluation.report import evaluate_model
    from sectionseg.model import default_model_path

    if args.model is None:
        args.model = default_model_path()
        if not args.model.is_file():
            raise InputError("no bundled model in this installation; give --model", args.model)

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but CUDA is not available")
    if not 0.0 <= args.score_threshold <= 1.0:
        raise InputError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    _, table = evaluate_model(args.model, args.data, args.out, split=args.split,
                              score_threshold=args.score_threshold, device=args.device,
                              progress=not args.no_progress)
    print(table)
    return 0
