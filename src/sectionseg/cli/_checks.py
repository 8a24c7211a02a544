"""Argument checks shared by several commands (each raises InputError with a clear message)."""
from __future__ import annotations

from pathlib import Path

from sectionseg.errors import InputError


def check_device(device: str) -> None:
    """``cuda`` needs a CUDA device."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available")


def check_output_folder(out) -> Path:
    """The output folder may exist, but not as a file; returns it as a Path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", out)
    return out
