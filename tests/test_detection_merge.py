"""Merging tile detections: a part cut by tile sides is reported once, with the right polygon."""

import numpy as np
import pytest
import shapely
from detection_fakes import GroundTruthPredictor, rectangle

from sectionseg.detection.inference import Detection, predict_tiles
from sectionseg.detection.merge import mask_iou, merge_detections
from sectionseg.detection.tiling import WaferSource, plan_tiles
from sectionseg.geometry.fitting import fit_quadrilateral
from sectionseg.geometry.raster import polygon_mask

# 640 x 640 px, tiles 256 px with 64 px overlap: tiles start at 0, 192, 384 on both axes, so the
# overlap bands are [192, 256) and [384, 448).
SIZE, TILE, OVERLAP = 640, 256, 64
PARTS = [
    (1, rectangle(100, 100, 120, 50, 20)),  # inside one tile
    (2, rectangle(224, 80, 50, 30, 80)),  # inside the band: whole in 2 tiles (duplicates)
    (1, rectangle(250, 300, 100, 40, 0)),  # cut by x=256 in one tile, whole in the next
    (2, rectangle(220, 540, 110, 40, 0)),  # longer than the overlap: no tile sees it whole
    (1, rectangle(420, 420, 56, 40, 30)),  # at a 4-tile corner
    (2, rectangle(416, 200, 120, 48, 95)),  # crosses a horizontal and a vertical band
    (1, rectangle(560, 130, 110, 45, 150)),  # next to the wafer edge
    (2, rectangle(560, 181, 110, 45, 150)),  # touching the previous part (different class)
]


def _truth_mask(poly, det):
    x0, y0, x1, y1 = det.box
    return polygon_mask(poly, (y1 - y0, x1 - x0), offset=(x0, y0))


@pytest.fixture(scope="module")
def merged():
    source = WaferSource(np.zeros((SIZE, SIZE), np.uint8))
    tiles = plan_tiles(SIZE, SIZE, TILE, OVERLAP)
    assert len(tiles) == 9
    raw = predict_tiles(
        source, tiles, GroundTruthPredictor(PARTS, tiles), batch_size=2, score_threshold=0.5, progress=False
    )
    assert len(raw) > len(PARTS)  # parts in overlaps were seen several times
    assert any(d.truncated for d in raw)
    return merge_detections(raw)


def test_each_part_reported_once(merged):
    assert len(merged) == len(PARTS)
    for label, poly in PARTS:
        truth = shapely.Polygon(poly)
        hits = [
            d for d in merged if d.label == label and shapely.box(*d.box).intersection(truth).area > 0.5 * truth.area
        ]
        assert len(hits) == 1, poly
        det = hits[0]
        truth_mask = _truth_mask(poly, det)
        inter = np.count_nonzero(truth_mask & det.mask)
        union = np.count_nonzero(truth_mask | det.mask)
        assert inter / union > 0.97


def test_merged_polygons_match_the_truth(merged):
    for label, poly in PARTS:
        det = max(
            (d for d in merged if d.label == label),
            key=lambda d: shapely.box(*d.box).intersection(shapely.Polygon(poly)).area,
        )
        quad = fit_quadrilateral(det.mask, det.origin, refine=False)
        truth = shapely.Polygon(poly)
        found = shapely.Polygon(quad)
        assert found.intersection(truth).area / found.union(truth).area > 0.93
        assert np.hypot(*np.subtract(found.centroid.coords[0], truth.centroid.coords[0])) < 1.0


def _det(x0, y0, w, h, tile, truncated=False, label=1, score=0.9, distance=50.0):
    return Detection(label, score, np.ones((h, w), bool), (x0, y0), tile, truncated, distance, [tile])


def test_merge_rules():
    # same part whole in two tiles -> one, the one farther from its tile border
    a, b = _det(10, 10, 40, 20, 0, distance=5), _det(10, 11, 40, 20, 1, distance=30)
    assert merge_detections([a, b]) == [b]
    # two detections from the same tile are the model's business (NMS): both kept
    assert len(merge_detections([a, _det(10, 11, 40, 20, 0)])) == 2
    # a truncated piece covered by a whole detection disappears
    piece = _det(10, 10, 15, 20, 2, truncated=True, distance=0)
    assert merge_detections([piece, b]) == [b]
    # different classes never merge
    assert len(merge_detections([a, _det(10, 10, 40, 20, 1, label=2)])) == 2
    # two truncated pieces and no whole view: their union
    left, right = _det(0, 0, 40, 10, 0, truncated=True), _det(15, 0, 40, 10, 1, truncated=True)
    (u,) = merge_detections([left, right])
    assert u.box == (0, 0, 55, 10) and u.area == 550
    # neighbours that only touch stay apart
    assert len(merge_detections([_det(0, 0, 20, 10, 0), _det(19, 0, 20, 10, 1)])) == 2
    assert mask_iou(a, b) == pytest.approx(40 * 19 / (2 * 800 - 40 * 19))


def test_overlap_suppression_keeps_the_best_score():
    part = _det(10, 10, 40, 20, 0, score=0.95)
    with_strip = _det(10, 4, 40, 26, 0, score=0.8)  # the same part plus a strip beside it
    other = _det(60, 10, 40, 20, 0, score=0.7)
    assert merge_detections([with_strip, part, other]) == [with_strip, part, other]
    assert merge_detections([with_strip, part, other], nms_overlap=0.6) == [part, other]
