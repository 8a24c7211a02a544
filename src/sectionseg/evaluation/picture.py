"""Score a detection on a real picture whose ground truth marks some parts as "ignore" (cut by the
picture's border, or whose partner is cut) and lists dummy strips.

Layout of a ground-truth folder (as ``../shared/real/panel_b/gt``): ``source_sections_{tissue,mag}.txt``
(the whole sections, a MagC pair), ``ignore_tissue.txt`` / ``ignore_mag.txt`` and ``dummy.txt``
(one quad a line, MagC text). All in image px.
"""

from __future__ import annotations

import os
from pathlib import Path

import shapely

from sectionseg.evaluation.wafer_metrics import compare_sections
from sectionseg.formats.magc_pair import read_magc_pair, read_quads
from sectionseg.geometry import Section
from sectionseg.geometry.polygons import polygon_iou

#: a found part overlapping an ignored part by this share of its own area is neither right nor wrong
IGNORE_COVER = 0.5


def _quads(folder: Path, name: str) -> list:
    path = folder / name
    return [shapely.Polygon(q) for q in read_quads(path)] if path.is_file() else []


def score_picture(found: list[Section], gt_dir: str | os.PathLike) -> dict:
    """``compare_sections`` on the whole sections, plus ``false_parts`` (found parts that match no
    true part and are not mostly over an ignored part; those over a dummy are also counted in
    ``false_on_dummies``)."""
    folder = Path(gt_dir)
    truth = read_magc_pair(folder)
    metrics = compare_sections(truth, found)
    ignore = _quads(folder, "ignore_tissue.txt") + _quads(folder, "ignore_mag.txt")
    dummies = _quads(folder, "dummy.txt")
    true_parts = [shapely.Polygon(p.polygon) for s in truth for p in (s.tissue, s.magnet)]
    false_parts = false_on_dummies = 0
    for s in found:
        for part in (s.tissue, s.magnet):
            if part is None:
                continue
            poly = shapely.make_valid(shapely.Polygon(part.polygon))
            if poly.area <= 0 or any(polygon_iou(poly, t) >= 0.5 for t in true_parts):
                continue
            if any(poly.intersection(q).area >= IGNORE_COVER * poly.area for q in ignore):
                continue
            false_parts += 1
            false_on_dummies += any(poly.intersection(q).area >= IGNORE_COVER * poly.area for q in dummies)
    metrics.update(false_parts=false_parts, false_on_dummies=false_on_dummies)
    return metrics
