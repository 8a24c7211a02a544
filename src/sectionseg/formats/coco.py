"""COCO instance-segmentation JSON for one image.

Written as one image (``id`` 1, ``file_name``, ``width``, ``height``), the categories (always all
three, so the ids are stable whatever the file holds):

=====  ==========  ==========================================================
id     name        what
=====  ==========  ==========================================================
1      ``tissue``  the tissue part (resin block with the tissue)
2      ``magnet``  the magnetic part
3      ``dummy``   the thin dummy strip beside some sections (a trainer that
                   ignores dummies drops category 3)
=====  ==========  ==========================================================

and one annotation per part, corners in the canonical order of :mod:`sectionseg.geometry.orientation`::

    {"id": k, "image_id": 1, "category_id": c, "segmentation": [[x0, y0, x1, y1, ...]],
     "bbox": [x, y, w, h], "area": polygon area, "iscrowd": 0, "attributes": {"section": i},
     "score": s}

``attributes.section`` pairs the parts of section i. ``score`` is the section's detection score; it
is written whenever the section has one (every section of a detection: ``sectionseg detect`` writes
``sections.coco.json``), so a detection file loads as COCO *results* (pycocotools ``loadRes`` of its
``annotations``, ``COCOeval``); ground truth has none. Coordinates are in the package convention
(origin at the top-left corner of the top-left pixel), as pycocotools rasterises them. A magnet known
only by its location has no polygon and is left out (with a warning). ``file_name`` is written as given.

Reading: the file must have an ``annotations`` list; categories are matched by *name* (tissue /
magnet or mag / dummy, any case), so files from other tools with other ids work. Only files with at
most one image are accepted, and when the file lists its images every annotation's ``image_id`` must
be one of them. Parts are
paired by ``attributes.section`` (or a top-level ``section_id``); an annotation without either is
a section of its own. A segmentation with several polygons keeps the largest one; RLE
segmentations are refused. Errors name the annotation index (``annotations[k]``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sectionseg.errors import InputError
from sectionseg.formats.common import (
    PART_ALIASES,
    PartItem,
    PathArg,
    assemble_sections,
    check_polygon,
    dump_json,
    image_size_of,
    json_num,
    load_json,
    points_array,
)
from sectionseg.geometry import Section, polygon_area
from sectionseg.geometry.orientation import canonical_sections
from sectionseg.io.atomic import write_text

log = logging.getLogger(__name__)

CATEGORIES = [
    {"id": 1, "name": "tissue", "supercategory": "section"},
    {"id": 2, "name": "magnet", "supercategory": "section"},
    {"id": 3, "name": "dummy", "supercategory": "section"},
]
_CATEGORY_ID = {c["name"]: c["id"] for c in CATEGORIES}


def coco_dict(
    sections: list[Section], image_path: str | None = None, image_size: tuple[float, float] | None = None
) -> dict[str, Any]:
    """The COCO document of ``sections``; ``image_size`` is ``(width, height)``."""
    w, h = image_size_of(sections, image_size)
    anns: list[dict[str, Any]] = []
    sections = canonical_sections(sections)
    located = sum(s.magnet is None and "magnet_location" in s.extra for s in sections)
    if located:
        log.warning("%d magnets known only by their location are not written to COCO (no polygon)", located)
    for i, s in enumerate(sections):
        for name, part in s.parts().items():
            p = part.polygon
            x0, y0 = p.min(axis=0)
            x1, y1 = p.max(axis=0)
            ann = {
                "id": len(anns) + 1,
                "image_id": 1,
                "category_id": _CATEGORY_ID[name],
                "segmentation": [[json_num(v) for v in p.ravel()]],
                "bbox": [json_num(x0), json_num(y0), json_num(x1 - x0), json_num(y1 - y0)],
                "area": json_num(part.area),
                "iscrowd": 0,
                "attributes": {"section": i},
            }
            if s.score is not None:
                ann["score"] = float(s.score)
            anns.append(ann)
    file_name = "" if image_path is None else Path(image_path).as_posix()
    return {
        "info": {"description": "MagC sections written by sectionseg"},
        "images": [{"id": 1, "file_name": file_name, "width": w, "height": h}],
        "categories": CATEGORIES,
        "annotations": anns,
    }


def write_coco(
    path: str | os.PathLike[str],
    sections: list[Section],
    image_path: str | None = None,
    image_size: tuple[float, float] | None = None,
) -> None:
    """Atomically write ``sections`` as a COCO instance JSON file."""
    write_text(path, dump_json(coco_dict(sections, image_path, image_size)))


def _polygon(ann: dict[str, Any], path: PathArg, where: str) -> np.ndarray:
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        raise InputError(f"{where}: RLE segmentations are not supported (polygons only)", path)
    if not isinstance(seg, list) or not seg or not all(isinstance(s, list) for s in seg):
        raise InputError(f"{where}: segmentation must be a list of polygons [[x1, y1, ...]]", path)
    polys = []
    for s in seg:
        if len(s) % 2:
            raise InputError(f"{where}: a polygon needs x, y pairs, got {len(s)} numbers", path)
        polys.append(points_array([s[j : j + 2] for j in range(0, len(s), 2)], path, where))
    if len(polys) > 1:
        log.warning("%s: %s has %d polygons; keeping the largest", path, where, len(polys))
    return max(polys, key=polygon_area)


def _section_key(ann: dict[str, Any], path: PathArg, where: str) -> int | None:
    attrs = ann.get("attributes")
    key = attrs.get("section") if isinstance(attrs, dict) else None
    if key is None:
        key = ann.get("section_id")
    if key is not None and (not isinstance(key, int) or isinstance(key, bool)):
        raise InputError(f"{where}: section must be an integer, got {key!r}", path)
    return key


def sections_from_coco(data: Any, path: PathArg, scale: float = 1.0) -> list[Section]:
    """Sections of a parsed COCO document (``path`` is only used in error messages)."""
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputError('not a COCO file: no "annotations" list', path)
    images = data.get("images", [])
    if not isinstance(images, list) or not all(isinstance(im, dict) and "id" in im for im in images):
        raise InputError('"images" must be a list of objects with an "id"', path)
    if len(images) > 1:
        raise InputError(f"{len(images)} images in one COCO file; sectionseg reads files of one image", path)
    categories = data.get("categories", [])
    if not isinstance(categories, list):
        raise InputError('"categories" must be a list', path)
    names: dict[Any, str | None] = {}
    for c in categories:
        if isinstance(c, dict) and "id" in c:
            names[c["id"]] = PART_ALIASES.get(str(c.get("name", "")).strip().lower())
    image_ids = {im["id"] for im in images} if "images" in data else None
    return assemble_sections(_coco_parts(data["annotations"], names, path, scale, image_ids), path, "section")


def _coco_parts(
    annotations: list[Any], names: dict[Any, str | None], path: PathArg, scale: float, image_ids: set[Any] | None = None
) -> Iterator[PartItem]:
    """Yield ``(section key, label, points, score, where)`` for each COCO annotation; with
    ``image_ids`` (the file lists its images) every annotation must name one of them."""
    for k, ann in enumerate(annotations):
        where = f"annotations[{k}]"
        if not isinstance(ann, dict):
            raise InputError(f"{where}: not an object", path)
        if image_ids is not None and ann.get("image_id") not in image_ids:
            raise InputError(
                f'{where}: image_id {ann.get("image_id")!r} is not in "images" '
                f"({', '.join(map(repr, sorted(image_ids, key=str))) or 'none'})",
                path,
            )
        label = names.get(ann.get("category_id"))
        if label is None:
            raise InputError(
                f"{where}: category_id {ann.get('category_id')!r} is not a tissue, magnet or dummy category", path
            )
        pts = check_polygon(_polygon(ann, path, where) * scale, path, None, where)
        yield _section_key(ann, path, where), label, pts, ann.get("score"), where


def read_coco(path: str | os.PathLike[str], scale: float = 1.0) -> list[Section]:
    """Sections of a COCO JSON file; coordinates multiplied by ``scale``."""
    return sections_from_coco(load_json(path), path, scale)
