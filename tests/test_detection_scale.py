"""The scale estimate's candidate search (:func:`sectionseg.detection.scale.estimate_scale`), with the
model's view of the sample tiles scripted."""

from __future__ import annotations

import numpy as np
import pytest

from sectionseg.detection import scale as scale_module
from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import WaferSource


def scripted_trials(monkeypatch, truth: float = 2.0):
    """Sections that look their training size at scale ``truth``. Below 1.5 the model pairs whole
    neighbouring sections with each other: they look about the training size there too, but only 40 %
    of its detections pair (as on the held-debris benchmark wafer gray alone)."""
    tried = []

    def trial(source, centres, cand, predictor, **kwargs):
        tried.append(round(cand, 3))
        if cand < 1.5:
            detections, paired, rel = 63, 25, 1.1 * cand
        else:
            detections, paired, rel = 64, 60, cand / truth
        return {
            "scale": cand,
            "detections": detections,
            "pairs": paired // 2,
            "paired": paired,
            "sections_seen": True,
            "per_megapixel": float(detections),
            "relative_size": rel,
        }

    monkeypatch.setattr(scale_module, "scale_trial", trial)
    return tried


def test_a_candidate_pairing_few_detections_does_not_end_the_search(monkeypatch):
    tried = scripted_trials(monkeypatch)
    source = WaferSource(np.zeros((64, 64), np.uint8))
    scale, info = scale_module.estimate_scale(source, None)
    assert scale == pytest.approx(2.0, rel=0.05), info
    assert tried[:3] == [1.0, 0.5, 2.0]  # 1.0 looked right but paired 40 %: 0.5 and 2.0 tried too
    # accepting any candidate that shows sections of about the training size (as before) stops at 1.0
    tried.clear()
    scale, _ = scale_module.estimate_scale(source, None, settings=RepairSettings(scale_accept_paired_share=0.0))
    assert tried[0] == 1.0 and 0.5 not in tried and scale < 1.5  # half the truth
