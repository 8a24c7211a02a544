"""compare_sections: precision, recall, geometry errors and pairing against a ground truth."""

import numpy as np
import pytest
from detection_fakes import rectangle

from sectionseg.evaluation import compare_sections, format_comparison
from sectionseg.geometry import Section


def _truth(n=6):
    out = []
    for i in range(n):
        cx, cy = 100 + 200 * i, 300
        out.append(
            Section.from_arrays(
                rectangle(cx, cy, 120, 50, 10 * i),
                rectangle(cx, cy + 55, 110, 45, 10 * i),
                dummy=rectangle(cx, cy - 40, 100, 10, 0),
            )
        )
    return out


def test_identical_sections_are_perfect():
    truth = _truth()
    m = compare_sections(truth, [Section(s.tissue, s.magnet) for s in truth])
    for name in ("tissue", "magnet"):
        assert m[name]["precision"] == 1.0 and m[name]["recall"] == 1.0
        assert m[name]["centre_error_median"] == pytest.approx(0.0, abs=1e-9)
        assert m[name]["angle_error_p95"] == pytest.approx(0.0, abs=1e-6)
    assert m["pairing_accuracy"] == 1.0 and m["sections_correct"] == 6


def test_shift_misses_extras_and_wrong_pairs():
    truth = _truth()
    found = [s.transformed(1.0, (3.0, 4.0)) for s in truth[:4]]  # 5 px off, two sections missed
    found = [Section(s.tissue, s.magnet) for s in found]
    found[0], found[1] = Section(found[0].tissue, found[1].magnet), Section(found[1].tissue, found[0].magnet)
    found.append(Section(rectangle(3000, 3000, 100, 40, 0), None))  # a false tissue, unpaired
    m = compare_sections(truth, found)
    assert m["tissue"]["n_matched"] == 4
    assert m["tissue"]["precision"] == pytest.approx(4 / 5) and m["tissue"]["recall"] == pytest.approx(4 / 6)
    assert m["magnet"]["precision"] == 1.0 and m["magnet"]["recall"] == pytest.approx(4 / 6)
    assert m["tissue"]["centre_error_median"] == pytest.approx(5.0)
    assert m["pairing_accuracy"] == pytest.approx(2 / 4) and m["sections_correct"] == 2
    assert m["section_recall"] == pytest.approx(2 / 6) and m["section_precision"] == pytest.approx(2 / 4)
    assert "pairing accuracy: 0.500" in format_comparison(m, 1.5)


def test_low_overlap_is_no_match_and_empty_inputs():
    truth = _truth(2)
    far = [Section(s.tissue.transformed(1.0, (80.0, 0.0)), None) for s in truth]
    m = compare_sections(truth, far)
    assert m["tissue"]["n_matched"] == 0 and m["tissue"]["precision"] == 0.0
    assert m["magnet"]["n_found"] == 0 and m["magnet"]["recall"] == 0.0
    assert m["pairing_accuracy"] is None
    empty = compare_sections([], [])
    assert empty["tissue"]["recall"] == 1.0 and empty["section_recall"] == 1.0


def test_angle_error_is_modulo_180():
    t = [Section.from_arrays(rectangle(100, 100, 120, 40, 179), rectangle(100, 145, 110, 40, 179))]
    f = [Section.from_arrays(rectangle(100, 100, 120, 40, 1), rectangle(100, 145, 110, 40, 1))]
    m = compare_sections(t, f)
    assert m["tissue"]["angle_error_median"] == pytest.approx(2.0, abs=1e-4)
    assert np.isfinite(m["magnet"]["centre_error_p95"])
