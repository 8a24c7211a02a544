"""Tell an annotation file's format from its path (and, for JSON read, its content).

Rules (``fmt`` names: ``magc-pair``, ``magc``, ``labelme``, ``coco``):

- ``source_sections_tissue.txt`` / ``source_sections_mag.txt``, an existing folder, or a path
  without extension: ``magc-pair`` (the folder holding both files);
- ``.magc``: ``magc``;
- ``*.coco.json``: ``coco``; ``*.labelme.json``: ``labelme``;
- other ``.json``: ``labelme`` on write; on read, sniffed: a ``"shapes"`` key means labelme,
  ``"annotations"`` or ``"images"`` means COCO.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sectionseg.errors import InputError
from sectionseg.formats.common import PathArg, load_json
from sectionseg.formats.magc_pair import PAIR_NAMES

FORMATS = ("magc-pair", "magc", "labelme", "coco")


def json_kind(data: Any, path: PathArg) -> str:
    """``"labelme"`` or ``"coco"`` for a parsed JSON document, else InputError."""
    if isinstance(data, dict):
        if "shapes" in data:
            return "labelme"
        if "annotations" in data or "images" in data:
            return "coco"
    raise InputError('JSON is neither labelme ("shapes") nor COCO ("annotations"/"images")', path)


def check_format(fmt: str) -> str:
    """``fmt`` if it is a known format name, else InputError listing them."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def guess_format(path: str | os.PathLike[str], for_write: bool) -> str:
    """Format name for ``path`` (see the module doc); InputError when it cannot be told."""
    p = Path(path)
    name = p.name.lower()
    if p.name in PAIR_NAMES or p.is_dir() or (not p.suffix and not p.is_file()):
        return "magc-pair"
    if name.endswith(".magc"):
        return "magc"
    if name.endswith(".coco.json"):
        return "coco"
    if name.endswith(".labelme.json"):
        return "labelme"
    if name.endswith(".json"):
        return "labelme" if for_write else json_kind(load_json(p), p)
    raise InputError(
        f"cannot tell the annotation format from the name; use a folder (MagC pair), "
        f".magc or .json, or name the format ({', '.join(FORMATS)})",
        p,
    )
