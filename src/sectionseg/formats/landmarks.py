"""Landmark files (``--landmarks FILE``): points on the wafer image that the microscope finds again.

SBEMimage maps image pixels to stage coordinates with an affine transform fitted to landmarks the
user locates at the microscope; it needs at least :data:`MIN_LANDMARKS`. sectionseg writes them to
``.magc`` files (``[landmark.0000] location = x,y``, see :mod:`sectionseg.formats.magc_ini`).

The file is plain text, one landmark per line, ``x`` and ``y`` in pixels of the wafer image (origin
at the top-left corner of the top-left pixel, y down, as every coordinate of this package),
separated by a comma, tab or spaces::

    # landmarks of wafer 3 (image px)
    412.5, 380
    1650, 402.25
    1020, 1733

Blank lines and lines starting with ``#`` are ignored, and so is a first line ``x,y`` (a CSV
header). The order of the lines is the order of the landmarks (index 0, 1, ...).
"""

from __future__ import annotations

import os
import re

from sectionseg.errors import InputError
from sectionseg.formats.common import check_scale, parse_float, read_text

MIN_LANDMARKS = 3


def read_landmarks(path: str | os.PathLike[str], scale: float = 1.0) -> list[tuple[float, float]]:
    """Landmarks ``[(x, y), ...]`` of a landmark file (see the module doc), times ``scale``.

    InputError naming the file and line for a malformed line, and for fewer than
    :data:`MIN_LANDMARKS` landmarks.
    """
    scale = check_scale(scale)
    points: list[tuple[float, float]] = []
    for number, raw in enumerate(read_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not points and re.fullmatch(r"x\s*[,\t ]\s*y", line, flags=re.IGNORECASE):
            continue  # CSV header
        values = [v for v in re.split(r"[,\s]+", line) if v]
        if len(values) != 2:
            raise InputError(f"expected 'x, y' (2 numbers), got {len(values)} values", path, number)
        x, y = (parse_float(v, path, number, "landmark coordinate") for v in values)
        points.append((x * scale, y * scale))
    if len(points) < MIN_LANDMARKS:
        raise InputError(
            f"{len(points)} landmarks; SBEMimage needs at least {MIN_LANDMARKS} to map image pixels to the stage", path
        )
    return points


__all__ = ["read_landmarks", "MIN_LANDMARKS"]
