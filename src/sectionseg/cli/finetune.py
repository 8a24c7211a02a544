"""``sectionseg finetune``: adapt a model to a new wafer from a dozen hand-labelled sections.

Stages (each a plain API call; their times go into ``DIR/finetune_report.json``):

1. read the wafer and the labels; check the labels (inside the image, both parts, no bad overlap);
2. the working scale from the labelled sections' size (the base model's section size);
3. the wafer's other sections, roughly, with the classical detector and the base model, and every
   area that is not bare wafer (``content_regions``, no detector needed): all painted out of the
   backgrounds and context tiles, so unlabelled sections are never shown to the model as background
   even on a wafer where both detectors fail;
4. the adaptation dataset (``DIR/data``): synthetic pastes of the labelled sections + context tiles;
5. fine-tuning from the base model (``DIR/run``: resumable run folder, losses.png, log.csv);
6. ``DIR/model.pt``, the adapted model (loadable by ``detect --model``; it records the section size);
7. base vs adapted model on the held-out validation images (``DIR/eval_val_{base,adapted}``);
8. with ``--detect``: detection on the whole wafer with the adapted model (``DIR/detection``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from sectionseg.cli._checks import (
    check_device,
    check_image_file,
    check_input_file,
    check_input_path,
    check_output_folder,
)
from sectionseg.errors import InputError

#: blobs of content at least this x the labelled tissue area are painted out of backgrounds and context
CONTENT_MIN_AREA = 0.3


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune", help="adapt a model to a new wafer from a dozen hand-labelled sections",
        description="Build artificial training images from the labelled sections of this wafer (pasted onto "
                    "its own background) plus tiles around them, fine-tune the base model (heads by "
                    "default), write DIR/model.pt (use it with 'detect --model'), its loss curves and "
                    "DIR/finetune_report.json; optionally detect on the whole wafer (--detect).")
    p.add_argument("gray", help="brightfield (gray) wafer image: TIFF, PNG or JPEG")
    p.add_argument("--fluo", help="fluorescence image of the same pixels (recommended)")
    p.add_argument("--labels", required=True,
                   help="a dozen or so labelled sections of this wafer: labelme JSON, MagC pair or .magc")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply label coordinates, e.g. 0.3333 for full-resolution labels (default 1)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--base-model", help="model to start from (default: the bundled model)")
    p.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs (default 6)")
    p.add_argument("--all-layers", action="store_true", help="train every layer, not only the heads and FPN")
    p.add_argument("--lr", type=float, help="learning rate (default 3e-4)")
    p.add_argument("--synthetic", type=int, default=80, help="synthetic training images (default 80)")
    p.add_argument("--val", type=int, default=10, help="synthetic validation images (default 10)")
    p.add_argument("--image-size", type=int, default=512, help="side of the generated images, px (default 512)")
    p.add_argument("--max-iters-per-epoch", type=int, help="cap on iterations per epoch")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted fine-tuning in --out")
    p.add_argument("--detect", action="store_true", help="then detect on the whole wafer (DIR/detection)")
    p.add_argument("--no-content-regions", action="store_true",
                   help="paint out only what the detectors find, not every area that is no bare wafer "
                        "(for comparison; the default paints out both)")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="minimum detection score for --detect (default: detect's)")
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
    out = check_output_folder(args.out)
    if not args.resume and (out / "run" / "last.pt").exists():
        raise InputError("the folder already holds a fine-tuning run; use --resume or another --out", out)
    if args.resume and not (out / "data" / "manifest.json").is_file():
        raise InputError("nothing to resume: no fine-tuning data in the folder", out)


def _base_model(path) -> Path:
    from sectionseg.model import default_model_path

    base = Path(path) if path else default_model_path()
    if not base.is_file():
        raise InputError("base model not found" if path else "the bundled model is missing; pass --base-model",
                         base)
    return base


def prepare_data(args, gray, fluo, labelled, data_dir: Path, reference: float, timings: dict,
                 base: Path) -> dict:
    """Stages 2-4: working scale (sections ``reference`` px long, the base model's size), occupied
    areas (sections the classical detector or the base model find: painted out of the backgrounds, so
    that no unlabelled section is taught as background), adaptation dataset. Returns the dataset's
    parameters."""
    import numpy as np

    from sectionseg.datasets.adapt import build_adaptation_set, content_regions, rescale_wafer
    from sectionseg.detection import detect_wafer
    from sectionseg.detection.classical import detect_classical
    from sectionseg.geometry.scale import REFERENCE_SECTION_SIZE, median_section_size, working_scale
    from sectionseg.io.images import compose_rgb
    from sectionseg.io.outset import output_set

    size = median_section_size(labelled)
    scale = working_scale(size, reference)
    t = time.perf_counter()
    occupied = detect_classical(gray, fluo)
    found = detect_wafer(gray, fluo, model=base, section_size=size, device=args.device, progress=False)
    occupied += found.sections + found.unpaired
    timings["occupied"] = time.perf_counter() - t
    # as many sections per image area as for a model of full-size sections
    density = (REFERENCE_SECTION_SIZE / reference) ** 2
    per_image = (max(2, round(2 * density)), max(6, round(6 * density)))
    t = time.perf_counter()
    rgb = compose_rgb(gray, fluo, gray_name=str(args.gray), fluo_name=str(args.fluo)).rgb
    rgb, labelled_w, occupied_w = rescale_wafer(rgb, labelled, scale, occupied)
    # what is no bare wafer, found without any detector: on a wafer the base model does not know, the
    # detectors miss most sections, and those must not be taught as background either
    part_area = float(np.median([s.tissue.area for s in labelled_w]))
    content = [] if getattr(args, "no_content_regions", False) else \
        content_regions(rgb, labelled_w, min_area=CONTENT_MIN_AREA * part_area)
    params = {"section_size": size, "working_scale": scale, "labels": str(args.labels),
              "image": str(args.gray), "fluo": args.fluo, "occupied_sections": len(occupied)}
    with output_set(data_dir, "finetune") as stage:  # the whole data set or none: --resume needs it whole
        manifest = build_adaptation_set(stage, rgb, labelled_w, occupied=occupied_w, content=content,
                                        n_synthetic=args.synthetic,
                                        sections_per_image=per_image,
                                        n_val=args.val, size=args.image_size, seed=args.seed,
                                        source=str(args.gray), params=params, progress=not args.no_progress)
    timings["dataset"] = time.perf_counter() - t
    return manifest["params"]


def _val_ap(model, data_dir: Path, out_dir: Path, device: str) -> dict:
    """Mask AP50 / recall50 per class on the validation images."""
    from sectionseg.evaluation.report import evaluate_model

    results, _ = evaluate_model(model, data_dir, out_dir, split="val", device=device, progress=False)
    segm = results["segm"]
    return {name: {"AP50": segm[name]["ap50"], "R50": segm[name]["recall50"]} for name in ("tissue", "magnet")}


def run(args: argparse.Namespace) -> int:
    from sectionseg.batch.wafer import detect_files, load_inputs
    from sectionseg.datasets.adapt import check_labels
    from sectionseg.formats import read_sections
    from sectionseg.io.atomic import write_text
    from sectionseg.io.jsontext import dumps as strict_json
    from sectionseg.model.checkpoint import load_config_of
    from sectionseg.training.finetune import export_adapted, finetune

    base = _base_model(args.base_model)
    out = Path(args.out)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    gray, fluo = load_inputs(args.gray, args.fluo)
    labelled = read_sections(args.labels, scale=args.scale)
    check_labels(labelled, gray.shape[1], gray.shape[0], args.labels)
    timings["read"] = time.perf_counter() - t
    data_dir = out / "data"
    if args.resume:
        params = json.loads((data_dir / "manifest.json").read_text())["params"]
    else:
        reference = load_config_of(base).data.section_size
        params = prepare_data(args, gray, fluo, labelled, data_dir, reference, timings, base)

    t = time.perf_counter()
    progress = not args.no_progress and sys.stderr.isatty()
    history = finetune(base, data_dir, out / "run", epochs=args.epochs, all_layers=args.all_layers, lr=args.lr,
                       resume=args.resume, device=args.device, seed=args.seed,
                       max_iters_per_epoch=args.max_iters_per_epoch, progress=progress)
    timings["training"] = time.perf_counter() - t
    model_path = export_adapted(out / "run", out / "model.pt", section_size=params["section_size"],
                                base_model=base, info={"labels": str(args.labels), "n_labelled": len(labelled)})

    t = time.perf_counter()
    val = {"base": _val_ap(base, data_dir, out / "eval_val_base", args.device),
           "adapted": _val_ap(model_path, data_dir, out / "eval_val_adapted", args.device)}
    timings["validation"] = time.perf_counter() - t
    report = {"base_model": str(base), "model": str(model_path), "labels": str(args.labels),
              "n_labelled": len(labelled), "section_size": params["section_size"],
              "working_scale": params["working_scale"], "all_layers": args.all_layers, "epochs": args.epochs,
              "data": {k: params.get(k) for k in ("n_synthetic", "n_val", "size", "occupied_unlabelled")},
              "history": history, "validation_mask": val, "timings_s": timings,
              "losses_png": str(out / "run" / "losses.png")}
    if args.detect:
        t = time.perf_counter()
        kwargs = {} if args.score_threshold is None else {"score_threshold": args.score_threshold}
        result, paths, _ = detect_files(args.gray, args.fluo, out / "detection", model=model_path,
                                        progress=progress, device=args.device, **kwargs)
        timings["detection"] = time.perf_counter() - t
        report["detection"] = {"counts": result.counts, "outputs": {k: os.fspath(v) for k, v in paths.items()}}
    report["total_seconds"] = sum(timings.values())
    write_text(out / "finetune_report.json", strict_json(report, indent=1, default=float) + "\n")
    _print_summary(report, out)
    return 0


def _print_summary(report: dict, out: Path) -> None:
    val = report["validation_mask"]
    print(f"adapted model: {report['model']} ({report['n_labelled']} labelled sections, section size "
          f"{report['section_size']:.0f} px, {report['total_seconds']:.0f} s)")
    print("validation mask AP50 / recall50   base -> adapted")
    for name in ("tissue", "magnet"):
        b, a = val["base"].get(name, {}), val["adapted"].get(name, {})
        print(f"  {name:7s} {_fmt(b.get('AP50'))} / {_fmt(b.get('R50'))} -> {_fmt(a.get('AP50'))} / "
              f"{_fmt(a.get('R50'))}")
    if "detection" in report:
        c = report["detection"]["counts"]
        print(f"detection: {c['sections']} sections, {c['unpaired']} unpaired parts -> {out / 'detection'}")
    print(f"report: {out / 'finetune_report.json'}")


def _fmt(value) -> str:
    return "  -  " if value is None else f"{value:.3f}"
