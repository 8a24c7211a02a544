"""MagC pair: ``source_sections_tissue.txt`` + ``source_sections_mag.txt`` in one folder.

One section per line; a line is the part's corners as ``x,y`` pairs separated by tabs (a trailing
tab is usual, spaces are tolerated too). Line i of the tissue file and line i of the magnet file
are the same section. Coordinates are pixels in the package convention (origin at the top-left
corner of the top-left pixel). Blank lines at the end and ``\\r\\n`` line ends are tolerated.

The pair is named by the folder holding it or by either of its two files. It has no place for
dummy strips or scores: those are dropped on write. Every section written needs both parts.

On write the corners follow the canonical order of :mod:`sectionseg.geometry.orientation` (the order of
the original MagC files: tissue clockwise on screen, first edge short, magnet on the tissue's edge
``p3 -> p0``). The original files hold integer coordinates at full resolution and some readers
(``int(...)``, ``cv2.fillConvexPoly``) need integers: ``scale`` multiplies every coordinate on write
(e.g. 3 for detections on an image downsized by 3) and ``integers=True`` rounds them to whole pixels
(halves away from zero); the default writes the coordinates as they are, with up to 3 decimals.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from sectionseg.errors import InputError
from sectionseg.formats.common import PathArg, check_polygon, check_scale, fmt_num, parse_float, read_text
from sectionseg.geometry import Section
from sectionseg.geometry.orientation import canonical_sections
from sectionseg.io.atomic import atomic_path

TISSUE_NAME = "source_sections_tissue.txt"
MAGNET_NAME = "source_sections_mag.txt"
PAIR_NAMES = (TISSUE_NAME, MAGNET_NAME)


def pair_folder(path: str | os.PathLike[str]) -> Path:
    """The folder of a MagC pair named by the folder itself or by either of its files."""
    p = Path(path)
    return p.parent if p.name in PAIR_NAMES else p


def pair_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(tissue_file, magnet_file)`` of the pair named by ``path``."""
    folder = pair_folder(path)
    return folder / TISSUE_NAME, folder / MAGNET_NAME


def _parse_line(text: str, path: PathArg, line: int) -> np.ndarray:
    """``(N, 2)`` corners of one line; InputError for non-numbers or fewer than 3 corners."""
    corners = []
    for token in re.split(r"\s+", text.strip()):
        xy = token.split(",")
        if len(xy) != 2:
            raise InputError(f"corner {token!r} is not of the form x,y", path, line)
        corners.append([parse_float(v, path, line, "corner coordinate") for v in xy])
    if len(corners) < 3:
        raise InputError(f"expected 4 corners (at least 3), got {len(corners)}", path, line)
    return np.array(corners)


def read_quads(path: str | os.PathLike[str]) -> list[np.ndarray]:
    """The quads of one MagC text file (one polygon a line, ``x,y`` tab-separated), image px."""
    lines = read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    polys = []
    for i, text in enumerate(lines, start=1):
        if not text.strip():
            raise InputError("empty line (one section per line expected)", path, i)
        polys.append(_parse_line(text, path, i))
    return polys


def read_magc_pair(path: str | os.PathLike[str], scale: float = 1.0) -> list[Section]:
    """Sections of the MagC pair named by ``path`` (folder or either file); coordinates * ``scale``."""
    tissue_path, magnet_path = pair_paths(path)
    for p in (tissue_path, magnet_path):
        if not p.is_file():
            raise InputError(f"no such file (a MagC pair needs {TISSUE_NAME} and {MAGNET_NAME})", p)
    tissues, magnets = read_quads(tissue_path), read_quads(magnet_path)
    if len(tissues) != len(magnets):
        longer = tissue_path if len(tissues) > len(magnets) else magnet_path
        n = min(len(tissues), len(magnets))
        raise InputError(
            f"{len(tissues)} tissue lines but {len(magnets)} magnet lines; line i of both "
            f"files must be the same section",
            longer,
            n + 1,
        )
    sections = []
    for i, (t, m) in enumerate(zip(tissues, magnets), start=1):
        sections.append(
            Section.from_arrays(
                check_polygon(t * scale, tissue_path, i, "tissue"), check_polygon(m * scale, magnet_path, i, "magnet")
            )
        )
    return sections


def _line(points: np.ndarray) -> str:
    # Tab-separated "x,y" corners with the customary trailing tab.
    return "".join(f"{fmt_num(x)},{fmt_num(y)}\t" for x, y in points) + "\n"


def pair_coordinates(points: np.ndarray, scale: float = 1.0, integers: bool = False) -> np.ndarray:
    """``points * scale``, rounded to whole pixels (halves away from zero) when ``integers``."""
    p = np.asarray(points, dtype=np.float64) * scale
    return np.sign(p) * np.floor(np.abs(p) + 0.5) if integers else p


def write_magc_pair(
    path: str | os.PathLike[str], sections: list[Section], *, scale: float = 1.0, integers: bool = False
) -> tuple[Path, Path]:
    """Write the pair into the folder named by ``path``; return ``(tissue_file, magnet_file)``.

    Corners in the canonical order, times ``scale``, rounded to integers when ``integers`` (see the
    module doc). Raises InputError if a section lacks its tissue or magnetic part (a magnet known by
    its location only counts as lacking). Dummies are not written. Both files are written to
    temporary files first and renamed only once both are complete.
    """
    scale = check_scale(scale)
    for i, s in enumerate(sections):
        if s.tissue is None or s.magnet is None:
            missing = "tissue" if s.tissue is None else "magnet"
            known = " (only its location is known)" if "magnet_location" in s.extra else ""
            raise InputError(
                f"section {i} has no {missing} part{known}; the MagC pair needs both parts of every section",
                pair_folder(path),
            )
    sections = canonical_sections(sections)
    tissue_path, magnet_path = pair_paths(path)
    tissues = [s.tissue for s in sections if s.tissue is not None]  # every section has both (checked above)
    magnets = [s.magnet for s in sections if s.magnet is not None]
    tissue_text = "".join(_line(pair_coordinates(p.polygon, scale, integers)) for p in tissues)
    magnet_text = "".join(_line(pair_coordinates(p.polygon, scale, integers)) for p in magnets)
    with atomic_path(tissue_path) as t_tmp, atomic_path(magnet_path) as m_tmp:
        t_tmp.write_text(tissue_text, encoding="utf-8")
        m_tmp.write_text(magnet_text, encoding="utf-8")
    return tissue_path, magnet_path


__all__ = ["read_magc_pair", "write_magc_pair", "pair_paths", "pair_folder", "PAIR_NAMES"]
