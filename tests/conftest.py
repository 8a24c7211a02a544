"""Shared fixtures. ``REAL_LAYOUTS`` points at ../shared/data/real_layouts beside the repo (may be absent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_LAYOUTS = REPO.parent / "shared" / "data" / "real_layouts"


@pytest.fixture
def real_layouts() -> Path:
    if not (REAL_LAYOUTS / "wafer1" / "source_sections_tissue.txt").is_file():
        pytest.skip("../shared/data/real_layouts is not available")
    return REAL_LAYOUTS


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
