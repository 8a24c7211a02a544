"""The real MagC picture of ../shared/real/panel_b (a crop of a real wafer, never trained on) with the
bundled model: its one whole section is found, right way round, with and without fluorescence.
Skipped where ../shared is absent."""
from pathlib import Path

import pytest

from sectionseg.detection import detect_wafer
from sectionseg.evaluation.picture import score_picture
from sectionseg.io.images import read_image

PANEL = Path(__file__).resolve().parents[1].parent / "shared" / "real" / "panel_b"

pytestmark = pytest.mark.skipif(not PANEL.is_dir(), reason="no ../shared/real/panel_b")


# Gray alone, the bundled model (2026-11-30) still takes each near-square section of this picture for
# one part: a known failure of the real-wafer target (see BENCHMARKS.md, "Real picture"), kept here so
# that the day it passes is noticed.
GRAY_ONLY_MISSED = pytest.mark.xfail(reason="gray-only: the bundled model merges this picture's near-square "
                                            "sections into one part", strict=False)


@pytest.mark.parametrize("with_fluo", [True, pytest.param(False, marks=GRAY_ONLY_MISSED)])
def test_the_whole_section_is_found_right_way_round(with_fluo):
    gray = read_image(PANEL / "gray.png")
    fluo = read_image(PANEL / "fluo.png") if with_fluo else None
    result = detect_wafer(gray, fluo, progress=False, workers=1)
    m = score_picture(result.sections + result.unpaired, PANEL / "gt")
    assert m["sections_correct"] == m["n_truth"] == 1
    assert m["sections_swapped"] == 0
    # centres within 8 px on a section 185 px long (2026-11-30: tissue 5.6 px off, its lower edge half
    # under a dummy strip; the ground truth is about 1-2 px accurate)
    assert m["tissue"]["centre_error_median"] < 8.0 and m["magnet"]["centre_error_median"] < 8.0
    assert m["false_on_dummies"] == 0
