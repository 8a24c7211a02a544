"""Step ``reserve_sections``: sections the model saw only below the score threshold, where nothing
confident lies (:mod:`sectionseg.detection.reserve`)."""

from __future__ import annotations

import pytest
from detection_fakes import detect_scripted, rectangle
from test_detection_post import regular, section
from test_detection_wafer_relation import draw

from sectionseg.detection.settings import RepairSettings
from sectionseg.evaluation import compare_sections

LOW = 0.5  # between the reserve score (0.3) and the score threshold (0.7)


def _confident(sections):
    return [(1, s.tissue.polygon) for s in sections] + [(2, s.magnet.polygon) for s in sections]


@pytest.mark.parametrize("fluo_on", [True, False])
def test_a_section_seen_only_with_low_scores_is_reported_where_nothing_else_lies(fluo_on):
    truth = regular() + [section(300, 200, angle=15.0)]
    gray, fluo = draw(640, 900, truth, fluo_on=fluo_on)
    last = truth[-1]
    parts = _confident(truth[:-1]) + [(1, last.tissue.polygon, LOW), (2, last.magnet.polygon, LOW)]
    result = detect_scripted(parts, gray, fluo)
    assert result.counts["sections_from_reserve"] == 1
    m = compare_sections(truth, result.sections)
    assert m["sections_correct"] == len(truth) and m["sections_swapped"] == 0
    found = [s for s in result.sections if s.extra.get("recovered") == "reserve pair"]
    assert len(found) == 1 and found[0].score == pytest.approx(LOW, abs=0.01)
    # switched off, the low-score pair waits in reserve and is not reported
    off = detect_scripted(parts, gray, fluo, RepairSettings().without("reserve_sections"))
    assert off.counts["sections_from_reserve"] == 0 and len(off.sections) == len(truth) - 1


def test_a_lone_low_score_part_gets_its_partner_from_the_image():
    truth = regular() + [section(300, 200, angle=15.0)]
    gray, fluo = draw(640, 900, truth, fluo_on=False)
    parts = _confident(truth[:-1]) + [(1, truth[-1].tissue.polygon, LOW)]  # its magnet not seen at all
    result = detect_scripted(parts, gray, fluo)
    assert [s.extra.get("recovered") for s in result.sections].count("reserve with magnet from image") == 1
    m = compare_sections(truth, result.sections)
    assert m["sections_correct"] == len(truth)


def test_low_score_parts_over_known_parts_or_of_implausible_size_make_no_section():
    truth = regular()
    gray, fluo = draw(640, 900, truth)
    # a known section seen again the other way round with low scores (they would pair); a small
    # low-score strip on bare wafer, dummy-sized and with nothing beside it on the image
    seen_round = [(2, truth[0].tissue.polygon, LOW), (1, truth[0].magnet.polygon, LOW)]
    strip = rectangle(320, 150, 60, 12, 0.0)
    parts = _confident(truth) + seen_round + [(1, strip, LOW)]
    result = detect_scripted(parts, gray, fluo)
    assert result.counts["sections_from_reserve"] == 0
    assert len(result.sections) == len(truth)
    assert compare_sections(truth, result.sections)["sections_correct"] == len(truth)
