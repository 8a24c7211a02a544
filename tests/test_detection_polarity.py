"""Sections lighter than the wafer: the gray image is read dark for light where the model sees the
sections better that way (:func:`sectionseg.detection.scale.choose_polarity`)."""

from __future__ import annotations

import numpy as np
import pytest
from detection_fakes import ContentPredictor
from test_detect_cli import drawn_wafer

from sectionseg.detection import WaferSource, detect_wafer
from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import Tile
from sectionseg.evaluation import compare_sections


def test_an_inverted_source_reads_gray_dark_for_light_and_keeps_the_fluorescence():
    gray = np.array([[0, 100], [200, 250]], np.uint8)
    fluo = np.array([[10, 20], [30, 40]], np.uint8)
    source = WaferSource(gray, fluo)
    flipped = source.inverted()
    assert not source.gray_inverted and flipped.gray_inverted and not flipped.inverted().gray_inverted
    tile = Tile(0, 0, 2, 2)
    a, b = source.tile_rgb(tile), flipped.tile_rgb(tile)
    assert np.array_equal(b[..., 0], 255 - a[..., 0]) and np.array_equal(b[..., 1], 255 - a[..., 1])
    assert np.array_equal(b[..., 2], a[..., 2])
    assert np.array_equal(flipped.gray_window(0, 0, 2, 2), 255 - source.gray_window(0, 0, 2, 2))
    assert flipped.record()["gray"]["inverted"] is True and source.record()["gray"]["inverted"] is False
    # the same window at another scale keeps the polarity
    assert flipped.rescaled(0.5).gray_inverted


def light_sections_wafer():
    """``drawn_wafer`` with the gray image inverted: tissue lighter than the wafer, magnet between."""
    gray, fluo, truth = drawn_wafer(1.0)
    return 255 - gray, fluo, truth


def test_sections_lighter_than_the_wafer_are_found_with_the_gray_read_dark_for_light():
    gray, fluo, truth = light_sections_wafer()
    result = detect_wafer(gray, fluo, predictor=ContentPredictor(), tile_size=256, overlap=64, progress=False)
    polarity = result.scale_info["polarity"]
    assert polarity["inverted"] and result.params["gray_inverted"]
    assert polarity["dark_for_light"]["pairs"] > polarity["as_is"]["pairs"]
    # the scale estimated again on the image read dark for light (x 1.2 with a fluorescence image)
    assert result.scale == pytest.approx(1.2, rel=0.1)
    m = compare_sections(truth, result.sections)
    assert m["sections_correct"] == len(truth) and m["section_precision"] == 1.0
    # switched off, the same wafer gives (almost) nothing: the tissue is never dark
    off = detect_wafer(
        gray,
        fluo,
        predictor=ContentPredictor(),
        tile_size=256,
        overlap=64,
        progress=False,
        settings=RepairSettings().without("polarity"),
    )
    assert "polarity" not in off.scale_info and not off.params["gray_inverted"]
    assert compare_sections(truth, off.sections)["sections_correct"] == 0


def test_a_given_scale_is_kept_when_the_gray_is_inverted():
    gray, fluo, truth = light_sections_wafer()
    result = detect_wafer(
        gray, fluo, predictor=ContentPredictor(), tile_size=256, overlap=64, scale=1.0, progress=False
    )
    assert result.params["gray_inverted"] and result.scale == 1.0
    assert compare_sections(truth, result.sections)["sections_correct"] == len(truth)


def test_sections_darker_than_the_wafer_are_read_as_they_are_without_a_second_trial():
    gray, fluo, truth = drawn_wafer(1.0)
    result = detect_wafer(gray, fluo, predictor=ContentPredictor(), tile_size=256, overlap=64, progress=False)
    polarity = result.scale_info["polarity"]
    assert not polarity["inverted"] and not result.params["gray_inverted"]
    assert "dark_for_light" not in polarity  # the model pairs its detections: the other way is never tried
    assert compare_sections(truth, result.sections)["sections_correct"] == len(truth)


def test_a_weak_wafer_is_inverted_only_where_that_pairs_clearly_more(monkeypatch):
    from sectionseg.detection import scale as scale_module

    gray, fluo, _ = drawn_wafer(1.0)
    source = WaferSource(gray, fluo)
    trials = {False: {"pairs": 4, "paired": 8, "detections": 20}, True: {"pairs": 5, "paired": 10, "detections": 20}}

    def fake_trial(src, centres, cand, predictor, **kwargs):
        return {**trials[src.gray_inverted], "scale": cand, "per_megapixel": 1.0, "relative_size": 1.0}

    monkeypatch.setattr(scale_module, "scale_trial", fake_trial)
    # 10 paired against 8: under the 1.3x gain, kept as it is (both trials recorded)
    kept, _, info = scale_module.choose_polarity(source, None, 1.0, {"method": "given"})
    assert not kept.gray_inverted and "dark_for_light" in info["polarity"]
    trials[True]["paired"] = 11  # 1.375x
    flipped, scale, info = scale_module.choose_polarity(source, None, 1.0, {"method": "given"})
    assert flipped.gray_inverted and info["polarity"]["inverted"] and scale == 1.0
    # a wafer whose model pairs most of its detections as it is never gets the second trial
    trials[False].update(paired=18)
    kept, _, info = scale_module.choose_polarity(source, None, 1.0, {"method": "given"})
    assert not kept.gray_inverted and "dark_for_light" not in info["polarity"]
