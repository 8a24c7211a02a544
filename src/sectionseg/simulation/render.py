"""Render a simulated MagC wafer overview: brightfield (gray) and fluorescence images.

The model of the gray image is multiplicative, as in reflected-light brightfield:
``gray = illumination x transmission + noise`` where the illumination carries the mosaic-tile
pattern (per-tile gain and offset, vignetting inside each tile, smooth wafer-wide shading) and the
transmission is 1 on the bare wafer, darker on tissue (with smooth texture and knife stripes parallel
to the section's long edge), mid gray on the magnetic part, and darkened by part outlines, dust and
fibres. The fluorescence image is dark except over the magnetic parts (bright base plus bead
speckles), with faint tissue autofluorescence and some fluorescent dust; it is shifted by a small
sub-pixel misregistration relative to the gray image. The ground truth is in the gray image's frame.

Speed: every section is drawn inside its own bounding box only; whole-image work is a handful of
vectorised numpy / OpenCV passes. A 5000 x 5000 px wafer with 500 sections renders in a few seconds
on one core (``benchmarks/bench_simulate.py``). Deterministic for a given ``rng`` state.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sectionseg.geometry.raster import fill_polygon
from sectionseg.geometry.section import Section

_SHIFT = 4  # sub-pixel bits for OpenCV drawing, as in sectionseg.geometry.raster


def render_wafer(
    sections: list[Section],
    width: int,
    height: int,
    params: dict,
    rng: np.random.Generator,
    *,
    magnet_beads: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``(gray, fluo)``, two ``(height, width)`` arrays, uint8 or uint16 by
    ``params["bit_depth"]``.

    ``sections``: polygons in image pixels (the package convention). ``params``: a concrete
    parameter set from :meth:`sectionseg.simulation.styles.Style.sample` (intensities as fractions
    of the white level). ``rng`` drives every random choice, so the same state gives the same images.
    ``magnet_beads``: ``{section index: (xy (N, 2) image px, signal (N,))}``: the beads of those
    sections' magnets in the fluorescence image are these (peak ``bead_brightness x signal``, only
    those inside the magnet) instead of random ones (the random draws are made all the same, so
    everything else is as without); None: random beads everywhere (the images are then exactly
    those of earlier versions).
    """
    p = params
    h, w = int(height), int(width)
    illum = _illumination(rng, h, w, p)  # (h, w) float32, ~ background level
    trans = np.ones((h, w), dtype=np.float32)
    fsig = np.zeros((h, w), dtype=np.float32)  # fluorescence signal before excitation shading
    beads = np.zeros((h, w), dtype=np.float32)  # bead impulses
    for index, section in enumerate(sections):
        pattern = None if magnet_beads is None else magnet_beads.get(index)
        _draw_section(rng, section, trans, fsig, beads, p, pattern)
    _draw_outlines(sections, trans, p["edge_contrast"])
    if p.get("loose_dummies_per_mpx", 0.0) > 0:
        _loose_dummies(rng, sections, trans, p)
    dust_g, dust_f = _debris(rng, h, w, p)
    trans *= 1.0 - dust_g
    del dust_g

    gray = illum
    gray *= trans
    del trans
    gray = _optics(rng, gray, p["blur_sigma"], p["noise_sigma"])

    fluo = _fluo_background(rng, h, w, p)
    if p["bead_sigma"] > 0:
        beads = cv2.GaussianBlur(beads, (0, 0), p["bead_sigma"])
    fsig += beads
    del beads
    fsig += dust_f
    del dust_f
    fluo += fsig
    del fsig
    fluo = _misregister(rng, fluo, p["misregistration"])
    fluo = _optics(rng, fluo, p["blur_sigma"], p["fluo_noise"])
    gray, fluo = _to_bits(gray, p), _to_bits(fluo, p)
    if p.get("padding_probability", 0.0) > 0 and rng.random() < p["padding_probability"]:
        _pad_outside_mosaic(rng, sections, gray, fluo, p)
    if p.get("jpeg_quality", 0.0) > 0 and gray.dtype == np.uint8:
        gray = _through_jpeg(gray, int(round(p["jpeg_quality"])))
    return gray, fluo


# --------------------------------------------------------------------------------------------
# illumination
# --------------------------------------------------------------------------------------------


def _smooth_field(rng, h, w, cells: int = 4) -> np.ndarray:
    """Smooth random field in about [-1, 1]: a ``cells x cells`` random grid, bicubic upsampled."""
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    small /= max(float(np.abs(small).max()), 1e-6)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _tile_grid(rng, h, w, tile: int, values: np.ndarray) -> np.ndarray:
    """Piecewise-constant ``(h, w)`` field: ``values[i, j]`` on mosaic tile (i, j)."""
    oy, ox = (int(v) for v in rng.integers(0, tile, 2))  # the mosaic grid is not image-aligned
    big = np.repeat(np.repeat(values.astype(np.float32), tile, axis=0), tile, axis=1)
    return np.ascontiguousarray(big[oy : oy + h, ox : ox + w]), (oy, ox)


def _illumination(rng, h, w, p) -> np.ndarray:
    """Bare-wafer brightness ``(h, w)`` float32: tiles (gain, offset, vignetting) x global shading."""
    tile = max(16, int(round(p["tile_size"])))
    ny, nx = h // tile + 2, w // tile + 2
    gains = 1.0 + p["tile_gain"] * rng.standard_normal((ny, nx))
    offsets = p["tile_offset"] * rng.standard_normal((ny, nx))
    field, (oy, ox) = _tile_grid(rng, h, w, tile, gains)
    # vignetting inside each tile: separable parabola, optical centre slightly off the tile centre
    cy, cx = rng.uniform(0.4, 0.6, 2)
    fy = ((np.arange(h) + oy) % tile) / tile - cy
    fx = ((np.arange(w) + ox) % tile) / tile - cx
    vy = (1.0 - 2.0 * p["tile_shading"] * fy**2).astype(np.float32)
    vx = (1.0 - 2.0 * p["tile_shading"] * fx**2).astype(np.float32)
    field *= vy[:, None]
    field *= vx[None, :]
    field *= 1.0 + p["global_shading"] * _smooth_field(rng, h, w)
    field *= p["background"]
    field += _tile_grid(rng, h, w, tile, offsets)[0]
    if p.get("seam_contrast", 0.0) > 0:
        _seams(rng, field, tile, oy, ox, p["seam_contrast"])
    return field


def _seams(rng, field: np.ndarray, tile: int, oy: int, ox: int, contrast: float) -> None:
    """Lines one or two px wide along the mosaic tile borders, darker or lighter than the tiles
    (stitching seams)."""
    sign = -1.0 if rng.random() < 0.7 else 1.0
    width = int(rng.integers(1, 3))
    rows = [y for y in range(field.shape[0]) if (y + oy) % tile < width]
    cols = [x for x in range(field.shape[1]) if (x + ox) % tile < width]
    field[rows, :] *= 1.0 + sign * contrast
    field[:, cols] *= 1.0 + sign * contrast


def _fluo_background(rng, h, w, p) -> np.ndarray:
    """Dark fluorescence background with its own faint tile pattern."""
    tile = max(16, int(round(p["tile_size"])))
    gains = 1.0 + p["fluo_tile_gain"] * rng.standard_normal((h // tile + 2, w // tile + 2))
    field = _tile_grid(rng, h, w, tile, gains)[0]
    field *= p["fluo_background"] * (1.0 + 0.3 * _smooth_field(rng, h, w))
    return field


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------


def _box(polygon: np.ndarray, h: int, w: int, pad: int = 1):
    """Integer pixel box ``(x0, y0, x1, y1)`` around ``polygon`` clipped to the image, or None."""
    x0 = max(int(math.floor(polygon[:, 0].min())) - pad, 0)
    y0 = max(int(math.floor(polygon[:, 1].min())) - pad, 0)
    x1 = min(int(math.ceil(polygon[:, 0].max())) + pad, w)
    y1 = min(int(math.ceil(polygon[:, 1].max())) + pad, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _local_mask(polygon, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    return fill_polygon(mask, polygon, 1, offset=(x0, y0)).astype(bool)


def _stripe_profile(rng, length: int, period: float) -> np.ndarray:
    """1-D knife-stripe profile (zero mean, unit s.d.): smoothed noise plus one sinusoid."""
    noise = rng.standard_normal(length + 8).astype(np.float32)
    noise = cv2.GaussianBlur(noise.reshape(1, -1), (0, 0), sigmaX=max(period / 3.0, 0.5)).ravel()[4:-4]
    noise /= max(float(noise.std()), 1e-6)
    t = np.arange(length, dtype=np.float32)
    wave = np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    prof = 0.6 * noise + 0.8 * wave
    return prof / max(float(prof.std()), 1e-6)


def _texture(rng, shape, cells=(3, 5)) -> np.ndarray:
    """Smooth random texture of ``shape``, about [-1, 1]."""
    small = rng.uniform(-1.0, 1.0, cells).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _draw_section(rng, section: Section, trans, fsig, beads, p, pattern=None) -> None:
    """Darken ``trans`` over the section's parts and light up ``fsig``/``beads`` over its magnet."""
    h, w = trans.shape
    parts = section.parts()
    ref = section.tissue or section.magnet
    theta = math.radians(ref.angle)
    # normal to the long axis on screen (y down): stripes vary along it
    nx, ny = math.sin(theta), math.cos(theta)
    cx, cy = ref.centre
    tissue_dark = p["tissue_contrast"] * (1.0 + 0.08 * rng.standard_normal())
    # one section's thickness (interference) darkens or lightens both parts together; the balance
    # moves them apart (on some wafers either part can be the darker one)
    bright = _log_factor(rng, p.get("section_brightness", 0.0))
    balance = _log_factor(rng, p.get("part_balance", 0.0))
    tissue_dark = min(tissue_dark * bright * balance, 0.95) if bright * balance != 1.0 else tissue_dark
    band = _edge_band(rng, section, p)
    period = p["stripe_period"] * rng.uniform(0.8, 1.25)
    span = 400  # profile length, px: covers any section and its dummy at working resolution
    profile = _stripe_profile(rng, 2 * span, period)
    for name, part in parts.items():
        box = _box(part.polygon, h, w)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        mask = _local_mask(part.polygon, box)
        if not mask.any():
            continue
        tex = _texture(rng, mask.shape)
        if name == "magnet":
            dark = p["magnet_contrast"] * (1.0 + 0.08 * rng.standard_normal())
            dark = min(dark * bright / balance, 0.97)
            factor = 1.0 - dark * (1.0 + p["magnet_texture"] * tex)
            _magnet_fluo(rng, part.polygon, box, mask, tex, fsig, beads, p, pattern)
            if p.get("gray_speckles", 0.0) > 0:
                factor *= 1.0 + _speckles(rng, mask, p)
        else:
            dark = tissue_dark if name == "tissue" else tissue_dark + p["dummy_contrast_jitter"]
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            v = (xx + 0.5 - cx) * nx + (yy + 0.5 - cy) * ny
            idx = np.clip(v.astype(np.int32) + span, 0, 2 * span - 1)
            stripes = p["stripe_amplitude"] * profile[idx] / max(abs(dark), 1e-3)
            factor = 1.0 - dark * (1.0 + p["tissue_texture"] / max(abs(dark), 1e-3) * tex + stripes)
            if name == "tissue" and p["fluo_tissue"] > 0:
                sub = fsig[y0:y1, x0:x1]
                sub[mask] = np.maximum(sub[mask], p["fluo_tissue"] * (1.0 + 0.3 * tex[mask]))
            if name == "tissue":
                factor = _tissue_content(rng, factor, mask, dark, p)
        if band is not None and name != "dummy":
            factor = factor * (1.0 + band(x0, y0, x1, y1))
        sub = trans[y0:y1, x0:x1]
        sub[mask] *= np.clip(factor[mask], 0.02, 1.8)


def _log_factor(rng, sigma: float) -> float:
    """``exp(N(0, sigma))``, 1 (and no random draw) when ``sigma`` is 0."""
    return math.exp(sigma * rng.standard_normal()) if sigma > 0 else 1.0


def _edge_band(rng, section: Section, p):
    """A function ``(x0, y0, x1, y1) -> (h, w)`` lightening profile along the tissue/magnet edge, or
    None (no band, or the section lacks a part)."""
    strength = p.get("edge_band", 0.0)
    if strength <= 0 or section.tissue is None or section.magnet is None:
        return None
    strength *= rng.uniform(0.5, 1.0)
    width = max(p.get("edge_band_width", 3.0), 0.5)
    poly = section.tissue.polygon
    target = np.asarray(section.magnet.centre)
    mids = 0.5 * (poly + np.roll(poly, -1, axis=0))
    k = int(np.argmin(np.linalg.norm(mids - target, axis=1)))
    a, b = poly[k], poly[(k + 1) % len(poly)]
    normal = np.array([a[1] - b[1], b[0] - a[0]]) / max(float(np.linalg.norm(b - a)), 1e-6)

    def profile(x0, y0, x1, y1):
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d = (xx + 0.5 - a[0]) * normal[0] + (yy + 0.5 - a[1]) * normal[1]
        return (strength * np.exp(-((d / width) ** 2))).astype(np.float32)

    return profile


def _tissue_content(rng, factor: np.ndarray, mask: np.ndarray, dark: float, p) -> np.ndarray:
    """The embedded sample inside a tissue part: dark round or irregular blobs, and sometimes a fold
    (a thin dark or light line across it) or a hole (wafer showing through)."""
    n_blobs = int(rng.poisson(p.get("tissue_blobs", 0.0)))
    fold = p.get("fold_probability", 0.0) > 0 and rng.random() < p["fold_probability"]
    if n_blobs == 0 and not fold:
        return factor
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return factor
    short = max(2.0, math.sqrt(float(mask.sum())) / 2.0)
    canvas = np.zeros(mask.shape, dtype=np.float32)
    for _ in range(n_blobs):
        i = int(rng.integers(xs.size))
        for _lobe in range(int(rng.integers(1, 4))):  # 1-3 overlapping ellipses: irregular blobs
            c = (int(xs[i] + rng.normal(0, 0.1 * short)), int(ys[i] + rng.normal(0, 0.1 * short)))
            axes = (max(1, int(rng.uniform(0.05, 0.3) * short)), max(1, int(rng.uniform(0.05, 0.3) * short)))
            cv2.ellipse(canvas, c, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.5, 1.0)), -1)
    canvas = cv2.GaussianBlur(canvas, (0, 0), 1.0)
    out = factor * (1.0 - p.get("blob_contrast", 0.0) * np.clip(canvas, 0, 1))
    if fold:
        i, j = rng.integers(xs.size, size=2)
        line = np.zeros(mask.shape, dtype=np.float32)
        if rng.random() < 0.5:  # a fold: thin line across the part
            cv2.line(line, (int(xs[i]), int(ys[i])), (int(xs[j]), int(ys[j])), 1.0, int(rng.integers(1, 4)))
            out *= 1.0 + rng.choice([-0.5, 0.5]) * dark * cv2.GaussianBlur(line, (0, 0), 0.7)
        else:  # a hole: the wafer shows through
            axes = (max(1, int(rng.uniform(0.05, 0.2) * short)), max(1, int(rng.uniform(0.05, 0.2) * short)))
            cv2.ellipse(line, (int(xs[i]), int(ys[i])), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
            line = cv2.GaussianBlur(line, (0, 0), 0.7)
            out = out * (1.0 - line) + line
    return out


def _speckles(rng, mask: np.ndarray, p) -> np.ndarray:
    """Bead speckles of a magnet in the gray image: ``(h, w)`` relative change (bright or dark dots)."""
    area = float(mask.sum())
    n = int(rng.poisson(p["gray_speckles"] * area))
    canvas = np.zeros(mask.shape, dtype=np.float32)
    if n:
        iy = rng.integers(0, mask.shape[0], n)
        ix = rng.integers(0, mask.shape[1], n)
        sign = np.where(rng.random(n) < 0.7, 1.0, -1.0)  # mostly white dots, as on real wafers
        amp = p["speckle_contrast"] * rng.uniform(0.4, 1.0, n) * sign
        s = max(p["bead_sigma"], 0.5)
        np.add.at(canvas, (iy, ix), (amp * 2 * np.pi * s * s).astype(np.float32))
        canvas = cv2.GaussianBlur(canvas, (0, 0), s)
    return canvas


def _loose_dummies(rng, sections: list[Section], trans: np.ndarray, p) -> None:
    """Thin strips lying anywhere (trimmed resin, not part of any section): darken ``trans``."""
    h, w = trans.shape
    sizes = [s.tissue.polygon for s in sections if s.tissue is not None]
    size = float(np.median([np.ptp(q, axis=0).max() for q in sizes])) if sizes else 100.0
    for _ in range(int(rng.poisson(p["loose_dummies_per_mpx"] * h * w / 1e6))):
        length = size * rng.uniform(0.6, 1.8)
        width = rng.uniform(max(3.0, 0.5 * p["dummy_width"]), max(4.0, p["dummy_width"]))
        a = rng.uniform(0, np.pi)
        c = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        u = np.array([math.cos(a), math.sin(a)]) * length / 2
        v = np.array([-math.sin(a), math.cos(a)]) * width / 2
        poly = np.array([c - u - v, c + u - v, c + u + v, c - u + v])
        box = _box(poly, h, w)
        if box is None:
            continue
        mask = _local_mask(poly, box)
        dark = p["tissue_contrast"] * rng.uniform(0.5, 1.3)
        x0, y0, x1, y1 = box
        sub = trans[y0:y1, x0:x1]
        sub[mask] *= float(np.clip(1.0 - dark, 0.05, 1.8))


def _pad_outside_mosaic(rng, sections: list[Section], gray: np.ndarray, fluo: np.ndarray, p) -> None:
    """Black padding outside an irregular (staircase) mosaic outline: whole tiles outside a disc,
    never a tile that holds part of a section."""
    h, w = gray.shape
    tile = max(16, int(round(p["tile_size"])))
    ny, nx = -(-h // tile), -(-w // tile)
    radius = rng.uniform(0.45, 0.6) * math.hypot(h, w)
    cy, cx = (np.arange(ny) + 0.5) * tile - h / 2, (np.arange(nx) + 0.5) * tile - w / 2
    keep = np.hypot(cy[:, None], cx[None, :]) < radius
    for s in sections:
        for part in s.parts().values():
            x0, y0 = np.floor(part.polygon.min(axis=0) / tile).astype(int)
            x1, y1 = np.floor(part.polygon.max(axis=0) / tile).astype(int)
            keep[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = True
    full = np.repeat(np.repeat(keep, tile, axis=0), tile, axis=1)[:h, :w]
    gray[~full] = 0
    fluo[~full] = 0


def _through_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (uint8) encoded as JPEG at ``quality`` and decoded again (compression artefacts)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(np.clip(quality, 5, 100))])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else image


def _magnet_fluo(rng, polygon, box, mask, tex, fsig, beads, p, pattern=None) -> None:
    """Bright base over the magnet in ``fsig`` and bead impulses (scaled to their peak after the
    bead blur) in ``beads``: random ones, or ``pattern`` (``(xy image px, signal)``) when given."""
    x0, y0, x1, y1 = box
    level = p["fluo_magnet"] * (1.0 + 0.15 * rng.standard_normal())
    sub = fsig[y0:y1, x0:x1]
    sub[mask] = np.maximum(sub[mask], level * (1.0 + 0.25 * tex[mask]))
    area = float(mask.sum())
    n = int(rng.poisson(p["bead_density"] * area))
    if pattern is not None:
        if n:  # the random draws all the same: the rest of the wafer stays as without the pattern
            rng.uniform(0, 1, (3, n))
        _splat_pattern(pattern, box, mask, beads, p)
        return
    if n == 0:
        return
    px = rng.uniform(0, x1 - x0, n)
    py = rng.uniform(0, y1 - y0, n)
    bright = p["bead_brightness"] * rng.uniform(0.3, 1.0, n)
    ix, iy = px.astype(np.int64), py.astype(np.int64)
    keep = mask[iy, ix]
    s = max(p["bead_sigma"], 1e-3)
    np.add.at(beads[y0:y1, x0:x1], (iy[keep], ix[keep]), (bright[keep] * 2 * np.pi * s * s).astype(np.float32))


def _splat_pattern(pattern, box, mask, beads, p) -> None:
    """Bilinear splat of the beads ``pattern`` = ``(xy image px, signal)`` that fall inside the
    magnet ``mask`` (of ``box``), scaled like the random beads (peak ``bead_brightness x signal``
    after the bead blur)."""
    x0, y0, x1, y1 = box
    xy = np.asarray(pattern[0], dtype=np.float64).reshape(-1, 2) - (x0, y0)
    signal = np.asarray(pattern[1], dtype=np.float64)
    ix, iy = np.floor(xy[:, 0]).astype(np.int64), np.floor(xy[:, 1]).astype(np.int64)
    h, w = mask.shape
    keep = (ix >= 0) & (iy >= 0) & (ix < w) & (iy < h)
    keep[keep] = mask[iy[keep], ix[keep]]
    if not keep.any():
        return
    xy, signal = xy[keep], signal[keep]
    s = max(p["bead_sigma"], 1e-3)
    weight = p["bead_brightness"] * signal * 2 * np.pi * s * s
    x, y = xy[:, 0] - 0.5, xy[:, 1] - 0.5  # pixel-centre coordinates
    cx0, cy0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - cx0, y - cy0
    sub = beads[y0:y1, x0:x1]
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        cx, cy = cx0 + dx, cy0 + dy
        ok = (cx >= 0) & (cy >= 0) & (cx < w) & (cy < h)
        np.add.at(sub, (cy[ok], cx[ok]), (weight * wt)[ok].astype(np.float32))


def _cv_pts(polygon: np.ndarray) -> np.ndarray:
    return np.round((np.asarray(polygon) - 0.5) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def _draw_outlines(sections, trans, contrast: float) -> None:
    """Thin dark outline along every part's border (section edges scatter light)."""
    if contrast <= 0 or not sections:
        return
    canvas = np.zeros(trans.shape, dtype=np.uint8)
    polys = [_cv_pts(part.polygon) for s in sections for part in s.parts().values()]
    cv2.polylines(canvas, polys, True, 255, thickness=1, lineType=cv2.LINE_AA, shift=_SHIFT)
    _darken_where(trans, canvas, contrast)


def _darken_where(image: np.ndarray, canvas: np.ndarray, strength: float) -> None:
    """``image *= 1 - strength * canvas / 255`` only on rows where the uint8 canvas is non-zero."""
    rows = np.flatnonzero(canvas.any(axis=1))
    if rows.size:
        image[rows] *= 1.0 - (strength / 255.0) * canvas[rows].astype(np.float32)


# --------------------------------------------------------------------------------------------
# debris
# --------------------------------------------------------------------------------------------


def _debris(rng, h, w, p) -> tuple[np.ndarray, np.ndarray]:
    """Dust specks and curved fibres: ``(gray_darkening, fluo_brightening)`` float32 maps."""
    gray = np.zeros((h, w), dtype=np.uint8)
    fluo = np.zeros((h, w), dtype=np.uint8)
    mpx = h * w / 1e6
    for _ in range(int(rng.poisson(p["dust_per_mpx"] * mpx))):
        centre = (int(rng.uniform(0, w) * 16), int(rng.uniform(0, h) * 16))
        radius = int(rng.uniform(0.5, 1.0) * p["dust_radius"] * 16)
        value = int(rng.uniform(60, 255))
        cv2.circle(gray, centre, radius, value, -1, cv2.LINE_AA, _SHIFT)
        if rng.random() < 0.3:  # some dust is autofluorescent
            cv2.circle(fluo, centre, radius, int(rng.uniform(40, 200)), -1, cv2.LINE_AA, _SHIFT)
    for _ in range(int(rng.poisson(p["fibres_per_mpx"] * mpx))):
        pts = _fibre(rng, h, w, p["fibre_length"])
        value = int(rng.uniform(50, 200))
        thickness = int(rng.integers(1, 3))
        cv2.polylines(gray, [pts], False, value, thickness, cv2.LINE_AA, _SHIFT)
        if rng.random() < 0.5:
            cv2.polylines(fluo, [pts], False, int(rng.uniform(30, 150)), thickness, cv2.LINE_AA, _SHIFT)
    return _as_fraction(gray, 0.7), _as_fraction(fluo, 0.5)


def _as_fraction(canvas: np.ndarray, scale: float) -> np.ndarray:
    out = canvas.astype(np.float32)
    out *= scale / 255.0
    return out


def _fibre(rng, h, w, length: float) -> np.ndarray:
    """A curved thin line: a random walk with slowly turning direction, as OpenCV points."""
    n = 16
    step = length * rng.uniform(0.5, 1.0) / n
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.25, n))
    start = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    pts = start + np.cumsum(np.stack([np.cos(heading), np.sin(heading)], axis=1) * step, axis=0)
    return np.round(pts * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


# --------------------------------------------------------------------------------------------
# optics, noise, bit depth
# --------------------------------------------------------------------------------------------


def _optics(rng, image: np.ndarray, blur_sigma: float, noise_sigma: float) -> np.ndarray:
    """Gaussian blur then additive gaussian noise (in place where possible)."""
    if blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma)
    if noise_sigma > 0:
        noise = rng.standard_normal(image.shape, dtype=np.float32)
        noise *= noise_sigma
        image += noise
    return image


def _misregister(rng, image: np.ndarray, magnitude: float) -> np.ndarray:
    """Shift by ``magnitude`` px in a random direction (bilinear, border replicated)."""
    if magnitude <= 0:
        return image
    a = rng.uniform(0, 2 * np.pi)
    m = np.float32([[1, 0, magnitude * math.cos(a)], [0, 1, magnitude * math.sin(a)]])
    return cv2.warpAffine(
        image, m, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _to_bits(image: np.ndarray, p) -> np.ndarray:
    """Intensity fractions to uint8 (x255) or uint16 (x ``white_level_16``), clipped."""
    if int(p["bit_depth"]) == 16:
        scale, top, dtype = float(p["white_level_16"]), 65535, np.uint16
    else:
        scale, top, dtype = 255.0, 255, np.uint8
    image *= scale
    np.clip(image, 0, top, out=image)
    return np.rint(image, out=image).astype(dtype)
