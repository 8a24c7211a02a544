"""Annotation files: MagC pair, ``.magc`` (MagFinder / SBEMimage), labelme JSON, COCO JSON.

All formats hold :class:`sectionseg.geometry.Section` lists in the package's pixel convention
(x, y, origin at the top-left corner of the top-left pixel). What each format keeps:

==============  ======  ======  =====  =====  ===============================
format          tissue  magnet  dummy  score  notes
==============  ======  ======  =====  =====  ===============================
``magc-pair``   yes     yes     no     no     both parts required on write
``magc``        yes     yes     yes    no     tissue required; orders kept
``labelme``     yes     yes     yes    yes    full fidelity
``coco``        yes     yes     yes    yes    dummy is category 3
==============  ======  ======  =====  =====  ===============================
"""
from __future__ import annotations

import os
from pathlib import Path

from sectionseg.formats.coco import read_coco, sections_from_coco, write_coco
from sectionseg.formats.common import check_scale, load_json
from sectionseg.formats.detect import FORMATS, check_format, guess_format, json_kind
from sectionseg.formats.labelme import read_labelme, sections_from_labelme, write_labelme
from sectionseg.formats.magc_ini import DIALECTS, MagcFile, magfinder_angle, read_magc, write_magc
from sectionseg.formats.magc_pair import read_magc_pair, write_magc_pair
from sectionseg.geometry import Section


def read_sections(path: str | os.PathLike, fmt: str | None = None, scale: float = 1.0) -> list[Section]:
    """Read the sections of an annotation file; every coordinate is multiplied by ``scale``.

    ``fmt``: one of :data:`FORMATS`, guessed from ``path`` (and JSON content) when None. E.g. the
    real MagC ground truth is at full resolution while the images are downsized by 3: ``scale=1/3``.
    Raises InputError (with file and line) for missing or malformed files.
    """
    scale = check_scale(scale)
    p = Path(path)
    if fmt is None:
        fmt = guess_format(p, for_write=False)
    check_format(fmt)
    if fmt == "magc-pair":
        return read_magc_pair(p, scale)
    if fmt == "magc":
        return read_magc(p, scale).sections
    if fmt == "labelme":
        return read_labelme(p, scale)
    return read_coco(p, scale)


def write_sections(path: str | os.PathLike, sections: list[Section], fmt: str | None = None, *,
                   magc_dialect: str = "magfinder", image_path=None, image_size=None,
                   serial_order=None, stage_order=None) -> None:
    """Write ``sections`` atomically in ``fmt`` (guessed from ``path`` when None).

    ``magc_dialect``, ``serial_order``, ``stage_order``: ``.magc`` only (orders default to the
    identity). ``image_path`` and ``image_size`` ``(width, height)``: labelme and COCO only; the
    size defaults to the ceil of the polygons' max x and y. For ``magc-pair`` ``path`` is the
    folder (created if needed) or either file of the pair.
    """
    p = Path(path)
    if fmt is None:
        fmt = guess_format(p, for_write=True)
    check_format(fmt)
    sections = list(sections)
    if fmt == "magc-pair":
        write_magc_pair(p, sections)
    elif fmt == "magc":
        write_magc(p, sections, magc_dialect, serial_order, stage_order)
    elif fmt == "labelme":
        write_labelme(p, sections, image_path, image_size)
    else:
        write_coco(p, sections, image_path, image_size)


__all__ = [
    "read_sections", "write_sections", "read_magc", "MagcFile", "guess_format", "FORMATS",
    "DIALECTS", "magfinder_angle", "read_magc_pair", "write_magc_pair", "write_magc",
    "read_labelme", "write_labelme", "read_coco", "write_coco", "json_kind", "check_format",
    "sections_from_labelme", "sections_from_coco", "load_json",
]
