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
_PIL_CONVERT = {"LA": "L", "P": "RGB", "PA": "RGB"}


def read_image(path: str | os.PathLike, *, expect_gray: bool = True) -> np.ndarray:
    """Read a TIFF (8/16 bit, memory-mapped when possible), PNG or JPEG image.

    Returns a 2-D array ``(H, W)`` for gray images (possibly a read-only ``np.memmap``), or
    ``(H, W, C)`` with C = 3 when ``expect_gray`` is False (an alpha channel is dropped). An RGB file
    whose channels are equal is accepted as gray; a colour image where gray is expected, a TIFF of
    several pages or a 2-channel image is an :class:`InputError`. Floating-point pixels that are NaN
    or infinite are replaced by the median of the others (with a warning, see
    :func:`fill_non_finite`); an image without any finite pixel is refused.
    """
    path = _image_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            image = _read_tiff(path)
        elif suffix in OTHER_SUFFIXES:
            from PIL import Image

            with Image.open(path) as im:
                if im.mode in _PIL_CONVERT:  # gray + alpha, palette: the pixels' own values
                    im = im.convert(_PIL_CONVERT[im.mode])
                image = np.asarray(im)
        else:
            raise InputError(f"unsupported image type {suffix!r} (use .tif, .tiff, .png, .jpg)", path)
    except InputError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # corrupt files: any decoder error is the user's file
        raise InputError(f"cannot read image: {exc}", path) from None
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise InputError(f"expected a gray (H, W) or colour (H, W, 3) image, got an array of shape "
                         f"{tuple(image.shape)}", path)
    if min(image.shape[:2]) < 1:
        raise InputError(f"the image has no pixels (shape {tuple(image.shape)})", path)
    if expect_gray:
        image = _to_gray(image, path)
    if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise InputError(f"unsupported pixel type {image.dtype}", path)
    return fill_non_finite(image, path)


def fill_non_finite(image: np.ndarray, path=None) -> np.ndarray:
    """``image`` unchanged when every pixel is finite (integer images always are); else a float32 copy
    in which NaN and infinite pixels hold the median of the finite ones (a warning says how many).
    InputError when no pixel is finite."""
    if image.dtype.kind != "f":
        return image
    bad = 0
    for r in range(0, image.shape[0], _BLOCK_ROWS):
        bad += int(np.count_nonzero(~np.isfinite(np.asarray(image[r:r + _BLOCK_ROWS]))))
    if bad == 0:
        return image
    total = int(np.prod(image.shape))
    if bad == total:
        raise InputError("no pixel of the image has a finite value (all NaN or infinite)", path)
    out = np.array(image, dtype=np.float32)
    finite = np.isfinite(out)
    out[~finite] = np.median(out[finite][:: max(1, (total - bad) // _SAMPLE_STEP_TARGET)])
    log.warning("%s: %d of %d pixels are NaN or infinite; they are treated as background (the median "
                "value)", path if path is not None else "image", bad, total)
    return out


def is_constant(image: np.ndarray) -> bool:
    """Whether every pixel of ``image`` has the same value (read block by block)."""
    first = np.asarray(image[0, 0])
    for r in range(0, image.shape[0], _BLOCK_ROWS):
        if not np.all(np.asarray(image[r:r + _BLOCK_ROWS]) == first):
            return False
    return True


def _image_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path; InputError when it is missing, a folder or empty."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such image file" if not path.exists() else "image file expected, but this "
                         "is a folder", path)
    if path.stat().st_size == 0:
        raise InputError("image file is empty (0 bytes)", path)
    return path


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` in pixels of a TIFF, PNG or JPEG file, read from its header (no pixels).

    InputError for a missing, unsupported or unreadable file.
    """
    path = _image_file(path)
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
    """The one image of a TIFF file (memory-mapped when stored plainly); InputError for a file of
    several images (pages of different images, a stack)."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series
        stacked = [n for a, n in zip(series[0].axes, series[0].shape) if a not in "YXS" and n > 1] if series else []
        if len(series) > 1 or stacked:
            count = len(series) if len(series) > 1 else int(np.prod(stacked))
            raise InputError(f"the TIFF holds {count} images (pages); sectionseg reads single-image files: "
                             "save the one image alone", path)
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
        if block.dtype.kind == "f":
            out = np.nan_to_num(out, nan=0.0, posinf=255.0, neginf=0.0)
        return np.clip(out, 0, 255).astype(np.uint8)

    def as_dict(self) -> dict:
        return asdict(self)


def robust_normalisation(image: np.ndarray, percentiles=(0.5, 99.5)) -> Normalisation:
    """Estimate low/high intensity percentiles on a regular subsample of ``image`` (2-D)."""
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / _SAMPLE_STEP_TARGET)))
    sample = np.asarray(image[::step, ::step], dtype=np.float32)
    sample = sample[np.isfinite(sample)]  # NaN / inf pixels (API callers; files are filled on read)
    if sample.size == 0:
        raise InputError("no pixel of the image has a finite value (all NaN or infinite)")
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


IMAGE_WRITE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Atomically write an image; ``.tif``/``.tiff`` through tifffile, ``.png``/``.jpg``/``.jpeg``
    through Pillow. Another extension is an InputError (the bytes would not match the name)."""
    from PIL import Image

    from sectionseg.io.atomic import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_WRITE_SUFFIXES:
        raise InputError(f"cannot tell the image format from {suffix or 'no extension'!r}: use "
                         f"{', '.join(IMAGE_WRITE_SUFFIXES)}", path)
    with atomic_path(path) as tmp:
        if suffix in TIFF_SUFFIXES:
            tifffile.imwrite(tmp, image, photometric="rgb" if image.ndim == 3 else "minisblack")
        else:
            Image.fromarray(image).save(tmp, format="PNG" if suffix == ".png" else "JPEG")
