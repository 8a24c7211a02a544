"""The gray-only second look (detection.gray_look) and the pair-based scale measure (detection.scale)."""

import numpy as np

from sectionseg.detection.gray_look import needs_gray_look, partners_from_gray
from sectionseg.detection.inference import Detection
from sectionseg.detection.scale import section_side, touching_pairs
from sectionseg.detection.settings import RepairSettings
from sectionseg.geometry import Part, Section


def box(x0, y0, x1, y1):
    return Part(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float))


def test_a_lone_magnet_gets_the_other_part_of_the_gray_section_covering_it():
    lone = Section(None, box(0, 0, 100, 40), score=0.9)
    far = Section(None, box(500, 500, 600, 540), score=0.9)
    # gray alone the parts came out the other way round: the fluorescence's magnet decides
    gray = [Section(box(1, 1, 100, 41), box(0, 42, 100, 90), score=0.8)]
    new, rest = partners_from_gray([lone, far], gray)
    assert rest == [far] and len(new) == 1
    assert new[0].magnet is lone.magnet
    np.testing.assert_allclose(new[0].tissue.polygon, gray[0].magnet.polygon)
    assert new[0].extra["recovered"] == "tissue from the gray image alone"


def test_a_gray_section_that_covers_the_magnet_poorly_gives_nothing():
    lone = Section(None, box(0, 0, 100, 40), score=0.9)
    gray = [Section(box(0, 30, 100, 70), box(0, 70, 100, 110), score=0.8)]  # IoU 0.14 with the magnet
    new, rest = partners_from_gray([lone], gray)
    assert new == [] and rest == [lone]


def test_the_second_look_is_asked_for_only_when_many_magnets_are_alone():
    settings = RepairSettings(gray_look_min_lone=3, gray_look_share=0.25)
    paired = [Section(box(0, 0, 10, 4), box(0, 4, 10, 8)) for _ in range(20)]
    lone = [Section(None, box(0, 0, 10, 4)) for _ in range(3)]
    assert not needs_gray_look(paired, lone, settings)  # 3 of 23 magnets
    assert needs_gray_look(paired[:4], lone, settings)  # 3 of 7
    assert not needs_gray_look([], lone[:2], settings)  # fewer than 3


def mask_detection(label, x0, y0, w, h):
    return Detection(label=label, score=0.9, mask=np.ones((h, w), bool), origin=(x0, y0))


def test_touching_tissue_and_magnet_are_a_pair_and_measure_the_section():
    tissue = mask_detection(1, 10, 10, 100, 40)
    magnet = mask_detection(2, 10, 50, 100, 30)  # shares the tissue's long edge
    apart = mask_detection(2, 300, 300, 100, 30)  # far from everything
    dets = [tissue, magnet, apart]
    assert touching_pairs(dets) == [(0, 1)]
    assert section_side(tissue, magnet) == 100.0  # pixel extent of the 100 x 70 px union


def test_parts_touching_at_a_corner_only_are_no_pair():
    tissue = mask_detection(1, 10, 10, 100, 40)
    corner = mask_detection(2, 110, 50, 100, 30)  # diagonal neighbour
    assert touching_pairs([tissue, corner]) == []


def fake_trial(table):
    """A scale trial from a table {scale: (detections, paired, pairs)}; tiles of 1 working Mpx."""

    def trial(scale):
        n, paired, pairs = table[round(scale, 3)]
        return {"scale": scale, "detections": n, "paired": paired, "pairs": pairs, "per_megapixel": float(n)}

    return trial


def test_the_estimate_moves_to_a_bracketing_scale_where_the_model_pairs_clearly_more():
    from sectionseg.detection.scale import _bracket

    # at 0.3 the model pairs half of its detections; at 0.345 most, and more sections per wafer area
    trial = fake_trial({0.3: (100, 50, 25), 0.345: (80, 72, 36), 0.261: (110, 55, 27)})
    trials = [trial(0.3)]
    scale, method = _bracket(0.3, trials, trial)
    assert scale == 0.345 and method == "model, bracketed" and len(trials) == 3


def test_the_estimate_stays_where_the_model_pairs_well_or_the_gain_is_small():
    from sectionseg.detection.scale import _bracket

    well = fake_trial({0.3: (100, 90, 45)})
    assert _bracket(0.3, [well(0.3)], well) == (0.3, "model")  # no trial made
    # a higher share but fewer sections per wafer area: a smaller sample, not a better size
    thin = fake_trial({0.3: (100, 60, 30), 0.345: (30, 24, 12), 0.261: (110, 60, 30)})
    assert _bracket(0.3, [thin(0.3)], thin)[0] == 0.3
