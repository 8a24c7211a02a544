"""Shared fixtures. ``REAL_LAYOUTS`` points at ../shared/data/real_layouts beside the repo (may be absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Qt without a display (the GUI tests; set before anything loads Qt)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Tests that need a QApplication are skipped, with the reason, when a child process cannot create
    one (asked once per session, only when such a test was collected): on a machine without Qt's
    system libraries Qt aborts the process that tries, which would end the whole test run."""
    from qt_probe import QT_FIXTURES, qt_problem

    needing = [item for item in items if QT_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if not needing:
        return
    problem = qt_problem()
    if problem:
        for item in needing:
            item.add_marker(pytest.mark.skip(reason=problem))


REAL_LAYOUTS = REPO.parent / "shared" / "data" / "real_layouts"


@pytest.fixture
def real_layouts() -> Path:
    if not (REAL_LAYOUTS / "wafer1" / "source_sections_tissue.txt").is_file():
        pytest.skip("../shared/data/real_layouts is not available")
    return REAL_LAYOUTS


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one torch thread is faster than two fighting over a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """An untrained ``tiny`` model file (enough to run whole commands)."""
    import torch

    from sectionseg.model import build_model, load_config, save_model

    torch.manual_seed(0)
    cfg = load_config("tiny")
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(path, build_model(cfg.model), cfg)
    return path
