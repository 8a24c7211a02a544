"""Whole-wafer detection with the Mask R-CNN model: tiling, inference, merging, scale, pipeline.

Names load on first use, so that light modules of the package (e.g. ``detection.settings`` read by the
command line before any work) do not import torch.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "Detection": "inference",
    "model_predictor": "inference",
    "predict_tiles": "inference",
    "merge_detections": "merge",
    "DetectionResult": "pipeline",
    "detect_wafer": "pipeline",
    "estimate_scale": "scale",
    "scale_from_section_size": "scale",
    "Tile": "tiling",
    "WaferSource": "tiling",
    "plan_tiles": "tiling",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
