"""Fluorescent-bead images of serial sections: the stand-in for MagC's section order retrieval data.

A 3-D block of magnetic resin holds spherical beads (uniform positions, diameters, brightness factors
and channels drawn from ranges). The block is cut into ``n_sections`` slabs of ``thickness_um``
along z. A section's bead image shows every bead that intersects its slab, with a signal
proportional to the bead volume inside the slab times the bead's brightness, blurred by the
microscope (Gaussian), on an autofluorescence background with a smooth gradient, shot and read noise
and a random exposure (gain) per section. The camera field of view is centred on the section with a
random shift, turned by a random angle and sometimes mirrored (the section landed upside down).
Some beads are bleached (missing), some dust spots added (extra beads). Damaged sections are torn
(part of the field shows bare wafer: low background, no beads), dusty (large bright blobs) or out of
focus; torn sections lose 20-50 % of the field; missing sections were lost while cutting and have no image.

Frames: block/section coordinates in micrometres (x, y in the cutting face, z along the cutting
axis); image pixels as everywhere in sectionseg (origin at the top-left corner of the top-left
pixel, y down). The image of section coordinates ``p`` (um) is
``centre_px + M^-1 (p - section_centre - shift) / pixel_um`` with ``M = R(angle) F`` (``F`` mirrors
x when flipped; angle counter-clockwise on screen).

:func:`simulate_bead_sections` returns the images and ground truth; :func:`write_bead_folder`
writes MagC's layout (``section_NNNN/section_NNNN_channel_488_tileId_00-00-mag.tif``, 16-bit) or a
plain folder (``section_NNNN.tif``) plus ``ground_truth.json``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sectionseg.errors import InputError

CHANNEL_NAMES = ("488", "546")
DAMAGE_KINDS = ("torn", "dust", "defocus")


@dataclass(frozen=True)
class BeadSettings:
    """Parameters of a simulated bead series (lengths in um unless named ``_px``).

    ``density``: beads per 1000 um^3 of resin; ``diameter_um``, ``brightness``: ranges drawn per
    bead; ``psf_um``: Gaussian sigma of the microscope blur; ``noise``: read-noise sigma as a fraction
    of a typical bead's peak (a 1 um bead cut through its middle, brightness 1, gain 1); ``photons``:
    photons of that peak (shot noise); ``gain``: exposure range per section; ``background``:
    autofluorescence level as a fraction of the typical peak; ``bleach``: share of beads missing in
    any one section; ``dust``: mean number of bead-like extra spots per image; ``deform``: s.d. of a
    per-section anisotropic scale (section compression); ``shift_um``: largest field shift;
    ``flip_probability``: share of mirrored sections; ``missing``, ``damaged``: shares of lost and
    damaged sections (at least one when the share is > 0).
    """

    n_sections: int = 40
    thickness_um: float = 0.05
    pixel_um: float = 0.5
    image_size_px: tuple[int, int] = (256, 256)  # (width, height)
    density: float = 8.0
    diameter_um: tuple[float, float] = (0.8, 1.2)
    brightness: tuple[float, float] = (0.5, 1.5)
    channels: int = 1
    psf_um: float = 0.35
    noise: float = 0.05
    photons: float = 2000.0
    gain: tuple[float, float] = (0.6, 1.6)
    background: float = 0.3
    bleach: float = 0.02
    dust: float = 3.0
    deform: float = 0.003
    shift_um: float = 10.0
    flip_probability: float = 0.3
    missing: float = 0.0
    damaged: float = 0.0

    def checked(self) -> BeadSettings:
        """Self, or InputError naming the first out-of-range parameter."""
        positive = ("n_sections", "thickness_um", "pixel_um", "density", "psf_um", "photons")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InputError(f"bead simulation: {name} must be > 0, got {getattr(self, name)}")
        if self.channels not in (1, 2):
            raise InputError(f"bead simulation: channels must be 1 or 2, got {self.channels}")
        for name in ("missing", "damaged", "flip_probability", "bleach"):
            if not 0 <= getattr(self, name) < 1:
                raise InputError(f"bead simulation: {name} must be in [0, 1), got {getattr(self, name)}")
        if min(self.image_size_px) < 32:
            raise InputError(f"bead simulation: image_size_px must be >= 32, got {self.image_size_px}")
        return self


@dataclass
class BeadSeries:
    """A simulated series: ``images[section_id]`` = list of 2-D uint16 images (one per channel,
    names ``channels``) and the ground truth: ``serial_order`` (the ids present, in cutting order),
    ``missing`` (cut indices lost, with no id), ``damaged`` (id -> damage kind), ``flipped`` (ids),
    ``cut_index`` (id -> index in the cut), per-section ``angle``/``shift_um`` and ``settings``."""

    images: dict[int, list[np.ndarray]]
    channels: list[str]
    serial_order: list[int]
    missing: list[int]
    damaged: dict[int, str]
    flipped: list[int]
    cut_index: dict[int, int]
    poses: dict[int, dict] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    block: dict = field(default_factory=dict, repr=False)  # bead arrays x, y, z, r, b, c (um)
    block_centre_um: float = 0.0

    def section_face(self, section_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The beads of a section in its own cutting face: ``(xy_um (N, 2), signal (N,))`` with
        ``xy`` relative to the block's centre (as the section lies in the block, before any camera
        pose, unmirrored) and ``signal`` as in the bead images (1 = a 1 um bead of brightness 1 cut
        through its middle); no bleaching, dust or damage. The same face for every channel."""
        t = float(self.settings["thickness_um"])
        cut = self.cut_index[section_id]
        z0, z1 = cut * t, (cut + 1) * t
        b = self.block
        if not b:
            raise ValueError("this bead series keeps no block")
        rmax = float(np.max(b["r"])) if len(b["r"]) else 0.0
        lo, hi = np.searchsorted(b["z"], [z0 - rmax, z1 + rmax])
        vol = _slab_volume(b["z"][lo:hi], b["r"][lo:hi], z0, z1)
        inside = vol > 0
        xy = np.c_[b["x"][lo:hi][inside], b["y"][lo:hi][inside]] - self.block_centre_um
        return xy, vol[inside] / (math.pi * 0.25 * t) * b["b"][lo:hi][inside]

    def ground_truth(self) -> dict:
        """JSON-ready ground truth (what ``ground_truth.json`` holds)."""
        return {
            "serial_order": self.serial_order,
            "missing_cut_indices": self.missing,
            "damaged": {str(k): v for k, v in sorted(self.damaged.items())},
            "flipped": sorted(self.flipped),
            "channels": self.channels,
            "cut_index": {str(k): v for k, v in sorted(self.cut_index.items())},
            "poses": {str(k): v for k, v in sorted(self.poses.items())},
            "settings": self.settings,
        }


def _block(rng: np.random.Generator, s: BeadSettings, width_um: float, depth_um: float) -> dict:
    """Beads of a square block ``width_um`` wide and ``depth_um`` deep (plus a bead's margin in z)."""
    zmax = depth_um + s.diameter_um[1]
    zmin = -s.diameter_um[1]
    n = rng.poisson(s.density / 1000.0 * width_um * width_um * (zmax - zmin))
    beads = {
        "x": rng.uniform(0, width_um, n),
        "y": rng.uniform(0, width_um, n),
        "z": rng.uniform(zmin, zmax, n),
        "r": rng.uniform(*s.diameter_um, n) / 2,
        "b": rng.uniform(*s.brightness, n),
        "c": rng.integers(0, s.channels, n),
    }
    order = np.argsort(beads["z"])
    return {k: v[order] for k, v in beads.items()}


def _slab_volume(zc: np.ndarray, r: np.ndarray, z0: float, z1: float) -> np.ndarray:
    """Volume (um^3) of spheres (centre height ``zc``, radius ``r``) inside the slab ``[z0, z1]``."""
    a = np.clip(z0 - zc, -r, r)
    b = np.clip(z1 - zc, -r, r)
    return np.pi * ((r * r * b - b**3 / 3) - (r * r * a - a**3 / 3))


def _pose(rng: np.random.Generator, s: BeadSettings) -> dict:
    angle = float(rng.uniform(0, 360))
    flipped = bool(rng.random() < s.flip_probability)
    shift = rng.uniform(-s.shift_um, s.shift_um, 2)
    scale = 1.0 + rng.normal(0, s.deform, 2) if s.deform > 0 else np.ones(2)
    return {
        "angle": angle,
        "flipped": flipped,
        "shift_um": [float(shift[0]), float(shift[1])],
        "scale": [float(scale[0]), float(scale[1])],
    }


def _to_image(pose: dict, xy_um: np.ndarray, centre_um: float, s: BeadSettings) -> np.ndarray:
    """Image px of section points ``xy_um`` ``(N, 2)`` for a section of ``pose``."""
    w, h = s.image_size_px
    t = math.radians(pose["angle"])
    rot_inv = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    d = (xy_um - centre_um - np.asarray(pose["shift_um"])) * np.asarray(pose["scale"])
    p = d @ rot_inv.T / s.pixel_um
    if pose["flipped"]:
        p[:, 0] = -p[:, 0]
    return p + np.array([w / 2.0, h / 2.0])


def _splat(shape: tuple[int, int], xy: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Bilinear splat of point weights at sub-pixel positions (keeps each point's centroid)."""
    h, w = shape
    img = np.zeros((h + 2, w + 2), np.float64)
    x, y = xy[:, 0] - 0.5, xy[:, 1] - 0.5  # pixel-centre coordinates
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        cx, cy = np.clip(x0 + dx + 1, 0, w + 1), np.clip(y0 + dy + 1, 0, h + 1)
        np.add.at(img, (cy, cx), weight * wt)
    return img[1:-1, 1:-1].astype(np.float32)


def _render(
    rng: np.random.Generator, s: BeadSettings, xy_px: np.ndarray, signal: np.ndarray, damage: str | None
) -> np.ndarray:
    """One channel's image (float, units of the typical bead peak at gain 1)."""
    w, h = s.image_size_px
    sigma = math.hypot(s.psf_um, 0.25 * float(np.mean(s.diameter_um))) / s.pixel_um
    keep = rng.random(len(signal)) >= s.bleach
    xy_px, signal = xy_px[keep], signal[keep]
    n_dust = rng.poisson(s.dust)
    if n_dust:
        xy_px = np.vstack([xy_px, rng.uniform(0, 1, (n_dust, 2)) * [w, h]])
        signal = np.r_[signal, rng.uniform(*s.brightness, n_dust)]
    peak = 1.0 / (2 * math.pi * sigma * sigma)  # a unit impulse's peak after the blur
    img = _splat((h, w), xy_px, signal / peak)
    if damage == "defocus":
        sigma *= float(rng.uniform(2.0, 3.0))
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.normal(0, 0.3, 2)
    bg = s.background * (1 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5))
    if damage == "torn":  # beyond a random line: bare wafer, no resin, no beads
        a = rng.uniform(0, 2 * math.pi)
        nx, ny = math.cos(a), math.sin(a)
        off = rng.uniform(0.0, 0.3) * min(w, h)  # 20-50 % of the field torn off
        beyond = (xx - w / 2) * nx + (yy - h / 2) * ny > off
        img[beyond] = 0
        bg = np.where(beyond, 0.25 * bg, bg)
    if damage == "dust":
        dust = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(3, 8))):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, 12)
            dust += float(rng.uniform(1, 4)) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        img += dust
    return img + bg.astype(np.float32)


def _to_counts(rng: np.random.Generator, s: BeadSettings, img: np.ndarray, gain: float) -> np.ndarray:
    """Camera counts (uint16): shot noise, read noise, exposure ``gain``; typical peak = 10000 x gain."""
    full = 10000.0
    photons = rng.poisson(np.clip(img, 0, None) * s.photons * gain).astype(np.float32) / s.photons
    counts = (photons + rng.normal(0, s.noise, img.shape).astype(np.float32)) * full + 500.0
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def _pick(rng: np.random.Generator, n: int, share: float, exclude=()) -> list[int]:
    """``round(share * n)`` (at least 1 when share > 0) distinct indices of ``range(n)``."""
    pool = np.setdiff1d(np.arange(n), np.asarray(list(exclude), dtype=int))
    k = 0 if share <= 0 else max(1, int(round(share * n)))
    return sorted(int(i) for i in rng.choice(pool, size=min(k, len(pool)), replace=False))


def simulate_bead_sections(
    rng: np.random.Generator,
    settings: BeadSettings = BeadSettings(),
    *,
    ids: list[int] | None = None,
    block_um: float | None = None,
) -> BeadSeries:
    """Simulate the bead images of a series cut from one block.

    ``settings.n_sections`` sections are cut; ``settings.missing`` of them are lost. The present
    sections get the section ids ``ids`` (default ``0..present-1``) in a random order, as sections
    land on a wafer in random places (``len(ids)`` must equal the number of present sections; pass
    ``n_sections = len(ids) + lost`` or ``missing = 0``). ``block_um``: the block's cutting face is
    at least this wide (um; default: just what the bead images' fields need), e.g. to draw whole
    sections from it (:meth:`BeadSeries.section_face`). Returns a :class:`BeadSeries`.
    """
    s = settings.checked()
    w_px, h_px = s.image_size_px
    half_diag = 0.5 * math.hypot(w_px, h_px) * s.pixel_um * (1 + 4 * s.deform)
    width_um = 2 * (half_diag + s.shift_um + 2 * s.diameter_um[1])
    if block_um is not None and block_um > width_um:
        width_um = float(block_um)
    centre_um = width_um / 2
    depth = s.n_sections * s.thickness_um
    beads = _block(rng, s, width_um, depth)
    lost = _pick(rng, s.n_sections, s.missing)
    present = [i for i in range(s.n_sections) if i not in set(lost)]
    if ids is None:
        ids = list(range(len(present)))
    if len(ids) != len(present):
        raise InputError(f"bead simulation: {len(ids)} section ids for {len(present)} present sections")
    perm = rng.permutation(len(present))
    id_of_cut = {present[k]: int(ids[perm[k]]) for k in range(len(present))}
    damaged_cut = _pick(rng, len(present), s.damaged)
    damaged = {id_of_cut[present[k]]: DAMAGE_KINDS[int(rng.integers(len(DAMAGE_KINDS)))] for k in damaged_cut}
    rmax = s.diameter_um[1] / 2
    images, poses = {}, {}
    for cut in present:
        sid = id_of_cut[cut]
        z0, z1 = cut * s.thickness_um, (cut + 1) * s.thickness_um
        lo, hi = np.searchsorted(beads["z"], [z0 - rmax, z1 + rmax])
        sel = {k: v[lo:hi] for k, v in beads.items()}
        vol = _slab_volume(sel["z"], sel["r"], z0, z1)
        inside = vol > 0
        sel = {k: v[inside] for k, v in sel.items()}
        signal = vol[inside] / (math.pi * 0.25 * s.thickness_um) * sel["b"]  # 1 um bead, centre cut = 1
        pose = _pose(rng, s)
        xy = _to_image(pose, np.c_[sel["x"], sel["y"]], centre_um, s)
        gain = float(rng.uniform(*s.gain))
        chans = []
        for c in range(s.channels):
            m = sel["c"] == c
            chans.append(_to_counts(rng, s, _render(rng, s, xy[m], signal[m], damaged.get(sid)), gain))
        images[sid] = chans
        poses[sid] = {**pose, "gain": gain}
    return BeadSeries(
        images=images,
        channels=list(CHANNEL_NAMES[: s.channels]),
        serial_order=[id_of_cut[c] for c in present],
        missing=lost,
        damaged=damaged,
        flipped=[sid for sid, p in poses.items() if p["flipped"]],
        cut_index={sid: cut for cut, sid in id_of_cut.items()},
        poses=poses,
        settings=_settings_dict(s),
        block=beads,
        block_centre_um=centre_um,
    )


def _settings_dict(s: BeadSettings) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()}


def magc_tile_name(section_id: int, channel: str, tile: str = "00-00") -> str:
    """MagC's bead tile path relative to the series folder."""
    return f"section_{section_id:04d}/section_{section_id:04d}_channel_{channel}_tileId_{tile}-mag.tif"


def write_bead_folder(out_dir: str | os.PathLike, series: BeadSeries, *, layout: str = "magc") -> Path:
    """Write ``series`` into ``out_dir`` (created if needed) and return it.

    ``layout="magc"``: MagC's ``section_NNNN/section_NNNN_channel_CCC_tileId_00-00-mag.tif`` per
    channel; ``layout="plain"``: one ``section_NNNN.tif`` per section (first channel only). Both
    get ``ground_truth.json`` (:meth:`BeadSeries.ground_truth`). Images are 16-bit TIFF.
    """
    from sectionseg.io.atomic import write_text
    from sectionseg.io.images import write_image

    if layout not in ("magc", "plain"):
        raise InputError(f"unknown bead folder layout {layout!r}; choose magc or plain")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for sid, chans in sorted(series.images.items()):
        if layout == "plain":
            write_image(out / f"section_{sid:04d}.tif", chans[0])
            continue
        for name, img in zip(series.channels, chans):
            write_image(out / magc_tile_name(sid, name), img)
    write_text(out / "ground_truth.json", json.dumps(series.ground_truth(), indent=1) + "\n")
    return out
