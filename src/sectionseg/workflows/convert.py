"""Section annotations from one format to another (``sectionseg convert``), as one call."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sectionseg.errors import InputError
from sectionseg.formats import (
    check_format,
    dropped_by,
    guess_format,
    image_path_for,
    read_landmarks,
    read_magc,
    read_sections,
    write_sections,
)
from sectionseg.formats.common import check_scale
from sectionseg.formats.magc_pair import pair_folder
from sectionseg.io.outset import output_set

log = logging.getLogger(__name__)


@dataclass
class Converted:
    """What :func:`convert_annotations` did: ``n_sections`` read and written, the formats, and
    ``dropped``: what the input held that the output format has no place for (names)."""

    n_sections: int
    in_format: str
    out_format: str
    dropped: list[str] = field(default_factory=list)


def _image_record(
    image_path: str | os.PathLike | None, image_size: tuple[int, int] | None, dst: Path, out_fmt: str
) -> tuple[str | None, tuple[int, int] | None]:
    """``(image path to record, (width, height))`` for a labelme/COCO output."""
    from sectionseg.io.images import image_size as read_size

    path = None if image_path is None else str(image_path)
    if out_fmt not in ("labelme", "coco"):
        return path, image_size
    if path is not None:
        if Path(path).is_file():
            image_size = image_size or read_size(path)
            path = image_path_for(path, dst)
        else:
            log.warning("%s: no such image file here; recorded as given", path)
    if image_size is None and out_fmt == "labelme":
        log.warning(
            "%s: image size guessed from the polygons; labelme refuses a wrong size: give the image path or size",
            dst,
        )
    return path, image_size


def convert_annotations(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    from_format: str | None = None,
    to_format: str | None = None,
    scale: float = 1.0,
    pair_integers: bool = False,
    magc_dialect: str | None = None,
    landmarks: str | os.PathLike | None = None,
    image_path: str | os.PathLike | None = None,
    image_size: tuple[int, int] | None = None,
) -> Converted:
    """Read the sections of ``src`` and write them to ``dst`` in another format.

    Parameters
    ----------
    src, dst : path
        Annotation file or MagC-pair folder to read; file or folder to write (a MagC pair's two files
        are written as one set: both new or both as they were).
    from_format, to_format : str, optional
        ``"magc-pair"``, ``"magc"``, ``"labelme"`` or ``"coco"`` (:data:`sectionseg.formats.FORMATS`);
        default: guessed from the names (:func:`sectionseg.formats.guess_format`).
    scale : float
        Every coordinate read (annotations and ``landmarks``) is multiplied by it (e.g. 1/3 for
        full-resolution MagC ground truth on images downsized by 3).
    pair_integers : bool
        Round a MagC pair output to whole pixels, as the original MagC files are.
    magc_dialect : str, optional
        Dialect of a ``.magc`` output (``"magfinder"`` or ``"sbemimage"``; default: that of a
        ``.magc`` input, else MagFinder's).
    landmarks : path, optional
        Text file of ``x, y`` landmarks (image px) for a ``.magc`` output; replaces those of a
        ``.magc`` input.
    image_path, image_size : optional
        The image, recorded relative to a labelme/COCO output (its size read from it when it
        exists), and the image ``(width, height)`` px (default: from the image, else the polygons).

    Returns
    -------
    Converted
        Counts, formats and what the output format could not keep (also logged as a warning).
        A ``.magc`` read and written again keeps its orders, landmarks and the entries sectionseg
        does not interpret (ROIs, focus points...). Corners are written in the canonical order
        (:mod:`sectionseg.geometry.orientation`). Bad input raises
        :class:`~sectionseg.errors.InputError` naming the file (and line).
    """
    scale = check_scale(scale)
    src, dst = Path(src), Path(dst)
    in_fmt = check_format(from_format) if from_format else guess_format(src, for_write=False)
    out_fmt = check_format(to_format) if to_format else guess_format(dst, for_write=True)
    if pair_integers and out_fmt != "magc-pair":
        raise InputError(f"rounding to whole pixels applies to a MagC pair output, not {out_fmt}")
    marks = None if landmarks is None else read_landmarks(landmarks, scale)
    dialect, kept, lost = magc_dialect, {}, []
    if in_fmt == "magc":
        # Keep what only a .magc carries (orders, dialect, landmarks, other entries) in a .magc output.
        magc = read_magc(src, scale)
        sections = magc.sections
        dialect = dialect or magc.dialect
        kept = {"serial_order": magc.serial_order, "stage_order": magc.stage_order, "magc_entries": magc.entries}
        marks = magc.landmarks if marks is None else marks
        lost = magc.unwritten_by(out_fmt)
    else:
        sections = read_sections(src, in_fmt, scale)
    lost = dropped_by(out_fmt, sections) + lost
    if lost:
        log.warning("%s: not written to %s (a %s file has no place for them): %s", src, dst, out_fmt, ", ".join(lost))
    recorded_path, size = _image_record(image_path, image_size, dst, out_fmt)
    options: dict[str, Any] = dict(
        magc_dialect=dialect or "magfinder",
        image_path=recorded_path,
        image_size=size,
        pair_integers=pair_integers,
        landmarks=marks if out_fmt == "magc" or landmarks is not None else None,
        **(kept if out_fmt == "magc" else {}),
    )
    if out_fmt == "magc-pair":  # two files: both new or both as they were
        with output_set(pair_folder(dst), "convert") as stage:
            write_sections(stage, sections, out_fmt, **options)
    else:
        write_sections(dst, sections, out_fmt, **options)
    return Converted(len(sections), in_fmt, out_fmt, lost)
