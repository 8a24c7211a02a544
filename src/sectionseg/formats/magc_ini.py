"""``.magc`` files (INI text) in their two dialects, MagFinder and SBEMimage.

MagFinder (``dialect="magfinder"``, the default on write)::

    [sections]
    number = 2
    [section.0000]
    polygon = x0,y0,x1,y1,...     # tissue part, corners in the canonical order (below)
    center = x,y
    area = a                      # polygon area, px^2
    angle = ((d - 90) % 360) - 180   # d: the section's direction (below)
    dummy_polygon = x1,y1,...     # optional, sectionseg only (other readers ignore it)
    [end_sections]
    [magnets]
    number = 2
    [magnet.0000]
    polygon = x0,y0,...           # magnetic part (sectionseg reads it; the clients read location)
    center = x,y
    area = a
    angle = ...
    location = x,y                # magnet centre: always the LAST key (SBEMimage keeps the last key
                                  # it reads, MagFinder too)
    [end_magnets]
    [landmarks]                   # only when landmarks are given (image px)
    number = 3
    [landmark.0000]
    location = x,y
    [end_landmarks]
    ...                           # entries read but not interpreted (ROIs, focus...), as read
    [serial_order]
    serial_order = 0,1            # [] when empty
    [stage_order]
    stage_order = 0,1

SBEMimage: ``[sections.0000]``, ``[magnets.0000]``, ``[landmarks.0000]`` (4-digit ids, as in its own
example file and as napari-mass looks them up), no ``[end_*]`` headers, and the orders in
``[serialorder] serialorder = ...`` and ``[tsporder] tsporder = ...``.

Corners are written in the canonical order of :mod:`sectionseg.geometry.orientation` (tissue clockwise on
screen, first edge short and pointing away from the magnet). ``angle`` stores the direction ``d`` of
that first edge (degrees counter-clockwise on screen, MagFinder's ``getFloatAngle``) as MagFinder
writes it, ``((d - 90) % 360) - 180``; SBEMimage and MagFinder read it back as
``((angle + 90) % 360) - 180 = d``, the magnet-to-tissue direction, by which SBEMimage turns an ROI
from one section to the next.

Reading: either dialect (told from the entry headers), ``section.``/``sections.`` and
``magnet.``/``magnets.`` entries, ``landmark.``/``landmarks.``/``landmarksEM.`` entries, both order
spellings (``serial_order``/``serialorder``, ``stage_order``/``tsporder``) under either header style,
``[]`` or an empty value as "no order" (the identity). ``center``, ``area`` and ``angle`` are checked
to be numbers but geometry comes from the polygons (they are recomputed on write). A magnet entry with
only a ``location`` gives ``magnet=None`` and ``extra["magnet_location"] = (x, y)``, put back on write.
Nothing else is lost on a ``.magc`` round trip: unknown keys of section and magnet entries (e.g.
``compression``, ``template``) are kept in ``Section.extra["magc_keys"]`` / ``["magc_magnet_keys"]``
and every other entry (ROIs, focus points, ...) in :attr:`MagcFile.entries`; their ``polygon``,
``center`` and ``location`` are multiplied by the read scale (``area`` by its square). SBEMimage's own
``sbemimage_sections`` entries stay at the end of the file, where SBEMimage rewrites them. Keys of
the group headers other than ``number`` are dropped with a warning.
"""

from __future__ import annotations

import configparser
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sectionseg.errors import InputError
from sectionseg.formats.common import (
    PathArg,
    check_coordinates,
    check_polygon,
    fmt_num,
    fmt_points,
    parse_float,
    parse_int,
    read_text,
)
from sectionseg.geometry import Part, Section
from sectionseg.geometry.orientation import canonical_sections, part_direction
from sectionseg.io.atomic import write_text

log = logging.getLogger(__name__)

DIALECTS = ("magfinder", "sbemimage")

# Per dialect: entry header formats for writing and the order headers.
_NAMES: dict[str, dict[str, Any]] = {
    "magfinder": {
        "section": "section.{:04d}",
        "magnet": "magnet.{:04d}",
        "landmark": "landmark.{:04d}",
        "serial": "serial_order",
        "stage": "stage_order",
        "end": True,
    },
    "sbemimage": {
        "section": "sections.{:04d}",
        "magnet": "magnets.{:04d}",
        "landmark": "landmarks.{:04d}",
        "serial": "serialorder",
        "stage": "tsporder",
        "end": False,
    },
}
# Entry headers of either dialect (read): kind -> regex; the index is group 1.
_ENTRY_RE = {
    "section": re.compile(r"sections?\.(\d+)$"),
    "magnet": re.compile(r"magnets?\.(\d+)$"),
    "landmark": re.compile(r"landmarks?(?:EM)?\.(\d+)$"),
}
_ORDER_SPELLINGS = {"serial": ("serial_order", "serialorder"), "stage": ("stage_order", "tsporder")}
_GROUPS = ("sections", "magnets", "landmarks", "landmarksEM")
_SECTION_KEYS = ("polygon", "center", "area", "angle", "dummy_polygon")
_MAGNET_KEYS = ("location", "polygon", "center", "area", "angle")
_SCALED_KEYS = {"polygon": 1, "center": 1, "location": 1, "area": 2}  # kept entries: power of scale


@dataclass
class MagcEntry:
    """An entry of a ``.magc`` file that sectionseg keeps without interpreting it (ROI, focus...):
    its header and ``(key, value)`` items as text."""

    header: str
    items: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class MagcFile:
    """Content of a ``.magc`` file.

    ``sections``: tissue/magnet/dummy per section (image px); ``serial_order``, ``stage_order``:
    section indices; ``dialect``: the one read; ``landmarks``: ``(x, y)`` image px, in file order;
    ``entries``: the entries kept as read (see the module doc).
    """

    sections: list[Section]
    serial_order: list[int] = field(default_factory=list)
    stage_order: list[int] = field(default_factory=list)
    dialect: str = "magfinder"
    landmarks: list[tuple[float, float]] = field(default_factory=list)
    entries: list[MagcEntry] = field(default_factory=list)

    def unwritten_by(self, fmt: str) -> list[str]:
        """What a file of format ``fmt`` would lose of this file, as phrases (none for ``magc``)."""
        if fmt == "magc":
            return []
        lost = [f"{len(self.landmarks)} landmarks"] if self.landmarks else []
        kinds: dict[str, int] = {}
        for e in self.entries:
            if "." in e.header:
                kind = e.header.split(".")[0]
                kinds[kind] = kinds.get(kind, 0) + 1
        lost += [f"{n} [{k}.*] entries" for k, n in kinds.items()]
        lost += [
            f"[{e.header}]"
            for e in self.entries
            if "." not in e.header and e.header not in kinds and not e.header.startswith("end_")
        ]
        keys = sum(len(s.extra.get("magc_keys", ())) + len(s.extra.get("magc_magnet_keys", ())) for s in self.sections)
        if keys:
            lost.append(f"{keys} other keys of section/magnet entries")
        return lost


def magfinder_angle(direction: float) -> float:
    """The ``angle`` stored in a .magc file for a part whose direction (degrees, counter-clockwise on
    screen, see :mod:`sectionseg.geometry.orientation`) is ``direction``: ``((d - 90) % 360) - 180``."""
    return ((direction - 90.0) % 360.0) - 180.0


def direction_from_magc_angle(angle: float) -> float:
    """Inverse of :func:`magfinder_angle` as MagFinder and SBEMimage read it: ``((a + 90) % 360) - 180``."""
    return ((angle + 90.0) % 360.0) - 180.0


class _LineIndex:
    """1-based line numbers of ``[headers]`` and ``key = value`` lines (configparser has none)."""

    def __init__(self, text: str):
        self.headers: dict[str, int] = {}
        self.keys: dict[tuple[str, str], int] = {}
        current = None
        for i, raw in enumerate(text.splitlines(), start=1):
            s = raw.strip()
            if not s or s[0] in "#;":
                continue
            m = re.match(r"\[(.+)\]$", s)
            if m:
                current = m.group(1)
                self.headers.setdefault(current, i)
            elif current is not None and raw[:1] not in " \t":
                key = re.split(r"[=:]", s, maxsplit=1)[0].strip()
                self.keys.setdefault((current, key), i)

    def of(self, header: str, key: str | None = None) -> int | None:
        if key is not None and (header, key) in self.keys:
            return self.keys[(header, key)]
        return self.headers.get(header)


class _Reader:
    """Typed access to one parsed file with errors that name the file and line."""

    def __init__(self, path: Path, text: str, scale: float):
        self.path, self.scale = path, scale
        self.cp = configparser.ConfigParser(interpolation=None, strict=True)
        self.cp.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case (configparser's documented way)
        try:
            self.cp.read_string(text, source=str(path))
        except configparser.Error as exc:
            line = getattr(exc, "lineno", None)
            msg = getattr(exc, "message", str(exc)).splitlines()[0]
            if isinstance(exc, configparser.ParsingError) and exc.errors:  # list of (line, text)
                line, bad = exc.errors[0]
                msg = f"cannot parse line {bad}"  # bad is already repr()
            msg = re.sub(r"^While reading from .*?: ", "", msg)
            raise InputError(f"not a valid INI file: {msg}", path, line) from None
        self.lines = _LineIndex(text)

    def error(self, msg: str, header: str, key: str | None = None) -> InputError:
        return InputError(f"[{header}]: {msg}", self.path, self.lines.of(header, key))

    def get(self, header: str, key: str, required: bool = True) -> str | None:
        if not self.cp.has_option(header, key):
            if required:
                raise self.error(f"missing key {key!r}", header)
            return None
        return self.cp.get(header, key)

    def text(self, header: str, key: str) -> str:
        """The text of a required key (InputError when it is missing)."""
        value = self.get(header, key)
        assert value is not None
        return value

    def numbers(self, header: str, key: str, required: bool = True) -> list[float] | None:
        text = self.get(header, key, required)
        if text is None:
            return None
        line = self.lines.of(header, key)
        return [parse_float(v, self.path, line, f"[{header}] {key}") for v in text.split(",")]

    def integer(self, header: str, key: str) -> int:
        return parse_int(self.text(header, key), self.path, self.lines.of(header, key), f"[{header}] {key}")

    def polygon(self, header: str, key: str, required: bool = True) -> np.ndarray | None:
        vals = self.numbers(header, key, required)
        if vals is None:
            return None
        if len(vals) % 2 or len(vals) < 6:
            raise self.error(f"{key} needs x,y pairs of at least 3 points, got {len(vals)} numbers", header, key)
        points = np.array(vals).reshape(-1, 2) * self.scale
        return check_polygon(points, self.path, self.lines.of(header, key), f"[{header}] {key}")

    def point(self, header: str, key: str) -> tuple[float, float]:
        vals = self.numbers(header, key)
        assert vals is not None  # required
        if len(vals) != 2:
            raise self.error(f"{key} must be x,y, got {len(vals)} numbers", header, key)
        x, y = check_coordinates(
            np.array(vals) * self.scale, self.path, self.lines.of(header, key), f"[{header}] {key}"
        )
        return float(x), float(y)

    def order(self, kind: str) -> list[int] | None:
        """The serial or stage order under either spelling; None when absent, ``[]`` or empty."""
        for header in _ORDER_SPELLINGS[kind]:
            if not self.cp.has_section(header):
                continue
            key = next((k for k in _ORDER_SPELLINGS[kind] if self.cp.has_option(header, k)), header)
            text = self.text(header, key).strip()
            if text in ("", "[]"):
                return None
            line = self.lines.of(header, key)
            return [parse_int(v, self.path, line, f"[{header}]") for v in text.strip("[]").split(",")]
        return None

    def extra_items(self, header: str, known: tuple[str, ...]) -> list[tuple[str, str]]:
        """``(key, value)`` of ``header``'s keys not in ``known``, in file order."""
        return [(k, v) for k, v in self.cp.items(header) if k not in known]

    def kept_entry(self, header: str) -> MagcEntry:
        """``header`` as a :class:`MagcEntry`, coordinate keys scaled (text kept when scale is 1)."""
        items = []
        for key, value in self.cp.items(header):
            power = _SCALED_KEYS.get(key)
            if power and self.scale != 1.0:
                try:
                    nums = [float(v) * self.scale**power for v in value.split(",")]
                    value = ",".join(fmt_num(v) for v in nums)
                except ValueError:
                    pass  # not numbers: kept as read
            items.append((key, value))
        return MagcEntry(header, items)


def _entries(r: _Reader, kind: str, number: int | None, owner: str) -> dict[int, str]:
    """``{index: header}`` of the entries of ``kind``; indices must be < ``number`` when given."""
    found: dict[int, str] = {}
    for header in r.cp.sections():
        m = _ENTRY_RE[kind].match(header)
        if m:
            i = int(m.group(1))
            if number is not None and i >= number:
                raise r.error(f"index {i} but [{owner}] number = {number}", header)
            if i in found:
                raise r.error(f"index {i} already given by [{found[i]}]", header)
            found[i] = header
    return found


def _detect_dialect(headers: list[str]) -> str:
    """``sbemimage`` if the section entries are ``[sections.N]`` (or, without sections, the orders are
    spelled the SBEMimage way), else ``magfinder``."""
    entries = [h for h in headers if _ENTRY_RE["section"].match(h)]
    if entries:
        return "sbemimage" if entries[0].startswith("sections.") else "magfinder"
    return "sbemimage" if any(h in ("serialorder", "tsporder") for h in headers) else "magfinder"


def read_magc(path: str | os.PathLike[str], scale: float = 1.0) -> MagcFile:
    """Read a ``.magc`` file (either dialect, detected from its headers).

    Returns a :class:`MagcFile`: sections (image px, every coordinate multiplied by ``scale``),
    serial and stage order (section indices), the dialect, landmarks (px, times ``scale``) and the
    entries kept as read. A malformed file raises :class:`~sectionseg.errors.InputError` naming the
    file and line.
    """
    path = Path(path)
    r = _Reader(path, read_text(path), scale)
    if not r.cp.has_section("sections"):
        raise InputError("no [sections] header: not a .magc file", path)
    dialect = _detect_dialect(r.cp.sections())
    n = r.integer("sections", "number")
    found = _entries(r, "section", n, "sections")
    missing = sorted(set(range(n)) - set(found))
    if missing:
        raise r.error(
            f"number = {n} but the entry [{_NAMES[dialect]['section'].format(missing[0])}] is missing",
            "sections",
            "number",
        )
    magnets, locations, magnet_keys = _read_magnets(r, n)
    sections = [_read_section(r, found[i], magnets.get(i), locations.get(i), magnet_keys.get(i)) for i in range(n)]
    identity = list(range(n))
    serial, stage = r.order("serial"), r.order("stage")
    return MagcFile(
        sections,
        identity if serial is None else serial,
        identity if stage is None else stage,
        dialect,
        _read_landmarks(r),
        _kept_entries(r),
    )


def _read_section(
    r: _Reader,
    header: str,
    magnet: Part | None,
    location: tuple[float, float] | None,
    magnet_keys: list[tuple[str, str]] | None,
) -> Section:
    """One section from its tissue entry and what was read of its magnet entry."""
    tissue = r.polygon(header, "polygon")
    assert tissue is not None  # required
    for key in ("center", "area", "angle"):
        r.numbers(header, key, required=False)  # checked, not used: geometry comes from polygons
    dummy = r.polygon(header, "dummy_polygon", required=False)
    extra: dict[str, Any] = {}
    if magnet is None and location is not None:
        extra["magnet_location"] = location
    if r.extra_items(header, _SECTION_KEYS):
        extra["magc_keys"] = r.extra_items(header, _SECTION_KEYS)
    if magnet_keys:
        extra["magc_magnet_keys"] = magnet_keys
    return Section(Part(tissue), magnet, None if dummy is None else Part(dummy), extra=extra)


def _read_magnets(
    r: _Reader, n: int
) -> tuple[dict[int, Part | None], dict[int, tuple[float, float]], dict[int, list[tuple[str, str]]]]:
    """``({index: Part or None}, {index: (x, y) location}, {index: extra items})`` of the magnets."""
    if not r.cp.has_section("magnets"):
        return {}, {}, {}
    m = r.integer("magnets", "number")
    found = _entries(r, "magnet", n, "sections")
    if len(found) != m:
        raise r.error(f"number = {m} but {len(found)} magnet entries", "magnets", "number")
    parts: dict[int, Part | None] = {}
    locations: dict[int, tuple[float, float]] = {}
    extra: dict[int, list[tuple[str, str]]] = {}
    for i, h in found.items():
        locations[i] = r.point(h, "location")
        poly = r.polygon(h, "polygon", required=False)
        for key in ("center", "area", "angle"):
            r.numbers(h, key, required=False)
        parts[i] = None if poly is None else Part(poly)
        if r.extra_items(h, _MAGNET_KEYS):
            extra[i] = r.extra_items(h, _MAGNET_KEYS)
    return parts, locations, extra


def _read_landmarks(r: _Reader) -> list[tuple[float, float]]:
    """Landmark locations (image px) in index order."""
    found = _entries(r, "landmark", None, "landmarks")
    return [r.point(found[i], "location") for i in sorted(found)]


def _kept_entries(r: _Reader) -> list[MagcEntry]:
    """Entries that are neither sections, magnets, landmarks, orders nor group headers, as read;
    dropped group keys are logged."""
    kept = []
    orders = {h for spellings in _ORDER_SPELLINGS.values() for h in spellings}
    for header in r.cp.sections():
        if any(rx.match(header) for rx in _ENTRY_RE.values()) or header in orders:
            continue
        if header in _GROUPS or header in {f"end_{g}" for g in _GROUPS}:
            dropped = [k for k in r.cp.options(header) if k != "number"]
            if dropped:
                log.warning("%s: [%s]: keys %s dropped (only 'number' is kept)", r.path, header, ", ".join(dropped))
            continue
        kept.append(r.kept_entry(header))
    return kept


def _part_lines(part: Part) -> list[str]:
    """polygon, center, area and angle (the part's direction, as MagFinder stores it) of a part."""
    cx, cy = part.centre
    return [
        f"polygon = {fmt_points(part.polygon)}",
        f"center = {fmt_num(cx)},{fmt_num(cy)}",
        f"area = {fmt_num(part.area)}",
        f"angle = {fmt_num(magfinder_angle(part_direction(part)))}",
    ]


def _order_text(order: Sequence[int] | None, n: int) -> str:
    values = list(range(n) if order is None else order)
    return ",".join(str(int(i)) for i in values) if values else "[]"


def _section_block(names: dict[str, Any], i: int, s: Section, path: PathArg) -> str:
    """The section entry of section ``i`` (its tissue part; angle = the section's direction)."""
    if s.tissue is None:
        raise InputError(f"section {i} has no tissue part; a .magc file needs one per section", path)
    lines = [f"[{names['section'].format(i)}]"] + _part_lines(s.tissue)
    if s.dummy is not None:
        lines.append(f"dummy_polygon = {fmt_points(s.dummy.polygon)}")
    lines += [f"{k} = {v}" for k, v in s.extra.get("magc_keys", ())]
    return "\n".join(lines) + "\n"


def _magnet_block(names: dict[str, Any], i: int, s: Section) -> str | None:
    """The magnet entry of section ``i``, its ``location`` last; None when it has no magnet."""
    if s.magnet is not None:
        (x, y), lines = s.magnet.centre, _part_lines(s.magnet)
    elif "magnet_location" in s.extra:
        (x, y), lines = s.extra["magnet_location"], []
    else:
        return None
    lines += [f"{k} = {v}" for k, v in s.extra.get("magc_magnet_keys", ())]
    return "\n".join([f"[{names['magnet'].format(i)}]"] + lines + [f"location = {fmt_num(x)},{fmt_num(y)}"]) + "\n"


def _landmark_block(names: dict[str, Any], k: int, point: tuple[float, float]) -> str:
    x, y = point
    return f"[{names['landmark'].format(k)}]\nlocation = {fmt_num(x)},{fmt_num(y)}\n"


def _group(name: str, blocks: list[str], end: bool) -> list[str]:
    return [f"[{name}]\nnumber = {len(blocks)}\n"] + blocks + ([f"[end_{name}]\n"] if end else [])


def _entry_text(entry: MagcEntry) -> str:
    return "\n".join([f"[{entry.header}]"] + [f"{k} = {v}" for k, v in entry.items]) + "\n"


def magc_text(
    sections: list[Section],
    dialect: str = "magfinder",
    serial_order: Sequence[int] | None = None,
    stage_order: Sequence[int] | None = None,
    path: PathArg = None,
    *,
    landmarks: Sequence[tuple[float, float]] = (),
    entries: Iterable[MagcEntry] = (),
) -> str:
    """The ``.magc`` text of ``sections`` (see the module doc); every section needs a tissue part.

    ``landmarks``: ``(x, y)`` image px; ``entries``: :class:`MagcEntry` written as they are (after
    the landmarks; ``sbemimage_sections`` ones after the orders).
    """
    if dialect not in DIALECTS:
        raise InputError(f"unknown .magc dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    names = _NAMES[dialect]
    sections = canonical_sections(sections)
    out = _group("sections", [_section_block(names, i, s, path) for i, s in enumerate(sections)], names["end"])
    magnets = [b for b in (_magnet_block(names, i, s) for i, s in enumerate(sections)) if b]
    out += _group("magnets", magnets, names["end"])
    if len(landmarks):
        out += _group("landmarks", [_landmark_block(names, k, p) for k, p in enumerate(landmarks)], names["end"])
    at_end = [e.header.startswith("sbemimage_sections") for e in entries]  # SBEMimage rewrites from there
    out += [_entry_text(e) for e, last in zip(entries, at_end) if not last]
    for key, order in ((names["serial"], serial_order), (names["stage"], stage_order)):
        out.append(f"[{key}]\n{key} = {_order_text(order, len(sections))}\n")
    out += [_entry_text(e) for e, last in zip(entries, at_end) if last]
    return "\n".join(out)


def write_magc(
    path: str | os.PathLike[str],
    sections: list[Section],
    dialect: str = "magfinder",
    serial_order: Sequence[int] | None = None,
    stage_order: Sequence[int] | None = None,
    *,
    landmarks: Sequence[tuple[float, float]] = (),
    entries: Iterable[MagcEntry] = (),
) -> None:
    """Atomically write ``sections`` as a ``.magc`` file; orders default to the identity.

    ``landmarks`` (image px) and kept ``entries`` as in :func:`magc_text`.
    """
    write_text(
        path, magc_text(sections, dialect, serial_order, stage_order, path, landmarks=landmarks, entries=entries)
    )
