"""The post-processing reads the wafer: its own tissue/magnet/background levels (either part may be
the darker one), a switch per repair step recorded in the report, and the wafer-level consensus
that gives back sections whose tissue and magnet came out swapped."""

import dataclasses

import cv2
import numpy as np
import pytest
from detection_fakes import detect_scripted
from test_detection_post import regular, section

from sectionseg.detection.consensus import tissue_consensus
from sectionseg.detection.evidence import measure_levels
from sectionseg.detection.settings import STEPS, RepairSettings
from sectionseg.detection.tiling import WaferSource
from sectionseg.evaluation import compare_sections
from sectionseg.geometry import Section
from sectionseg.geometry.raster import fill_polygon, polygon_mask


def draw(width, height, sections, tissue=140, magnet=60, fluo_on=True):
    """Gray wafer (200) with tissue and magnet at the given levels (magnet darker by default: the
    opposite of the simulator's default style)."""
    gray = np.full((height, width), 200, np.uint8)
    fluo = np.full((height, width), 20, np.uint8)
    for s in sections:
        fill_polygon(gray, s.tissue.polygon, tissue)
        fill_polygon(gray, s.magnet.polygon, magnet)
        fill_polygon(fluo, s.magnet.polygon, 230)
    return gray, (fluo if fluo_on else None)


def test_wafer_levels_are_measured_on_the_wafer():
    truth = regular()
    gray, fluo = draw(640, 900, truth)
    levels = measure_levels(truth, WaferSource(gray, fluo, scale=1.0))
    assert levels is not None and levels.n == len(truth)
    # normalised levels keep the order: magnet darkest, tissue between, bare wafer brightest
    assert levels.magnet < levels.tissue < levels.background
    assert measure_levels(truth[:2], WaferSource(gray, fluo)) is None  # too few sections


def _detect_all_but_one_tissue(truth, gray, fluo, settings=None):
    """Detection where the model (the ground truth) misses the last section's tissue."""
    parts = [(1, s.tissue.polygon) for s in truth[:-1]] + [(2, s.magnet.polygon) for s in truth]
    return detect_scripted(parts, gray, fluo, settings)


@pytest.mark.parametrize("fluo_on", [True, False])
def test_a_missed_tissue_brighter_than_its_magnet_is_found_on_a_dark_magnet_wafer(fluo_on):
    truth = regular() + [section(300, 200, angle=15.0)]
    gray, fluo = draw(640, 900, truth, fluo_on=fluo_on)
    result = _detect_all_but_one_tissue(truth, gray, fluo)
    assert result.params["wafer_levels"]["magnet_gray"] < result.params["wafer_levels"]["tissue_gray"]
    assert result.counts["partners_from_image"] == 1
    m = compare_sections(truth, result.sections)
    assert m["sections_correct"] == len(truth) and m["sections_swapped"] == 0
    assert m["tissue"]["centre_error_p95"] < 1.0


def test_each_repair_step_can_be_switched_off_and_is_recorded():
    truth = regular() + [section(300, 200, angle=15.0)]
    gray, fluo = draw(640, 900, truth)
    off = RepairSettings().without("complete_from_image")
    result = _detect_all_but_one_tissue(truth, gray, fluo, off)
    assert result.counts["partners_from_image"] == 0
    record = result.report()["params"]["settings"]
    assert record["steps"]["complete_from_image"] is False and record["steps"]["trim_gaps"] is True
    assert record["lone_score"] == off.lone_score
    with pytest.raises(ValueError, match="unknown repair steps"):
        RepairSettings(steps=("no_such_step",))
    assert set(RepairSettings().record()["steps"]) == set(STEPS)


def _textured_wafer(n=12, seed=0):
    """Gray-only wafer where tissue and magnet have the same mean level: the tissue carries stripes
    (fine texture), the magnet bright specks."""
    sections = [section(120 + 200 * (k % 4), 120 + 190 * (k // 4), angle=10.0 * k) for k in range(n)]
    return _textured_wafer_of(sections, seed)


def _textured_wafer_of(sections, seed=0):
    rng = np.random.default_rng(seed)
    h, w = 640, 860
    gray = np.full((h, w), 200, np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = 12.0 * np.sin(xx / 2.0 + yy / 3.0)
    for s in sections:
        t = polygon_mask(s.tissue.polygon, (h, w))
        m = polygon_mask(s.magnet.polygon, (h, w))
        gray[t] = 110 + stripes[t]
        gray[m] = 110
        ys, xs = np.nonzero(m)
        pick = rng.choice(xs.size, size=xs.size // 40, replace=False)
        gray[ys[pick], xs[pick]] = 250
    return sections, gray.clip(0, 255).astype(np.uint8)


def test_consensus_gives_back_swapped_sections():
    truth, gray = _textured_wafer()
    found = [Section(s.magnet, s.tissue) if k in (3, 7) else s for k, s in enumerate(truth)]
    fixed, record = tissue_consensus(found, WaferSource(gray, None, scale=1.0))
    assert record["swapped"] == 2
    assert record["features"]["dark_structure"]["used"] and record["features"]["specks"]["used"]
    assert not record["wafer_flipped"]
    m = compare_sections(truth, fixed)
    assert m["sections_correct"] == len(truth) and m["sections_swapped"] == 0


def test_a_wafer_labelled_the_wrong_way_round_is_flipped_by_the_fluorescence():
    # the model took every magnet for the tissue but for two sections; the magnets are the bright
    # parts of the fluorescence image on every MagC wafer
    truth, gray = _textured_wafer()
    fluo = np.full(gray.shape, 20, np.uint8)
    for s in truth:
        fill_polygon(fluo, s.magnet.polygon, 220)
    found = [s if k in (2, 9) else Section(s.magnet, s.tissue) for k, s in enumerate(truth)]
    fixed, record = tissue_consensus(found, WaferSource(gray, fluo, scale=1.0))
    assert record["wafer_flipped"] and record["swapped"] == len(truth) - 2
    assert record["features"]["fluo_level"]["agreement_with_prior"] < 0.25
    assert record["decided_by"] == "fluo_level"
    m = compare_sections(truth, fixed)
    assert m["sections_correct"] == len(truth) and m["sections_swapped"] == 0
    # gray alone the tissue's dark structure (its stripes here) turns the wafer round too
    fixed, record = tissue_consensus(found, WaferSource(gray, None, scale=1.0))
    assert record["wafer_flipped"] and record["decided_by"] == "dark_blobs"
    assert compare_sections(truth, fixed)["sections_swapped"] == 0


def test_the_fluorescence_keeps_a_section_whose_gray_features_look_the_other_way():
    # two sections carry the stripes on the magnet and the specks on the tissue; the fluorescence
    # still shows their (faint) magnets brighter than their tissue, so they keep their labels (the
    # gray features alone swap them)
    truth, gray = _textured_wafer()
    odd = (3, 7)
    swapped_look = [Section(s.magnet, s.tissue) if k in odd else s for k, s in enumerate(truth)]
    _, gray = _textured_wafer_of(swapped_look)
    fluo = np.full(gray.shape, 20, np.uint8)
    for k, s in enumerate(truth):
        fill_polygon(fluo, s.magnet.polygon, 50 if k in odd else 220)
    source = WaferSource(gray, fluo, scale=1.0)
    kept, record = tissue_consensus(truth, source)
    assert record["swapped"] == 0 and kept == truth
    unprotected = RepairSettings(consensus_fluo_decisive=float("inf"))
    fixed, record = tissue_consensus(truth, source, unprotected)
    assert record["swapped"] == len(odd)


def _blob_wafer(n=12, seed=0, blobs=True):
    """Gray-only wafer whose magnet is the darker, plain half and whose lighter tissue carries a few
    dark blobs (the embedded sample), as on the real-dark-magnet simulated style."""
    rng = np.random.default_rng(seed)
    sections = [section(120 + 200 * (k % 4), 120 + 190 * (k // 4), angle=10.0 * k) for k in range(n)]
    h, w = 640, 860
    gray = rng.normal(200, 3, (h, w)).astype(np.float32)
    for s in sections:
        t = polygon_mask(s.tissue.polygon, (h, w))
        gray[t] = rng.normal(170, 3, int(t.sum()))
        gray[polygon_mask(s.magnet.polygon, (h, w))] -= 100
        if blobs:
            centre = s.tissue.polygon.mean(axis=0)
            for dx in (-15, 12):
                spot = np.zeros((h, w), np.uint8)
                cv2.circle(spot, (int(centre[0] + dx), int(centre[1])), 5, 1, -1)
                gray[spot > 0] -= 35
    return sections, gray.clip(0, 255).astype(np.uint8)


#: the steps after the wafer's turn, each alone: on the blob wafer orient_by_split would sort every section
#: first, and the gray level, clear on every section, would overrule scripted votes (their own tests below)
UNSORTED = RepairSettings().without("orient_by_split", "decisive_feature")


def test_a_gray_wafer_labelled_the_wrong_way_round_is_turned_by_the_tissue_blobs():
    truth, gray = _blob_wafer()
    source = WaferSource(gray, None, scale=1.0)
    found = [s if k in (2, 9) else Section(s.magnet, s.tissue) for k, s in enumerate(truth)]
    fixed, record = tissue_consensus(found, source)
    assert record["wafer_flipped"] and record["decided_by"] == "dark_blobs"
    assert record["features"]["dark_blobs"]["agreement_with_prior"] < 0.35
    assert compare_sections(truth, fixed)["sections_swapped"] == 0
    # the turn switched off (as for a model adapted to this wafer): the labels are not turned as a whole
    _, record = tissue_consensus(found, source, UNSORTED.without("turn_wafer"))
    assert not record["wafer_flipped"] and "decided_by" not in record
    # 5 of 12 right (agreement 0.42): turned by the blob prior's majority (0.5), kept at the fluorescence's 0.35
    mostly_wrong = [s if k in (0, 2, 5, 9, 11) else Section(s.magnet, s.tissue) for k, s in enumerate(truth)]
    _, record = tissue_consensus(mostly_wrong, source)
    assert record["wafer_flipped"] and 0.35 < record["features"]["dark_blobs"]["agreement_with_prior"] < 0.45
    _, record = tissue_consensus(mostly_wrong, source, RepairSettings(consensus_blob_flip_agreement=0.35))
    assert not record["wafer_flipped"]
    # the right way round it stays; without blobs the prior says nothing and the model's labelling stays
    kept, record = tissue_consensus(truth, source)
    assert not record["wafer_flipped"] and kept == truth
    plain_truth, plain = _blob_wafer(blobs=False)
    plain_found = [s if k in (2, 9) else Section(s.magnet, s.tissue) for k, s in enumerate(plain_truth)]
    kept, record = tissue_consensus(plain_found, WaferSource(plain, None, scale=1.0))
    assert not record["wafer_flipped"] and "decided_by" not in record
    # sections lighter than a dark wafer, read dark for light by detection: the blobs are measured on the
    # image as recorded (on this drawing the inverted reading happens to decide the same way: its tissue
    # is then the darkest region, whose corners a black top-hat picks up)
    bare = np.ones(gray.shape, bool)
    for s in truth:
        bare &= ~polygon_mask(s.tissue.polygon, gray.shape) & ~polygon_mask(s.magnet.polygon, gray.shape)
    light = np.where(bare, 40, gray).astype(np.uint8)
    fixed, record = tissue_consensus(found, WaferSource(light, None, scale=1.0).inverted())
    assert record["wafer_flipped"] and record["decided_by"] == "dark_blobs"
    assert compare_sections(truth, fixed)["sections_swapped"] == 0


def test_a_wafer_the_model_labelled_half_one_way_half_the_other_is_sorted_by_its_clearest_feature():
    # 6 of 12 sections labelled the wrong way round: no feature agrees with the labels (0.5) and the blob
    # prior cannot turn the wafer; but the gray level keeps clear of zero on every section (the magnet
    # 100 darker) and goes with the blobs on every one, so it sorts them
    truth, gray = _blob_wafer()
    odd = (0, 3, 4, 7, 8, 11)
    found = [Section(s.magnet, s.tissue) if k in odd else s for k, s in enumerate(truth)]
    source = WaferSource(gray, None, scale=1.0)
    fixed, record = tissue_consensus(found, source)
    assert record["split"]["decided_by"] == "gray_level" and record["turned_by_split"] == len(odd)
    assert record["split"]["gray_level"]["relation_with_blobs"] > 0.9  # the tissue is the lighter half
    assert record["swapped"] == len(odd) and compare_sections(truth, fixed)["sections_swapped"] == 0
    unsorted, record = tissue_consensus(found, source, UNSORTED)  # without the step: half of them wrong
    assert "split" not in record and compare_sections(truth, unsorted)["sections_swapped"] >= len(odd) // 2
    # labels right: the blobs agree with them as much as with the feature, nothing to sort
    kept, record = tissue_consensus(truth, source)
    assert record["turned_by_split"] == 0 and kept == truth
    # no blobs: nothing says which group is right, the labels stay as they are
    plain_truth, plain = _blob_wafer(blobs=False)
    plain_found = [Section(s.magnet, s.tissue) if k in odd else s for k, s in enumerate(plain_truth)]
    _, record = tissue_consensus(plain_found, WaferSource(plain, None, scale=1.0))
    assert record["turned_by_split"] == 0 and "split" not in record
    # a gray level that does not keep clear of zero (half the magnets as light as their tissue): no sorting
    mixed = gray.copy()
    for k, s in enumerate(truth):
        if k % 2:
            m = polygon_mask(s.magnet.polygon, gray.shape)
            mixed[m] = np.clip(mixed[m].astype(int) + 70, 0, 255)
    gray_only = RepairSettings(consensus_split_features=("gray_level",))
    _, record = tissue_consensus(found, WaferSource(mixed, None, scale=1.0), gray_only)
    assert record["turned_by_split"] == 0 and record["split"]["gray_level"]["gap"] < 0.3
    # there the tissue's blobs (dark structure) still keep clear of zero: they sort the sections
    fixed, record = tissue_consensus(found, WaferSource(mixed, None, scale=1.0))
    assert record["split"]["decided_by"] == "dark_structure" and compare_sections(truth, fixed)["sections_swapped"] == 0


def test_a_feature_short_of_the_bar_exchanges_sections_only_with_the_blobs_consent():
    # the model labelled 4 of 12 sections the other way: the darker magnet shows in gray level on 8 of
    # 12 (0.67, under the 0.75 a feature needs on its own); the tissue's blobs confirm each exchange
    truth, gray = _blob_wafer()
    odd = (1, 5, 8, 10)
    found = [Section(s.magnet, s.tissue) if k in odd else s for k, s in enumerate(truth)]
    fixed, record = tissue_consensus(found, WaferSource(gray, None, scale=1.0), UNSORTED)
    assert not record["wafer_flipped"] and record["features"]["gray_level"]["used"] == "with blobs"
    assert 0.65 <= record["features"]["gray_level"]["agreement"] < 0.75
    assert record["swapped"] == len(odd) and record["swapped_with_blobs"] >= 2  # (specks noise swaps the others)
    assert compare_sections(truth, fixed)["sections_swapped"] == 0
    # not without that consent: no blobs on the wafer, or the weak features switched off
    plain_truth, plain = _blob_wafer(blobs=False)
    plain_found = [Section(s.magnet, s.tissue) if k in odd else s for k, s in enumerate(plain_truth)]
    _, record = tissue_consensus(plain_found, WaferSource(plain, None, scale=1.0), UNSORTED)
    assert record["features"]["gray_level"]["used"] == "with blobs" and "swapped_with_blobs" not in record
    strict = dataclasses.replace(UNSORTED, consensus_weak_agreement=0.75)
    kept, record = tissue_consensus(found, WaferSource(gray, None, scale=1.0), strict)
    assert "swapped_with_blobs" not in record and compare_sections(truth, kept)["sections_swapped"] >= 2


#: the two sections of the blob wafer that the scripted votes below vote the other way
ODD = (3, 7)


def _scripted_votes(monkeypatch, value: float, strong: bool = True):
    """The blob wafer (truth, its gray source) with the consensus's votes scripted: ``value`` on the
    sections :data:`ODD`, 1 on the others, as the strong votes (or the weak ones, the strong None)."""
    from sectionseg.detection import consensus

    truth, gray = _blob_wafer()
    vote = np.array([value if k in ODD else 1.0 for k in range(len(truth))])
    votes = (vote, None) if strong else (None, vote)
    monkeypatch.setattr(consensus, "_votes", lambda d, record, settings: votes)
    return truth, WaferSource(gray, None, scale=1.0)


def test_the_tissue_s_blobs_keep_a_section_that_the_other_features_would_exchange(monkeypatch):
    # the wafer's features vote two sections of a blob wafer the other way (scripted votes); their
    # tissues clearly carry the sample's blobs, on which the wafer's sections agree: they keep their labels
    truth, source = _scripted_votes(monkeypatch, -1.0)
    odd = ODD
    kept, record = tissue_consensus(truth, source, UNSORTED)
    assert record["swapped"] == 0 and record["kept_by_blobs"] == len(odd) and kept == truth
    # blobs that do not clearly side with the labels (a margin too large), or the step switched off,
    # let the votes exchange them
    for settings in (dataclasses.replace(UNSORTED, consensus_blob_margin=1000.0), UNSORTED.without("keep_by_blobs")):
        fixed, record = tissue_consensus(truth, source, settings)
        assert "kept_by_blobs" not in record and compare_sections(truth, fixed)["sections_swapped"] == len(odd)
    # a section labelled the wrong way round is exchanged: its blobs are on the part called magnet
    found = [Section(s.magnet, s.tissue) if k in odd else s for k, s in enumerate(truth)]
    fixed, record = tissue_consensus(found, source, UNSORTED)
    assert "kept_by_blobs" not in record and compare_sections(truth, fixed)["sections_swapped"] == 0


def test_a_feature_every_section_agrees_on_is_not_outvoted(monkeypatch):
    # the other features vote two sections of the blob wafer the other way (scripted votes), but the gray
    # level, on which every section agrees and which keeps clear of zero, says they are right: kept
    truth, source = _scripted_votes(monkeypatch, -1.0)
    odd = ODD
    votes_only = RepairSettings().without("orient_by_split", "keep_by_blobs")
    kept, record = tissue_consensus(truth, source, votes_only)
    assert "gray_level" in record["decisive"] and record["swapped"] == 0 and kept == truth
    fixed, record = tissue_consensus(truth, source, votes_only.without("decisive_feature"))
    assert "decisive" not in record and compare_sections(truth, fixed)["sections_swapped"] == len(odd)
    # a section the gray level itself calls the wrong way round is still exchanged
    found = [Section(s.magnet, s.tissue) if k in odd else s for k, s in enumerate(truth)]
    fixed, record = tissue_consensus(found, source, votes_only)
    assert record["swapped"] == len(odd) and compare_sections(truth, fixed)["sections_swapped"] == 0


def test_with_the_blobs_consent_a_weaker_vote_exchanges_a_section(monkeypatch):
    # features short of the bar vote -0.4 on two sections labelled the wrong way round (scripted
    # votes): under the weak bar (-0.25), over the strong one (-0.5); their blobs consent
    truth, source = _scripted_votes(monkeypatch, -0.4, strong=False)
    odd = ODD
    found = [Section(s.magnet, s.tissue) if k in odd else s for k, s in enumerate(truth)]
    fixed, record = tissue_consensus(found, source, UNSORTED)
    assert record["swapped_with_blobs"] == len(odd) and compare_sections(truth, fixed)["sections_swapped"] == 0
    kept, record = tissue_consensus(found, source, dataclasses.replace(UNSORTED, consensus_weak_swap_vote=-0.5))
    assert "swapped_with_blobs" not in record and kept == found


def test_consensus_leaves_a_consistent_wafer_alone_and_needs_enough_sections():
    truth, gray = _textured_wafer()
    source = WaferSource(gray, None, scale=1.0)
    fixed, record = tissue_consensus(truth, source)
    assert record["swapped"] == 0 and fixed == truth
    few = [Section(s.magnet, s.tissue) if k == 0 else s for k, s in enumerate(truth[:4])]
    kept, record = tissue_consensus(few, source)
    assert record["swapped"] == 0 and "skipped" in record and kept == few


def test_swapped_sections_are_counted_by_the_wafer_metrics():
    truth = regular()
    found = [Section(s.magnet, s.tissue) if k < 2 else s for k, s in enumerate(truth)]
    m = compare_sections(truth, found)
    assert m["sections_swapped"] == 2 and m["sections_correct"] == len(truth) - 2
    assert m["swapped_fraction"] == pytest.approx(2 / len(truth))
    assert m["section_f1_any_order"] == pytest.approx(1.0)
    assert m["section_f1"] == pytest.approx(4 / 6)
