"""Cut a labelled wafer image into overlapping square patches with clipped ground truth.

Coordinates: x, y pixels, origin at the top-left corner of the top-left pixel. A tile with origin
``(x0, y0)`` and side ``size`` covers ``[x0, x0 + size) x [y0, y0 + size)``; polygons of a tile are
in that tile's frame (shifted by ``-x0, -y0``).
"""

from __future__ import annotations

import os

import numpy as np
import shapely
from tqdm import tqdm

from sectionseg.datasets.samples import write_sample
from sectionseg.geometry.section import PART_NAMES, Part, Section


def _origins(length: int, size: int, step: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, step))
    if starts[-1] != length - size:  # last tile flush with the border
        starts.append(length - size)
    return starts


def iter_tiles(width: int, height: int, size: int = 512, overlap: int = 64) -> list[tuple[int, int]]:
    """Tile origins ``(x0, y0)`` (row by row) whose ``size`` x ``size`` tiles cover the image.

    Neighbouring tiles overlap by at least ``overlap`` px; the last tile of each row/column is flush
    with the image border. An image side shorter than ``size`` gets a single origin 0 (the tile is
    then smaller than ``size``).
    """
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"need size > 0 and 0 <= overlap < size, got size={size}, overlap={overlap}")
    step = size - overlap
    return [(x, y) for y in _origins(height, size, step) for x in _origins(width, size, step)]


def _largest_polygon(geom) -> shapely.Polygon | None:
    polys = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, shapely.Polygon) and not g.is_empty]
    return max(polys, key=lambda p: p.area) if polys else None


def clip_part(part: Part, box: shapely.Polygon, min_area: float = 20.0, min_fraction: float = 0.0) -> Part | None:
    """Part of ``part`` inside ``box`` (largest piece), or None when too small.

    Dropped when the clipped area is below ``min_area`` px^2 or below ``min_fraction`` of the part.
    """
    poly = shapely.make_valid(shapely.Polygon(part.polygon))
    clipped = _largest_polygon(poly.intersection(box))
    if clipped is None or clipped.area < min_area or clipped.area < min_fraction * max(part.area, 1e-9):
        return None
    if clipped.equals(poly):
        return part
    coords = np.asarray(clipped.exterior.coords)[:-1]  # shapely repeats the first point
    return Part(coords) if len(coords) >= 3 else None


def tile_sections(
    sections: list[Section],
    x0: float,
    y0: float,
    size: int | tuple[int, int],
    *,
    min_area: float = 20.0,
    min_fraction: float = 0.0,
) -> list[Section]:
    """Sections seen in the tile at ``(x0, y0)``, clipped to it and shifted to tile coordinates.

    ``size`` is the tile side, or ``(width, height)`` for a tile cut short by the image border.
    Each part polygon is clipped with shapely; a part whose clipped area is below ``min_area`` px^2
    (or ``min_fraction`` of its area) is dropped, and a section keeps only if its tissue or magnet
    survives. Clipped sections get ``extra["clipped"] = True``.
    """
    w, h = (size, size) if np.isscalar(size) else size
    box = shapely.box(x0, y0, x0 + w, y0 + h)
    out = []
    for section in sections:
        pts = np.concatenate([p.polygon for p in section.parts().values()])
        if pts[:, 0].max() <= x0 or pts[:, 0].min() >= x0 + w or pts[:, 1].max() <= y0 or pts[:, 1].min() >= y0 + h:
            continue  # cheap reject before shapely
        parts, clipped = {}, False
        for name, part in section.parts().items():
            kept = clip_part(part, box, min_area, min_fraction)
            if kept is not None:
                clipped |= kept is not part
                parts[name] = kept.transformed(1.0, (-x0, -y0))
            else:
                clipped = True
        if "tissue" not in parts and "magnet" not in parts:
            continue
        extra = dict(section.extra)
        if clipped:
            extra["clipped"] = True
        out.append(Section(*(parts.get(n) for n in PART_NAMES), score=section.score, extra=extra))
    return out


def cut_tiles(
    rgb: np.ndarray,
    sections: list[Section],
    out_dir: str | os.PathLike,
    size: int = 512,
    overlap: int = 64,
    prefix: str = "tile",
    *,
    source: str = "",
    min_area: float = 20.0,
    keep_empty: bool = True,
    origins: list[tuple[int, int]] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Write the tiles of ``rgb`` (``(H, W, 3)`` uint8) with their clipped ground truth under ``out_dir``.

    Writes ``images/PREFIX_XXXXX_YYYYY.png``, ``annotations/...json`` (labelme) and ``masks/...png``
    (uint16 instance ids); returns the manifest items (with ``kind="tile"`` and ``origin=[x0, y0]``).
    ``origins`` restricts the tiles written (default: all of :func:`iter_tiles`); tiles without any
    section are skipped unless ``keep_empty``.
    """
    height, width = rgb.shape[:2]
    if origins is None:
        origins = iter_tiles(width, height, size, overlap)
    items = []
    for x0, y0 in tqdm(origins, desc=f"tiles {prefix}", disable=not progress, leave=False):
        patch = np.asarray(rgb[y0 : y0 + size, x0 : x0 + size])
        tile_secs = tile_sections(sections, x0, y0, (patch.shape[1], patch.shape[0]), min_area=min_area)
        if not tile_secs and not keep_empty:
            continue
        items.append(
            write_sample(
                out_dir,
                f"{prefix}_{x0:05d}_{y0:05d}",
                patch,
                tile_secs,
                source=source,
                kind="tile",
                origin=[int(x0), int(y0)],
            )
        )
    return items
