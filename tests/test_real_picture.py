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


# Gray alone, the bundled model (2026-11-30) takes each near-square section of this picture for one
# part; the split_merged repair cuts them at their shared edge, but the automatic scale estimate is
# then off by ~45 % (it measures those merged parts): a known failure of the real-wafer target (see
# BENCHMARKS.md, "Real picture"), kept here so that the day it passes is noticed. With the sections'
# size given (185 px), gray alone finds the section.
GRAY_ONLY_AUTO_SCALE = pytest.mark.xfail(reason="gray-only: the automatic scale is taken from merged sections",
                                         strict=False)


@pytest.mark.parametrize("with_fluo, section_size", [(True, None),
                                                     pytest.param(False, None, marks=GRAY_ONLY_AUTO_SCALE),
                                                     (False, 185.0)])
def test_the_whole_section_is_found_right_way_round(with_fluo, section_size):
    gray = read_image(PANEL / "gray.png")
    fluo = read_image(PANEL / "fluo.png") if with_fluo else None
    result = detect_wafer(gray, fluo, progress=False, workers=1, section_size=section_size)
    m = score_picture(result.sections + result.unpaired, PANEL / "gt")
    assert m["sections_correct"] == m["n_truth"] == 1
    assert m["sections_swapped"] == 0
    # centres within 8 px on a section 185 px long (2026-11-30: tissue 5.6 px off, its lower edge half
    # under a dummy strip; the ground truth is about 1-2 px accurate); gray alone the outline comes
    # from a mask of the whole section cut in two (tissue 8.8 px off): within 12 px
    limit = 8.0 if with_fluo else 12.0
    assert m["tissue"]["centre_error_median"] < limit and m["magnet"]["centre_error_median"] < limit
    assert m["false_on_dummies"] == 0
