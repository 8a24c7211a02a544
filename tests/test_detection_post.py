"""After the model: touching parts rebuilt beside their partners, partners found on the image,
duplicates and implausible lone parts dropped."""

import numpy as np
import pytest
from detection_fakes import ContentPredictor, rectangle

from sectionseg.detection import detect_wafer
from sectionseg.detection.repairs import drop_duplicates, drop_implausible
from sectionseg.detection.settings import RepairSettings
from sectionseg.evaluation import compare_sections
from sectionseg.geometry import Part, Section
from sectionseg.geometry.beside import strip_beside
from sectionseg.geometry.raster import fill_polygon, polygon_mask


def section(cx, cy, angle=0.0, tissue_w=50.0, magnet_w=46.0, length=127.0, magnet_side=1):
    """Tissue centred at (cx, cy); its magnet beside the long side on ``magnet_side`` (+1 below at 0 deg)."""
    v = np.array([np.sin(np.radians(angle)), np.cos(np.radians(angle))]) * magnet_side
    m = np.array([cx, cy]) + v * (tissue_w + magnet_w) / 2
    return Section.from_arrays(rectangle(cx, cy, length, tissue_w, angle), rectangle(*m, length, magnet_w, angle))


def draw(width, height, sections, tissue_level=None):
    gray = np.full((height, width), 200, np.uint8)
    fluo = np.full((height, width), 20, np.uint8)
    for k, s in enumerate(sections):
        fill_polygon(gray, s.tissue.polygon, 40 if tissue_level is None else tissue_level.get(k, 40))
        fill_polygon(gray, s.magnet.polygon, 120)
        fill_polygon(fluo, s.magnet.polygon, 230)
    return gray, fluo


def regular(n=6):
    return [section(110 + 190 * (k % 3), 500 + 170 * (k // 3), angle=8.0 * k) for k in range(n)]


def test_strip_beside_finds_the_part_next_to_its_partner():
    s = section(200, 200, angle=20.0)
    neighbour = section(200, 200, angle=20.0).transformed(
        1.0, -50.0 * np.array([np.sin(np.radians(20)), np.cos(np.radians(20))])
    )
    mask = polygon_mask(s.tissue.polygon, (400, 400)) | polygon_mask(neighbour.tissue.polygon, (400, 400))
    rows, cols = np.nonzero(mask)  # two touching tissues: one region
    quad = strip_beside(s.magnet.polygon, np.column_stack([cols + 0.5, rows + 0.5]), typical_width=50.0)
    assert Part(quad).centre == pytest.approx(s.tissue.centre, abs=0.6)
    assert Part(quad).area == pytest.approx(s.tissue.area, rel=0.03)
    assert strip_beside(s.magnet.polygon, np.zeros((0, 2)), 50.0) is None


def test_touching_tissues_seen_as_one_region_are_both_reported():
    pair = [section(300, 160, magnet_side=-1), section(300, 210, magnet_side=1)]  # tissues touch
    truth = regular() + pair
    gray, fluo = draw(640, 900, truth)
    result = detect_wafer(
        gray, fluo, predictor=ContentPredictor(), scale=1.0, tile_size=512, overlap=160, progress=False
    )
    assert result.counts["rebuilt_parts"] >= 2
    m = compare_sections(truth, result.sections + result.unpaired)
    assert m["sections_correct"] == len(truth) and m["tissue"]["precision"] == 1.0
    assert m["tissue"]["centre_error_p95"] < 1.0


def test_a_tissue_the_model_misses_is_found_beside_its_magnet():
    truth = regular() + [section(300, 200, angle=15.0)]
    gray, fluo = draw(640, 900, truth, tissue_level={6: 112})  # too faint for the predictor
    result = detect_wafer(
        gray, fluo, predictor=ContentPredictor(), scale=1.0, tile_size=512, overlap=160, progress=False
    )
    assert result.counts["partners_from_image"] == 1
    m = compare_sections(truth, result.sections)
    assert m["sections_correct"] == len(truth)
    assert m["tissue"]["centre_error_p95"] < 1.0


def test_lone_duplicates_and_implausible_parts_are_dropped():
    sections = regular()
    lone = [
        Section(sections[0].tissue.transformed(1.0, (1.0, 0.0)), None),  # duplicate of a paired tissue
        Section(Part(rectangle(50, 50, 127, 20, 0)), None),  # dummy-sized tissue
        Section(None, Part(rectangle(50, 50, 300, 120, 0))),  # far too large magnet
        Section(Part(rectangle(900, 50, 127, 50, 0)), None, score=0.95),  # a plausible lone tissue
        Section(Part(rectangle(900, 250, 127, 50, 0)), None, score=0.8),
    ]  # ... but too unsure alone
    kept = drop_duplicates(sections, lone)
    assert len(kept) == 4
    why = {}
    kept, dummies, implausible = drop_implausible(kept, sections, reasons=why)
    assert (len(kept), dummies, implausible) == (1, 1, 2) and kept[0] is lone[3]
    assert [why.get(id(s)) for s in lone[1:]] == ["dummy-like", "implausible size", None, "low score"]
    assert drop_implausible(lone[1:], sections)[1:] == (dummies, implausible)  # the same without reasons


def test_tiles_of_bare_wafer_are_skipped_and_nothing_is_lost(rng):
    truth = regular(6)  # all in the left ~550 px of a 1400 px wide wafer
    gray, fluo = draw(1400, 900, truth)
    noisy = np.clip(gray + rng.normal(0, 3, gray.shape), 0, 255).astype(np.uint8)
    for y, x in rng.integers(0, 880, (40, 2)) + [0, 500]:  # dust specks on the bare part
        noisy[y : y + 3, x : x + 3] = 120
    kwargs = dict(predictor=ContentPredictor(), scale=1.0, tile_size=256, overlap=160, progress=False)
    skipping = detect_wafer(noisy, fluo, **kwargs)
    everything = detect_wafer(noisy, fluo, skip_empty=False, **kwargs)
    assert skipping.counts["empty_tiles_skipped"] > skipping.counts["tiles"] // 3
    assert everything.counts["empty_tiles_skipped"] == 0
    assert compare_sections(truth, skipping.sections)["sections_correct"] == len(truth)
    assert [s.tissue.centre for s in skipping.sections] == [s.tissue.centre for s in everything.sections]


def _source(gray, fluo):
    from sectionseg.detection.tiling import WaferSource

    return WaferSource(gray, fluo)


def test_a_lone_part_on_a_shading_patch_is_dropped_and_a_real_one_kept(rng):
    from sectionseg.detection.repairs import split_unseen

    truth = regular(6)
    gray, fluo = draw(1000, 900, truth)
    gray[600:900, 650:1000] = 170  # a darker mosaic tile of the background
    gray = np.clip(gray + rng.normal(0, 2, gray.shape), 0, 255).astype(np.uint8)
    fill_polygon(gray, rectangle(820, 150, 127, 50, 10), 40)  # a real tissue whose magnet is lost
    patch = Section(Part(rectangle(760, 700, 127, 50, 0)), None, score=0.95)  # inside the dark tile
    seam = Section(Part(rectangle(700, 640, 127, 50, 0)), None, score=0.95)  # on its corner
    real = Section(Part(rectangle(820, 150, 127, 50, 10)), None, score=0.95)
    seen, unseen = split_unseen([patch, seam, real], _source(gray, fluo))
    assert seen == [real] and unseen == [patch, seam]


def test_a_partner_strip_half_on_a_neighbour_is_refused():
    from sectionseg.detection.repairs import partner_from_image

    lone = section(300, 300)  # tissue at y 275-325, its magnet would be at y 325-371
    neighbour = section(365, 396, magnet_side=-1)  # its magnet (y 325-371) covers half of that strip
    gray, fluo = draw(700, 600, [neighbour])
    fill_polygon(gray, lone.tissue.polygon, 40)
    source = _source(gray, fluo)
    assert partner_from_image(lone.tissue, "magnet", source, 46.0, refine=False) is None
    gray, fluo = draw(700, 600, [lone])  # the real magnet: found
    found = partner_from_image(lone.tissue, "magnet", _source(gray, fluo), 46.0)
    assert found is not None and Part(found.polygon).centre == pytest.approx(lone.magnet.centre, abs=1.0)


def test_tiny_parts_are_unpaired_and_small_parts_regrown():
    from sectionseg.detection.repairs import regrow_small, split_tiny

    truth = regular(6)
    gray, fluo = draw(640, 900, truth)
    speck = Section(
        Part(rectangle(110, 500, 6, 4, 0)),
        truth[0].magnet,
        score=0.8,
        extra={"tissue_score": 0.8, "magnet_score": 0.99},
    )
    kept, lone = split_tiny([speck] + truth[1:])
    assert kept == truth[1:] and len(lone) == 1 and lone[0].magnet is truth[0].magnet and lone[0].tissue is None
    assert lone[0].score == 0.99
    t = truth[2].tissue.polygon  # the model saw only the half of the tissue by its magnet
    half = Section(Part(np.array([(t[0] + t[3]) / 2, (t[1] + t[2]) / 2, t[2], t[3]])), truth[2].magnet, score=0.9)
    sections, n = regrow_small(truth[:2] + [half] + truth[3:], _source(gray, fluo))
    assert n == 1 and sections[2].extra["regrown"] == "tissue"
    assert sections[2].tissue.centre == pytest.approx(truth[2].tissue.centre, abs=0.7)
    assert sections[2].tissue.area == pytest.approx(truth[2].tissue.area, rel=0.03)


def test_a_magnet_that_swallowed_the_gap_to_its_tissue_is_trimmed_and_touching_ones_are_kept():
    from sectionseg.detection.repairs import trim_gaps

    def with_gap(cx, cy, angle, gap, swallowed):
        v = np.array([np.sin(np.radians(angle)), np.cos(np.radians(angle))])
        tissue = rectangle(cx, cy, 127.0, 50.0, angle)
        true = rectangle(*(np.array([cx, cy]) + v * (48.0 + gap)), 127.0, 46.0, angle)
        seen = rectangle(*(np.array([cx, cy]) + v * (48.0 + gap / 2)), 127.0, 46.0 + gap, angle)
        return Section.from_arrays(tissue, true), Section.from_arrays(tissue, seen if swallowed else true)

    cases = [
        with_gap(120 + 200 * k, 150 + 250 * r, 9.0 * (k + 3 * r), gap, swallowed=True)
        for k in range(3)
        for r, gap in enumerate((4.0, 5.5))
    ]
    touching = [section(120 + 200 * k, 650, 10.0 * k) for k in range(3)]
    gray, fluo = draw(700, 800, [truth for truth, _ in cases] + touching)
    trimmed, n = trim_gaps([seen for _, seen in cases] + touching, _source(gray, fluo))
    assert n == len(cases)
    for (truth, _), got in zip(cases, trimmed):
        assert np.hypot(*np.subtract(got.magnet.centre, truth.magnet.centre)) < 0.3
        assert got.tissue == truth.tissue and got.extra["gap_trimmed"]
    assert trimmed[len(cases) :] == touching  # parts that truly touch keep their sides


def test_a_dummy_strip_merged_into_the_tissue_is_cut_off_at_the_gap_and_clean_tissues_are_kept():
    import cv2

    from sectionseg.detection.evidence import measure_levels
    from sectionseg.detection.strips import trim_merged_strips

    def with_dummy(cx, cy, angle, gap, merged):
        """(truth, as seen): a dummy strip 14 px wide lies ``gap`` px beyond the tissue's far side;
        ``merged`` px of gap and dummy are inside the tissue as seen."""
        v = np.array([np.sin(np.radians(angle)), np.cos(np.radians(angle))])  # tissue -> magnet
        truth = section(cx, cy, angle)
        dummy = rectangle(*(np.array([cx, cy]) - v * (25.0 + gap + 7.0)), 110.0, 14.0, angle)
        seen = rectangle(*(np.array([cx, cy]) - v * merged / 2), 127.0, 50.0 + merged, angle)
        return truth, dummy, Section.from_arrays(seen, truth.magnet.polygon)

    cases = [with_dummy(150 + 220 * (k % 3), 140 + 200 * (k // 3), 7.0 * k, gap=2.5, merged=10.0) for k in range(4)]
    flush = with_dummy(150, 940, 5.0, gap=0.0, merged=10.0)  # dummy touching: no edge to find
    clean = [section(150 + 220 * (k % 3), 1140 + 200 * (k // 3), 6.0 * k) for k in range(9)]
    gray = np.full((1750, 700), 200, np.uint8)
    for _truth, dummy, _ in cases + [flush]:
        fill_polygon(gray, dummy, 40)
    truths = [t for t, _, _ in cases + [flush]] + clean
    for s in truths:
        fill_polygon(gray, s.tissue.polygon, 40)
        fill_polygon(gray, s.magnet.polygon, 120)
    gray = cv2.GaussianBlur(gray, (0, 0), 0.8)
    source = _source(gray, None)
    seen = [s for _, _, s in cases + [flush]] + clean
    levels = measure_levels(seen, source)
    out, record = trim_merged_strips(seen, source, levels)
    assert record["trimmed"] == len(cases), record
    assert record["depth_ratio"] == pytest.approx(50 / 46, rel=0.05)
    for got, truth in zip(out[: len(cases)], truths):
        assert np.hypot(*np.subtract(got.tissue.centre, truth.tissue.centre)) < 0.5
        assert got.extra["strip_trimmed"] and np.allclose(got.magnet.polygon, truth.magnet.polygon)
    assert out[len(cases)] is seen[len(cases)]  # no gap line: kept as seen
    assert out[len(cases) + 1 :] == clean  # clean tissues keep their sides
    few, record = trim_merged_strips(seen[:5], source, levels)
    assert few == seen[:5] and "skipped" in record


def test_a_whole_section_seen_as_one_part_is_split_at_its_shared_edge():
    import cv2

    from sectionseg.detection.merged import split_merged

    truths = [section(150 + 230 * (k % 3), 150 + 230 * (k // 3), 11.0 * k) for k in range(5)]
    gray = np.full((520, 720), 200, np.uint8)
    fluo = np.full((520, 720), 20, np.uint8)
    for s in truths:
        fill_polygon(gray, s.tissue.polygon, 70)
        fill_polygon(gray, s.magnet.polygon, 95)  # halves alike, one straight step between them
        fill_polygon(fluo, s.magnet.polygon, 200)
    gray = cv2.GaussianBlur(gray, (0, 0), 0.8)
    plain = Section.from_arrays(None, rectangle(610, 380, 127.0, 60.0, 5.0))  # no edge across it
    fill_polygon(gray, plain.magnet.polygon, 90)
    whole = [Section(None, Part(_hull(s)), score=0.95) for s in truths]

    for f in (fluo, None):  # the fluorescence, or else the darker half, tells the tissue
        found, rest = split_merged(whole + [plain], [], _source(gray, f), None)
        assert len(found) == len(truths) and rest == [plain]
        for got, truth in zip(found, truths):
            assert got.extra["split_from_one_part"] and got.score == 0.95
            assert np.hypot(*np.subtract(got.tissue.centre, truth.tissue.centre)) < 1.0
            assert np.hypot(*np.subtract(got.magnet.centre, truth.magnet.centre)) < 1.0
    # beside paired sections, only lone parts too large for the wafer are candidates
    found, rest = split_merged(whole, truths, _source(gray, fluo), None)
    assert len(found) == len(truths)
    small = [Section(None, s.magnet, score=0.9) for s in truths]
    assert split_merged(small, truths, _source(gray, fluo), None) == ([], small)


def test_a_whole_section_without_an_edge_across_it_is_cut_where_the_wafer_s_shape_puts_it(rng):
    """No straight step between the halves (same gray level, noise): the wafer's paired sections
    say how deep each part is; the tissue's dark blobs tell the halves apart (a patch of one
    material is left whole)."""
    import cv2

    from sectionseg.detection.merged import split_merged
    from sectionseg.geometry import Quad

    paired = [section(110 + 170 * k, 100, 0.0, tissue_w=56.0, magnet_w=40.0) for k in range(5)]
    truths = [section(150 + 260 * k, 330, a, tissue_w=56.0, magnet_w=40.0) for k, a in enumerate((8.0, -21.0, 37.0))]
    shading = section(150, 560, 0.0, tissue_w=56.0, magnet_w=40.0)  # a section's shape, one material
    gray = np.full((680, 1000), 200.0)
    for s in paired + truths + [shading]:
        # the paired tissues lighter; the truths' halves alike in gray, their tissue with the sample's blobs
        fill_polygon(gray, s.tissue.polygon, 120 if s in paired else 150)
        fill_polygon(gray, s.magnet.polygon, 100 if s in paired else 150)
        if s is not shading:
            ends = Quad.around(s.tissue.polygon).long_sides()[0]
            for t in (0.25, 0.5, 0.75):
                x, y = np.asarray(s.tissue.centre) + (t - 0.5) * (ends.end - ends.start)
                cv2.circle(gray, (round(x), round(y)), 9, 90 if s in paired else 115, -1)
    gray = np.clip(gray + rng.normal(0.0, 9.0, gray.shape), 0, 255).astype(np.uint8)
    levels = None  # the darker half (the blobs') is the tissue
    whole = [Section(None, Part(_hull(s)), score=0.9) for s in truths]
    square = Section(None, Part(rectangle(880, 330, 120.0, 120.0, 0.0)), score=0.9)  # not a section's shape

    patch = Section(None, Part(_hull(shading)), score=0.9)
    found, rest = split_merged(whole + [square, patch], paired, _source(gray, None), levels)
    assert len(found) == len(truths) and rest == [square, patch]
    for got, truth in zip(found, truths):
        assert got.extra["split_from_one_part"]
        assert np.hypot(*np.subtract(got.tissue.centre, truth.tissue.centre)) < 3.0
        assert np.hypot(*np.subtract(got.magnet.centre, truth.magnet.centre)) < 3.0
    # without the paired sections' shape, or with the step switched off, such a part stays whole
    found, rest = split_merged(whole, [], _source(gray, None), levels)
    assert found == [] and rest == whole
    off = RepairSettings().without("split_by_shape")
    assert split_merged(whole, paired, _source(gray, None), levels, off) == ([], whole)


def test_whole_sections_seen_as_one_part_are_split_gray_alone_only():
    """In the pipeline: the model outlines each whole section as one part. Gray alone they are split at
    their shared edge; with a fluorescence image (where the model tells the halves apart, and such a
    part is rather two neighbours' parts) they are left alone."""
    import cv2
    from detection_fakes import detect_scripted

    truths = [section(150 + 230 * (k % 3), 150 + 230 * (k // 3), 11.0 * k) for k in range(5)]
    gray = np.full((520, 720), 200, np.uint8)
    fluo = np.full((520, 720), 20, np.uint8)
    for s in truths:
        fill_polygon(gray, s.tissue.polygon, 70)
        fill_polygon(gray, s.magnet.polygon, 95)
        fill_polygon(fluo, s.magnet.polygon, 200)
    gray = cv2.GaussianBlur(gray, (0, 0), 0.8)
    parts = [(2, _hull(s)) for s in truths]
    no_second_look = RepairSettings().without("gray_look")  # one pass of the scripted model
    found = {name: detect_scripted(parts, gray, f, no_second_look) for name, f in (("gray", None), ("fluo", fluo))}
    assert found["gray"].counts["split_from_one_part"] == len(truths)
    assert compare_sections(truths, found["gray"].sections)["sections_correct"] == len(truths)
    assert found["fluo"].counts["split_from_one_part"] == 0 and found["fluo"].sections == []


def test_parts_shaped_like_whole_sections_are_set_aside_before_pairing():
    from sectionseg.detection.merged import set_aside_whole
    from sectionseg.detection.refine import Candidate

    sections = [section(100 + 160 * k, 100, 5.0 * k) for k in range(6)]
    detection = object()  # any detection: the part was fitted to one
    tissues = [Candidate(s.tissue, 0.9, detection, 0.9) for s in sections]
    magnets = [Candidate(s.magnet, 0.9, detection, 0.9) for s in sections]
    whole = Candidate(Part(_hull(section(300, 400, 30.0))), 0.95, detection, 0.9)
    long = Candidate(Part(rectangle(700, 400, 254.0, 46.0, 0.0)), 0.95, detection, 0.9)  # two magnets end to end
    made = Candidate(Part(_hull(section(500, 400, 0.0))), 0.95)  # a repair's part: no detection, kept

    t, m, aside = set_aside_whole(tissues, magnets + [whole, long, made])
    assert t == tissues and m == magnets + [long, made]
    assert len(aside) == 1 and aside[0].magnet is whole.part and aside[0].tissue is None
    assert aside[0].score == 0.95 and aside[0].extra == {"magnet_score": 0.95}
    # too few parts to know the wafer's sections: nothing is set aside
    assert set_aside_whole(tissues[:3], magnets[:3] + [whole]) == (tissues[:3], magnets[:3] + [whole], [])


def _hull(s):
    """The 4 outer corners of a section whose parts share a long edge."""
    import cv2

    from sectionseg.geometry.quads import order_corners

    pts = np.vstack([s.tissue.polygon, s.magnet.polygon]).astype(np.float32)
    return order_corners(cv2.boxPoints(cv2.minAreaRect(pts)).astype(np.float64))


def test_parts_left_unpaired_are_paired_among_themselves_with_the_gaps_the_wafer_shows():
    """Where the magnets' masks stop short of their tissues (gaps of 6.3 % of the edge), two whose
    gap is 11 % (beyond the first pass's tenth) pair in a second pass; a tissue with nothing near
    stays alone. Where the wafer's parts meet, the same two stay unpaired."""
    from sectionseg.detection.refine import Candidate
    from sectionseg.detection.repairs import pair_sections
    from sectionseg.detection.settings import RepairSettings

    sections = [section(150 + 220 * k, 150, 0.0) for k in range(8)]  # edges 127 px long
    detection = object()
    tissues = [Candidate(s.tissue, 0.9, detection, 0.9) for s in sections]
    lone = Candidate(Part(sections[0].tissue.polygon + [0.0, 400.0]), 0.95, detection, 0.9)
    source = _source(np.zeros((8, 8), np.uint8), None)

    def magnets_with(gaps):
        return [Candidate(Part(s.magnet.polygon + [0.0, g]), 0.9, detection, 0.9) for s, g in zip(sections, gaps)]

    magnets = magnets_with([14.0, 14.0] + [8.0] * 6)
    paired, unpaired = pair_sections(tissues + [lone], magnets, source)
    assert len(paired) == 8 and [s.tissue for s in unpaired] == [lone.part]
    assert all(p.tissue is t.part for p, t in zip(sorted(paired, key=lambda s: s.tissue.centre[0]), tissues))
    paired, unpaired = pair_sections(tissues + [lone], magnets, source, RepairSettings().without("pair_leftovers"))
    assert len(paired) == 6 and len(unpaired) == 5
    paired, unpaired = pair_sections(tissues + [lone], magnets_with([14.0, 14.0] + [0.0] * 6), source)
    assert len(paired) == 6 and len(unpaired) == 5
    # the wafer's depths: a dummy strip flush along a tissue's other side does not take its magnet's place
    dummy = Candidate(
        Part(rectangle(*np.add(sections[2].tissue.centre, (0.0, -36.0)), 127.0, 22.0, 0.0)), 0.9, detection, 0.9
    )
    gapped = magnets_with([6.0] * 8)[1:]
    paired, _ = pair_sections(tissues[1:], gapped + [dummy], source)
    assert all(s.magnet is not dummy.part for s in paired) and len(paired) == 7
    paired, _ = pair_sections(tissues[1:], gapped + [dummy], source, RepairSettings().without("pair_depths"))
    assert any(s.magnet is dummy.part for s in paired)


def test_pairing_candidates_names_the_parts_a_repair_made():
    from sectionseg.detection.refine import Candidate
    from sectionseg.detection.repairs import pair_sections

    sections = regular(3)
    detection = object()  # any detection: the part was fitted to one
    tissues = [Candidate(s.tissue, 0.9, detection, 0.95) for s in sections[:2]] + [Candidate(sections[2].tissue, 0.8)]
    magnets = [Candidate(s.magnet, 0.99, detection, 0.9) for s in sections[:2]]
    paired, lone = pair_sections(tissues, magnets, _source(np.zeros((8, 8), np.uint8), None))
    assert len(paired) == 2 and all("rebuilt" not in s.extra for s in paired)
    assert [s.extra for s in lone] == [{"tissue_score": 0.8, "rebuilt": "tissue"}]
    assert paired[0].extra == {"tissue_score": 0.9, "magnet_score": 0.99}
