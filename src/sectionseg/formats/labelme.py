"""labelme JSON: one shape per part, parts of a section share a ``group_id``.

Written as::

    {"version": "5.5.0", "flags": {},
     "shapes": [{"label": "tissue"|"magnet"|"dummy", "points": [[x, y], ...], "group_id": i,
                 "shape_type": "polygon", "flags": {}, "description": ""}, ...],
     "imagePath": ..., "imageData": null, "imageHeight": H, "imageWidth": W}

Section i gets ``group_id`` i and its shapes come in the order tissue, magnet, dummy, their corners
in the canonical order of :mod:`sectionseg.geometry.orientation`. A magnet known only by its location
(``Section.extra["magnet_location"]``, e.g. from a SBEMimage ``.magc``) is a ``point`` shape. A
section's detection score, when set, is written in its shapes' ``description`` as ``score=0.93``.
labelme's point coordinates are taken to be in this package's convention (x, y pixels, origin at
the top-left corner of the top-left pixel); no half-pixel shift is applied either way.

``imagePath`` is written as given: labelme resolves it relative to the JSON file's folder, so callers
that know the image file pass :func:`image_path_for` (the image's path relative to the JSON).
``imageWidth``/``imageHeight`` must be the image's true size for labelme to open the file: pass
``image_size`` whenever the image is known (it is otherwise guessed from the polygons).

Reading: labels ``tissue``, ``magnet`` (also ``mag``, ``magnetic``) and ``dummy`` (any case);
``polygon`` and ``oriented_rectangle`` shapes (4 corners), ``rectangle`` shapes (turned into their
4 corners) and, for magnets only, ``point`` shapes (a location-only magnet). Shapes are grouped into
sections by ``group_id`` (sections sorted by ``group_id``); a tissue or magnet shape without a
``group_id`` becomes a section of its own (after the grouped ones, in file order). Unknown labels,
a group with two shapes of one label, a group or ungrouped shape that is only a dummy are errors
naming the shape index (``shapes[k]``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sectionseg.errors import InputError
from sectionseg.formats.common import (
    PART_ALIASES,
    PartItem,
    PathArg,
    assemble_sections,
    check_coordinates,
    check_polygon,
    dump_json,
    image_size_of,
    json_num,
    load_json,
    points_array,
)
from sectionseg.geometry import Section
from sectionseg.geometry.orientation import canonical_sections
from sectionseg.io.atomic import write_text

log = logging.getLogger(__name__)

LABELME_VERSION = "5.5.0"


def image_path_for(image_file: str | os.PathLike[str], json_path: str | os.PathLike[str]) -> str:
    """``image_file`` (a path as given on the command line) relative to ``json_path``'s folder, with
    forward slashes: the ``imagePath`` labelme resolves. Absolute when no relative path exists."""
    image, folder = Path(os.path.abspath(image_file)), Path(os.path.abspath(json_path)).parent
    try:
        return Path(os.path.relpath(image, folder)).as_posix()
    except ValueError:  # another drive (Windows)
        return image.as_posix()


def _shape(
    label: str, points: Iterable[tuple[float, float]] | np.ndarray, group: int, description: str, kind: str = "polygon"
) -> dict[str, Any]:
    return {
        "label": label,
        "points": [[json_num(x), json_num(y)] for x, y in points],
        "group_id": group,
        "shape_type": kind,
        "flags": {},
        "description": description,
    }


def labelme_dict(
    sections: list[Section], image_path: str | None = None, image_size: tuple[float, float] | None = None
) -> dict[str, Any]:
    """The labelme document of ``sections``; ``image_path`` relative to the JSON's folder,
    ``image_size`` ``(width, height)``."""
    w, h = image_size_of(sections, image_size)
    shapes = []
    for i, s in enumerate(canonical_sections(sections)):
        description = "" if s.score is None else f"score={float(s.score):.6g}"
        for name, part in s.parts().items():
            shapes.append(_shape(name, part.polygon, i, description))
            if name == "tissue" and s.magnet is None and "magnet_location" in s.extra:
                shapes.append(_shape("magnet", [s.extra["magnet_location"]], i, description, "point"))
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": "" if image_path is None else Path(image_path).as_posix(),
        "imageData": None,
        "imageHeight": h,
        "imageWidth": w,
    }


def write_labelme(
    path: str | os.PathLike[str],
    sections: list[Section],
    image_path: str | None = None,
    image_size: tuple[float, float] | None = None,
) -> None:
    """Atomically write ``sections`` as labelme JSON (``image_path`` stored as given: relative to
    the JSON's folder, see :func:`image_path_for`)."""
    write_text(path, dump_json(labelme_dict(sections, image_path, image_size)))


def _shape_points(shape: dict[str, Any], label: str, path: PathArg, where: str) -> np.ndarray:
    """Corners ``(N, 2)`` of a polygon-like shape, or ``(1, 2)`` for a magnet's ``point`` shape."""
    kind = shape.get("shape_type") or "polygon"
    raw = shape.get("points")
    if kind == "rectangle":
        two = np.asarray(raw, dtype=np.float64) if isinstance(raw, list) and len(raw) == 2 else None
        if two is None or two.shape != (2, 2):
            raise InputError(f"{where}: a rectangle needs 2 points", path)
        (x0, y0), (x1, y1) = two
        raw = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    elif kind == "oriented_rectangle":
        if not isinstance(raw, list) or len(raw) != 4:
            raise InputError(f"{where}: an oriented_rectangle needs 4 points", path)
    elif kind == "point":
        if label != "magnet":
            raise InputError(f"{where}: a point shape can only be a magnet location, not a {label}", path)
        pts = np.asarray(raw, dtype=np.float64) if isinstance(raw, list) else np.zeros((0,))
        if pts.shape != (1, 2) or not np.all(np.isfinite(pts)):
            raise InputError(f"{where}: a point shape needs 1 point [x, y]", path)
        return pts
    elif kind != "polygon":
        raise InputError(
            f"{where}: shape_type {kind!r} is not supported (use polygon, rectangle, "
            f"oriented_rectangle, or point for a magnet location)",
            path,
        )
    return points_array(raw, path, where)


def _score(description: Any) -> float | None:
    m = re.search(r"score=([0-9.eE+-]+)", description or "")
    try:
        return float(m.group(1)) if m else None
    except ValueError:
        return None


def sections_from_labelme(data: Any, path: PathArg, scale: float = 1.0) -> list[Section]:
    """Sections of a parsed labelme document (``path`` is only used in error messages)."""
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise InputError('not a labelme file: no "shapes" list', path)
    return assemble_sections(_labelme_parts(data["shapes"], path, scale), path, "group_id")


def _labelme_parts(shapes: list[Any], path: PathArg, scale: float) -> Iterator[PartItem]:
    """Yield ``(group_id, label, points, score, where)`` for each labelme shape."""
    for k, shape in enumerate(shapes):
        where = f"shapes[{k}]"
        if not isinstance(shape, dict):
            raise InputError(f"{where}: not an object", path)
        label = PART_ALIASES.get(str(shape.get("label", "")).strip().lower())
        if label is None:
            raise InputError(f"{where}: unknown label {shape.get('label')!r} (expected tissue, magnet or dummy)", path)
        pts = _shape_points(shape, label, path, where) * scale
        pts = check_polygon(pts, path, None, where) if len(pts) > 1 else check_coordinates(pts, path, None, where)
        gid = shape.get("group_id")
        if gid is not None and (not isinstance(gid, int) or isinstance(gid, bool)):
            raise InputError(f"{where}: group_id must be an integer, got {gid!r}", path)
        yield gid, label, pts, _score(shape.get("description")), where


def read_labelme(path: str | os.PathLike[str], scale: float = 1.0) -> list[Section]:
    """Sections of a labelme JSON file; coordinates multiplied by ``scale``."""
    return sections_from_labelme(load_json(path), path, scale)
