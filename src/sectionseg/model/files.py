"""Where the package's model file lives (no torch import: the CLI checks it before loading torch)."""

from __future__ import annotations

from pathlib import Path


def default_model_path() -> Path:
    """Path of the model bundled inside the package (it may be absent in a development tree)."""
    return Path(__file__).resolve().parents[1] / "data" / "default_model.pt"
