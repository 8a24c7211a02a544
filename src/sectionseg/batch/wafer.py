"""One wafer, from image files to a complete output set: the work of ``sectionseg detect``, shared by
``detect-batch`` (one call per wafer in a Dask task), ``finetune --detect`` and ``demo``.

:func:`detect_files` reads the images (memory-mapped TIFF, Zarr: never loaded whole), detects, and
writes every output as one set (:func:`sectionseg.export.write_detection_outputs`); its
``report.json`` records the inputs' fingerprints and the run key
(:mod:`sectionseg.batch.fingerprint`). :func:`existing_run` reads back what a previous run left in
an output folder, so that a batch can skip a wafer whose outputs are complete and current.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from pathlib import Path

from sectionseg.errors import InputError

log = logging.getLogger(__name__)

#: values of ``--serial-order``
SERIAL_ORDERS = ("index", "overview")


def load_inputs(gray_path, fluo_path=None):
    """Read (memory-map, or open lazily) the gray and optional fluorescence images; InputError when
    they are unusable or of different sizes. Nothing is written."""
    from sectionseg.io.images import read_image

    gray = read_image(gray_path)
    fluo = None
    if fluo_path is not None:
        fluo = read_image(fluo_path)
        if fluo.shape != gray.shape:
            raise InputError(
                f"fluorescence image is {fluo.shape[1]}x{fluo.shape[0]} px but the gray image "
                f"{gray_path} is {gray.shape[1]}x{gray.shape[0]} px; they must cover the same "
                "pixels",
                fluo_path,
            )
    return gray, fluo


def _warn_outside(landmarks, width: int, height: int, path) -> None:
    """Log a warning for landmarks outside the image (they are image px: likely another frame)."""
    outside = [k for k, (x, y) in enumerate(landmarks) if not (0 <= x <= width and 0 <= y <= height)]
    if outside:
        log.warning(
            "%s: landmarks %s lie outside the %dx%d px image; landmarks are image pixels",
            path,
            ", ".join(map(str, outside)),
            width,
            height,
        )


def resolve_model_path(model=None) -> Path:
    """The model file to use (``model`` or the bundled one); InputError when it is missing."""
    from sectionseg.model import default_model_path

    model_path = Path(model) if model is not None else default_model_path()
    if model is None and not model_path.is_file():
        raise InputError("the bundled model is missing from this installation; pass --model FILE", model_path)
    if not model_path.is_file():
        raise InputError(
            "model file not found" if not model_path.exists() else "model file expected, but this is a folder",
            model_path,
        )
    return model_path


def wafer_record(gray_path, fluo_path, landmarks_path, model_path, options: dict, hash_mode: str = "quick") -> dict:
    """The :func:`~sectionseg.batch.fingerprint.input_record` of one wafer's detection: ``options``
    are :func:`detect_files`'s keyword arguments (``settings``, a ``RepairSettings``, counts as the
    repair steps it switches off)."""
    from sectionseg.batch.fingerprint import input_record

    settings = options.get("settings")
    skipped = [] if settings is None else [s for s, on in settings.record()["steps"].items() if not on]
    return input_record(
        gray_path, fluo_path, landmarks_path, model_path, {**options, "skip_repair": skipped}, hash_mode
    )


def detect_files(
    gray_path,
    fluo_path,
    out_dir,
    *,
    model=None,
    magc_dialect: str = "magfinder",
    progress: bool = True,
    landmarks_path=None,
    pair_scale: float = 1.0,
    pair_integers: bool = False,
    serial_order: str = "index",
    record: dict | None = None,
    hash_mode: str = "quick",
    **detect_kwargs,
):
    """Detect the sections of image files and write every output into ``out_dir``.

    All inputs (images, landmarks, model, parameters) are checked before ``out_dir`` is created, so
    a bad input leaves nothing behind. ``landmarks_path``: landmark file (image px) for
    ``sections.magc``; ``pair_scale``, ``pair_integers``: MagC pair only; ``serial_order``:
    ``index`` or ``overview`` (:func:`serial_order_from_overview`); ``detect_kwargs`` go to
    :func:`sectionseg.detection.detect_wafer`. ``record``: the wafer's
    :func:`~sectionseg.batch.fingerprint.input_record` when the caller made it already (else it is
    made here, with ``hash_mode``). Returns ``(DetectionResult, {output name: path}, report dict)``.
    """
    import numpy as np

    from sectionseg.detection import detect_wafer
    from sectionseg.detection.parallel import worker_peak_memory_mb
    from sectionseg.export import write_detection_outputs
    from sectionseg.formats import read_landmarks
    from sectionseg.io.images import is_constant

    gray, fluo = load_inputs(gray_path, fluo_path)
    for image, path in ((gray, gray_path), (fluo, fluo_path)):
        if image is not None and is_constant(image):
            raise InputError(
                f"the image has the value {np.asarray(image[0, 0]).item():g} everywhere: nothing to detect", path
            )
    landmarks = None if landmarks_path is None else read_landmarks(landmarks_path)
    _warn_outside(landmarks or [], gray.shape[1], gray.shape[0], landmarks_path)
    if serial_order not in SERIAL_ORDERS:
        raise InputError(f"unknown serial order {serial_order!r}; choose one of {', '.join(SERIAL_ORDERS)}")
    if serial_order == "overview" and fluo is None:
        raise InputError("--serial-order overview needs --fluo (the beads are seen in the fluorescence image)")
    model_path = resolve_model_path(model)
    if record is None:
        record = wafer_record(
            gray_path,
            fluo_path,
            landmarks_path,
            model_path,
            {
                **detect_kwargs,
                "magc_dialect": magc_dialect,
                "pair_scale": pair_scale,
                "pair_integers": pair_integers,
                "serial_order": serial_order,
            },
            hash_mode,
        )
    t0 = time.perf_counter()
    result = detect_wafer(gray, fluo, model=model_path, progress=progress, **detect_kwargs)
    seconds = time.perf_counter() - t0
    report = result.report()
    report.update(
        {
            "inputs": {
                "gray": str(gray_path),
                "fluo": None if fluo_path is None else str(fluo_path),
                "width": int(gray.shape[1]),
                "height": int(gray.shape[0]),
                "landmarks": None if landmarks_path is None else str(landmarks_path),
                "fingerprints": record["fingerprints"],
                "options": record["options"],
                "version": record["version"],
            },
            "run_key": record["run_key"],
            "total_seconds": seconds,
            "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "worker_peak_memory_mb": worker_peak_memory_mb(),
            "magc_dialect": magc_dialect,
            "magc_pair": {"scale": float(pair_scale), "integers": bool(pair_integers)},
        }
    )
    order, write_order = None, None
    if serial_order == "overview":
        order, report["serial_order"], write_order = serial_order_from_overview(fluo, result.sections)
    else:
        report["serial_order"] = {
            "source": "index",
            "note": "placeholder: the section numbers; 'sectionseg "
            "order' puts the order from bead images into sections.magc",
        }
    paths = write_detection_outputs(
        out_dir,
        result.sections,
        result.unpaired,
        overlay_image=gray,
        report=report,
        magc_dialect=magc_dialect,
        image_path=gray_path,
        image_size=(int(gray.shape[1]), int(gray.shape[0])),
        landmarks=landmarks,
        pair_scale=pair_scale,
        pair_integers=pair_integers,
        rejected=result.rejected,
        serial_order=order,
        extra_files=write_order,
    )
    return result, paths, report


def serial_order_from_overview(fluo, sections):
    """The overview order of ``sections`` (:func:`sectionseg.serial.overview.overview_order`):
    ``(order or None, report entry, writer of OUT/order/ or None)``. ``order`` is None (the index
    order stays) when the beads are not resolved; the report entry says why, and how reliable a
    proposed order is."""
    from sectionseg.serial.overview import overview_order
    from sectionseg.serial.report import write_order_outputs

    ov = overview_order(fluo, sections)
    entry = ov.summary()
    entry["written"] = "overview" if ov.proposed else "index (placeholder: no order proposed)"
    if ov.proposed:
        entry["doubtful_links"] = [
            {"position": k, "from": link["from"], "to": link["to"], "doubts": link["doubts"]}
            for k, link in enumerate(ov.result.links)
            if link["doubts"]
        ]
        entry["report"] = "order/order_report.json"
        log.info(
            "serial order from the overview: %d sections, %d doubtful links, reliability %s",
            len(ov.order),
            entry["links_doubtful"],
            entry["reliability"],
        )
    else:
        log.warning("no serial order from the overview: %s", ov.reason)
    if not ov.proposed:
        return None, entry, None

    def write(stage):
        write_order_outputs(
            stage / "order",
            ov.result,
            settings=ov.settings.order_settings(),
            load_images=lambda i: [ov.crops[i]],
            pictures="doubtful",
            extra={
                "source": "overview",
                "ids": "section indices of sections.magc (0-based)",
                "overview": {k: v for k, v in entry.items() if k != "doubtful_links"},
            },
        )
        return ["order"]

    return ov.order, entry, write


def existing_run(out_dir: str | os.PathLike) -> dict | None:
    """The ``report.json`` of a complete detection output set in ``out_dir``, or None when there is
    none, or it is incomplete (a run interrupted while moving files in, a file of its set missing)
    or unreadable."""
    from sectionseg.io.outset import INCOMPLETE, set_entries

    out = Path(out_dir)
    if not out.is_dir() or (out / INCOMPLETE).exists():
        return None
    entries = set_entries(out)
    if not entries or "report.json" not in entries or not all((out / name).exists() for name in entries):
        return None
    try:
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None
