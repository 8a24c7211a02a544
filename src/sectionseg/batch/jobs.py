"""The wafers of a batch: from a manifest CSV or found in a folder.

Manifest (``MANIFEST.csv``): a header row, then one row per wafer. Columns (any order, names as
written, extra columns ignored):

- ``name`` (required): the wafer's output folder ``ROOT/NAME``: letters, digits, ``.``, ``_``,
  ``-`` (not starting with ``.``), unique in the manifest (case-insensitively);
- ``gray`` (required): the gray image (TIFF, PNG, JPEG or a Zarr / OME-Zarr folder);
- ``fluo`` (required column, may be empty): the fluorescence image;
- ``landmarks`` (optional, may be empty): landmark file for ``sections.magc``;
- ``section_size`` (optional, may be empty): the sections' long side in px for this wafer (skips the
  scale estimate; overrides ``--section-size``).

Relative paths are relative to the manifest's folder (made absolute). Blank lines and lines starting with ``#`` are
skipped. A bad row (missing column or value, duplicate name, missing file, bad number) is an
:class:`~sectionseg.errors.InputError` naming the manifest and the line, before any wafer runs.

Folder (``DIR``), two layouts, both looked at:

- image files side by side: ``X.tif`` or ``X_gray.tif`` is wafer X's gray image, ``X_fluo.tif`` its
  fluorescence (``-gray``/``-fluo`` and any case too; ``.tif``, ``.tiff``, ``.png``, ``.jpg``,
  ``.jpeg``, ``.zarr``);
- one sub-folder per wafer (what ``sectionseg simulate`` writes): ``X/gray.*`` and, optionally,
  ``X/fluo.*`` (and ``X/landmarks.txt`` when present).

A fluorescence image without its gray image, or two gray images for one name, is an InputError.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sectionseg.errors import InputError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".zarr")
_ROLE = re.compile(r"^(?P<base>.+?)[_-](?P<role>gray|grey|fluo)$", re.IGNORECASE)
REQUIRED_COLUMNS = ("name", "gray", "fluo")
RESERVED_NAMES = {"summary.csv"}


@dataclass(frozen=True)
class WaferJob:
    """One wafer of a batch: its name (output folder) and input paths (absolute)."""

    name: str
    gray: str
    fluo: str | None = None
    landmarks: str | None = None
    section_size: float | None = None
    line: int | None = None  # manifest line, for messages


def check_name(name: str, path=None, line: int | None = None) -> str:
    if not NAME_PATTERN.match(name) or name.lower() in RESERVED_NAMES or len(name) > 200:
        raise InputError(
            f"wafer name {name!r} cannot be a folder name: use letters, digits, '.', '_' and "
            "'-' (not starting with '.')",
            path,
            line,
        )
    return name


def _exists(path: Path, what: str, manifest, line) -> str:
    from sectionseg.io.images import is_zarr

    if not path.exists():
        raise InputError(f"{what} not found: {path}", manifest, line)
    if path.is_dir() and not is_zarr(path):
        raise InputError(f"{what} is a folder (not a Zarr image): {path}", manifest, line)
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} is not readable: {path}", manifest, line)
    return str(path)


def read_manifest(path: str | os.PathLike) -> list[WaferJob]:
    """The wafers of a manifest CSV (see the module doc)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("the manifest is not UTF-8 text", path) from None
    lines = [
        (n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise InputError("the manifest is empty: a header 'name,gray,fluo' and one row per wafer expected", path)
    header_line, header = lines[0]
    columns = [c.strip() for c in next(csv.reader([header]))]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(
            f"the manifest's header lacks the column(s) {', '.join(missing)} (found: "
            f"{', '.join(columns)}); expected at least name,gray,fluo",
            path,
            header_line,
        )
    dupes = sorted({c for c in columns if c and columns.count(c) > 1})
    if dupes:
        raise InputError(f"the manifest's header repeats the column(s) {', '.join(dupes)}", path, header_line)
    base = Path(os.path.abspath(path)).parent  # absolute: Dask workers elsewhere get the same paths
    jobs: list[WaferJob] = []
    seen: dict[str, int] = {}
    for line_no, line in lines[1:]:
        values = next(csv.reader([line]))
        if len(values) != len(columns):
            raise InputError(
                f"the row has {len(values)} field(s) but the header {len(columns)} "
                f"({','.join(columns)}); an empty fluo is an empty field ('name,gray.tif,'), "
                "a path with a comma is quoted",
                path,
                line_no,
            )
        row = {c: (values[k].strip() if k < len(values) else "") for k, c in enumerate(columns)}
        name = row["name"]
        if not name:
            raise InputError("the row has no wafer name", path, line_no)
        check_name(name, path, line_no)
        if name.lower() in seen:
            raise InputError(f"wafer name {name!r} is already used on line {seen[name.lower()]}", path, line_no)
        seen[name.lower()] = line_no
        if not row["gray"]:
            raise InputError(f"wafer {name!r} has no gray image", path, line_no)
        gray = _exists(base / row["gray"], "gray image", path, line_no)
        fluo = _exists(base / row["fluo"], "fluorescence image", path, line_no) if row["fluo"] else None
        landmarks = row.get("landmarks") or None
        if landmarks:
            landmarks = _exists(base / landmarks, "landmark file", path, line_no)
        size = row.get("section_size") or None
        if size is not None:
            try:
                size = float(size)
            except ValueError:
                raise InputError(f"section_size {size!r} is not a number", path, line_no) from None
            if not (math.isfinite(size) and 8 <= size <= 20000):
                raise InputError(f"section_size must be in [8, 20000] px, got {size:g}", path, line_no)
        jobs.append(WaferJob(name, gray, fluo, landmarks, size, line_no))
    if not jobs:
        raise InputError("the manifest lists no wafer (only a header)", path)
    return jobs


def _image_entries(folder: Path) -> list[Path]:
    from sectionseg.io.images import is_zarr

    found = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.is_file() or is_zarr(p):
            found.append(p)
    return found


def _stem(p: Path) -> str:
    return p.name[: -len(p.suffix)]


def discover_folder(folder: str | os.PathLike) -> list[WaferJob]:
    """The wafers of a folder (see the module doc), in name order."""
    folder = Path(folder)
    gray: dict[str, Path] = {}
    fluo: dict[str, Path] = {}
    landmarks: dict[str, Path] = {}

    def add(table: dict, name: str, p: Path) -> None:
        if name in table:
            raise InputError(f"two images for wafer {name!r}: {table[name].name} and {p.name}", folder)
        table[name] = p

    entries = _image_entries(folder)
    if any(_stem(p).lower() == "gray" for p in entries):
        raise InputError(
            "this folder holds one wafer (gray.*): give its parent folder, a folder of such "
            "wafer folders, or use 'sectionseg detect'",
            folder,
        )
    for p in entries:
        m = _ROLE.match(_stem(p))
        if m and m["role"].lower() == "fluo":
            add(fluo, m["base"], p)
        else:
            add(gray, m["base"] if m else _stem(p), p)
    for sub in sorted(folder.iterdir()):
        if not sub.is_dir() or sub.name.startswith(".") or sub.suffix.lower() == ".zarr":
            continue
        entries = {_stem(p).lower(): p for p in _image_entries(sub)}
        if "gray" in entries:
            add(gray, sub.name, entries["gray"])
            if "fluo" in entries:
                add(fluo, sub.name, entries["fluo"])
            if (sub / "landmarks.txt").is_file():
                landmarks[sub.name] = sub / "landmarks.txt"
    orphans = sorted(set(fluo) - set(gray))
    if orphans:
        raise InputError(
            f"fluorescence image {fluo[orphans[0]].name} has no gray image (wafer "
            f"{orphans[0]!r}: expected {orphans[0]}.tif or {orphans[0]}_gray.tif)",
            folder,
        )
    if not gray:
        raise InputError(
            "no wafer images found (X.tif or X_gray.tif [+ X_fluo.tif], or sub-folders X/gray.tif [+ X/fluo.tif])",
            folder,
        )
    names: dict[str, str] = {}
    for name in gray:
        check_name(name, folder)
        if name.lower() in names:
            raise InputError(f"wafer names {names[name.lower()]!r} and {name!r} differ only in case", folder)
        names[name.lower()] = name
    return [
        WaferJob(
            n,
            str(gray[n].resolve()),
            None if n not in fluo else str(fluo[n].resolve()),
            None if n not in landmarks else str(landmarks[n].resolve()),
        )
        for n in sorted(gray)
    ]


def find_jobs(source: str | os.PathLike) -> list[WaferJob]:
    """The wafers of a manifest CSV file or of a folder."""
    source = Path(source)
    if not source.exists():
        raise InputError("no such manifest file or folder", source)
    if source.is_dir():
        return discover_folder(source)
    if source.suffix.lower() not in (".csv", ".txt"):
        raise InputError("expected a manifest .csv file (name,gray,fluo) or a folder of wafer images", source)
    return read_manifest(source)
