"""Training data for adapting a model to a new wafer from a few hand-labelled sections.

Synthetic pastes (:mod:`sectionseg.datasets.synth`) and context tiles, as for training, made safe for a
wafer where only a dozen of several hundred sections are labelled:

- the wafer is first brought to the *working scale* (:func:`sectionseg.geometry.scale.working_scale`),
  where sections are as large as in the base model's training data (its ``data.section_size``,
  :data:`sectionseg.geometry.scale.REFERENCE_SECTION_SIZE` for the bundled model), so that the adapted
  model runs at the same scale as detection will use;
- synthetic images: the labelled sections pasted at random positions and angles onto this wafer's own
  background (:mod:`sectionseg.datasets.synth`). The images must not teach *unlabelled* sections as
  background. Two ways (``crowd``, :data:`CROWD_MODES`): ``"paint"`` (the default) paints
  ``occupied`` sections (found by any detector) and ``content`` (areas that are no bare wafer,
  :func:`content_regions`) over with background; ``"ignore"`` keeps the wafer as it is and writes an
  ignore mask over every area of unknown content, which the detector leaves out of its background
  loss (:mod:`sectionseg.model.ignore`): ``occupied``, ``content`` and textured areas (``unknown``,
  :func:`unknown_areas`, which hold under vignetting where ``content_regions`` gives up). On the
  benchmark's alien and held-bright wafers the two score alike within the spread of draws
  (BENCHMARKS.md, 2026-12-01, session 10), so painting, the older recipe, stays the default;
- context tiles: one crop around every labelled section, in its real neighbourhood (touching
  neighbours, real illumination); its unknown areas are masked (or painted) the same way;
- validation: synthetic images from a separate random stream and a share of the context tiles.

Coordinates: x, y pixels, origin at the top-left corner of the top-left pixel.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import cv2
import numpy as np
import shapely
from tqdm import tqdm

from sectionseg.datasets.samples import write_manifest, write_sample
from sectionseg.datasets.synth import (
    Background,
    compose_image,
    extract_patches,
    fill_geometry,
    footprint,
    generate_synthetic,
    pad_to,
)
from sectionseg.datasets.tiles import tile_sections
from sectionseg.errors import InputError
from sectionseg.geometry.section import Part, Section
from sectionseg.io.resample import resample

#: Parts of different sections may overlap by at most this fraction of the smaller part.
MAX_LABEL_OVERLAP = 0.2
#: What the adaptation set does with a wafer's unlabelled sections and content: "ignore" keeps them
#: in the images and leaves them out of the loss (an ignore mask); "paint" paints them over.
CROWD_MODES = ("ignore", "paint")
#: Beyond this share of the image, "content" (no bare wafer) is shading, not sections: not used.
MAX_CONTENT_SHARE = 0.5

log = logging.getLogger(__name__)


def check_labels(
    sections: list[Section],
    width: int,
    height: int,
    path=None,
    *,
    tolerance: float = 2.0,
    max_overlap: float = MAX_LABEL_OVERLAP,
) -> None:
    """InputError (naming ``path`` and the section's rank in the file, from 1) when a labelled section
    lacks its tissue or magnet part, lies outside the ``width`` x ``height`` image (beyond
    ``tolerance`` px), or overlaps another section by more than ``max_overlap`` of the smaller part."""
    if not sections:
        raise InputError("no labelled section in the file", path)
    for k, section in enumerate(sections, 1):
        for name in ("tissue", "magnet"):
            if getattr(section, name) is None:
                raise InputError(f"labelled section {k} has no {name} part (both are needed)", path)
        pts = np.concatenate([p.polygon for p in section.parts().values()])
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        if x0 < -tolerance or y0 < -tolerance or x1 > width + tolerance or y1 > height + tolerance:
            raise InputError(
                f"labelled section {k} spans x {x0:.0f}..{x1:.0f}, y {y0:.0f}..{y1:.0f}: outside "
                f"the {width}x{height} px image (wrong image, or labels need --scale?)",
                path,
            )
    _check_overlaps(sections, path, max_overlap)


def _check_overlaps(sections: list[Section], path, max_overlap: float) -> None:
    parts = [
        (k, name, shapely.make_valid(shapely.Polygon(p.polygon)))
        for k, s in enumerate(sections, 1)
        for name, p in s.parts().items()
    ]
    tree = shapely.STRtree([g for _, _, g in parts])
    for i, j in zip(*tree.query([g for _, _, g in parts], predicate="intersects")):
        if i >= j:
            continue
        (ki, ni, gi), (kj, nj, gj) = parts[i], parts[j]
        shared = gi.intersection(gj).area / max(min(gi.area, gj.area), 1e-9)
        if shared > max_overlap:
            what = f"sections {ki} and {kj}" if ki != kj else f"the {ni} and {nj} of section {ki}"
            raise InputError(f"{what} overlap by {100 * shared:.0f}% of the smaller part: labels overlap badly", path)


def rescale_wafer(
    rgb: np.ndarray, sections: list[Section], scale: float, extra: list[Section] = ()
) -> tuple[np.ndarray, list[Section], list[Section]]:
    """``rgb`` resized by ``scale`` and the polygons of ``sections`` and ``extra`` scaled to match."""
    if scale == 1.0:
        return np.asarray(rgb), list(sections), list(extra)
    # Resampled exactly as detection resamples a wafer at its working scale.
    small = resample(np.asarray(rgb), scale)
    return small, [s.transformed(scale) for s in sections], [s.transformed(scale) for s in extra]


def unlabelled(occupied: list[Section], labelled: list[Section], min_overlap: float = 0.3) -> list[Section]:
    """The ``occupied`` sections that are not one of the ``labelled`` ones (footprint overlap below
    ``min_overlap`` of the smaller footprint)."""
    shapes = [footprint(s, 0.0) for s in labelled]
    tree = shapely.STRtree(shapes) if shapes else None
    out = []
    for section in occupied:
        fp = footprint(section, 0.0)
        hits = [] if tree is None else tree.query(fp, predicate="intersects")
        if not any(fp.intersection(shapes[i]).area > min_overlap * min(fp.area, shapes[i].area) for i in hits):
            out.append(section)
    return out


def content_regions(
    rgb: np.ndarray,
    labelled: list[Section],
    *,
    min_area: float,
    margin: int = 6,
    noise_factor: float = 4.0,
    min_levels: float = 4.0,
) -> list[Section]:
    """Everything on the wafer that is not bare wafer and not one of the ``labelled`` sections, as
    one-part pseudo-sections (convex hulls of the blobs, ``rgb``'s px; a hull may reach over a
    labelled section, so pass them to :func:`build_adaptation_set` as ``content``, not ``occupied``): the areas
    that synthetic backgrounds and
    context tiles must not show. It needs no detector, so it holds on a wafer where the base model and
    the classical detector find nothing.

    ``rgb``: ``(H, W, 3)`` uint8 (gray, gray, fluo). A pixel is content where gray or fluorescence
    smoothed over 1/8 of a part width departs from the local bare-wafer level by more than ``noise_factor`` x the
    median departure (that of the bare wafer: noise and shading, as most of a wafer is bare) and
    ``min_levels``; the bare-wafer level is a median over about 8 part widths (robust to sections of
    either polarity; strong vignetting inside mosaic tiles is beyond it: such corners count as
    content, which only costs background area). Blobs smaller than ``min_area`` px^2 (dust, fibres,
    thin dummy strips) stay, as the negatives they are; black padding is no content.
    """
    h, w = rgb.shape[:2]
    width = math.sqrt(max(min_area, 1.0))  # about a part's short side, px
    content = _level_departures(rgb, width, noise_factor, min_levels)
    content &= ~_padding(np.asarray(rgb[..., 0]))
    content = cv2.morphologyEx(content.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    content[_footprints_mask((h, w), labelled, margin)] = 0
    if content.mean() > MAX_CONTENT_SHARE:
        log.warning(
            "%.0f %% of the wafer departs from its local background level (strong shading?): content regions not used",
            100 * content.mean(),
        )
        return []
    contours, _ = cv2.findContours(content, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for contour in contours:
        if cv2.contourArea(contour) < min_area:
            continue
        hull = cv2.convexHull(contour).reshape(-1, 2).astype(np.float64) + 0.5  # pixel centres
        if len(hull) >= 3:
            out.append(Section(Part(hull), None))
    return out


def _level_departures(rgb: np.ndarray, width: float, noise_factor: float, min_levels: float) -> np.ndarray:
    """Where gray or fluorescence, smoothed over ``width`` / 8, departs from the local bare-wafer
    level (a median over 8 ``width``) by more than ``noise_factor`` x the median departure and
    ``min_levels`` (see :func:`content_regions`); ``(H, W)`` bool."""
    content = np.zeros(rgb.shape[:2], bool)
    for channel in (0, 2):
        image = np.asarray(rgb[..., channel]).astype(np.float32)
        smooth = cv2.GaussianBlur(image, (0, 0), max(2.0, width / 8))  # faint large areas over noise
        departure = np.abs(smooth - _median_level(image, width))
        # most of a wafer is bare: the typical departure is the bare wafer's own (noise, shading)
        content |= departure > max(noise_factor * float(np.median(departure)), min_levels)
    return content


def unknown_areas(
    rgb: np.ndarray,
    labelled: list[Section],
    *,
    part_area: float,
    margin: int = 6,
    factor: float = 3.0,
    min_levels: float = 2.0,
) -> np.ndarray:
    """``(H, W)`` bool mask of the wafer areas that may hold a section nobody labelled: everything with
    texture or edges, and the texture-free holes inside it up to two parts large (a plain part's
    inside) and the areas whose level departs from the bare wafer's (:func:`content_regions`' test),
    bar the ``labelled`` sections (with ``margin``) and black padding.

    Made to be generous: an area wrongly called unknown only costs negatives when it is left out of
    the loss (``crowd="ignore"``), where :func:`content_regions`' level test fails under strong
    vignetting. ``rgb``: ``(H, W, 3)`` uint8 (gray, gray, fluo); ``part_area``: a part's area, px^2.
    Texture: the local rms of the image minus its blur over a quarter part width, over an eighth of
    it; it counts above ``factor`` x its 10th percentile (bare wafer noise: at least a tenth of a
    wafer is bare) and ``min_levels`` gray levels; vignetting and shading are smooth and stay out.
    """
    width = math.sqrt(max(part_area, 1.0) / 2)  # a part's short side for an aspect of 2, px
    channels = (0,) if np.array_equal(rgb[..., 0], rgb[..., 2]) else (0, 2)
    textured = np.zeros(rgb.shape[:2], bool)
    for channel in channels:
        image = np.asarray(rgb[..., channel]).astype(np.float32)
        residual = image - cv2.GaussianBlur(image, (0, 0), max(1.0, width / 4))
        energy = np.sqrt(cv2.GaussianBlur(residual * residual, (0, 0), max(1.0, width / 8)))
        textured |= energy > max(factor * float(np.percentile(energy, 10)), min_levels)
    # plain parts whose edges leave gaps: their level departs (where vignetting does not hide it)
    textured |= _level_departures(rgb, math.sqrt(max(part_area, 1.0)) / 2, 4.0, 4.0)
    bare = (~textured).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bare, connectivity=4)
    hole = np.zeros(n, bool)
    hole[1:] = stats[1:, cv2.CC_STAT_AREA] < 2 * part_area
    unknown = textured | hole[labels]
    unknown &= ~_padding(np.asarray(rgb[..., 0]))
    return unknown & ~_footprints_mask(unknown.shape, labelled, margin)


def _footprints_mask(shape: tuple[int, int], sections: list[Section], margin: float) -> np.ndarray:
    """``shape`` bool mask of the ``sections``' footprints grown by ``margin`` px."""
    mask = np.zeros(shape, np.uint8)
    for section in sections:
        fill_geometry(mask, footprint(section, margin), 1)
    return mask.astype(bool)


def _padding(gray: np.ndarray) -> np.ndarray:
    """Black padding outside a mosaic: the regions of exactly 0 that touch the image border (a
    near-black section inside the wafer may hold zeros too, but never reaches the padding)."""
    n, labels = cv2.connectedComponents((gray == 0).astype(np.uint8), connectivity=4)
    if n <= 1:
        return np.zeros(gray.shape, bool)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, border[border > 0])


def _median_level(image: np.ndarray, width: float) -> np.ndarray:
    """Median of ``image`` over about 8 x ``width`` px, computed on a thumbnail and brought back."""
    h, w = image.shape
    factor = max(1, int(round(width / 4)))
    small = cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    k = min(255, max(3, int(8 * width / factor) | 1))
    level = cv2.medianBlur(np.clip(small, 0, 255).astype(np.uint8), k)
    return cv2.resize(level.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def context_tile(
    rgb: np.ndarray,
    labelled: list[Section],
    index: int,
    others: shapely.Geometry,
    background: Background,
    size: int,
    rng: np.random.Generator,
    margin: int = 6,
    crowd: str = "paint",
    unknown: np.ndarray | None = None,
):
    """A ``size`` crop around labelled section ``index`` (random offset) and what to do with its
    unlabelled occupied areas (``others``, minus the labelled sections and their margin): with
    ``crowd="ignore"`` they stay as they are and come back as the ignore mask, with the crop of
    ``unknown`` (a wafer-sized bool mask, :func:`unknown_areas`) added; with ``"paint"`` they are
    painted over with background (no mask).

    Returns ``(image, sections in the crop frame, (x0, y0), ignore mask (size, size) bool or None)``.
    """
    height, width = rgb.shape[:2]
    cx, cy = labelled[index].tissue.centre
    jitter = rng.uniform(-size / 4, size / 4, 2)
    x0 = int(np.clip(round(cx + jitter[0] - size / 2), 0, max(0, width - size)))
    y0 = int(np.clip(round(cy + jitter[1] - size / 2), 0, max(0, height - size)))
    image = np.array(rgb[y0 : y0 + size, x0 : x0 + size])
    h, w = image.shape[:2]
    box = shapely.box(x0, y0, x0 + w, y0 + h)
    keep = shapely.unary_union([footprint(s, margin) for s in labelled if footprint(s, 0).intersects(box)])
    occupied = others.intersection(box).difference(keep) if not others.is_empty else others
    mask = np.zeros((h, w), np.uint8)
    if not occupied.is_empty:
        fill_geometry(mask, occupied, 1, (x0, y0))
    ignore = None
    if crowd == "ignore":
        if unknown is not None:
            mask |= unknown[y0 : y0 + h, x0 : x0 + w].astype(np.uint8)
        ignore = pad_to(mask, size).astype(bool)
    elif mask.any():
        background.fill(image, x0, y0, mask.astype(bool), rng)
    return pad_to(image, size), tile_sections(labelled, x0, y0, (w, h)), (x0, y0), ignore


def crowded_synthetic(
    rgb: np.ndarray,
    labelled: list[Section],
    count: int,
    size: int,
    seed: int,
    sections_per_image: tuple[int, int],
    *,
    margin: int,
    background: Background,
    unknown: np.ndarray | None = None,
):
    """Yield ``count`` synthetic ``(image, sections, ignore)``: labelled sections pasted (as
    :func:`sectionseg.datasets.synth.compose_image` does) onto the wafer *as it is* (its crowd kept),
    with the known sections of the window and its part of ``unknown`` (a wafer-sized bool mask),
    bar the pasted sections, as the ``(size, size)`` ignore mask."""
    rng = np.random.default_rng(seed)
    lo, hi = sections_per_image
    patches = extract_patches(rgb, labelled, margin)
    if not patches:
        raise ValueError("no labelled section lies fully inside the wafer image: nothing to paste")
    for _ in range(count):
        x0, y0 = background.position(size, rng)
        base, ignore = background.crowd_window(x0, y0, size)
        if unknown is not None:
            ignore |= pad_to(unknown[y0 : y0 + size, x0 : x0 + size].astype(np.uint8), size).astype(bool)
        image, sections = compose_image(base, patches, int(rng.integers(lo, hi + 1)), rng)
        yield image, sections, ignore & ~_footprints_mask(ignore.shape, sections, margin)


def _synthetic(crowd, rgb, labelled, count, size, seed, per_image, margin, background, unknown):
    """The synthetic ``(image, sections, ignore mask or None)`` of one split, as ``crowd`` asks."""
    if crowd == "ignore":
        yield from crowded_synthetic(
            rgb, labelled, count, size, seed, tuple(per_image), margin=margin, background=background, unknown=unknown
        )
        return
    for image, sections in generate_synthetic(
        rgb, labelled, count, size, seed, tuple(per_image), margin=margin, background=background
    ):
        yield image, sections, None


def build_adaptation_set(
    out_dir: str | os.PathLike,
    rgb: np.ndarray,
    labelled: list[Section],
    *,
    occupied: list[Section] = (),
    content: list[Section] = (),
    unknown: np.ndarray | None = None,
    n_synthetic: int,
    n_val: int = 10,
    val_tile_fraction: float = 0.2,
    size: int = 512,
    sections_per_image=(2, 6),
    margin: int = 6,
    seed: int = 0,
    crowd: str = "paint",
    source: str = "",
    params: dict | None = None,
    progress: bool = True,
) -> dict:
    """Write the adaptation dataset (``images/``, ``annotations/``, ``masks/``, ``manifest.json``) into
    ``out_dir`` and return the manifest.

    ``rgb``: the wafer at working scale, ``(H, W, 3)`` uint8; ``labelled``: the hand-labelled sections
    in that frame; ``occupied``: other sections seen on the wafer (any detector; painted out of the
    backgrounds); ``content``: areas that are no bare wafer and no labelled section
    (:func:`content_regions`: painted out too, whatever the detectors found); ``unknown``: a
    wafer-sized bool mask of more areas of unknown content (:func:`unknown_areas`; with
    ``crowd="ignore"`` only). ``crowd``: see :data:`CROWD_MODES`. Train: ``n_synthetic``
    (the default of a fine-tuning: :data:`sectionseg.workflows.finetune.DEFAULT_SYNTHETIC`)
    synthetic images + context tiles; val: ``n_val`` synthetic
    images from another random stream + ``val_tile_fraction`` of the context tiles.
    """
    if crowd not in CROWD_MODES:
        raise ValueError(f"crowd must be one of {CROWD_MODES}, got {crowd!r}")
    rng = np.random.default_rng(seed)
    others = unlabelled(list(occupied), labelled) + list(content)
    background = Background(rgb, list(labelled) + others, margin)
    other_shape = shapely.unary_union([footprint(s, margin + 2) for s in others]) if others else shapely.Polygon()
    splits: dict[str, list[dict]] = {"train": [], "val": []}
    streams = {"train": (n_synthetic, int(rng.integers(2**31))), "val": (n_val, int(rng.integers(2**31)))}
    for split, (count, stream_seed) in streams.items():
        gen = _synthetic(
            crowd, rgb, labelled, count, size, stream_seed, sections_per_image, margin, background, unknown
        )
        for k, (image, secs, ignore) in enumerate(
            tqdm(gen, total=count, desc=f"synthetic {split}", disable=not progress, leave=False)
        ):
            splits[split].append(
                write_sample(
                    out_dir, f"synth_{split}_{k:04d}", image, secs, source=source, kind="synthetic", ignore=ignore
                )
            )
    order = rng.permutation(len(labelled))
    n_val_tiles = int(math.floor(val_tile_fraction * len(labelled)))
    for rank, index in enumerate(order):
        image, secs, origin, ignore = context_tile(
            rgb, labelled, int(index), other_shape, background, size, rng, margin, crowd, unknown
        )
        split = "val" if rank < n_val_tiles else "train"
        splits[split].append(
            write_sample(
                out_dir,
                f"context_{int(index):04d}",
                image,
                secs,
                source=source,
                kind="tile",
                origin=[int(origin[0]), int(origin[1])],
                ignore=ignore,
            )
        )
    info = {
        "kind": "adaptation",
        "labelled_sections": len(labelled),
        "occupied_unlabelled": len(others),
        "content_regions": len(content),
        "unknown_share": None if unknown is None else round(float(np.mean(unknown)), 4),
        "n_synthetic": n_synthetic,
        "n_val": n_val,
        "size": size,
        "margin": margin,
        "seed": seed,
        "crowd": crowd,
        "sections_per_image": list(sections_per_image),
        **(params or {}),
    }
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return write_manifest(out_dir, splits, info)
