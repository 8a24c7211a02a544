"""The demonstration of ``sectionseg demo``: a simulated wafer, detected and compared with its truth."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sectionseg.errors import InputError


@dataclass
class DemoResult:
    """What :func:`run_demo` did: ``simulation`` (the simulator's summary: ``n_sections``, ``style``...),
    ``detection`` (the :class:`~sectionseg.detection.DetectionResult`), ``outputs`` (name -> path of
    each detection output), ``metrics`` (:func:`sectionseg.evaluation.compare_sections` of the
    detected parts against the ground truth), ``simulate_seconds`` and ``detect_seconds`` (s)."""

    simulation: dict[str, Any]
    detection: Any
    outputs: dict[str, Path]
    metrics: dict[str, Any]
    simulate_seconds: float
    detect_seconds: float


def run_demo(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    size: int = 2000,
    model: str | os.PathLike | None = None,
    on_simulated=None,
) -> DemoResult:
    """Simulate a ``size`` x ``size`` px wafer (default style) into ``out_dir`` with its ground truth
    (``gray.tif``, ``fluo.tif``, ``sections.labelme.json``, ``sections.magc``...), detect its sections
    with ``model`` (default: the bundled model) into ``out_dir/detection`` and compare them with the
    ground truth.

    ``on_simulated(summary, seconds)``, when given, is called between simulation and detection (the
    command line prints there). InputError when the model file is missing (before simulating).
    """
    from sectionseg.batch.wafer import detect_files
    from sectionseg.evaluation import compare_sections
    from sectionseg.formats import read_sections
    from sectionseg.model import default_model_path
    from sectionseg.simulation import simulate_wafer

    model_path = Path(model) if model else default_model_path()
    if not model_path.is_file():  # say so before simulating anything
        raise InputError("the bundled model is missing from this installation (the demo needs it)", model_path)
    out = Path(out_dir)
    t0 = time.perf_counter()
    summary = simulate_wafer(out, seed=seed, width=size, height=size)
    t_sim = time.perf_counter() - t0
    if on_simulated is not None:
        on_simulated(summary, t_sim)
    t0 = time.perf_counter()
    result, paths, _ = detect_files(
        out / "gray.tif", out / "fluo.tif", out / "detection", model=model_path, progress=False
    )
    t_detect = time.perf_counter() - t0
    truth = read_sections(out / "sections.labelme.json")
    metrics = compare_sections(truth, result.sections + result.unpaired)
    return DemoResult(summary, result, paths, metrics, t_sim, t_detect)
