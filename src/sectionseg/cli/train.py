"""``sectionseg train``: train the Mask R-CNN on a dataset folder (resumable); the arguments of
:func:`sectionseg.workflows.train_model`."""

from __future__ import annotations

import argparse

from sectionseg.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the Mask R-CNN on a dataset folder",
        description="Train the Mask R-CNN (classes tissue, magnet) on the train split of a dataset "
        "folder, with a validation loss on the val split every epoch. The run folder "
        "gets last.pt / best.pt checkpoints, log.csv, losses.png and config.yaml.",
    )
    parser.add_argument("--config", default="cpu", help="preset name (tiny, cpu, seed) or YAML file (default: cpu)")
    parser.add_argument("--data", required=True, help="dataset folder (with manifest.json)")
    parser.add_argument("--out", required=True, help="run folder for checkpoints and logs")
    parser.add_argument("--epochs", type=int, help="number of epochs (overrides the config)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last.pt (config taken from there)"
    )
    parser.add_argument(
        "--heads-only", action="store_true", help="freeze the backbone body; train the RPN and ROI heads (and the FPN)"
    )
    parser.add_argument("--freeze-fpn", action="store_true", help="with --heads-only: freeze the FPN too")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config)")
    parser.add_argument("--backbone-weights", help="ResNet state dict (.pt) to start the backbone from")
    parser.add_argument(
        "--init-weights",
        metavar="MODEL",
        help="start from the weights of a model file (all layers train; the model's own "
        "architecture replaces the config's model section), e.g. to continue a run "
        "with a fresh schedule",
    )
    parser.add_argument("--lr", type=float, help="learning rate (overrides the config)")
    parser.add_argument("--max-iters-per-epoch", type=int, help="cap on iterations per epoch (overrides the config)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, check=check_args)


def check_args(args: argparse.Namespace) -> None:
    """Options that go together, the device, the input files and the run folder, before torch loads."""
    from pathlib import Path

    from sectionseg.cli._checks import check_dataset_folder, check_device, check_input_file, check_output_folder
    from sectionseg.datasets.samples import read_manifest
    from sectionseg.model.config import load_config, preset_names

    if args.freeze_fpn and not args.heads_only:
        raise InputError("--freeze-fpn needs --heads-only")
    if args.init_weights and (args.resume or args.backbone_weights):
        raise InputError("--init-weights does not go with --resume or --backbone-weights")
    if args.lr is not None and args.resume:
        raise InputError("--lr does not go with --resume (the run keeps its schedule)")
    check_device(args.device)
    check_dataset_folder(args.data)
    if not args.resume:
        if args.config not in preset_names():
            check_input_file(args.config, "config file (or preset: " + ", ".join(preset_names()) + ")")
        load_config(args.config)  # torch-free: a bad key is refused now, not after loading torch
    for name in ("backbone_weights", "init_weights"):
        if getattr(args, name) is not None:
            check_input_file(getattr(args, name), f"--{name.replace('_', '-')} file")
    out = check_output_folder(args.out)
    if args.resume and not (Path(out) / "last.pt").is_file():
        raise InputError("nothing to resume: no last.pt in the run folder", out)
    if not args.resume and (Path(out) / "last.pt").exists():
        raise InputError("run folder already has a checkpoint; use --resume or another folder", out)
    read_manifest(args.data)


def run(args: argparse.Namespace) -> int:
    from sectionseg.workflows.train import train_model

    history = train_model(
        args.data,
        args.out,
        config=args.config,
        init_weights=args.init_weights,
        lr=args.lr,
        resume=args.resume,
        epochs=args.epochs,
        heads_only=args.heads_only,
        freeze_fpn=args.freeze_fpn,
        device=args.device,
        backbone_weights=args.backbone_weights,
        seed=args.seed,
        max_iters_per_epoch=args.max_iters_per_epoch,
        progress=not args.no_progress,
    )
    if history:
        last = history[-1]
        val = last.get("val_total")
        print(
            f"epoch {last['epoch']}: train loss {last['train_total']:.4f}"
            + (f", val loss {val:.4f}" if val is not None else "")
            + f"; run folder {args.out}"
        )
    return 0
