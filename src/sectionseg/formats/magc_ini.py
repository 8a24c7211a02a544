"""``.magc`` files (INI text) in their two dialects, MagFinder and SBEMimage.

MagFinder (``dialect="magfinder"``, the default on write)::

    [sections]
    number = 2
    [section.0000]
    polygon = x1,y1,x2,y2,...     # tissue part
    center = x,y
    area = a
    angle = ((angle - 90) % 360) - 180   # of the part's long-axis angle (Part.angle)
    dummy_polygon = x1,y1,...     # optional, sectionseg only (other readers ignore it)
    [end_sections]
    [magnets]
    number = 2
    [magnet.0000]
    location = x,y                # magnet centre
    polygon = x1,y1,...           # magnetic part (sectionseg writes it; MagFinder may not)
    area = a
    angle = ...
    [end_magnets]
    [serial_order]
    serial_order = 0,1
    [stage_order]
    stage_order = 0,1

SBEMimage (older): ``[sections.0]``, ``[magnets.0]`` entries with the same keys, and the orders in
``[serialorder] serialorder = ...`` and ``[tsporder] tsporder = ...``.

Tissue parts are the *sections* and magnetic parts the *magnets*; entry i of both is section i.
On read the dialect is detected; ``center``, ``area`` and ``angle`` are checked to be numbers but
the parts' geometry comes from the polygons. A magnet entry with only a ``location`` (no
``polygon``) gives a Section with ``magnet=None`` and ``extra["magnet_location"] = (x, y)``, which
a .magc write puts back as the magnet location. Missing orders default to the identity.
"""
from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sectionseg.errors import InputError
from sectionseg.formats.common import fmt_num, fmt_points, parse_float, parse_int, read_text
from sectionseg.geometry import Part, Section
from sectionseg.io.atomic import write_text

DIALECTS = ("magfinder", "sbemimage")

# Per dialect: entry header patterns (format for writing, regex for reading) and order sections.
_NAMES = {
    "magfinder": {
        "section": "section.{:04d}", "section_re": re.compile(r"section\.(\d+)$"),
        "magnet": "magnet.{:04d}", "magnet_re": re.compile(r"magnet\.(\d+)$"),
        "serial": "serial_order", "stage": "stage_order",
    },
    "sbemimage": {
        "section": "sections.{}", "section_re": re.compile(r"sections\.(\d+)$"),
        "magnet": "magnets.{}", "magnet_re": re.compile(r"magnets\.(\d+)$"),
        "serial": "serialorder", "stage": "tsporder",
    },
}


@dataclass
class MagcFile:
    """Content of a ``.magc`` file: sections, orders (section indices) and the dialect read."""

    sections: list[Section]
    serial_order: list[int] = field(default_factory=list)
    stage_order: list[int] = field(default_factory=list)
    dialect: str = "magfinder"


def magfinder_angle(angle: float) -> float:
    """The angle stored in a .magc file for a part whose long-axis angle (degrees) is ``angle``."""
    return ((angle - 90.0) % 360.0) - 180.0


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
        self.cp.optionxform = str  # keep key case
        try:
            self.cp.read_string(text, source=str(path))
        except configparser.Error as exc:
            line = getattr(exc, "lineno", None)
            msg = getattr(exc, "message", str(exc)).splitlines()[0]
            if getattr(exc, "errors", None):  # ParsingError: list of (line, text)
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

    def numbers(self, header: str, key: str, required: bool = True) -> list[float] | None:
        text = self.get(header, key, required)
        if text is None:
            return None
        line = self.lines.of(header, key)
        return [parse_float(v, self.path, line, f"[{header}] {key}") for v in text.split(",")]

    def integer(self, header: str, key: str) -> int:
        return parse_int(self.get(header, key), self.path, self.lines.of(header, key),
                         f"[{header}] {key}")

    def polygon(self, header: str, key: str, required: bool = True) -> np.ndarray | None:
        vals = self.numbers(header, key, required)
        if vals is None:
            return None
        if len(vals) % 2 or len(vals) < 6:
            raise self.error(f"{key} needs x,y pairs of at least 3 points, got {len(vals)} numbers",
                             header, key)
        return np.array(vals).reshape(-1, 2) * self.scale

    def point(self, header: str, key: str) -> tuple[float, float]:
        vals = self.numbers(header, key)
        if len(vals) != 2:
            raise self.error(f"{key} must be x,y, got {len(vals)} numbers", header, key)
        return vals[0] * self.scale, vals[1] * self.scale

    def order(self, header: str) -> list[int] | None:
        if not self.cp.has_section(header):
            return None
        text = self.get(header, header).strip()
        line = self.lines.of(header, header)
        return [parse_int(v, self.path, line, f"[{header}]") for v in text.split(",")] if text else []

    def entries(self, pattern: re.Pattern, number: int, owner: str) -> dict[int, str]:
        """``{index: header}`` of the entries matching ``pattern``; indices must be < ``number``."""
        found = {}
        for header in self.cp.sections():
            m = pattern.match(header)
            if m:
                i = int(m.group(1))
                if i >= number:
                    raise self.error(f"index {i} but [{owner}] number = {number}", header)
                found[i] = header
        return found


def _detect_dialect(headers: list[str]) -> str:
    if any(_NAMES["sbemimage"]["section_re"].match(h) for h in headers) or \
            any(h in ("serialorder", "tsporder") for h in headers):
        return "sbemimage"
    return "magfinder"


def read_magc(path: str | os.PathLike, scale: float = 1.0) -> MagcFile:
    """Read a ``.magc`` file (either dialect); coordinates are multiplied by ``scale``."""
    path = Path(path)
    r = _Reader(path, read_text(path), scale)
    if not r.cp.has_section("sections"):
        raise InputError("no [sections] header: not a .magc file", path)
    dialect = _detect_dialect(r.cp.sections())
    names = _NAMES[dialect]
    n = r.integer("sections", "number")
    found = r.entries(names["section_re"], n, "sections")
    missing = sorted(set(range(n)) - set(found))
    if missing:
        raise r.error(f"number = {n} but the entry [{names['section'].format(missing[0])}] is "
                      f"missing", "sections", "number")
    magnets, locations = _read_magnets(r, names, n)
    sections = []
    for i in range(n):
        h = found[i]
        tissue = r.polygon(h, "polygon")
        for key in ("center", "area", "angle"):
            r.numbers(h, key, required=False)  # checked, not used: geometry comes from polygons
        dummy = r.polygon(h, "dummy_polygon", required=False)
        extra = {"magnet_location": locations[i]} if magnets.get(i) is None and i in locations else {}
        sections.append(Section(Part(tissue), magnets.get(i), None if dummy is None else Part(dummy),
                                extra=extra))
    serial = r.order(names["serial"])
    stage = r.order(names["stage"])
    identity = list(range(n))
    return MagcFile(sections, identity if serial is None else serial,
                    identity if stage is None else stage, dialect)


def _read_magnets(r: _Reader, names: dict, n: int):
    """``({index: Part or None}, {index: (x, y) location})`` of the magnet entries."""
    if not r.cp.has_section("magnets"):
        return {}, {}
    m = r.integer("magnets", "number")
    found = r.entries(names["magnet_re"], n, "sections")
    if len(found) != m:
        raise r.error(f"number = {m} but {len(found)} magnet entries", "magnets", "number")
    parts, locations = {}, {}
    for i, h in found.items():
        locations[i] = r.point(h, "location")
        poly = r.polygon(h, "polygon", required=False)
        for key in ("area", "angle"):
            r.numbers(h, key, required=False)
        parts[i] = None if poly is None else Part(poly)
    return parts, locations


def _part_lines(part: Part) -> list[str]:
    cx, cy = part.centre
    return [f"polygon = {fmt_points(part.polygon)}", f"center = {fmt_num(cx)},{fmt_num(cy)}",
            f"area = {fmt_num(part.area)}", f"angle = {fmt_num(magfinder_angle(part.angle))}"]


def _order_text(order, n: int) -> str:
    return ",".join(str(int(i)) for i in (range(n) if order is None else order))


def magc_text(sections: list[Section], dialect: str = "magfinder", serial_order=None,
              stage_order=None, path=None) -> str:
    """The ``.magc`` text of ``sections`` (see the module doc); every section needs a tissue part."""
    if dialect not in DIALECTS:
        raise InputError(f"unknown .magc dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    names = _NAMES[dialect]
    out = [f"[sections]\nnumber = {len(sections)}\n"]
    magnets = []
    for i, s in enumerate(sections):
        if s.tissue is None:
            raise InputError(f"section {i} has no tissue part; a .magc file needs one per section", path)
        lines = [f"[{names['section'].format(i)}]"] + _part_lines(s.tissue)
        if s.dummy is not None:
            lines.append(f"dummy_polygon = {fmt_points(s.dummy.polygon)}")
        out.append("\n".join(lines) + "\n")
        if s.magnet is not None:
            cx, cy = s.magnet.centre
            magnets.append([f"[{names['magnet'].format(i)}]", f"location = {fmt_num(cx)},{fmt_num(cy)}"]
                           + _part_lines(s.magnet))
        elif "magnet_location" in s.extra:
            x, y = s.extra["magnet_location"]
            magnets.append([f"[{names['magnet'].format(i)}]", f"location = {fmt_num(x)},{fmt_num(y)}"])
    if dialect == "magfinder":
        out.append("[end_sections]\n")
    out.append(f"[magnets]\nnumber = {len(magnets)}\n")
    out += ["\n".join(m) + "\n" for m in magnets]
    if dialect == "magfinder":
        out.append("[end_magnets]\n")
    for key, order in ((names["serial"], serial_order), (names["stage"], stage_order)):
        out.append(f"[{key}]\n{key} = {_order_text(order, len(sections))}\n")
    return "\n".join(out)


def write_magc(path: str | os.PathLike, sections: list[Section], dialect: str = "magfinder",
               serial_order=None, stage_order=None) -> None:
    """Atomically write ``sections`` as a ``.magc`` file; orders default to the identity."""
    write_text(path, magc_text(sections, dialect, serial_order, stage_order, path))
