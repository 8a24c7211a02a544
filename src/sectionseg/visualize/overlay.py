"""Draw sections over an image: outlines per part in distinct colours, plus section indices.

Works on wafers of any size: the image is downsampled first (``max_side``) and the polygons scaled
with it, so a 20000 px wafer costs a 2000 px drawing.
"""

from __future__ import annotations

import cv2
import numpy as np

from sectionseg.geometry import Section
from sectionseg.io.images import normalise_to_uint8, robust_normalisation

# RGB colours per part
PART_COLOURS = {"tissue": (0, 200, 255), "magnet": (255, 140, 0), "dummy": (230, 0, 230)}
_SHIFT = 4


def to_display_rgb(image: np.ndarray) -> np.ndarray:
    """Any 2-D or ``(H, W, 3)`` image to uint8 RGB for display (percentile-stretched if not uint8)."""
    if image.ndim == 2:
        image = image if image.dtype == np.uint8 else normalise_to_uint8(image, robust_normalisation(image))
        return np.dstack([image] * 3)
    if image.dtype != np.uint8:
        image = np.dstack([normalise_to_uint8(image[..., c], robust_normalisation(image[..., c])) for c in range(3)])
    return np.ascontiguousarray(image[..., :3])


def _downsample(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    factor = 1.0 if not max_side or max(h, w) <= max_side else max_side / max(h, w)
    if factor == 1.0:
        return np.asarray(image), 1.0
    step = max(1, int(1 / factor) // 2)  # cheap pre-decimation of huge memory-mapped images
    small = np.asarray(image[::step, ::step])
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(small, size, interpolation=cv2.INTER_AREA), factor


def draw_overlay(
    image: np.ndarray,
    sections: list[Section],
    *,
    max_side: int | None = 2000,
    thickness: int = 1,
    labels: bool = True,
    fill_alpha: float = 0.0,
) -> np.ndarray:
    """Return an RGB uint8 picture of ``image`` with every section's parts outlined.

    ``image``: 2-D gray or ``(H, W, 3)``; ``sections`` in the image's pixel frame. Tissue, magnet and
    dummy parts get the colours of :data:`PART_COLOURS`; the section index is written at the tissue
    centre. ``fill_alpha`` > 0 also tints the inside of each part.
    """
    small, factor = _downsample(image, max_side)
    canvas = to_display_rgb(small).copy()
    if fill_alpha > 0:
        tint = canvas.copy()
        for section in sections:
            for name, part in section.parts().items():
                cv2.fillPoly(tint, [_cv(part.polygon, factor)], PART_COLOURS[name], cv2.LINE_AA, _SHIFT)
        canvas = cv2.addWeighted(tint, fill_alpha, canvas, 1 - fill_alpha, 0)
    for section in sections:
        for name, part in section.parts().items():
            cv2.polylines(canvas, [_cv(part.polygon, factor)], True, PART_COLOURS[name], thickness, cv2.LINE_AA, _SHIFT)
    if labels:
        scale = float(np.clip(0.25 + 0.35 * factor * 2, 0.3, 0.8))
        for i, section in enumerate(sections):
            part = section.tissue or section.magnet
            x, y = part.centre
            cv2.putText(
                canvas,
                str(i),
                (int(x * factor) - 6, int(y * factor) + 4),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (255, 255, 0),
                1,
                cv2.LINE_AA,
            )
    return canvas


def _cv(polygon: np.ndarray, factor: float) -> np.ndarray:
    # x,y with origin at the pixel corner -> OpenCV's pixel-centre frame, fixed point
    return np.round((polygon * factor - 0.5) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)
