"""A classical baseline detector (no learning): thresholds, contours, quads, pairing.

1. Flat-field: the gray image is divided by its background (a morphological closing, which removes
   the dark sections, then a blur, computed at a reduced scale), giving a transmission map ~1 on the
   bare wafer. The fluorescence image gets its background subtracted the same way (an opening).
2. Parts: everything clearly darker than the wafer is a section (Otsu on the transmission); the
   magnets are the bright fluorescent blobs (Otsu on the fluorescence), or, without fluorescence, the
   brighter class of a second Otsu inside the sections (magnet resin is mid-gray, tissue dark). The
   tissue is the section minus the magnet.
3. Blobs: opened (dust, outlines), connected components; blobs much larger than the typical one
   (touching neighbours) are split by a watershed on their distance transform; tiny blobs dropped.
4. Quads: :func:`sectionseg.geometry.fitting.fit_quadrilateral` (minimum-area rectangle, side lines,
   refined against the gray image); pairs: :func:`sectionseg.geometry.pairing.pair_parts`.
   Unpaired tissue blobs much smaller than the typical tissue (dummy strips) are dropped.

It is a baseline: fine on sparse wafers with good contrast, weak on crowded or low-contrast ones.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from sectionseg.geometry.fitting import fit_quadrilateral
from sectionseg.geometry.pairing import pair_parts
from sectionseg.geometry.section import Part, Section

WORK_SCALE = 4  # background estimation at 1/4 resolution
MIN_AREA_PX = 150  # blobs smaller than this are never parts
CROP_MARGIN = 8  # px of image around each blob for the edge refinement


def _background(image: np.ndarray, size: float, op: int) -> np.ndarray:
    """Smooth background of ``image`` (float32) by a morphological ``op`` with a ``size`` px disc,
    done at 1/WORK_SCALE resolution and resized back."""
    h, w = image.shape
    small = cv2.resize(image, (max(1, w // WORK_SCALE), max(1, h // WORK_SCALE)), interpolation=cv2.INTER_AREA)
    k = max(3, int(size // WORK_SCALE) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    bg = cv2.morphologyEx(small, op, kernel, borderType=cv2.BORDER_REFLECT)
    bg = cv2.GaussianBlur(bg, (0, 0), k / 4)
    return cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)


def _otsu(values: np.ndarray) -> float:
    """Otsu threshold of a float sample (via an 8-bit histogram of its 0.5-99.5 % range)."""
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        return float(lo)
    scaled = np.clip((values - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8).reshape(-1, 1)
    t, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(lo + t / 255.0 * (hi - lo))


def _clean(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0


def part_masks(gray: np.ndarray, fluo: np.ndarray | None, section_size: float = 130.0) -> tuple[np.ndarray, np.ndarray]:
    """``(tissue_mask, magnet_mask)`` boolean images of the whole wafer (see the module doc)."""
    g = np.asarray(gray, dtype=np.float32)
    trans = g / np.maximum(_background(g, 2.5 * section_size, cv2.MORPH_CLOSE), 1e-6)
    dark = trans < min(_otsu(trans.ravel()[:: max(1, trans.size // 400000)]), 0.97)
    dark = _clean(dark)
    if fluo is not None:
        f = np.asarray(fluo, dtype=np.float32)
        f = f - _background(f, 2.5 * section_size, cv2.MORPH_OPEN)
        magnet = _clean(f > _otsu(f.ravel()[:: max(1, f.size // 400000)]))
    else:
        inside = trans[dark]
        magnet = dark & (trans > _otsu(inside)) if inside.size > 100 else np.zeros_like(dark)
        magnet = _clean(magnet)
    # tissue: dark and not magnet, a px away from the magnet (the shared edge is blurred)
    near_magnet = cv2.dilate(magnet.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    tissue = _clean(dark & ~near_magnet)
    return tissue, magnet


def _split_touching(labels: np.ndarray, n: int, typical_area: float) -> tuple[np.ndarray, int]:
    """Split blobs larger than 1.6x the typical area with a watershed on their distance transform."""
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    out, next_label = labels.copy(), n + 1
    for lab in np.flatnonzero(areas > 1.6 * typical_area):
        if lab == 0:
            continue
        sl = ndimage.find_objects((labels == lab).astype(np.uint8))[0]
        blob = labels[sl] == lab
        dist = cv2.distanceTransform(blob.astype(np.uint8), cv2.DIST_L2, 5)
        peaks = dist > 0.7 * dist.max()
        markers, k = ndimage.label(peaks)
        if k < 2:
            continue
        # flood the inverted distance map from the cores; outside the blob is one more basin
        relief = (255 - dist / dist.max() * 255).astype(np.uint8)
        seeds = np.ascontiguousarray(np.where(blob, markers, k + 1), dtype=np.int32)
        ws = cv2.watershed(np.ascontiguousarray(np.dstack([relief] * 3)), seeds)
        for m in range(2, k + 1):
            out[sl][(ws == m) & blob] = next_label
            next_label += 1
    return out, next_label - 1


def _blob_quads(mask: np.ndarray, gray: np.ndarray) -> list[Part]:
    """Quads of the blobs of ``mask`` (touching ones split), refined against ``gray``."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return []
    areas = np.bincount(labels.ravel())[1:]
    big = areas[areas >= MIN_AREA_PX]
    if big.size == 0:
        return []
    labels, n = _split_touching(labels, n, float(np.median(big)))
    parts = []
    h, w = mask.shape
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        y0, x0 = max(sl[0].start - CROP_MARGIN, 0), max(sl[1].start - CROP_MARGIN, 0)
        y1, x1 = min(sl[0].stop + CROP_MARGIN, h), min(sl[1].stop + CROP_MARGIN, w)
        blob = labels[y0:y1, x0:x1] == lab
        if blob.sum() < MIN_AREA_PX:
            continue
        quad = fit_quadrilateral(blob, (x0, y0), gray[y0:y1, x0:x1])
        if quad is not None:
            parts.append(Part(quad))
    return parts


def detect_classical_parts(
    gray: np.ndarray, fluo: np.ndarray | None = None, *, section_size: float = 130.0
) -> tuple[list[Section], list[Section]]:
    """``(paired sections, unpaired sections)`` found by the classical pipeline (wafer px).

    ``gray``, ``fluo``: ``(H, W)`` images of the same wafer (fluo optional); ``section_size``: rough
    long side of a section in px (sets the background filter size).
    """
    gray = np.asarray(gray)
    if gray.ndim != 2:
        raise ValueError(f"gray must be 2-D, got shape {gray.shape}")
    if fluo is not None and np.shape(fluo) != gray.shape:
        raise ValueError(f"fluo {np.shape(fluo)} and gray {gray.shape} differ in size")
    tissue_mask, magnet_mask = part_masks(gray, fluo, section_size)
    g = gray.astype(np.float32)
    tissues, magnets = _blob_quads(tissue_mask, g), _blob_quads(magnet_mask, g)
    pairs, lone_t, lone_m = pair_parts(tissues, magnets)
    sections = [Section(tissues[i], magnets[j]) for i, j in pairs]
    typical = np.median([tissues[i].area for i, _ in pairs]) if pairs else 0.0
    # small unpaired dark blobs are dummy strips or dust, not tissue
    unpaired = [Section(tissues[i], None) for i in lone_t if tissues[i].area >= 0.5 * typical]
    unpaired += [Section(None, magnets[j]) for j in lone_m]
    return sections, unpaired


def detect_classical(gray: np.ndarray, fluo: np.ndarray | None = None) -> list[Section]:
    """Paired sections (tissue + magnet quads, wafer px) found without learning; see the module doc."""
    return detect_classical_parts(gray, fluo)[0]
