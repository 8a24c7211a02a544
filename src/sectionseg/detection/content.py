"""Which tiles show anything but bare wafer: the model need not run on the others.

Wafer overviews often show much bare wafer (the sections lie in one region of it). A tile is *empty*
when, on a thumbnail of 1 thumbnail px per :data:`THUMB_PX` working px (area-averaged, so noise is
averaged down), no blob at least :data:`OPENING_PX` thumbnail px across is darker than the local
background of the gray image, or brighter than that of the fluorescence image, by more than
:data:`NOISE_FACTOR` times the thumbnail's noise (robust MAD of neighbour differences) and more than
:data:`CONTENT_FRACTION` of the strongest departures (the parts themselves). The background is a
morphological closing / opening with a disc wider than a part, so it follows mosaic shading and
vignetting; the opening of the result removes dust specks, thin fibres and the darker seams of mosaic
tiles, which would otherwise make every tile busy. A part is 6+ thumbnail px wide, so any tile holding a fair
piece of one is processed; a tile skipped holds at most a sliver of a part, which the tile that sees
the part whole (the overlap is larger than a part) reports.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sectionseg.detection.tiling import Tile, WaferSource
from sectionseg.io.images import Normalisation

THUMB_PX = 8  # working px per thumbnail px
BACKGROUND_PX = 136.0  # disc (working px) of the background estimate: wider than a part (~50 px)
NOISE_FACTOR = 6.0  # content departs from the background by more than this x the noise ...
CONTENT_FRACTION = 0.15  # ... and than this x the strongest departures (99th percentile: the parts)
OPENING_PX = 5  # thumbnail px: blobs narrower than this (dust, fibres, shading seams) are no content
MIN_LEVEL = 1.0  # gray levels (of 255): flat synthetic images have zero noise


def _thumbnail(image: np.ndarray, norm: Normalisation | None, step: int, block_px: int = 1024) -> np.ndarray:
    """Area-averaged ``1/step`` thumbnail (float32, normalised 0..255) of a 2-D source image, read in
    blocks of about ``block_px`` source px square, so a memory-mapped (or Zarr) wafer of any size is
    never loaded whole and the memory used does not grow with its width."""
    assert norm is not None  # every channel that is read has its normalisation
    h, w = image.shape
    out_h, out_w = h // step, max(1, w // step)
    if out_h == 0:
        first: np.ndarray = norm.apply(np.asarray(image[:1, :1])).astype(np.float32)
        return first
    cells = max(1, block_px // step)  # thumbnail px per block side
    out = np.empty((out_h, out_w), dtype=np.float32)
    for r in range(0, out_h, cells):
        r1 = min(out_h, r + cells)
        for c in range(0, out_w, cells):
            c1 = min(out_w, c + cells)
            block = norm.apply(np.asarray(image[r * step : r1 * step, c * step : c1 * step])).astype(np.float32)
            out[r:r1, c:c1] = cv2.resize(block, (c1 - c, r1 - r), interpolation=cv2.INTER_AREA)
    return out


def _departure(thumb: np.ndarray, dark: bool, size: int) -> np.ndarray:
    """How far each thumbnail px departs from the local background, in the direction of the content:
    ``dark`` content (sections in the gray image) below a morphological closing, bright content
    (magnets in the fluorescence) above an opening. The ``size`` px disc is wider than a part, so the
    background follows mosaic shading and vignetting but not the parts."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    departure: np.ndarray
    if dark:
        departure = cv2.morphologyEx(thumb, cv2.MORPH_CLOSE, disc, borderType=cv2.BORDER_REFLECT) - thumb
    else:
        departure = thumb - cv2.morphologyEx(thumb, cv2.MORPH_OPEN, disc, borderType=cv2.BORDER_REFLECT)
    return departure


def _noise(thumb: np.ndarray) -> float:
    """Noise s.d. of a thumbnail from its neighbour differences (robust MAD): edges are few, so
    neither the sections nor how much of the wafer they cover bias it."""
    if thumb.shape[1] < 2:
        return 0.0
    d = np.diff(thumb, axis=1).ravel()
    return 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0)


def content_flags(source: WaferSource, tiles: list[Tile]) -> list[bool]:
    """For each working-frame tile: True when it shows more than bare wafer (see the module doc)."""
    step = max(1, int(round(THUMB_PX / source.scale)))  # source px per thumbnail px
    channels: list[tuple[np.ndarray, Normalisation | None, bool]] = [(source.gray, source.gray_norm, True)]
    if source.fluo is not None:
        channels.append((source.fluo, source.fluo_norm, False))
    to_thumb = 1.0 / (source.scale * step)  # thumbnail px per working px
    windows = []
    for t in tiles:
        x0, y0 = int(t.x0 * to_thumb), int(t.y0 * to_thumb)
        windows.append((x0, y0, max(x0 + 1, int(np.ceil(t.x1 * to_thumb))), max(y0 + 1, int(np.ceil(t.y1 * to_thumb)))))
    busy: np.ndarray | None = None
    size = int(BACKGROUND_PX / THUMB_PX) | 1
    for image, norm, dark in channels:
        thumb = _thumbnail(image, norm, step)
        noise = _noise(thumb)
        departure = _departure(thumb, dark, size)
        level = max(NOISE_FACTOR * noise, MIN_LEVEL, CONTENT_FRACTION * float(np.percentile(departure, 99)))
        # dust specks, thin fibres and mosaic seams are narrow: opened away; parts are 6+ px wide
        mask = cv2.morphologyEx(
            (departure > level).astype(np.uint8), cv2.MORPH_OPEN, np.ones((OPENING_PX, OPENING_PX), np.uint8)
        )
        busy = mask if busy is None else busy | mask
    assert busy is not None  # the gray channel is always there
    flags = []
    for x0, y0, x1, y1 in windows:
        region = busy[y0:y1, x0:x1]
        flags.append(bool(region.any()) or region.size == 0)  # no thumbnail pixels: never skip
    return flags
