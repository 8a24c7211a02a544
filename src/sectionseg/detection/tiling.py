"""Tile plan over a wafer and lazy, tile-wise reading of the model input.

Frames:
- *source* frame: pixels of the user's images (gray/fluo, possibly memory-mapped, any size).
- *working* frame: the source resampled by ``scale`` (working px per source px) so that sections
  have the size the model was trained at. ``x_work = x_src * scale`` (corner convention: origin at
  the top-left corner of the top-left pixel), the working image is ``ceil(W * scale)`` px wide.

Tiles are integer windows of the working frame. :class:`WaferSource` makes one tile's model input
at a time: it reads only the matching source window of the (memory-mapped) images, applies the
global intensity normalisation (estimated once on a subsample) and resamples the window, so the
whole wafer never exists as floats (nor as a composed RGB image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sectionseg.errors import InputError
from sectionseg.io.images import Normalisation, robust_normalisation
from sectionseg.io.resample import resample, scaled_size


@dataclass(frozen=True)
class Tile:
    """A window ``[x0, x1) x [y0, y1)`` of the working frame (integer px)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def _starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile start positions along one axis: regular steps, the last tile flush with the end."""
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / stride) + 1
    starts = [min(i * stride, length - tile) for i in range(n)]
    return sorted(set(starts))


def plan_tiles(width: int, height: int, tile_size: int = 512, overlap: int = 128) -> list[Tile]:
    """Cover a ``width`` x ``height`` px image with ``tile_size`` squares overlapping by at least
    ``overlap`` px (tiles are smaller only when the image is), row by row from the top-left."""
    if tile_size < 32:
        raise InputError(f"tile size must be at least 32 px, got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise InputError(f"overlap must be in [0, tile size), got {overlap}")
    stride = tile_size - overlap
    xs, ys = _starts(width, tile_size, stride), _starts(height, tile_size, stride)
    return [Tile(x, y, min(x + tile_size, width), min(y + tile_size, height)) for y in ys for x in xs]


def inner_borders(tile: Tile, width: int, height: int) -> tuple[bool, bool, bool, bool]:
    """Which sides (left, top, right, bottom) of ``tile`` lie inside the image (not on its edge):
    a part cut by such a side is seen (more) whole by a neighbouring tile."""
    return tile.x0 > 0, tile.y0 > 0, tile.x1 < width, tile.y1 < height


class WaferSource:
    """Lazy model input of a wafer: ``(gray, gray, fluo)`` uint8 tiles in the working frame.

    ``gray``/``fluo``: 2-D arrays (np.memmap welcome) of the same shape, any dtype; ``fluo`` None
    repeats gray. ``scale``: working px per source px. Normalisations default to a robust
    percentile estimate on a subsample of each channel.
    """

    def __init__(
        self,
        gray: np.ndarray,
        fluo: np.ndarray | None = None,
        *,
        scale: float = 1.0,
        gray_norm: Normalisation | None = None,
        fluo_norm: Normalisation | None = None,
    ):
        if gray.ndim != 2:
            raise InputError(f"gray image must be 2-D, got shape {gray.shape}")
        if fluo is not None and fluo.shape != gray.shape:
            raise InputError(
                f"fluorescence image is {fluo.shape[1]}x{fluo.shape[0]} px but the gray image "
                f"is {gray.shape[1]}x{gray.shape[0]} px; they must cover the same pixels"
            )
        if not (scale > 0 and math.isfinite(scale)):
            raise InputError(f"scale must be a positive number, got {scale}")
        self.gray, self.fluo, self.scale = gray, fluo, float(scale)
        self.gray_norm = gray_norm or robust_normalisation(gray)
        self.fluo_norm = None if fluo is None else (fluo_norm or robust_normalisation(fluo))

    def rescaled(self, scale: float) -> WaferSource:
        """The same wafer at another scale (normalisations reused)."""
        return WaferSource(self.gray, self.fluo, scale=scale, gray_norm=self.gray_norm, fluo_norm=self.fluo_norm)

    def inverted(self) -> WaferSource:
        """The same wafer with its gray image read dark for light (the fluorescence unchanged)."""
        return WaferSource(
            self.gray, self.fluo, scale=self.scale, gray_norm=self.gray_norm.flipped(), fluo_norm=self.fluo_norm
        )

    @property
    def gray_inverted(self) -> bool:
        """Whether the gray image is read dark for light (:meth:`inverted`)."""
        return self.gray_norm.inverted

    @property
    def source_size(self) -> tuple[int, int]:
        """``(width, height)`` of the source images."""
        return int(self.gray.shape[1]), int(self.gray.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the working frame."""
        return scaled_size(*self.source_size, self.scale)

    def record(self) -> dict[str, Any]:
        """JSON-ready normalisation record (as :meth:`sectionseg.io.images.Composed.record`)."""
        return {
            "channels": ["gray", "gray", "fluo" if self.fluo is not None else "gray"],
            "gray": self.gray_norm.as_dict(),
            "fluo": None if self.fluo_norm is None else self.fluo_norm.as_dict(),
        }

    def _window(self, image: np.ndarray, norm: Normalisation | None, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """uint8 ``(y1-y0, x1-x0)`` working-frame window of one normalised channel."""
        assert norm is not None  # every channel that is read has its normalisation
        if self.scale == 1.0:
            return norm.apply(np.asarray(image[y0:y1, x0:x1]))
        s = self.scale
        h, w = image.shape
        # Source pixels needed (one extra px around for interpolation), clipped to the image.
        sx0, sy0 = max(0, int(math.floor(x0 / s)) - 1), max(0, int(math.floor(y0 / s)) - 1)
        sx1, sy1 = min(w, int(math.ceil(x1 / s)) + 1), min(h, int(math.ceil(y1 / s)) + 1)
        src = norm.apply(np.asarray(image[sy0:sy1, sx0:sx1]))
        return resample(src, s, out_origin=(x0, y0), src_origin=(sx0, sy0), out_size=(x1 - x0, y1 - y0))

    def box_around(self, quad: np.ndarray, margin: int) -> tuple[int, int, int, int] | None:
        """``(x0, y0, x1, y1)``: the bounding box of a working-frame quad grown by ``margin`` px, or None
        where that box leaves the wafer."""
        x0, y0 = (np.floor(quad.min(axis=0)) - margin).astype(int)
        x1, y1 = (np.ceil(quad.max(axis=0)) + margin).astype(int)
        w, h = self.size
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            return None
        return int(x0), int(y0), int(x1), int(y1)

    def gray_window(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Normalised gray uint8 window ``[x0, x1) x [y0, y1)`` of the working frame (clipped)."""
        w, h = self.size
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        return self._window(self.gray, self.gray_norm, x0, y0, x1, y1)

    def fluo_window(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray | None:
        """Normalised fluorescence uint8 window like :meth:`gray_window`; None without fluorescence."""
        if self.fluo is None:
            return None
        w, h = self.size
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        return self._window(self.fluo, self.fluo_norm, x0, y0, x1, y1)

    def tile_rgb(self, tile: Tile) -> np.ndarray:
        """Model input of ``tile``: ``(h, w, 3)`` uint8 (gray, gray, fluo)."""
        g = self._window(self.gray, self.gray_norm, tile.x0, tile.y0, tile.x1, tile.y1)
        f = g if self.fluo is None else self._window(self.fluo, self.fluo_norm, tile.x0, tile.y0, tile.x1, tile.y1)
        return np.dstack([g, g, f])

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Working-frame ``(N, 2)`` x, y points to source pixels."""
        return np.asarray(points, dtype=np.float64) / self.scale
