"""Find the bead images of a series: MagC's folder layout or a plain folder of one image per section.

MagC (``SOR.py``)::

    BEADS_DIR/section_0000/section_0000_channel_488_tileId_00-00-mag.tif
    BEADS_DIR/section_0000/section_0000_channel_546_tileId_00-00-mag.tif   (optional 2nd channel)

Plain: ``BEADS_DIR/<name>.tif|.tiff|.png|.jpg``, one per section; the id is the number after
``section_`` in the name, or else the last number in it. Out: ``{section id: {channel: path}}``
(channel ``""`` for plain folders). Several tiles per channel are not stitched here: an InputError
says so. Every section must have the same channels.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sectionseg.errors import InputError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
_MAGC_DIR = re.compile(r"section_(\d+)$")
_MAGC_TILE = re.compile(r"section_(\d+)_channel_([^_]+)_tileId_([0-9]+-[0-9]+)(?:-mag)?$")
_SECTION_NUM = re.compile(r"section_(\d+)")


def find_bead_images(folder: str | os.PathLike) -> dict[int, dict[str, Path]]:
    """The bead images of ``folder`` by section id and channel (see the module doc)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("no such folder", root)
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and _MAGC_DIR.match(p.name))
    found = _magc_layout(dirs) if dirs else _plain_layout(root)
    if not found:
        raise InputError(
            "no bead images: expected section_NNNN/section_NNNN_channel_CCC_tileId_00-00-mag.tif "
            "or one .tif/.png image per section",
            root,
        )
    channels = {tuple(sorted(ch)) for ch in found.values()}
    if len(channels) > 1:
        counts = {c: sum(tuple(sorted(ch)) == c for ch in found.values()) for c in channels}
        odd = min(counts, key=counts.get)
        sid = next(s for s, ch in found.items() if tuple(sorted(ch)) == odd)
        raise InputError(
            f"section {sid} has channels {', '.join(odd) or '(none)'} but others have "
            f"{', '.join(max(counts, key=counts.get))}",
            root,
        )
    return dict(sorted(found.items()))


def _magc_layout(dirs: list[Path]) -> dict[int, dict[str, Path]]:
    found: dict[int, dict[str, Path]] = {}
    for d in dirs:
        sid = int(_MAGC_DIR.match(d.name).group(1))
        if sid in found:
            raise InputError(f"section id {sid} given by two folders", d)
        tiles: dict[str, list[Path]] = {}
        for f in sorted(d.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            m = _MAGC_TILE.match(f.stem)
            if m is None:
                continue
            if int(m.group(1)) != sid:
                raise InputError(f"image of section {int(m.group(1))} in the folder of section {sid}", f)
            tiles.setdefault(m.group(2), []).append(f)
        if not tiles:
            raise InputError("no section_NNNN_channel_CCC_tileId_YY-XX-mag image in this section folder", d)
        for channel, files in tiles.items():
            if len(files) > 1:
                raise InputError(
                    f"channel {channel} has {len(files)} tiles; stitch them into one image per "
                    f"channel first (sectionseg does not stitch bead tiles)",
                    d,
                )
        found[sid] = {c: files[0] for c, files in tiles.items()}
    return found


def _plain_layout(root: Path) -> dict[int, dict[str, Path]]:
    found: dict[int, dict[str, Path]] = {}
    for f in sorted(root.iterdir()):
        if not f.is_file() or f.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        m = _SECTION_NUM.search(f.stem)
        numbers = re.findall(r"\d+", f.stem)
        if m is None and not numbers:
            raise InputError("no section id in the file name (expected a number, e.g. section_0012.tif)", f)
        sid = int(m.group(1)) if m else int(numbers[-1])
        if sid in found:
            raise InputError(f"section id {sid} also given by {found[sid]['']}", f)
        found[sid] = {"": f}
    return found
