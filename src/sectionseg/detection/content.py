"""Which tiles show anything but bare wafer: the model need not run on the others.

Wafer overviews often show much bare wafer (the sections lie in one region of it). A tile is *empty*
when, on a thumbnail of 1 thumbnail px per :data:`THUMB_PX` working px (area-averaged, so noise is
averaged down), no blob at least 3 thumbnail px across departs from the high-passed background by
more than :data:`NOISE_FACTOR` times the thumbnail's noise (robust MAD of neighbour differences), in
the gray or the fluorescence image. The high-pass removes slow
illumination changes (mosaic shading); the 3 px opening removes dust specks and thin fibres, which
would otherwise make every tile busy. A part is 6+ thumbnail px wide, so any tile holding a fair
piece of one is processed; a tile skipped holds at most a sliver of a part, which the tile that sees
the part whole (the overlap is larger than a part) reports.
"""
from __future__ import annotations

import cv2
import numpy as np

from sectionseg.detection.tiling import Tile, WaferSource

THUMB_PX = 8          # working px per thumbnail px
HIGHPASS_PX = 64.0    # Gaussian sigma (working px) of the removed slow background
NOISE_FACTOR = 6.0    # content departs from the median by more than this x the noise
MIN_LEVEL = 1.0       # gray levels (of 255): flat synthetic images have zero noise


def _thumbnail(image: np.ndarray, norm, step: int, rows_per_block: int = 64) -> np.ndarray:
    """Area-averaged ``1/step`` thumbnail (float32, normalised 0..255) of a 2-D source image, read in
    row blocks so a memory-mapped wafer is never loaded whole."""
    h, w = image.shape
    out_w = max(1, w // step)
    blocks = []
    for r0 in range(0, h - step + 1, step * rows_per_block):
        r1 = min(h - (h - r0) % step, r0 + step * rows_per_block)
        block = norm.apply(np.asarray(image[r0:r1, :out_w * step])).astype(np.float32)
        blocks.append(cv2.resize(block, (out_w, (r1 - r0) // step), interpolation=cv2.INTER_AREA))
    if not blocks:
        return norm.apply(np.asarray(image)).astype(np.float32)[:1, :1]
    return np.vstack(blocks)


def _highpass(thumb: np.ndarray, sigma: float) -> np.ndarray:
    return thumb - cv2.GaussianBlur(thumb, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _noise(thumb: np.ndarray) -> float:
    """Noise s.d. of a thumbnail from its neighbour differences (robust MAD): edges are few, so
    neither the sections nor how much of the wafer they cover bias it."""
    if thumb.shape[1] < 2:
        return 0.0
    d = np.diff(thumb, axis=1).ravel()
    return 1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2.0)


def content_flags(source: WaferSource, tiles: list[Tile]) -> list[bool]:
    """For each working-frame tile: True when it shows more than bare wafer (see the module doc)."""
    step = max(1, int(round(THUMB_PX / source.scale)))  # source px per thumbnail px
    channels = [(source.gray, source.gray_norm)]
    if source.fluo is not None:
        channels.append((source.fluo, source.fluo_norm))
    to_thumb = 1.0 / (source.scale * step)  # thumbnail px per working px
    windows = []
    for t in tiles:
        x0, y0 = int(t.x0 * to_thumb), int(t.y0 * to_thumb)
        windows.append((x0, y0, max(x0 + 1, int(np.ceil(t.x1 * to_thumb))), max(y0 + 1, int(np.ceil(t.y1 * to_thumb)))))
    busy = None
    for image, norm in channels:
        hp = _highpass(_thumbnail(image, norm, step), HIGHPASS_PX / THUMB_PX)
        noise = _noise(hp)
        mask = (np.abs(hp) > max(NOISE_FACTOR * noise, MIN_LEVEL)).astype(np.uint8)
        # dust specks and thin fibres are a thumbnail px or two across: opened away; parts are wider
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        busy = mask if busy is None else busy | mask
    flags = []
    for x0, y0, x1, y1 in windows:
        region = busy[y0:y1, x0:x1]
        flags.append(bool(region.any()) or region.size == 0)  # no thumbnail pixels: never skip
    return flags
