"""Wafer images for napari without a full copy in memory (numpy only, no Qt).

:func:`lazy_pyramid` turns a 2-D image (a read-only ``np.memmap`` of an uncompressed TIFF, as
:func:`sectionseg.io.images.read_image` gives) into a list of strided views ``image[::f, ::f]``,
``f`` = 1, 2, 4, ...: napari's multiscale image reads only the pixels of the level and region it
shows; no level is computed ahead. The contrast limits come from a small strided sample.
"""

from __future__ import annotations

import numpy as np

#: the coarsest level's longest side is at most this (and levels stop at MIN_SIDE)
COARSEST_SIDE = 2048
MIN_SIDE = 256
#: images up to this many pixels are shown as one level
SINGLE_LEVEL_PIXELS = 4096 * 4096


def lazy_pyramid(image: np.ndarray) -> list[np.ndarray]:
    """Strided views of ``image``, each half the size of the one before (no copies)."""
    levels = [image]
    if image.shape[0] * image.shape[1] <= SINGLE_LEVEL_PIXELS:
        return levels
    f = 2
    while max(image.shape[:2]) // (f // 2) > COARSEST_SIDE and min(image.shape[:2]) // f >= MIN_SIDE:
        levels.append(image[::f, ::f])
        f *= 2
    return levels


def contrast_limits(image: np.ndarray, max_samples: int = 1_000_000) -> tuple[float, float]:
    """0.5 / 99.5 percentiles of a strided sample of ``image`` (never the whole image)."""
    step = max(1, int(np.ceil(np.sqrt(image.shape[0] * image.shape[1] / max_samples))))
    sample = np.asarray(image[::step, ::step], dtype=np.float64)
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def wafer_layer_data(path, name: str, colormap: str = "gray", blending: str = "translucent") -> tuple:
    """napari layer data tuple ``(data, kwargs, "image")`` of an image file, lazily read."""
    from sectionseg.io.images import read_image

    image = read_image(path)
    levels = lazy_pyramid(image)
    kwargs = {
        "name": name,
        "colormap": colormap,
        "blending": blending,
        "multiscale": len(levels) > 1,
        "contrast_limits": contrast_limits(levels[-1]),
        "metadata": {"sectionseg": {"role": "image", "path": str(path)}},
    }
    return (levels if len(levels) > 1 else levels[0]), kwargs, "image"
