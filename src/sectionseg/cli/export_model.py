"""``sectionseg export-model CKPT OUT [--half]``: a slim model file (no optimizer state) from a checkpoint.

``export`` is an alias of the command (its earlier name; scripts that use it keep working).
It writes model weights; the microscope outputs of a detection are written by :mod:`sectionseg.export`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sectionseg.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-model",
        aliases=["export"],
        help="write a slim model file (weights + config + class names) from a training checkpoint",
        description="Drop the training state (optimizer, scheduler, RNG) of a checkpoint written by "
        "`sectionseg train` and keep what loading needs: weights, config and class names. "
        "--half stores the weights as float16 (loaded back as float32).",
    )
    parser.add_argument("checkpoint", help="checkpoint file, e.g. RUN/best.pt")
    parser.add_argument("out", help="model file to write (.pt)")
    parser.add_argument("--half", action="store_true", help="store float weights in half precision")
    parser.add_argument("--name", help="model name recorded in the file")
    parser.set_defaults(func=run, check=check_args)


def check_args(args: argparse.Namespace) -> None:
    """The checkpoint exists, OUT is another file in a writable place."""
    from sectionseg.cli._checks import check_input_file, check_output_file

    ckpt = check_input_file(args.checkpoint, "checkpoint file")
    out = check_output_file(args.out)
    if os.path.realpath(out) == os.path.realpath(ckpt):
        raise InputError(
            "OUT is the checkpoint itself; write the slim model to another file (the checkpoint "
            "keeps the training state that --resume needs)",
            out,
        )


def run(args: argparse.Namespace) -> int:
    from sectionseg.model import export_weights
    from sectionseg.model.checkpoint import read_checkpoint

    if Path(args.out).is_file() and read_checkpoint(args.out).get("training"):
        raise InputError(
            "OUT is a training checkpoint (it holds the training state that --resume needs); "
            "refusing to replace it with a slim model: choose another file",
            args.out,
        )
    info = {"name": args.name} if args.name else None
    export_weights(args.checkpoint, args.out, half=args.half, info=info)
    size_mb = Path(args.out).stat().st_size / 1e6
    print(f"exported {args.checkpoint} -> {args.out} ({size_mb:.1f} MB{', float16' if args.half else ''})")
    return 0
