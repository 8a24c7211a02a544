"""Image rescaling shared by detection and dataset building: frame convention and window consistency."""

import numpy as np
import pytest

from sectionseg.io.resample import resample, scaled_size


def centroid(image):
    """Intensity-weighted centroid (x, y) of pixel centres, corner-origin frame."""
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    w = image.astype(float)
    return float(((xs + 0.5) * w).sum() / w.sum()), float(((ys + 0.5) * w).sum() / w.sum())


@pytest.mark.parametrize("scale", [0.3, 0.5, 0.8, 2.0])
def test_constant_image_stays_constant_and_size_is_ceiled(scale):
    image = np.full((50, 70), 120, np.uint8)
    out = resample(image, scale)
    assert out.shape == (scaled_size(70, 50, scale)[1], scaled_size(70, 50, scale)[0])
    assert out.shape == (int(np.ceil(50 * scale)), int(np.ceil(70 * scale)))
    assert np.all(out == 120)


@pytest.mark.parametrize("scale", [0.5, 0.65, 2.0])
def test_a_block_lands_at_its_scaled_corner_frame_position(scale):
    image = np.zeros((80, 80), np.float32)
    image[20:36, 40:56] = 1.0  # centre (48, 28) in the corner frame
    cx, cy = centroid(resample(image, scale))
    assert cx == pytest.approx(48 * scale, abs=0.05) and cy == pytest.approx(28 * scale, abs=0.05)


def test_a_window_equals_the_same_part_of_the_whole_image():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 150, 3), dtype=np.uint8)
    scale = 0.7  # no low-pass below this size: windows match exactly
    whole = resample(image, scale)
    x0, y0, x1, y1 = 20, 13, 77, 60  # scaled px
    sx0, sy0 = int(x0 / scale) - 1, int(y0 / scale) - 1
    crop = image[sy0 : int(y1 / scale) + 2, sx0 : int(x1 / scale) + 2]
    window = resample(crop, scale, out_origin=(x0, y0), src_origin=(sx0, sy0), out_size=(x1 - x0, y1 - y0))
    # equal up to the rounding of OpenCV's fixed-point coordinates (1/32 px)
    diff = np.abs(window.astype(int) - whole[y0:y1, x0:x1])
    assert diff.max() <= 2 and diff.mean() < 0.2
