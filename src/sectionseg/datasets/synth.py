"""Artificial training images: labelled sections pasted onto section-free wafer background.

Every labelled section (tissue + magnet + dummy, with a margin of a few px) is cut out of a labelled
wafer image, then pasted at random positions and any rotation, without overlap, onto background from
the same wafer, with a feathered alpha so edges do not look pasted.

Background: the wafer with its sections painted out (``cv2.inpaint`` on a downscaled copy, upsampled,
plus Gaussian noise of the wafer's own background noise level); windows with the least section
coverage are preferred, so section-free areas of the wafer are used as they are where they exist.

Coordinates: x, y pixels, origin at the top-left corner of the top-left pixel (pixel centres at
+0.5). OpenCV's affine maps act on pixel indices (centres at integers), hence the +-0.5 shifts.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import shapely
import shapely.affinity
from shapely.strtree import STRtree
from tqdm import tqdm

from sectionseg.datasets.samples import write_sample
from sectionseg.geometry.raster import fill_polygon
from sectionseg.geometry.section import PART_NAMES, Part, Section

log = logging.getLogger(__name__)

_INPAINT_MAX_SIDE = 1024  # inpainting runs on a copy downscaled to at most this side


@dataclass
class SectionPatch:
    """One section cut out of a wafer.

    ``image``: ``(h, w, 3)`` uint8; ``alpha``: ``(h, w)`` float32 in [0, 1] (1 on the parts, feathered
    to 0 across the margin); ``section``: polygons in the patch frame; ``footprint``: shapely area of
    the patch where alpha > 0 (parts buffered by the margin), patch frame.
    """

    image: np.ndarray
    alpha: np.ndarray
    section: Section
    footprint: shapely.Geometry


def footprint(section: Section, margin: float) -> shapely.Geometry:
    """Union of a section's parts grown by ``margin`` px (shapely, the section's frame)."""
    parts = [shapely.make_valid(shapely.Polygon(p.polygon)) for p in section.parts().values()]
    return shapely.unary_union(parts).buffer(margin)


def fill_geometry(image: np.ndarray, geom, value, offset=(0.0, 0.0)) -> np.ndarray:
    """Set the pixels of ``image`` whose centres lie in the shapely ``geom`` (polygon exteriors; its
    frame shifted by ``offset``) to ``value``; returns ``image``."""
    for g in getattr(geom, "geoms", [geom]):
        if isinstance(g, shapely.Polygon) and not g.is_empty:
            fill_polygon(image, np.asarray(g.exterior.coords)[:-1], value, offset)
    return image


def extract_patches(rgb: np.ndarray, sections: list[Section], margin: int = 6) -> list[SectionPatch]:
    """Cut every section lying (with its margin) fully inside ``rgb`` out as a :class:`SectionPatch`.

    ``rgb``: ``(H, W, 3)`` uint8 wafer; ``sections`` in its pixel frame; ``margin`` in px.
    """
    height, width = rgb.shape[:2]
    outlines = [footprint(s, 0.0) for s in sections]
    tree = STRtree(outlines) if outlines else None
    patches = []
    for k, section in enumerate(sections):
        fp = footprint(section, margin)
        minx, miny, maxx, maxy = fp.bounds
        x0, y0 = math.floor(minx) - 1, math.floor(miny) - 1
        x1, y1 = math.ceil(maxx) + 1, math.ceil(maxy) + 1
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            continue  # cut by the wafer border: incomplete, not a good example to paste
        mask = fill_geometry(np.zeros((y1 - y0, x1 - x0), np.uint8), fp, 1, (x0, y0))
        # Neighbours inside the margin (touching sections) must not be pasted as unlabelled slivers.
        others = np.zeros_like(mask)
        for i in tree.query(fp):
            if i != k:
                fill_geometry(others, outlines[i].buffer(1.5), 1, (x0, y0))
        own = fill_geometry(np.zeros_like(mask), outlines[k], 1, (x0, y0))
        mask[others.astype(bool) & ~own.astype(bool)] = 0
        dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
        alpha = np.clip(dist / max(1.0, margin - 1.0), 0.0, 1.0).astype(np.float32)
        alpha = np.maximum(alpha, own.astype(np.float32))  # the section itself is always fully opaque
        patches.append(
            SectionPatch(
                np.array(rgb[y0:y1, x0:x1]),
                alpha,
                section.transformed(1.0, (-x0, -y0)),
                shapely.affinity.translate(fp, -x0, -y0),
            )
        )
    return patches


def _affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply an OpenCV (pixel-index) affine ``matrix`` (2x3) to x,y points in the package convention."""
    return (points - 0.5) @ matrix[:, :2].T + matrix[:, 2] + 0.5


def rotate_patch(patch: SectionPatch, angle: float) -> SectionPatch:
    """Rotate ``patch`` by ``angle`` degrees (counter-clockwise on screen), canvas grown to fit.

    Image, alpha, polygons and footprint move with the same affine map.
    """
    h, w = patch.alpha.shape
    rad = math.radians(angle)
    new_w = int(math.ceil(h * abs(math.sin(rad)) + w * abs(math.cos(rad)))) + 2
    new_h = int(math.ceil(h * abs(math.cos(rad)) + w * abs(math.sin(rad)))) + 2
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    matrix[0, 2] += (new_w - 1) / 2.0 - (w - 1) / 2.0
    matrix[1, 2] += (new_h - 1) / 2.0 - (h - 1) / 2.0
    image = cv2.warpAffine(
        patch.image, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    alpha = cv2.warpAffine(
        patch.alpha, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    parts = {n: Part(_affine_points(p.polygon, matrix)) for n, p in patch.section.parts().items()}
    section = Section(*(parts.get(n) for n in PART_NAMES), extra=dict(patch.section.extra))
    # shapely's affine_transform takes [a, b, d, e, xoff, yoff] for x' = a x + b y + xoff, y' = d x + e y + yoff
    a, b, c = matrix[0]
    d, e, f = matrix[1]
    off = np.array([c, f]) + 0.5 - matrix[:, :2] @ np.array([0.5, 0.5])
    moved = shapely.affinity.affine_transform(patch.footprint, [a, b, d, e, off[0], off[1]])
    return SectionPatch(image, alpha, section, moved)


class Background:
    """Section-free background windows of one wafer (see the module docstring)."""

    def __init__(self, rgb: np.ndarray, sections: list[Section], margin: int = 6):
        self.rgb = rgb
        self.height, self.width = rgb.shape[:2]
        self.footprints = [footprint(s, margin + 2) for s in sections]
        self.tree = STRtree(self.footprints) if self.footprints else None
        self.factor = max(1.0, max(self.height, self.width) / _INPAINT_MAX_SIDE)
        self.small = self._inpainted_small()
        self.noise_std = self._noise_std()

    def _inpainted_small(self) -> np.ndarray:
        size = (max(1, round(self.width / self.factor)), max(1, round(self.height / self.factor)))
        small = cv2.resize(np.asarray(self.rgb), size, interpolation=cv2.INTER_AREA)
        if not self.footprints:
            return small
        mask = np.zeros(small.shape[:2], np.uint8)
        for fp in self.footprints:
            fill_geometry(mask, shapely.affinity.scale(fp, 1 / self.factor, 1 / self.factor, origin=(0, 0)), 255)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        return cv2.inpaint(small, mask, 3, cv2.INPAINT_TELEA)

    def _noise_std(self) -> np.ndarray:
        """Per-channel std of the high-pass residual on section-free pixels of a central crop."""
        side = min(1024, self.height, self.width)
        x0, y0 = (self.width - side) // 2, (self.height - side) // 2
        crop = np.asarray(self.rgb[y0 : y0 + side, x0 : x0 + side]).astype(np.float32)
        free = ~self._section_mask(x0, y0, side, side)
        if free.sum() < 100:
            return np.zeros(3, np.float32)
        residual = crop - cv2.GaussianBlur(crop, (0, 0), 2.0)
        return residual[free].std(axis=0).astype(np.float32)

    def _section_mask(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        mask = np.zeros((h, w), np.uint8)
        if self.tree is not None:
            for i in self.tree.query(shapely.box(x0, y0, x0 + w, y0 + h)):
                fill_geometry(mask, self.footprints[i], 1, (x0, y0))
        return mask.astype(bool)

    def coverage(self, x0: int, y0: int, size: int) -> float:
        """Section area (with margin) inside the window, px^2."""
        if self.tree is None:
            return 0.0
        box = shapely.box(x0, y0, x0 + size, y0 + size)
        return float(sum(self.footprints[i].intersection(box).area for i in self.tree.query(box)))

    def fill(self, image: np.ndarray, x0: int, y0: int, mask: np.ndarray, rng: np.random.Generator) -> None:
        """Replace the ``mask`` pixels of ``image`` (a crop of the wafer at ``(x0, y0)``, changed in place)
        by inpainted background plus noise of the wafer's own level."""
        if not mask.any():
            return
        h, w = mask.shape
        f = self.factor
        matrix = np.array([[1 / f, 0, (x0 + 0.5) / f - 0.5], [0, 1 / f, (y0 + 0.5) / f - 0.5]])
        fill = cv2.warpAffine(
            self.small, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
        ).astype(np.float32)
        fill += rng.normal(0.0, 1.0, fill.shape).astype(np.float32) * self.noise_std
        image[mask] = np.clip(np.round(fill[mask]), 0, 255).astype(np.uint8)

    def window(self, x0: int, y0: int, size: int, rng: np.random.Generator) -> np.ndarray:
        """``(size, size, 3)`` uint8 background at ``(x0, y0)`` (reflected where beyond the wafer)."""
        w, h = min(size, self.width - x0), min(size, self.height - y0)
        out = np.array(self.rgb[y0 : y0 + h, x0 : x0 + w])
        self.fill(out, x0, y0, self._section_mask(x0, y0, w, h), rng)
        return pad_to(out, size)

    def crowd_window(self, x0: int, y0: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The wafer at ``(x0, y0)`` as it is, ``(size, size, 3)`` uint8, and the ``(size, size)``
        bool mask of the known sections in it (with their margin): nothing painted out."""
        w, h = min(size, self.width - x0), min(size, self.height - y0)
        out = np.array(self.rgb[y0 : y0 + h, x0 : x0 + w])
        mask = self._section_mask(x0, y0, w, h).astype(np.uint8)
        return pad_to(out, size), pad_to(mask, size).astype(bool)

    def position(self, size: int, rng: np.random.Generator, tries: int = 8) -> tuple[int, int]:
        """A random window's top-left corner; of ``tries`` random positions the one with the least
        section coverage."""
        best = None
        for _ in range(tries):
            x0 = int(rng.integers(0, max(0, self.width - size) + 1))
            y0 = int(rng.integers(0, max(0, self.height - size) + 1))
            cov = self.coverage(x0, y0, size)
            if best is None or cov < best[0]:
                best = (cov, x0, y0)
            if cov == 0:
                break
        return best[1], best[2]

    def sample(self, size: int, rng: np.random.Generator, tries: int = 8) -> np.ndarray:
        """A random window (see :meth:`position`), its sections painted out."""
        return self.window(*self.position(size, rng, tries), size, rng)


def pad_to(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` (a window cut by the wafer's border) reflected out to ``size`` x ``size``."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    mode = cv2.BORDER_REFLECT_101 if min(h, w) > 1 else cv2.BORDER_REPLICATE
    return cv2.copyMakeBorder(image, 0, size - h, 0, size - w, mode)


def paste(canvas: np.ndarray, patch: SectionPatch, x0: int, y0: int) -> None:
    """Alpha-blend ``patch`` into ``canvas`` (``(H, W, 3)`` uint8, in place) at integer offset ``(x0, y0)``."""
    h, w = patch.alpha.shape
    region = canvas[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    alpha = patch.alpha[..., None]
    blended = alpha * patch.image.astype(np.float32) + (1.0 - alpha) * region
    canvas[y0 : y0 + h, x0 : x0 + w] = np.clip(np.round(blended), 0, 255).astype(np.uint8)


def compose_image(
    background: np.ndarray, patches: list[SectionPatch], count: int, rng: np.random.Generator, max_tries: int = 50
) -> tuple[np.ndarray, list[Section]]:
    """Paste up to ``count`` randomly chosen, randomly rotated patches onto a copy of ``background``.

    Patches land fully inside the image and their footprints (parts + margin) never overlap; a patch
    that finds no free place in ``max_tries`` random positions is skipped. Returns the image and the
    pasted sections (image frame).
    """
    canvas = background.copy()
    size_y, size_x = canvas.shape[:2]
    placed: list[shapely.Geometry] = []
    sections: list[Section] = []
    for _ in range(count):
        patch = rotate_patch(patches[int(rng.integers(len(patches)))], float(rng.uniform(0.0, 360.0)))
        h, w = patch.alpha.shape
        if w > size_x or h > size_y:
            continue
        for _ in range(max_tries):
            x0, y0 = int(rng.integers(0, size_x - w + 1)), int(rng.integers(0, size_y - h + 1))
            fp = shapely.affinity.translate(patch.footprint, x0, y0)
            if not any(fp.intersects(other) for other in placed):
                paste(canvas, patch, x0, y0)
                placed.append(fp)
                sections.append(patch.section.transformed(1.0, (x0, y0)))
                break
    return canvas, sections


def generate_synthetic(
    rgb: np.ndarray,
    sections: list[Section],
    n_images: int,
    size: int = 512,
    rng: np.random.Generator | int | None = 0,
    n_per_image: tuple[int, int] = (3, 8),
    *,
    margin: int = 6,
    max_tries: int = 50,
    background: Background | None = None,
) -> Iterator[tuple[np.ndarray, list[Section]]]:
    """Yield ``n_images`` artificial ``(size, size, 3)`` uint8 images with their sections.

    ``rgb``: labelled wafer ``(H, W, 3)`` uint8; ``sections``: its ground truth (pixel frame).
    Each image gets between ``n_per_image[0]`` and ``n_per_image[1]`` (inclusive) pasted sections
    (fewer if they do not fit). ``rng``: a numpy Generator or a seed; same seed, same images.
    ``background``: where the backgrounds come from (default: ``rgb`` with ``sections`` painted out;
    pass one that also knows the wafer's unlabelled sections when only some are labelled).
    """
    rng = np.random.default_rng(rng)
    lo, hi = n_per_image
    if not 0 <= lo <= hi:
        raise ValueError(f"n_per_image must be (min, max) with 0 <= min <= max, got {n_per_image}")
    patches = extract_patches(rgb, sections, margin)
    if not patches and hi > 0:
        raise ValueError("no labelled section lies fully inside the wafer image: nothing to paste")
    background = background or Background(rgb, sections, margin)
    for _ in range(n_images):
        base = background.sample(size, rng)
        yield compose_image(base, patches, int(rng.integers(lo, hi + 1)), rng, max_tries)


def write_synthetic(
    out_dir: str | os.PathLike,
    rgb: np.ndarray,
    sections: list[Section],
    n_images: int,
    size: int = 512,
    rng: np.random.Generator | int | None = 0,
    n_per_image: tuple[int, int] = (3, 8),
    *,
    prefix: str = "synth",
    source: str = "",
    margin: int = 6,
    progress: bool = True,
) -> list[dict]:
    """Generate and write ``n_images`` artificial samples under ``out_dir``; return their manifest items.

    Files: ``images/PREFIX_NNNNN.png``, ``annotations/PREFIX_NNNNN.json`` (labelme), ``masks/...png``.
    """
    items = []
    short = 0  # images that got fewer sections than asked for (no free place left)
    gen = generate_synthetic(rgb, sections, n_images, size, rng, n_per_image, margin=margin)
    for k, (image, secs) in enumerate(
        tqdm(gen, total=n_images, desc=f"synthetic {prefix}", disable=not progress, leave=False)
    ):
        short += len(secs) < n_per_image[0]
        items.append(write_sample(out_dir, f"{prefix}_{k:05d}", image, secs, source=source, kind="synthetic"))
    if short:
        log.warning(
            "%d of %d synthetic images hold fewer than the %d sections asked for (no free place on a %d px image)",
            short,
            n_images,
            n_per_image[0],
            size,
        )
    return items


def fitting_sections(sections: list[Section], size: int, margin: int = 6) -> int:
    """About how many of ``sections`` (their mean footprint with ``margin``) random placement fits
    without overlap on a ``size x size`` image (half of the area: random packing fills no more)."""
    if not sections:
        return 0
    area = float(np.mean([footprint(s, margin).area for s in sections]))
    return int(0.5 * size * size / max(area, 1.0))
