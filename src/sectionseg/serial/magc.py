"""Put a serial order into an existing ``.magc`` file, keeping everything else of the file.

The ``.magc`` ``serial_order`` lists section indices (the ``section.NNNN`` numbers) in cutting
order; the bead folders of MagC use the same numbers (``section_NNNN``). The file is read with
:func:`sectionseg.formats.read_magc` (checks). When it has a serial order entry (either spelling,
``[serial_order]`` or SBEMimage's ``[serialorder]``), only that entry's value line is replaced:
every other byte stays (a rewrite would recompute ``center``/``area``/``angle`` from the rounded
polygons). Otherwise the file is written back with :func:`sectionseg.formats.write_sections` in its
own dialect, with its stage order, landmarks, kept entries and extra keys. Either way the result is
read back and checked before it replaces the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sectionseg.errors import InputError


def magc_path(path: str | os.PathLike) -> Path:
    """The ``.magc`` file of ``path``: the file itself, or ``sections.magc`` in a detection folder."""
    p = Path(path)
    if p.is_dir():
        p = p / "sections.magc"
    if not p.is_file():
        raise InputError("no such .magc file (give a detection folder with sections.magc, or the file)", p)
    return p


def check_ids(path: str | os.PathLike, ids) -> int:
    """The number of sections in the ``.magc`` at ``path``; InputError unless ``ids`` are exactly its
    section indices ``0..n-1``."""
    from sectionseg.formats import read_magc

    p = magc_path(path)
    n = len(read_magc(p).sections)
    ids = set(int(i) for i in ids)
    extra = sorted(i for i in ids if not 0 <= i < n)
    lacking = sorted(set(range(n)) - ids)
    if extra:
        raise InputError(
            f"bead images of sections {_few(extra)} but the file has {n} sections (0..{n - 1}): not the same series?", p
        )
    if lacking:
        raise InputError(f"sections {_few(lacking)} of the file have no bead image; every section needs one", p)
    return n


def set_serial_order(path: str | os.PathLike, order: list[int]) -> Path:
    """Write ``order`` (section indices) as the ``serial_order`` of the ``.magc`` at ``path``
    (atomically, everything else kept); returns the file's path."""
    from sectionseg.formats import read_magc

    p = magc_path(path)
    check_ids(p, order)
    if len(set(order)) != len(order):
        raise ValueError("a serial order lists each section once")
    from sectionseg.formats.magc_ini import magc_text
    from sectionseg.io.atomic import atomic_path

    f = read_magc(p)
    text = p.read_text(encoding="utf-8")
    value = ",".join(str(int(i)) for i in order)
    edited = _replace_order_line(text, value)
    if edited is None:
        edited = magc_text(
            f.sections, f.dialect, list(order), f.stage_order, p, landmarks=f.landmarks, entries=f.entries
        )
    with atomic_path(p) as tmp:
        tmp.write_text(edited, encoding="utf-8")
        back = read_magc(tmp)
        if back.serial_order != list(order) or len(back.sections) != len(f.sections):
            raise RuntimeError(f"{p}: the serial order did not read back")  # a bug, not the user's
    return p


_ORDER_HEADER = re.compile(r"^\s*\[(serial_order|serialorder)\]\s*$")
_ORDER_KEY = re.compile(r"^(\s*(serial_order|serialorder)\s*[=:]\s*)(.*?)(\s*)$")


def _replace_order_line(text: str, value: str) -> str | None:
    """``text`` with the serial order entry's value replaced by ``value``; None when the file has no
    such entry (or it has no key line)."""
    lines = text.splitlines(keepends=True)
    inside = False
    for k, line in enumerate(lines):
        if line.lstrip().startswith("["):
            inside = bool(_ORDER_HEADER.match(line))
            continue
        m = _ORDER_KEY.match(line.rstrip("\r\n")) if inside else None
        if m:
            ending = line[len(line.rstrip("\r\n")) :]
            lines[k] = m.group(1) + value + m.group(4) + ending
            return "".join(lines)
    return None


def _few(values: list[int], k: int = 5) -> str:
    text = ", ".join(str(v) for v in values[:k])
    return text + (f" (+{len(values) - k} more)" if len(values) > k else "")
