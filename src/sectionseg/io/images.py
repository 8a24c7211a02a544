"""Read wafer images and compose the model input.

Model input, as in the seed: 3 channels ``(gray, gray, fluo)``, uint8, ``(H, W, 3)``, after a robust
per-channel intensity normalisation (low/high percentiles mapped to 0/255) whose parameters are
returned so that they can be recorded next to any output.

Large TIFFs are memory-mapped with tifffile when they are stored uncompressed and contiguous, and
normalisation works on row blocks so a wafer is never converted to float as a whole.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tifffile

from sectionseg.errors import InputError

log = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
OTHER_SUFFIXES = (".png", ".jpg", ".jpeg")
_BLOCK_ROWS = 1024
_SAMPLE_STEP_TARGET = 2_000_000  # pixels sampled for percentile estimation


def read_image(path: str | os.PathLike, *, expect_gray: bool = True) -> np.ndarray:
    """Read a TIFF (8/16 bit, memory-mapped when possible), PNG or JPEG image.

    Returns a 2-D array ``(H, W)`` for gray images (possibly a read-only ``np.memmap``), or
    ``(H, W, C)`` when ``expect_gray`` is False. An RGB file whose channels are equal is accepted as
    gray; a colour image where gray is expected is an :class:`InputError`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such image file", path)
    if path.stat().st_size == 0:
        raise InputError("image file is empty (0 bytes)", path)
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            image = _read_tiff(path)
        elif suffix in OTHER_SUFFIXES:
            from PIL import Image

            with Image.open(path) as im:
                image = np.asarray(im)
        else:
            raise InputError(f"unsupported image type {suffix!r} (use .tif, .tiff, .png, .jpg)", path)
    except InputError:
        raise
    except Exception as exc:  # corrupt files: any decoder error is the user's file
        raise InputError(f"cannot read image: {exc}", path) from None
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if expect_gray:
        image = _to_gray(image, path)
    if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise InputError(f"unsupported pixel type {image.dtype}", path)
    return image


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` in pixels of a TIFF, PNG or JPEG file, read from its header (no pixels).

    InputError for a missing, unsupported or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such image file", path)
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                return int(page.imagewidth), int(page.imagelength)
        if suffix in OTHER_SUFFIXES:
            from PIL import Image

            with Image.open(path) as im:
                return int(im.width), int(im.height)
    except Exception as exc:  # corrupt files: any decoder error is the user's file
        raise InputError(f"cannot read image: {exc}", path) from None
    raise InputError(f"unsupported image type {suffix!r} (use .tif, .tiff, .png, .jpg)", path)


def _read_tiff(path: Path) -> np.ndarray:
    try:
        return tifffile.memmap(path, mode="r")
    except (ValueError, OSError):  # compressed or tiled: read into memory
        return tifffile.imread(path)


def _to_gray(image: np.ndarray, path: Path) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[-1] == 3:
        step = max(1, image.shape[0] // 256)
        sample = np.asarray(image[::step])
        if np.array_equal(sample[..., 0], sample[..., 1]) and np.array_equal(sample[..., 0], sample[..., 2]):
            return image[..., 0]
        raise InputError("expected a single-channel (gray) image but got an RGB colour image", path)
    raise InputError(f"expected a 2-D gray image, got array of shape {image.shape}", path)


@dataclass
class Normalisation:
    """Linear intensity mapping of one channel: ``(v - low) / (high - low)`` clipped to [0, 1] then x255."""

    low: float
    high: float
    percentiles: tuple[float, float]

    def apply(self, block: np.ndarray) -> np.ndarray:
        scale = 255.0 / max(self.high - self.low, 1e-6)
        out = (block.astype(np.float32) - np.float32(self.low)) * np.float32(scale)
        return np.clip(out, 0, 255).astype(np.uint8)

    def as_dict(self) -> dict:
        return asdict(self)


def robust_normalisation(image: np.ndarray, percentiles=(0.5, 99.5)) -> Normalisation:
    """Estimate low/high intensity percentiles on a regular subsample of ``image`` (2-D)."""
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / _SAMPLE_STEP_TARGET)))
    sample = np.asarray(image[::step, ::step], dtype=np.float32)
    low, high = np.percentile(sample, percentiles)
    if high <= low:
        high = low + 1.0
    return Normalisation(float(low), float(high), tuple(float(p) for p in percentiles))


def normalise_to_uint8(image: np.ndarray, norm: Normalisation) -> np.ndarray:
    """Apply ``norm`` to a 2-D image block by block (row blocks): uint8 ``(H, W)``."""
    out = np.empty(image.shape[:2], dtype=np.uint8)
    for r in range(0, image.shape[0], _BLOCK_ROWS):
        out[r:r + _BLOCK_ROWS] = norm.apply(np.asarray(image[r:r + _BLOCK_ROWS]))
    return out


@dataclass
class Composed:
    """Result of :func:`compose_rgb`: the ``(H, W, 3)`` uint8 model input and how it was made."""

    rgb: np.ndarray
    gray_norm: Normalisation
    fluo_norm: Normalisation | None

    def record(self) -> dict:
        """JSON-ready description of the normalisation, to store beside outputs."""
        return {"channels": ["gray", "gray", "fluo" if self.fluo_norm else "gray"],
                "gray": self.gray_norm.as_dict(),
                "fluo": None if self.fluo_norm is None else self.fluo_norm.as_dict()}


def compose_rgb(gray: np.ndarray, fluo: np.ndarray | None = None, *, percentiles=(0.5, 99.5),
                gray_name: str = "gray", fluo_name: str = "fluo") -> Composed:
    """Compose the model input ``(gray, gray, fluo)`` as uint8 ``(H, W, 3)``.

    ``gray`` and ``fluo`` are 2-D arrays of the same shape (any dtype). Without ``fluo`` the third
    channel repeats gray and a warning is logged. Names are used in error messages.
    """
    if gray.ndim != 2:
        raise InputError(f"gray image must be 2-D, got shape {gray.shape}", gray_name)
    gnorm = robust_normalisation(gray, percentiles)
    g8 = normalise_to_uint8(gray, gnorm)
    if fluo is None:
        log.warning("no fluorescence image: the third channel repeats the gray image")
        return Composed(np.dstack([g8, g8, g8]), gnorm, None)
    if fluo.shape != gray.shape:
        raise InputError(f"fluorescence image is {fluo.shape[1]}x{fluo.shape[0]} px but the gray image "
                         f"is {gray.shape[1]}x{gray.shape[0]} px; they must cover the same pixels", fluo_name)
    fnorm = robust_normalisation(fluo, percentiles)
    return Composed(np.dstack([g8, g8, normalise_to_uint8(fluo, fnorm)]), gnorm, fnorm)


def load_composed(gray_path, fluo_path=None, *, percentiles=(0.5, 99.5)) -> Composed:
    """Read the gray (and optional fluorescence) files and compose the model input."""
    gray = read_image(gray_path)
    fluo = None if fluo_path is None else read_image(fluo_path)
    return compose_rgb(gray, fluo, percentiles=percentiles, gray_name=str(gray_path),
                       fluo_name=str(fluo_path))


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Atomically write an image; ``.tif``/``.tiff`` through tifffile, ``.png``/``.jpg`` through Pillow."""
    from PIL import Image

    from sectionseg.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in TIFF_SUFFIXES:
            tifffile.imwrite(tmp, image, photometric="rgb" if image.ndim == 3 else "minisblack")
        else:
            Image.fromarray(image).save(tmp, format="PNG" if path.suffix.lower() == ".png" else "JPEG")
