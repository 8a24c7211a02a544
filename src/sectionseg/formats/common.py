"""Helpers shared by the annotation-format readers and writers.

Numbers are written compactly (integral values as integers, otherwise at most 3 decimals), text
files are read as UTF-8 (a byte-order mark is tolerated), and every problem with a user's file is
raised as :class:`~sectionseg.errors.InputError` naming the file and, when known, the 1-based line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sectionseg.errors import InputError
from sectionseg.io.jsontext import dumps as strict_json

if TYPE_CHECKING:
    from sectionseg.geometry import Section

#: a file named in an error message (None: not known)
PathArg = str | os.PathLike[str] | None
#: a part read from a JSON format: ``(section key or None, label, points (N, 2) px, score or None, where)``
PartItem = tuple[Any, str, np.ndarray, "float | None", str]

log = logging.getLogger(__name__)

# label / category names accepted on read, mapped to the part they name
PART_ALIASES = {"tissue": "tissue", "magnet": "magnet", "mag": "magnet", "magnetic": "magnet", "dummy": "dummy"}


def fmt_num(value: float) -> str:
    """Compact text for a number: ``12`` for 12.0, ``12.5`` for 12.5, at most 3 decimals."""
    r = round(float(value), 3)
    if r == int(r):
        return str(int(r))  # also turns -0.0 into "0"
    return f"{r:.3f}".rstrip("0").rstrip(".")


def json_num(value: float) -> int | float:
    """``value`` rounded to 3 decimals for JSON; an int when integral (keeps files small)."""
    r = round(float(value), 3)
    return int(r) if r == int(r) else r


def fmt_points(points: np.ndarray, sep: str = ",") -> str:
    """``x1,y1,x2,y2,...`` (``sep`` between all numbers)."""
    return sep.join(fmt_num(v) for v in np.asarray(points, dtype=np.float64).ravel())


def parse_float(text: str, path: PathArg, line: int | None, what: str) -> float:
    """``float(text)`` or InputError ``path:line: <what>: 'text' is not a number``."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{what}: {text.strip()!r} is not a number", path, line) from None
    if not math.isfinite(value):
        raise InputError(f"{what}: {text.strip()!r} is not a finite number", path, line)
    return value


def parse_int(text: str, path: PathArg, line: int | None, what: str) -> int:
    """``int(text)`` or InputError naming the file and line."""
    try:
        return int(text.strip())
    except ValueError:
        raise InputError(f"{what}: {text.strip()!r} is not an integer", path, line) from None


#: largest coordinate accepted on read, px (a wafer image is at most ~10^5 px wide; beyond this the
#: file is in other units or the --scale is wrong, and areas and rasters would overflow)
MAX_COORDINATE = 1e7


def check_coordinates(points: np.ndarray, path: PathArg, line: int | None, where: str) -> np.ndarray:
    """``points`` if every coordinate is finite and within :data:`MAX_COORDINATE`, else InputError."""
    if not np.all(np.isfinite(points)):
        raise InputError(f"{where}: non-finite coordinate", path, line)
    if points.size and float(np.abs(points).max()) > MAX_COORDINATE:
        raise InputError(
            f"{where}: coordinate {float(np.abs(points).max()):g} is beyond {MAX_COORDINATE:g} px "
            "(other units, or a wrong --scale?)",
            path,
            line,
        )
    return points


def check_polygon(points: np.ndarray, path: PathArg, line: int | None, where: str) -> np.ndarray:
    """``points`` (an ``(N, 2)`` polygon after any scaling) if it is a usable part outline, else
    InputError: coordinates as :func:`check_coordinates`, a positive area (not all corners on one
    point or one line) and no edge crossing another (a bow-tie: corners out of order)."""
    import shapely

    from sectionseg.geometry import polygon_area

    check_coordinates(points, path, line, where)
    extent = float(np.ptp(points, axis=0).max()) if len(points) else 0.0
    if extent == 0.0:
        raise InputError(f"{where}: all corners are the same point", path, line)
    polygon = shapely.Polygon(points)
    if polygon.convex_hull.area <= 1e-9 * extent**2:
        raise InputError(f"{where}: the corners lie on one line (zero area)", path, line)
    if shapely.is_valid_reason(polygon).startswith("Self-intersection") or polygon_area(points) <= 1e-9 * extent**2:
        raise InputError(f"{where}: the outline crosses itself (a bow-tie: corners out of order?)", path, line)
    return points


def check_scale(scale: float) -> float:
    """Return ``scale`` as a float; InputError unless it is finite and > 0."""
    try:
        s = float(scale)
    except (TypeError, ValueError):
        raise InputError(f"scale must be a number, got {scale!r}") from None
    if not (math.isfinite(s) and s > 0):
        raise InputError(f"scale must be a finite number > 0, got {scale!r}")
    return s


def require_file(path: str | os.PathLike[str]) -> Path:
    """``Path(path)`` if it is an existing file, else InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", p)
    if not p.is_file():
        raise InputError("not a file", p)
    return p


def read_text(path: str | os.PathLike[str]) -> str:
    """Whole file as text (UTF-8, optional BOM); InputError if missing or not UTF-8."""
    p = require_file(path)
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", p, line) from None


def load_json(path: str | os.PathLike[str]) -> Any:
    """Parsed JSON of ``path``; InputError with the parser's line for invalid JSON."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, exc.lineno) from None


# A JSON list of numbers laid out over several lines by json.dumps(indent=...). Real newlines
# never occur inside JSON strings, so this cannot touch string content.
_NUMBER_LIST = re.compile(r"\[\n\s*([-+0-9.eE,\s]+?)\n\s*\]")


def dump_json(data: Any) -> str:
    """JSON text as written by this package: indented, lists of numbers on one line, UTF-8."""
    text = strict_json(data, indent=1, ensure_ascii=False)
    text = _NUMBER_LIST.sub(lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]", text)
    return text + "\n"


def image_size_of(sections: Iterable[Section], image_size: tuple[float, float] | None) -> tuple[int, int]:
    """``(width, height)``: ``image_size`` if given, else ceil of the polygons' max x and max y."""
    if image_size is not None:
        w, h = image_size
        return int(w), int(h)
    pts = [p.polygon for s in sections for p in s.parts().values()]
    if not pts:
        return 0, 0
    allp = np.concatenate(pts)
    return int(math.ceil(max(allp[:, 0].max(), 0.0))), int(math.ceil(max(allp[:, 1].max(), 0.0)))


def points_array(raw: Any, path: PathArg, where: str) -> np.ndarray:
    """``raw`` (list of ``[x, y]``) as an ``(N, 2)`` float array with N >= 3, else InputError."""
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: points must be [x, y] numbers", path) from None
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"{where}: points must be a list of [x, y] pairs", path)
    if arr.shape[0] < 3:
        raise InputError(f"{where}: a polygon needs at least 3 points, got {arr.shape[0]}", path)
    return check_coordinates(arr, path, None, where)


def assemble_sections(parts: Iterable[PartItem], path: PathArg, key_name: str) -> list[Section]:
    """Pair labelled parts into sections (shared by the labelme and COCO readers).

    ``parts``: iterable of ``(key, label, points, score, where)`` where ``label`` is tissue, magnet or
    dummy (a magnet of one point is a location-only magnet: ``extra["magnet_location"]``), ``key``
    pairs the parts of one section (None: the part is a section of its own, which a
    dummy may not be) and ``where`` locates the item in error messages (``key_name`` names the key).
    Returns the keyed sections in key order, then the loose ones; logs a warning for loose parts.
    """
    from sectionseg.geometry import Section

    groups: dict[Any, dict[str, Any]] = {}
    loose: list[dict[str, Any]] = []
    for key, label, pts, score, where in parts:
        if key is None:
            if label == "dummy":
                raise InputError(f"{where}: a dummy needs the {key_name} of its section", path)
            loose.append({label: pts, "_where": where, "_score": score})
            continue
        group = groups.setdefault(key, {"_where": where, "_score": None})
        if label in group:
            raise InputError(f"{where}: {key_name} {key} already has a {label} part", path)
        group[label] = pts
        if group["_score"] is None:
            group["_score"] = score
    sections = []
    for g in [groups[k] for k in sorted(groups)] + loose:
        if "tissue" not in g and "magnet" not in g:
            raise InputError(f"{g['_where']}: {key_name} has a dummy but no tissue or magnet part", path)
        score = g["_score"] if isinstance(g["_score"], (int, float)) else None
        magnet: np.ndarray | None = g.get("magnet")
        extra: dict[str, Any] = {}
        if magnet is not None and len(magnet) == 1:  # a location-only magnet (labelme point shape)
            if "tissue" not in g:
                raise InputError(f"{g['_where']}: a magnet location needs the tissue of its {key_name}", path)
            extra = {"magnet_location": (float(magnet[0, 0]), float(magnet[0, 1]))}
            magnet = None
        section = Section.from_arrays(g.get("tissue"), magnet, g.get("dummy"), score=score)
        section.extra.update(extra)
        sections.append(section)
    if loose:
        log.warning("%s: %d parts without a %s, each read as a section of its own", path, len(loose), key_name)
    return sections
