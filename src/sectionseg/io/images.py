"""Read wafer images and compose the model input.

Model input: 3 channels ``(gray, gray, fluo)``, uint8, ``(H, W, 3)``, after a robust
per-channel intensity normalisation (low/high percentiles mapped to 0/255) whose parameters are
returned so that they can be recorded next to any output.

Large TIFFs are memory-mapped with tifffile when they are stored uncompressed and contiguous; tiled
or compressed TIFFs of more than :data:`LAZY_MIN_BYTES` and Zarr / OME-Zarr folders (``.zarr``, the
highest-resolution level) are read chunk by chunk on demand through :class:`LazyImage`. Normalisation
works on blocks, so a wafer is never converted to float (nor read into memory) as a whole.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, replace
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
#: a tiled / compressed TIFF decoded bigger than this is read lazily, tile by tile (:class:`LazyImage`)
LAZY_MIN_BYTES = 64 * 2**20
#: decoded chunks a :class:`LazyImage` keeps per process, bytes: the small windows of fitting and repairs
#: fall in a few chunks, read (decompressed) once instead of once per window
LAZY_CACHE_BYTES = 64 * 2**20
#: windows touching more chunks than this are read directly, not through the cache
LAZY_CACHED_CHUNKS = 4
#: metadata files that make a folder a Zarr array or group (Zarr v2 and v3)
ZARR_METADATA = (".zarray", ".zgroup", "zarr.json")


class LazyImage:
    """A 2-D image read on demand, chunk by chunk: what sectionseg uses of a numpy array (``shape``,
    ``dtype``, ``ndim``, ``size``, basic slicing that returns numpy arrays; ``np.asarray`` reads it
    whole, which detection never does).

    ``opener()`` returns the underlying array (a zarr array, a TIFF's zarr store...), N-D with
    ``lead`` indices for its leading axes (OME-Zarr's ``t, c, z`` of size 1). It is called again in
    a forked process, so worker processes never share a file handle (and its position) with the
    parent. Windows of a few chunks are assembled from decoded chunks kept in a small per-process
    cache (:data:`LAZY_CACHE_BYTES`). ``largest_read`` is the most pixels one read returned (tests,
    benchmarks).
    """

    def __init__(self, opener, lead: tuple = (), *, name: str = ""):
        self._opener, self._lead, self.name = opener, tuple(lead), name
        self._array, self._pid, self._cache = None, None, None
        array = self._get()
        self.shape = tuple(int(n) for n in array.shape[len(self._lead) :])
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))
        chunks = getattr(array, "chunks", None)
        self.chunks = None
        if chunks is not None and len(chunks) == len(array.shape) and self.ndim == 2:
            self.chunks = tuple(int(c) for c in chunks[len(self._lead) :])
        self.largest_read = 0

    def _get(self):
        if self._array is None or self._pid != os.getpid():
            from collections import OrderedDict

            self._array, self._pid, self._cache = self._opener(), os.getpid(), OrderedDict()
        return self._array

    def _window(self, key: tuple) -> tuple[int, int, int, int] | None:
        """``(r0, r1, c0, c1)`` when ``key`` is a plain 2-D window (slices of step 1), else None."""
        if self.chunks is None or len(key) > 2:
            return None
        key = key + (slice(None),) * (2 - len(key))
        bounds = []
        for k, n in zip(key, self.shape):
            if not isinstance(k, slice) or k.step not in (None, 1):
                return None
            start, stop, _ = k.indices(n)
            if stop <= start:
                return None
            bounds += [start, stop]
        return tuple(bounds)

    def _chunk(self, ci: int, cj: int) -> np.ndarray:
        key = (ci, cj)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        ch, cw = self.chunks
        block = np.asarray(self._get()[self._lead + (slice(ci * ch, (ci + 1) * ch), slice(cj * cw, (cj + 1) * cw))])
        self._cache[key] = block
        limit = max(1, LAZY_CACHE_BYTES // max(1, ch * cw * self.dtype.itemsize))
        while len(self._cache) > limit:
            self._cache.popitem(last=False)
        return block

    def _cached_read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray | None:
        ch, cw = self.chunks
        rows, cols = range(r0 // ch, (r1 - 1) // ch + 1), range(c0 // cw, (c1 - 1) // cw + 1)
        if len(rows) * len(cols) > LAZY_CACHED_CHUNKS:
            return None
        self._get()
        out = np.empty((r1 - r0, c1 - c0), dtype=self.dtype)
        for ci in rows:
            for cj in cols:
                block = self._chunk(ci, cj)
                y0, y1 = max(r0, ci * ch), min(r1, ci * ch + block.shape[0])
                x0, x1 = max(c0, cj * cw), min(c1, cj * cw + block.shape[1])
                out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = block[
                    y0 - ci * ch : y1 - ci * ch, x0 - cj * cw : x1 - cj * cw
                ]
        return out

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis or k is None for k in key):
            raise IndexError("LazyImage takes integers and slices only")
        window = self._window(key)
        out = None if window is None else self._cached_read(*window)
        if out is None:
            out = np.asarray(self._get()[self._lead + key])
        self.largest_read = max(self.largest_read, int(out.size))
        return out

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self):  # pickled (another process): reopened there
        return {**self.__dict__, "_array": None, "_pid": None, "_cache": None}

    def __repr__(self) -> str:
        return f"LazyImage({self.name!r}, shape={self.shape}, dtype={self.dtype})"


def is_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Zarr array or group folder (a ``.zarr`` folder, or one holding Zarr
    metadata)."""
    path = Path(path)
    return path.is_dir() and (path.suffix.lower() == ".zarr" or any((path / m).is_file() for m in ZARR_METADATA))


def _zarr_level(group, path: Path):
    """``(array path inside the group, array)`` of the highest-resolution image of a Zarr group:
    the first dataset of OME-Zarr ``multiscales`` (v0.4 attributes or v0.5 ``ome``), else its only
    array, else an array named ``0``."""
    attrs = dict(group.attrs)
    multiscales = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    if multiscales:
        try:
            name = str(multiscales[0]["datasets"][0]["path"])
        except (KeyError, IndexError, TypeError):
            raise InputError("OME-Zarr 'multiscales' metadata without a dataset path", path) from None
        return name, group[name]
    arrays = dict(group.arrays())
    if len(arrays) == 1:
        return next(iter(arrays.items()))
    if "0" in arrays:
        return "0", arrays["0"]
    raise InputError(
        f"Zarr group without OME-Zarr 'multiscales' metadata holds {len(arrays)} arrays; "
        "give the path of the image array itself",
        path,
    )


def _open_zarr(path: Path) -> LazyImage:
    """A Zarr / OME-Zarr folder as a :class:`LazyImage` (highest resolution; leading axes of size 1
    dropped)."""
    import zarr

    node = zarr.open(str(path), mode="r")
    inner = None
    if not hasattr(node, "shape"):  # a group
        inner, node = _zarr_level(node, path)
    shape = tuple(int(n) for n in node.shape)
    extra = shape[:-2]
    if len(shape) < 2 or any(n != 1 for n in extra):
        axes = f" ({' x '.join(map(str, shape))})"
        raise InputError(
            f"expected one 2-D image in the Zarr array{axes}; channels, planes or time points "
            "must be single (give gray and fluorescence as separate images)",
            path,
        )

    def opener(path=str(path), inner=inner):
        import zarr

        node = zarr.open(path, mode="r")
        return node if inner is None else node[inner]

    return LazyImage(opener, (0,) * len(extra), name=str(path))


def _lazy_tiff(path: Path) -> LazyImage:
    """A tiled or compressed TIFF read tile by tile (tifffile's zarr store)."""

    def opener(path=str(path)):
        import zarr

        return zarr.open(tifffile.imread(path, aszarr=True), mode="r")

    return LazyImage(opener, name=str(path))


def read_image(path: str | os.PathLike, *, expect_gray: bool = True) -> np.ndarray:
    """Read a TIFF (8/16 bit, memory-mapped when possible), PNG or JPEG image.

    A Zarr / OME-Zarr folder (``.zarr``) is read lazily (its highest-resolution level), as are large
    tiled or compressed TIFFs: both come back as a :class:`LazyImage`.

    Returns a 2-D array ``(H, W)`` for gray images (possibly a read-only ``np.memmap`` or a
    :class:`LazyImage`), or
    ``(H, W, C)`` with C = 3 when ``expect_gray`` is False (an alpha channel is dropped). An RGB file
    whose channels are equal is accepted as gray; a colour image where gray is expected, a TIFF of
    several pages or a 2-channel image is an :class:`InputError`. Floating-point pixels that are NaN
    or infinite are replaced by the median of the others (with a warning, see
    :func:`fill_non_finite`); an image without any finite pixel is refused.
    """
    if is_zarr(path):
        path = Path(path)
        try:
            image = _open_zarr(path)
        except (InputError, MemoryError):
            raise
        except Exception as exc:  # unreadable metadata or chunks
            raise InputError(f"cannot read Zarr image: {exc}", path) from None
        if not expect_gray and image.ndim == 2:
            raise InputError("expected a colour (H, W, 3) image; a Zarr image is read as gray", path)
        if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
            raise InputError(f"unsupported pixel type {image.dtype}", path)
        if min(image.shape) < 1:
            raise InputError(f"the image has no pixels (shape {image.shape})", path)
        return fill_non_finite(image, path)
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
        raise InputError(
            f"expected a gray (H, W) or colour (H, W, 3) image, got an array of shape {tuple(image.shape)}", path
        )
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
        bad += int(np.count_nonzero(~np.isfinite(np.asarray(image[r : r + _BLOCK_ROWS]))))
    if bad == 0:
        return image
    total = int(np.prod(image.shape))
    if bad == total:
        raise InputError("no pixel of the image has a finite value (all NaN or infinite)", path)
    out = np.array(image, dtype=np.float32)
    finite = np.isfinite(out)
    out[~finite] = np.median(out[finite][:: max(1, (total - bad) // _SAMPLE_STEP_TARGET)])
    log.warning(
        "%s: %d of %d pixels are NaN or infinite; they are treated as background (the median value)",
        path if path is not None else "image",
        bad,
        total,
    )
    return out


def is_constant(image: np.ndarray) -> bool:
    """Whether every pixel of ``image`` has the same value (read block by block)."""
    first = np.asarray(image[0, 0])
    for r in range(0, image.shape[0], _BLOCK_ROWS):
        if not np.all(np.asarray(image[r : r + _BLOCK_ROWS]) == first):
            return False
    return True


def _image_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path; InputError when it is missing, a folder or empty."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "no such image file" if not path.exists() else "image file expected, but this is a folder", path
        )
    if path.stat().st_size == 0:
        raise InputError("image file is empty (0 bytes)", path)
    return path


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` in pixels of a TIFF, PNG or JPEG file, read from its header (no pixels).

    InputError for a missing, unsupported or unreadable file.
    """
    if is_zarr(path):
        try:
            shape = _open_zarr(Path(path)).shape
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot read Zarr image: {exc}", path) from None
        return int(shape[1]), int(shape[0])
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
            raise InputError(
                f"the TIFF holds {count} images (pages); sectionseg reads single-image files: save the one image alone",
                path,
            )
        page = tif.pages[0]
        decoded = int(np.prod(page.shape)) * page.dtype.itemsize if page.dtype is not None else 0
        chunked = page.is_tiled or len(page.dataoffsets) > 1
    try:
        return tifffile.memmap(path, mode="r")
    except (ValueError, OSError):  # compressed or tiled
        pass
    if decoded > LAZY_MIN_BYTES and chunked and len(page.shape) == 2:
        return _lazy_tiff(path)  # read tile by tile (strip by strip) on demand
    return tifffile.imread(path)


def _to_gray(image: np.ndarray, path: Path) -> np.ndarray:
    if image.ndim == 2 or isinstance(image, LazyImage):
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
    """Linear intensity mapping of one channel: ``(v - low) / (high - low)`` clipped to [0, 1] then x255;
    ``inverted``: then ``255 -`` that (sections lighter than the wafer shown dark, as the model knows
    them; see :func:`sectionseg.detection.scale.choose_polarity`)."""

    low: float
    high: float
    percentiles: tuple[float, float]
    inverted: bool = False

    def apply(self, block: np.ndarray) -> np.ndarray:
        scale = 255.0 / max(self.high - self.low, 1e-6)
        out = (block.astype(np.float32) - np.float32(self.low)) * np.float32(scale)
        if block.dtype.kind == "f":
            out = np.nan_to_num(out, nan=0.0, posinf=255.0, neginf=0.0)
        out = np.clip(out, 0, 255).astype(np.uint8)
        return 255 - out if self.inverted else out

    def flipped(self) -> Normalisation:
        """The same mapping with dark and light exchanged."""
        return replace(self, inverted=not self.inverted)

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
        out[r : r + _BLOCK_ROWS] = norm.apply(np.asarray(image[r : r + _BLOCK_ROWS]))
    return out


@dataclass
class Composed:
    """Result of :func:`compose_rgb`: the ``(H, W, 3)`` uint8 model input and how it was made."""

    rgb: np.ndarray
    gray_norm: Normalisation
    fluo_norm: Normalisation | None

    def record(self) -> dict:
        """JSON-ready description of the normalisation, to store beside outputs."""
        return {
            "channels": ["gray", "gray", "fluo" if self.fluo_norm else "gray"],
            "gray": self.gray_norm.as_dict(),
            "fluo": None if self.fluo_norm is None else self.fluo_norm.as_dict(),
        }


def compose_rgb(
    gray: np.ndarray,
    fluo: np.ndarray | None = None,
    *,
    percentiles=(0.5, 99.5),
    gray_name: str = "gray",
    fluo_name: str = "fluo",
) -> Composed:
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
        raise InputError(
            f"fluorescence image is {fluo.shape[1]}x{fluo.shape[0]} px but the gray image "
            f"is {gray.shape[1]}x{gray.shape[0]} px; they must cover the same pixels",
            fluo_name,
        )
    fnorm = robust_normalisation(fluo, percentiles)
    return Composed(np.dstack([g8, g8, normalise_to_uint8(fluo, fnorm)]), gnorm, fnorm)


def load_composed(gray_path, fluo_path=None, *, percentiles=(0.5, 99.5)) -> Composed:
    """Read the gray (and optional fluorescence) files and compose the model input."""
    gray = read_image(gray_path)
    fluo = None if fluo_path is None else read_image(fluo_path)
    return compose_rgb(gray, fluo, percentiles=percentiles, gray_name=str(gray_path), fluo_name=str(fluo_path))


IMAGE_WRITE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Atomically write an image; ``.tif``/``.tiff`` through tifffile, ``.png``/``.jpg``/``.jpeg``
    through Pillow. Another extension is an InputError (the bytes would not match the name)."""
    from PIL import Image

    from sectionseg.io.atomic import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_WRITE_SUFFIXES:
        raise InputError(
            f"cannot tell the image format from {suffix or 'no extension'!r}: use {', '.join(IMAGE_WRITE_SUFFIXES)}",
            path,
        )
    with atomic_path(path) as tmp:
        if suffix in TIFF_SUFFIXES:
            tifffile.imwrite(tmp, image, photometric="rgb" if image.ndim == 3 else "minisblack")
        else:
            Image.fromarray(image).save(tmp, format="PNG" if suffix == ".png" else "JPEG")
