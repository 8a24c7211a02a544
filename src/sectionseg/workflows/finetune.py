"""Adapting a model to a new wafer from a dozen hand-labelled sections (``sectionseg finetune``).

Stages (each a plain API call; their times go into the report, ``OUT/finetune_report.json``):

1. read the wafer and the labels; check the labels (inside the image, both parts, no bad overlap);
2. the working scale from the labelled sections' size (the base model's section size,
   :func:`sectionseg.geometry.scale.working_scale`);
3. the wafer's other sections, roughly, with the classical detector and the base model, and every
   area that is not bare wafer (:func:`sectionseg.datasets.adapt.content_regions`, no detector
   needed): all painted out of the backgrounds and context tiles, so unlabelled sections are never
   shown to the model as background even on a wafer where both detectors fail;
4. the adaptation dataset (``OUT/data``): synthetic pastes of the labelled sections + context tiles;
5. fine-tuning from the base model (``OUT/run``: resumable run folder, ``losses.png``, ``log.csv``);
6. ``OUT/model.pt``, the adapted model (loadable by ``detect --model``; it records the section size);
7. base vs adapted model on the held-out validation images (``OUT/eval_val_{base,adapted}``);
8. optionally detection on the whole wafer with the adapted model (``OUT/detection``).

Importing this module loads neither torch nor the detection stage.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sectionseg.errors import InputError

if TYPE_CHECKING:
    from sectionseg.geometry.section import Section

#: blobs of content at least this x the labelled tissue area are painted out of backgrounds and context
CONTENT_MIN_AREA = 0.3
#: fine-tuning epochs and synthetic training images by default: on the alien benchmark wafer (gray
#: alone, 12 labels) 10 x 120 gives section F1 0.737 against 0.658 for 6 x 80 (one draw each; draws
#: differ by about 0.09 there), in 11-12 min on 2 CPU cores (the issue's budget: 15 min); BENCHMARKS.md
DEFAULT_EPOCHS = 10
DEFAULT_SYNTHETIC = 120
#: the fine-tuning report in the output folder
REPORT_NAME = "finetune_report.json"


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _name(value: Any) -> str | None:
    """What the report records for an input: its path, None, or ``"(array)"`` / ``"(sections)"``."""
    if value is None or _is_path(value):
        return None if value is None else os.fspath(value)
    return "(sections)" if isinstance(value, (list, tuple)) else "(array)"


def base_model_path(path: str | os.PathLike | None = None) -> Path:
    """The base model file: ``path``, or the bundled model when None; InputError when it is missing."""
    from sectionseg.model import default_model_path

    base = Path(path) if path else default_model_path()
    if not base.is_file():
        raise InputError("base model not found" if path else "the bundled model is missing; pass --base-model", base)
    return base


def check_adaptation_folder(out_dir: str | os.PathLike, resume: bool = False) -> None:
    """InputError when ``out_dir`` already holds a fine-tuning run and ``resume`` is False, or holds
    no adaptation dataset to resume from and ``resume`` is True. Reads nothing else, writes nothing."""
    out = Path(out_dir)
    if not resume and (out / "run" / "last.pt").exists():
        raise InputError("the folder already holds a fine-tuning run; use --resume or another --out", out)
    if resume and not (out / "data" / "manifest.json").is_file():
        raise InputError("nothing to resume: no fine-tuning data in the folder", out)


def prepare_adaptation_data(
    gray: np.ndarray,
    fluo: np.ndarray | None,
    labelled: list[Section],
    data_dir: str | os.PathLike,
    *,
    base_model: str | os.PathLike,
    reference: float,
    n_synthetic: int = DEFAULT_SYNTHETIC,
    n_val: int = 10,
    image_size: int = 512,
    seed: int = 0,
    use_content_regions: bool = True,
    crowd: str = "paint",
    device: str = "cpu",
    progress: bool = False,
    sources: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Write the adaptation dataset of a wafer into ``data_dir`` (stages 2-4 of the module docstring).

    Parameters
    ----------
    gray, fluo : ndarray
        The wafer's brightfield and (optional) fluorescence images, ``(H, W)`` uint8 or uint16, same size.
    labelled : list of Section
        The hand-labelled sections, in px of ``gray``.
    data_dir : path
        The dataset folder (written as one set: ``images/``, ``annotations/``, ``masks/``, ``manifest.json``).
    base_model : path
        Model file that finds the wafer's unlabelled sections (painted out of the backgrounds).
    reference : float
        Section size (long side, px) the base model was trained at (its ``data.section_size``); the
        wafer is brought to the working scale where its sections have that size.
    n_synthetic, n_val : int
        Synthetic training and validation images; ``image_size``: their side, px.
    seed : int
        Random seed of the dataset.
    use_content_regions : bool
        Also count every area that is no bare wafer as unknown (False: only what the detectors find).
    crowd : str
        What the images do with the wafer's unknown areas (:data:`sectionseg.datasets.adapt.CROWD_MODES`):
        ``"paint"`` paints them over (the default), ``"ignore"`` keeps them and leaves them out of the loss.
    device : str
        Torch device of the base model (``"cpu"``, ``"cuda"``).
    sources : dict, optional
        ``image``, ``fluo``, ``labels``: names recorded in the manifest (paths of the inputs).
    timings : dict, optional
        Receives the seconds of ``occupied`` and ``dataset``.

    Returns
    -------
    dict
        The dataset's parameters (``manifest["params"]``): ``section_size`` (source px),
        ``working_scale`` (working px per source px), counts and the arguments.
    """
    from sectionseg.datasets.adapt import build_adaptation_set, content_regions, rescale_wafer, unknown_areas
    from sectionseg.detection import detect_wafer
    from sectionseg.detection.classical import detect_classical
    from sectionseg.geometry.scale import REFERENCE_SECTION_SIZE, median_section_size, working_scale
    from sectionseg.io.images import compose_rgb
    from sectionseg.io.outset import output_set

    sources = dict(sources or {})
    timings = {} if timings is None else timings
    size = median_section_size(labelled)
    scale = working_scale(size, reference)
    t = time.perf_counter()
    occupied = detect_classical(gray, fluo)
    found = detect_wafer(gray, fluo, model=base_model, section_size=size, device=device, progress=False)
    occupied += found.sections + found.unpaired
    timings["occupied"] = time.perf_counter() - t
    # as many sections per image area as for a model of full-size sections
    density = (REFERENCE_SECTION_SIZE / reference) ** 2
    per_image = (max(2, round(2 * density)), max(6, round(6 * density)))
    t = time.perf_counter()
    rgb = compose_rgb(gray, fluo, gray_name=str(sources.get("image")), fluo_name=str(sources.get("fluo"))).rgb
    rgb, labelled_w, occupied_w = rescale_wafer(rgb, labelled, scale, occupied)
    # what is no bare wafer, found without any detector: on a wafer the base model does not know, the
    # detectors miss most sections, and those must not be taught as background either
    part_area = float(np.median([s.tissue.area for s in labelled_w if s.tissue is not None]))
    content = content_regions(rgb, labelled_w, min_area=CONTENT_MIN_AREA * part_area) if use_content_regions else []
    # left out of the loss, an area wrongly called unknown costs little: texture finds more than levels
    unknown = unknown_areas(rgb, labelled_w, part_area=part_area) if use_content_regions and crowd == "ignore" else None
    params = {
        "section_size": size,
        "working_scale": scale,
        "labels": sources.get("labels"),
        "image": sources.get("image"),
        "fluo": sources.get("fluo"),
        "occupied_sections": len(occupied),
    }
    with output_set(data_dir, "finetune") as stage:  # the whole data set or none: resuming needs it whole
        manifest = build_adaptation_set(
            stage,
            rgb,
            labelled_w,
            occupied=occupied_w,
            content=content,
            unknown=unknown,
            n_synthetic=n_synthetic,
            sections_per_image=per_image,
            n_val=n_val,
            size=image_size,
            seed=seed,
            crowd=crowd,
            source=str(sources.get("image")),
            params=params,
            progress=progress,
        )
    timings["dataset"] = time.perf_counter() - t
    return manifest["params"]


def _val_ap(model, data_dir: Path, out_dir: Path, device: str) -> dict:
    """Mask AP50 / recall50 per class on the validation images."""
    from sectionseg.evaluation.report import evaluate_model

    results, _ = evaluate_model(model, data_dir, out_dir, split="val", device=device, progress=False)
    segm = results["segm"]
    return {name: {"AP50": segm[name]["ap50"], "R50": segm[name]["recall50"]} for name in ("tissue", "magnet")}


def _read_wafer(gray, fluo) -> tuple[np.ndarray, np.ndarray | None]:
    """The images from paths (memory-mapped, :func:`sectionseg.batch.wafer.load_inputs`) or arrays."""
    from sectionseg.batch.wafer import load_inputs
    from sectionseg.io.images import read_image

    if _is_path(gray) and (fluo is None or _is_path(fluo)):
        return load_inputs(gray, fluo)
    gray = read_image(gray) if _is_path(gray) else np.asarray(gray)
    if fluo is not None:
        fluo = read_image(fluo) if _is_path(fluo) else np.asarray(fluo)
        if fluo.shape != gray.shape:
            raise InputError(
                f"fluorescence image is {fluo.shape[1]}x{fluo.shape[0]} px but the gray image is "
                f"{gray.shape[1]}x{gray.shape[0]} px; they must cover the same pixels"
            )
    return gray, fluo


def adapt_to_wafer(
    gray: str | os.PathLike | np.ndarray,
    labels: str | os.PathLike | list[Section],
    out_dir: str | os.PathLike,
    *,
    fluo: str | os.PathLike | np.ndarray | None = None,
    label_scale: float = 1.0,
    base_model: str | os.PathLike | None = None,
    epochs: int = DEFAULT_EPOCHS,
    all_layers: bool = True,
    lr: float | None = None,
    n_synthetic: int = DEFAULT_SYNTHETIC,
    n_val: int = 10,
    image_size: int = 512,
    max_iters_per_epoch: int | None = None,
    seed: int = 0,
    resume: bool = False,
    use_content_regions: bool = True,
    crowd: str = "paint",
    detect: bool = False,
    score_threshold: float | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Adapt a model to a new wafer from a dozen or so hand-labelled sections.

    Builds training images from the labelled sections (pasted onto the wafer's own background, plus
    crops around them), fine-tunes the base model on them, writes the adapted model and compares it
    with the base model on held-out validation images; optionally detects on the whole wafer with it.
    The work of ``sectionseg finetune``.

    Parameters
    ----------
    gray : path or ndarray
        The wafer's brightfield image: a TIFF / PNG / JPEG / Zarr path, or a ``(H, W)`` uint8 / uint16 array.
    labels : path or list of Section
        The labelled sections: an annotation file (labelme JSON, MagC pair, ``.magc``, COCO) or
        :class:`~sectionseg.geometry.Section` objects, in px of ``gray`` (after ``label_scale``);
        each needs its tissue and its magnet part.
    out_dir : path
        Output folder: ``data/`` (the adaptation dataset), ``run/`` (the resumable fine-tuning run,
        ``losses.png``, ``log.csv``), ``model.pt`` (the adapted model, for ``detect --model`` or
        :func:`sectionseg.detection.detect_wafer`), ``eval_val_base/``, ``eval_val_adapted/``,
        ``finetune_report.json`` (the returned report) and with ``detect`` ``detection/``.
    fluo : path or ndarray, optional
        The fluorescence image of the same pixels (recommended: it shows the magnets).
    label_scale : float
        Multiplies the coordinates of a label file (e.g. 1/3 for full-resolution labels on an image
        downsized by 3); ignored when ``labels`` are sections.
    base_model : path, optional
        Model file to start from (default: the bundled model).
    epochs : int
        Fine-tuning epochs; with ``resume`` the total the run is continued to.
    all_layers : bool
        Train every layer (the default); False: the backbone body stays frozen and only the FPN, RPN
        and ROI heads train (the original MagC recipe: on the benchmark's held-out wafers, section F1
        0.872 / 0.977 / 0.988 against 0.960 / 1.000 / 0.984 for every layer, BENCHMARKS.md).
    lr : float, optional
        Learning rate (default :data:`sectionseg.training.finetune.FINETUNE_TRAIN` ``["lr"]``, 3e-4).
    n_synthetic, n_val : int
        Synthetic training and validation images; ``image_size``: their side, px at the working scale.
    max_iters_per_epoch : int, optional
        Cap on the iterations of an epoch.
    seed : int
        Random seed of the dataset and of training.
    resume : bool
        Continue an interrupted run in ``out_dir`` (the dataset in ``out_dir/data`` is kept as it is).
    use_content_regions : bool
        Count every area that is no bare wafer as unknown, as well as what the detectors find
        (False: only the latter; for comparison).
    crowd : str
        ``"paint"`` (the default): the unknown areas are painted over with background; ``"ignore"``:
        they stay in the training images and out of the loss (no better on the benchmark wafers).
    detect : bool
        Then detect on the whole wafer with the adapted model into ``out_dir/detection`` (``gray`` and
        ``fluo`` must then be paths).
    score_threshold : float, optional
        Minimum detection score of that detection (default: that of ``detect``).
    device : str
        Torch device, ``"cpu"`` or ``"cuda"``.
    progress : bool
        Progress bars (those of training and detection only when stderr is a terminal).

    Returns
    -------
    dict
        The report written to ``out_dir/finetune_report.json``: ``model`` (the adapted model's path),
        ``base_model``, ``n_labelled``, ``section_size`` (median long side of the labelled sections,
        px of ``gray``), ``working_scale`` (working px per px of ``gray``), ``history`` (per-epoch
        losses), ``validation_mask`` (mask AP50 / recall50 per class, base and adapted), ``timings_s``
        and ``total_seconds`` (s), and with ``detect`` ``detection`` (counts and output paths).

    Raises
    ------
    InputError
        Bad labels (outside the image, a part missing, overlapping), unreadable images, a missing
        base model, or an output folder that holds a run (without ``resume``) or none (with it).
    """
    from sectionseg.batch.wafer import detect_files
    from sectionseg.datasets.adapt import check_labels
    from sectionseg.formats import read_sections
    from sectionseg.io.atomic import write_text
    from sectionseg.io.jsontext import dumps as strict_json
    from sectionseg.model.checkpoint import load_config_of
    from sectionseg.training.finetune import export_adapted, finetune

    if detect and not (_is_path(gray) and (fluo is None or _is_path(fluo))):
        raise ValueError("detect=True needs the images as files (gray and fluo paths)")
    base = base_model_path(base_model)
    out = Path(out_dir)
    check_adaptation_folder(out, resume)
    sources = {"image": _name(gray), "fluo": _name(fluo), "labels": _name(labels)}
    timings: dict[str, float] = {}
    t = time.perf_counter()
    gray_image, fluo_image = _read_wafer(gray, fluo)
    if isinstance(labels, (str, os.PathLike)):
        labelled, label_file = read_sections(labels, scale=label_scale), labels
    else:
        labelled, label_file = list(labels), None
    check_labels(labelled, gray_image.shape[1], gray_image.shape[0], label_file)
    timings["read"] = time.perf_counter() - t
    data_dir = out / "data"
    if resume:
        params = json.loads((data_dir / "manifest.json").read_text())["params"]
    else:
        params = prepare_adaptation_data(
            gray_image,
            fluo_image,
            labelled,
            data_dir,
            base_model=base,
            reference=load_config_of(base).data.section_size,
            n_synthetic=n_synthetic,
            n_val=n_val,
            image_size=image_size,
            seed=seed,
            use_content_regions=use_content_regions,
            crowd=crowd,
            device=device,
            progress=progress,
            sources=sources,
            timings=timings,
        )

    t = time.perf_counter()
    bars = progress and sys.stderr.isatty()
    history = finetune(
        base,
        data_dir,
        out / "run",
        epochs=epochs,
        all_layers=all_layers,
        lr=lr,
        resume=resume,
        device=device,
        seed=seed,
        max_iters_per_epoch=max_iters_per_epoch,
        progress=bars,
    )
    timings["training"] = time.perf_counter() - t
    model_path = export_adapted(
        out / "run",
        out / "model.pt",
        section_size=params["section_size"],
        base_model=base,
        info={"labels": sources["labels"], "n_labelled": len(labelled)},
    )

    t = time.perf_counter()
    val = {
        "base": _val_ap(base, data_dir, out / "eval_val_base", device),
        "adapted": _val_ap(model_path, data_dir, out / "eval_val_adapted", device),
    }
    timings["validation"] = time.perf_counter() - t
    report: dict[str, Any] = {
        "base_model": str(base),
        "model": str(model_path),
        "labels": sources["labels"],
        "n_labelled": len(labelled),
        "section_size": params["section_size"],
        "working_scale": params["working_scale"],
        "all_layers": all_layers,
        "epochs": epochs,
        "data": {k: params.get(k) for k in ("n_synthetic", "n_val", "size", "occupied_unlabelled")},
        "history": history,
        "validation_mask": val,
        "timings_s": timings,
        "losses_png": str(out / "run" / "losses.png"),
    }
    if detect:
        t = time.perf_counter()
        kwargs: dict[str, Any] = {} if score_threshold is None else {"score_threshold": score_threshold}
        result, paths, _ = detect_files(
            gray, fluo, out / "detection", model=model_path, progress=bars, device=device, **kwargs
        )
        timings["detection"] = time.perf_counter() - t
        report["detection"] = {"counts": result.counts, "outputs": {k: os.fspath(v) for k, v in paths.items()}}
    report["total_seconds"] = sum(timings.values())
    write_text(out / REPORT_NAME, strict_json(report, indent=1, default=float) + "\n")
    return report
