"""Annotation files: MagC pair, ``.magc`` (MagFinder / SBEMimage), labelme JSON, COCO JSON.

All formats hold :class:`sectionseg.geometry.Section` lists in the package's pixel convention
(x, y, origin at the top-left corner of the top-left pixel). What each format keeps:

==============  ======  ======  =====  =====  ===============================
format          tissue  magnet  dummy  score  notes
==============  ======  ======  =====  =====  ===============================
``magc-pair``   yes     yes     no     no     both parts required on write
``magc``        yes     yes     yes    no     tissue required; orders, landmarks,
                                              ROIs/focus/other entries kept
``labelme``     yes     yes     yes    yes    location-only magnets as points
``coco``        yes     yes     yes    yes    dummy is category 3
==============  ======  ======  =====  =====  ===============================

Every writer lists corners in the one canonical order of :mod:`sectionseg.geometry.orientation`
(tissue clockwise on screen, first edge short and pointing away from the magnet), the order of the
original MagC files, from which MagFinder and SBEMimage read a section's direction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from sectionseg.formats.coco import read_coco, sections_from_coco, write_coco
from sectionseg.formats.common import check_scale, load_json
from sectionseg.formats.labelme import image_path_for, read_labelme, sections_from_labelme, write_labelme
from sectionseg.formats.landmarks import MIN_LANDMARKS, read_landmarks
from sectionseg.formats.magc_ini import (
    DIALECTS,
    MagcEntry,
    MagcFile,
    direction_from_magc_angle,
    magfinder_angle,
    read_magc,
    write_magc,
)
from sectionseg.formats.magc_pair import read_magc_pair, write_magc_pair
from sectionseg.formats.sniff import FORMATS, check_format, guess_format, json_kind
from sectionseg.geometry import Section
from sectionseg.io.outset import check_complete

log = logging.getLogger(__name__)


def read_sections(path: str | os.PathLike[str], fmt: str | None = None, scale: float = 1.0) -> list[Section]:
    """Read the sections of an annotation file; every coordinate is multiplied by ``scale``.

    ``fmt``: one of :data:`FORMATS`, guessed from ``path`` (and JSON content) when None. E.g. the
    real MagC ground truth is at full resolution while the images are downsized by 3: ``scale=1/3``.
    Raises InputError (with file and line) for missing or malformed files.
    """
    scale = check_scale(scale)
    p = Path(path)
    check_complete(p if p.is_dir() else p.parent)  # not an output set being replaced
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


def dropped_by(fmt: str, sections: list[Section]) -> list[str]:
    """What a file of format ``fmt`` has no place for among ``sections``, as phrases (e.g.
    ``"17 dummies"``); empty when it keeps everything. Landmarks and the entries only a ``.magc``
    holds are :meth:`MagcFile.unwritten_by`'s business."""
    count = {
        "dummies": sum(s.dummy is not None for s in sections),
        "detection scores": sum(s.score is not None for s in sections),
        "magnets known only by their location": sum(
            s.magnet is None and "magnet_location" in s.extra for s in sections
        ),
    }
    lost = {
        "magc-pair": ("dummies", "detection scores"),
        "magc": ("detection scores",),
        "coco": ("magnets known only by their location",),
        "labelme": (),
    }[check_format(fmt)]
    return [f"{count[k]} {k}" for k in lost if count[k]]


def write_sections(
    path: str | os.PathLike[str],
    sections: list[Section],
    fmt: str | None = None,
    *,
    magc_dialect: str = "magfinder",
    image_path: str | None = None,
    image_size: tuple[float, float] | None = None,
    serial_order: Sequence[int] | None = None,
    stage_order: Sequence[int] | None = None,
    landmarks: Sequence[tuple[float, float]] | None = None,
    magc_entries: Iterable[MagcEntry] = (),
    pair_scale: float = 1.0,
    pair_integers: bool = False,
) -> None:
    """Write ``sections`` atomically in ``fmt`` (guessed from ``path`` when None), corners in the
    canonical order.

    ``.magc`` only: ``magc_dialect``, ``serial_order``, ``stage_order`` (default: the identity),
    ``landmarks`` (``(x, y)`` image px) and ``magc_entries`` (entries kept from a read
    :class:`MagcFile`). labelme and COCO only: ``image_path`` (stored as given: for labelme relative
    to the JSON's folder, see :func:`image_path_for`) and ``image_size`` ``(width, height)``, which
    defaults to the ceil of the polygons' max x and y. MagC pair only: ``pair_scale`` multiplies the
    coordinates and ``pair_integers`` rounds them to whole pixels; ``path`` is the folder (created
    if needed) or either file of the pair. Landmarks given for another format are dropped with a
    warning.
    """
    p = Path(path)
    if fmt is None:
        fmt = guess_format(p, for_write=True)
    check_format(fmt)
    sections = list(sections)
    if landmarks is not None and len(landmarks) and fmt != "magc":
        log.warning("%s: %d landmarks not written (only a .magc file holds landmarks)", p, len(landmarks))
    if fmt == "magc-pair":
        write_magc_pair(p, sections, scale=pair_scale, integers=pair_integers)
    elif fmt == "magc":
        write_magc(
            p,
            sections,
            magc_dialect,
            serial_order,
            stage_order,
            landmarks=() if landmarks is None else landmarks,
            entries=magc_entries,
        )
    elif fmt == "labelme":
        write_labelme(p, sections, image_path, image_size)
    else:
        write_coco(p, sections, image_path, image_size)


__all__ = [
    "read_sections",
    "write_sections",
    "read_magc",
    "MagcFile",
    "guess_format",
    "FORMATS",
    "DIALECTS",
    "magfinder_angle",
    "read_magc_pair",
    "write_magc_pair",
    "write_magc",
    "read_labelme",
    "write_labelme",
    "read_coco",
    "write_coco",
    "json_kind",
    "check_format",
    "sections_from_labelme",
    "sections_from_coco",
    "load_json",
    "MagcEntry",
    "direction_from_magc_angle",
    "image_path_for",
    "read_landmarks",
    "MIN_LANDMARKS",
    "dropped_by",
]
