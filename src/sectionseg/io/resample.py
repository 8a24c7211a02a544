"""Image rescaling shared by detection (wafer windows at the working scale) and dataset building
(training images at a model's scale), so that a model is trained on pixels made exactly the way it
will see them.

Frame: a pixel of the scaled image with corner ``(X, Y)`` (origin at the top-left corner of the
top-left pixel) covers source corners ``(X / s, Y / s)`` to ``((X + 1) / s, (Y + 1) / s)``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Below this scale the source is low-pass filtered before the bilinear resampling (no aliasing).
BLUR_BELOW = 0.67


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """``(width, height)`` of an image of ``width`` x ``height`` px brought to ``scale``."""
    return max(1, math.ceil(width * scale - 1e-9)), max(1, math.ceil(height * scale - 1e-9))


def resample(
    src: np.ndarray,
    scale: float,
    out_origin: tuple[float, float] = (0.0, 0.0),
    src_origin: tuple[int, int] = (0, 0),
    out_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Window of ``src`` brought to ``scale`` (scaled px per source px).

    - ``src``: 2-D or ``(H, W, C)`` image, a crop of a larger image whose corner is ``src_origin``
      (x, y source px) in that image;
    - ``out_origin``: corner (x, y scaled px) of the window to make, in the larger image's scaled frame;
    - ``out_size``: ``(width, height)`` of the window (default: the whole of ``src`` scaled).

    Downsampling below :data:`BLUR_BELOW` first blurs with sigma ``0.5 / scale``; resampling is
    bilinear, borders repeat the edge. Returns an array of ``src``'s dtype.
    """
    if out_size is None:
        out_size = scaled_size(src.shape[1], src.shape[0], scale)
    if scale < BLUR_BELOW:
        sigma = 0.5 / scale
        src = cv2.GaussianBlur(src, (0, 0), sigmaX=sigma, sigmaY=sigma)
    (x0, y0), (sx0, sy0) = out_origin, src_origin
    # dst index j (corner x0 + j) <- src corner (x0 + j) / s; cv2 maps pixel *indices*, hence the
    # half-pixel terms: src_idx = (j + 0.5 + x0) / s - 0.5 - sx0.
    m = np.array(
        [[1 / scale, 0, (0.5 + x0) / scale - 0.5 - sx0], [0, 1 / scale, (0.5 + y0) / scale - 0.5 - sy0]],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        np.ascontiguousarray(src),
        m,
        tuple(int(v) for v in out_size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
