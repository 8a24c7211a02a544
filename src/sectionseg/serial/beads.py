"""Bead centres in a fluorescence image: difference of Gaussians, local maxima, sub-pixel peaks.

In: a 2-D image (any numeric dtype). Out: :class:`Beads` with centres in image px (origin at the
top-left corner of the top-left pixel, y down), a brightness per bead (the background-subtracted
peak of the smoothed image, divided by the median of the image's strong beads so that exposure
cancels) and a channel index. Peaks above ``threshold`` noise s.d. are *strong* beads (constellations
and alignment use them); peaks above ``weak_threshold`` are kept as *weak* ones: a bead that is just
above the threshold in one section and just below it in the next then still matches, with its
small brightness difference, instead of counting as a bead that appeared. Several channels of one
section are merged with :func:`merge_channels`.

The *resin mask* marks where the field shows the section: the smooth background (autofluorescence of
the resin) is above ``resin_level`` times its median (so at least half the field must show resin);
a torn section shows bare wafer, darker, where no bead can be. It is kept at 1/:data:`MASK_STEP`
resolution; alignment costs count only beads that fall on the resin of both sections. ``sharpness`` (the
smoothed peak over the peak smoothed
twice as much, median over strong beads: ~2.7 for a sharp ~1 px spot, lower when out of focus)
tells blurred images.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sectionseg.serial.settings import OrderSettings

MASK_STEP = 4  # px of the image per pixel of the resin mask


@dataclass
class Beads:
    """Beads of one section: ``xy`` ``(N, 2)`` px, ``flux`` ``(N,)`` (relative brightness, median 1
    over the strong beads of a channel), ``channel`` ``(N,)`` int, ``strong`` ``(N,)`` bool,
    ``size`` ``(width, height)`` of the image px."""

    xy: np.ndarray
    flux: np.ndarray
    channel: np.ndarray
    size: tuple[int, int]
    strong: np.ndarray | None = None
    resin: np.ndarray | None = None  # bool (ceil(H/4), ceil(W/4)); None: everywhere
    sharpness: float = float("nan")  # median over strong beads of peak(sigma) / peak(2 sigma)

    def __post_init__(self):
        if self.strong is None:
            self.strong = np.ones(len(self.xy), bool)

    def on_resin(self, xy: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether points ``xy`` ``(N, 2)`` (this image's px) lie inside the image (``margin`` px from
        its border) and on the resin."""
        w, h = self.size
        inside = (xy[:, 0] >= margin) & (xy[:, 1] >= margin) & (xy[:, 0] <= w - margin) & (xy[:, 1] <= h - margin)
        if self.resin is None or not inside.any():
            return inside
        r = np.clip((xy[inside, 1] // MASK_STEP).astype(int), 0, self.resin.shape[0] - 1)
        c = np.clip((xy[inside, 0] // MASK_STEP).astype(int), 0, self.resin.shape[1] - 1)
        inside[np.flatnonzero(inside)] = self.resin[r, c]
        return inside

    @property
    def n_strong(self) -> int:
        return int(np.count_nonzero(self.strong))

    def __len__(self) -> int:
        return len(self.xy)


def detect_beads(image: np.ndarray, settings: OrderSettings = OrderSettings(), channel: int = 0) -> Beads:
    """Bead centres of one 2-D image (see the module doc); at most ``settings.max_beads``, brightest first."""
    f = np.asarray(image, dtype=np.float32)
    if f.ndim != 2:
        raise ValueError(f"a bead image must be 2-D, got shape {f.shape}")
    h, w = f.shape
    bg = cv2.GaussianBlur(f, (0, 0), settings.background_px)
    d = cv2.GaussianBlur(f, (0, 0), settings.bead_sigma_px) - bg
    sample = d[::2, ::2]
    centre = float(np.median(sample))
    noise = 1.4826 * float(np.median(np.abs(sample - centre))) or 1e-6
    level = centre + min(settings.weak_threshold, settings.threshold) * noise
    peaks = (d >= cv2.dilate(d, np.ones((3, 3), np.uint8))) & (d > level)
    peaks[:2], peaks[-2:], peaks[:, :2], peaks[:, -2:] = False, False, False, False
    rows, cols = np.nonzero(peaks)
    value = d[rows, cols]
    if len(value) > 3 * settings.max_beads:
        keep = np.argsort(-value)[: 3 * settings.max_beads]
        rows, cols, value = rows[keep], cols[keep], value[keep]
    strong = value > centre + settings.threshold * noise
    if strong.sum() > settings.max_beads:
        strong[np.argsort(-value)[settings.max_beads :]] = False
    # parabola through the peak and its neighbours, per axis: sub-pixel offsets in [-0.5, 0.5]
    left, right = d[rows, cols - 1], d[rows, cols + 1]
    u, b = d[rows - 1, cols], d[rows + 1, cols]
    dx = _vertex(left, value, right)
    dy = _vertex(u, value, b)
    xy = np.c_[cols + 0.5 + dx, rows + 0.5 + dy]
    flux = (value - centre).astype(np.float64)
    if strong.any():
        flux /= max(float(np.median(flux[strong])), 1e-12)
    flux = np.minimum(flux, settings.max_flux)
    sharpness = float("nan")
    if strong.any():
        wide = cv2.GaussianBlur(f, (0, 0), 2 * settings.bead_sigma_px) - bg
        sharpness = float(np.median(value[strong] / np.maximum(wide[rows[strong], cols[strong]], 1e-6)))
    return Beads(
        xy.astype(np.float64),
        flux,
        np.full(len(flux), channel, np.int16),
        (w, h),
        strong,
        resin_mask(f, settings.resin_level),
        sharpness,
    )


def resin_mask(image: np.ndarray, level: float) -> np.ndarray | None:
    """Coarse mask (1/:data:`MASK_STEP` px) of where the smooth background exceeds ``level`` x its
    median (the section's resin); None when that is everywhere (or ``level`` <= 0)."""
    if level <= 0:
        return None
    h, w = image.shape
    small = cv2.resize(
        image, ((w + MASK_STEP - 1) // MASK_STEP, (h + MASK_STEP - 1) // MASK_STEP), interpolation=cv2.INTER_AREA
    )
    bg = cv2.GaussianBlur(small, (0, 0), 3.0)
    mask = bg > level * float(np.median(bg))
    return None if mask.all() else mask


def _vertex(a: np.ndarray, c: np.ndarray, b: np.ndarray) -> np.ndarray:
    den = a - 2 * c + b
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(den < 0, 0.5 * (a - b) / den, 0.0)
    return np.clip(off, -0.5, 0.5)


def merge_channels(parts: list[Beads]) -> Beads:
    """One :class:`Beads` of a section from its channels' (same field of view, same size)."""
    if len(parts) == 1:
        return parts[0]
    return Beads(
        np.vstack([p.xy for p in parts]).reshape(-1, 2),
        np.concatenate([p.flux for p in parts]),
        np.concatenate([p.channel for p in parts]),
        parts[0].size,
        np.concatenate([p.strong for p in parts]),
        _and_masks([p.resin for p in parts]),
        float(np.nanmedian([p.sharpness for p in parts]))
        if any(np.isfinite(p.sharpness) for p in parts)
        else float("nan"),
    )


def _and_masks(masks: list) -> np.ndarray | None:
    masks = [m for m in masks if m is not None]
    if not masks:
        return None
    return np.logical_and.reduce(masks)
