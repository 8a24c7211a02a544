"""Appearance and layout styles of simulated wafers (domain randomisation).

A :class:`Style` holds *ranges* ``(low, high)``; :meth:`Style.sample` draws one concrete parameter
set (a plain JSON-ready dict) for one wafer. Intensities are fractions of the white level (0..1):
the renderer converts to 8 or 16 bit at the end. Lengths are pixels at working resolution.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from sectionseg.errors import InputError

Range = tuple[float, float]


@dataclass(frozen=True)
class Style:
    """Parameter ranges of one style; every ``(lo, hi)`` is sampled uniformly per wafer."""

    # brightfield (gray) image
    background: Range = (0.55, 0.78)  # bare wafer level
    tile_size: Range = (350.0, 800.0)  # mosaic tile side, px
    tile_gain: Range = (0.005, 0.04)  # s.d. of per-tile gain
    tile_offset: Range = (0.0, 0.015)  # s.d. of per-tile additive offset
    tile_shading: Range = (0.02, 0.10)  # vignetting depth at tile corners
    global_shading: Range = (0.0, 0.10)  # smooth wafer-wide illumination change
    tissue_contrast: Range = (0.30, 0.55)  # tissue darkening (fraction of background)
    tissue_texture: Range = (0.02, 0.08)  # smooth mottling inside tissue
    stripe_amplitude: Range = (0.01, 0.05)  # knife stripes (chatter), parallel to the long edge
    stripe_period: Range = (3.0, 10.0)  # px
    magnet_contrast: Range = (0.12, 0.28)  # magnetic part darkening (mid gray)
    magnet_texture: Range = (0.01, 0.05)
    dummy_contrast_jitter: Range = (-0.05, 0.05)  # dummy darkening = tissue's + this
    edge_contrast: Range = (0.0, 0.10)  # thin dark outline of every part
    # fluorescence image
    fluo_background: Range = (0.03, 0.10)
    fluo_tile_gain: Range = (0.0, 0.08)
    fluo_magnet: Range = (0.35, 0.70)  # magnet base brightness
    fluo_tissue: Range = (0.0, 0.04)  # tissue autofluorescence (never bright)
    bead_density: Range = (0.004, 0.02)  # beads per magnet px
    bead_sigma: Range = (0.6, 1.3)  # bead spot size, px
    bead_brightness: Range = (0.3, 1.0)
    fluo_noise: Range = (0.006, 0.02)
    # debris and optics (both images)
    dust_per_mpx: Range = (10.0, 60.0)
    dust_radius: Range = (0.6, 3.0)
    fibres_per_mpx: Range = (0.2, 2.0)
    fibre_length: Range = (40.0, 350.0)
    noise_sigma: Range = (0.004, 0.015)
    blur_sigma: Range = (0.5, 1.2)
    misregistration: Range = (0.0, 2.5)  # gray -> fluo shift, px
    bit_depths: tuple[int, ...] = (8, 16)
    white_level_16: Range = (4095.0, 65535.0)  # 16-bit images: value of intensity 1.0
    # layout: wafer-level values; sections of one wafer vary little around them
    section_size: Range = (95.0, 135.0)  # tissue long side, px
    size_jitter: float = 0.025  # relative spread of sizes within one wafer
    aspect: Range = (2.0, 2.5)  # tissue long / short side
    magnet_ratio: Range = (0.88, 0.97)  # magnet short side / tissue short side
    taper: Range = (-0.02, 0.13)
    density: Range = (20.0, 30.0)  # sections per megapixel of the image
    touching_fraction: Range = (0.1, 0.45)
    hole: Range = (0.0, 0.4)  # empty middle of the ring of sections
    ring_probability: float = 0.6  # else sections spread over the whole image
    dummy_probability: Range = (0.0, 0.8)
    dummy_gap: Range = (0.0, 5.0)
    dummy_width: Range = (6.0, 20.0)
    # Real-wafer variation (what the real-look styles add). Off (a zero-width range draws nothing) in the
    # original styles, so their wafers stay bit-identical for a given seed.
    section_brightness: Range = (0.0, 0.0)  # s.d. of a per-section log factor on both parts' darkness
    part_balance: Range = (0.0, 0.0)  # s.d. of a per-section log factor on tissue vs magnet
    tissue_blobs: Range = (0.0, 0.0)  # mean number of dark blobs (embedded sample) per tissue
    blob_contrast: Range = (0.0, 0.0)  # extra darkening inside a blob
    fold_probability: Range = (0.0, 0.0)  # chance that a tissue part has a fold or a hole
    edge_band: Range = (0.0, 0.0)  # lightening of a band along the tissue/magnet edge
    edge_band_width: Range = (3.0, 3.0)  # px
    gray_speckles: Range = (0.0, 0.0)  # bead speckles per magnet px in the gray image
    speckle_contrast: Range = (0.0, 0.0)  # their amplitude (bright or dark, by dot)
    loose_dummies_per_mpx: Range = (0.0, 0.0)  # thin strips anywhere, not part of a section
    seam_contrast: Range = (0.0, 0.0)  # dark/bright lines along the mosaic tile seams
    padding_probability: Range = (0.0, 0.0)  # >= 0.5: black padding outside a staircase outline
    jpeg_quality: Range = (0.0, 0.0)  # > 0: the gray image is saved through JPEG at this quality
    name: str = field(default="custom", compare=False)

    def sample(self, rng: np.random.Generator) -> dict:
        """One concrete parameter set: ranges replaced by floats, ``bit_depth`` an int, ``region``
        ``"ring"`` or ``"full"``; also the per-section ranges passed to
        :func:`sectionseg.simulation.layout.random_layout`. Fields are drawn in declaration order."""
        out: dict = {"style": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "size_jitter", "ring_probability"):
                continue
            if f.name == "bit_depths":
                out["bit_depth"] = int(rng.choice(value))
            else:
                lo, hi = value
                out[f.name] = float(lo if hi <= lo else rng.uniform(lo, hi))
        out["region"] = "ring" if rng.random() < self.ring_probability else "full"
        j = self.size_jitter
        out["size_range"] = [out["section_size"] * (1 - j), out["section_size"] * (1 + j)]
        out["aspect_range"] = [out["aspect"] - 0.08, out["aspect"] + 0.08]
        out["magnet_ratio_range"] = [out["magnet_ratio"] - 0.02, out["magnet_ratio"] + 0.02]
        out["taper_range"] = [out["taper"] - 0.02, out["taper"] + 0.02]
        return out

    def replace(self, **changes) -> Style:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


_DEFAULT = Style(name="default")

STYLES: dict[str, Style] = {
    "default": _DEFAULT,
    "low-contrast": _DEFAULT.replace(
        name="low-contrast",
        tissue_contrast=(0.08, 0.18),
        magnet_contrast=(0.04, 0.10),
        stripe_amplitude=(0.005, 0.02),
        tissue_texture=(0.01, 0.03),
        fluo_magnet=(0.12, 0.3),
        fluo_background=(0.06, 0.14),
        bead_brightness=(0.1, 0.4),
        noise_sigma=(0.01, 0.025),
        tile_gain=(0.02, 0.06),
        global_shading=(0.05, 0.15),
        edge_contrast=(0.0, 0.04),
    ),
    "large-sections": _DEFAULT.replace(
        name="large-sections",
        section_size=(200.0, 270.0),
        density=(5.0, 7.5),
        stripe_period=(5.0, 16.0),
        dummy_width=(12.0, 40.0),
        dummy_gap=(0.0, 10.0),
    ),
    "crowded": _DEFAULT.replace(
        name="crowded", density=(26.0, 32.0), touching_fraction=(0.5, 0.7), hole=(0.0, 0.2), ring_probability=0.5
    ),
    "sparse": _DEFAULT.replace(name="sparse", density=(4.0, 10.0), touching_fraction=(0.0, 0.1), ring_probability=0.0),
    # Styles the bundled model was not trained on (adaptation benchmarks): squat sections, sections
    # about twice the default size.
    "squat": _DEFAULT.replace(name="squat", aspect=(1.3, 1.6), magnet_ratio=(0.7, 0.85)),
    "huge": _DEFAULT.replace(
        name="huge",
        section_size=(230.0, 280.0),
        density=(5.0, 6.5),
        stripe_period=(6.0, 16.0),
        dummy_width=(12.0, 40.0),
        dummy_gap=(0.0, 10.0),
    ),
}

# Real-look domain randomisation (what real MagC overviews show and the styles above do not): sizes
# 40-95 px at the bundled model's scale, near-square to long sections, either part the darker one,
# per-section brightness, embedded-sample blobs, folds and holes, a light band along the shared edge,
# bead speckles in gray, loose dummy strips, strong vignetting, seams, black padding. The bundled
# model trains on "realistic"; the "held-*" families are never trained on (generalisation tests).
# Every realistic wafer gives the two halves a way to be told apart in gray, as real ones do: the
# tissue always carries some of the sample (blobs, knife striations); the magnet may or may not show
# bead speckles, and either part may be the darker one.
_REAL = _DEFAULT.replace(
    name="realistic",
    background=(0.45, 0.85),
    tile_gain=(0.01, 0.08),
    tile_shading=(0.05, 0.35),
    global_shading=(0.0, 0.2),
    tissue_contrast=(0.08, 0.6),
    magnet_contrast=(0.05, 0.55),
    tissue_texture=(0.01, 0.08),
    stripe_amplitude=(0.01, 0.06),
    magnet_texture=(0.0, 0.05),
    fluo_magnet=(0.1, 0.7),
    bead_brightness=(0.1, 1.0),
    noise_sigma=(0.004, 0.03),
    section_size=(80.0, 190.0),
    aspect=(1.5, 3.0),
    magnet_ratio=(0.6, 1.25),
    taper=(-0.05, 0.15),
    density=(6.0, 16.0),
    touching_fraction=(0.1, 0.6),
    dummy_probability=(0.0, 0.8),
    dummy_width=(6.0, 30.0),
    section_brightness=(0.1, 0.5),
    part_balance=(0.0, 0.15),
    tissue_blobs=(1.0, 6.0),
    blob_contrast=(0.08, 0.35),
    fold_probability=(0.0, 0.2),
    edge_band=(0.0, 0.25),
    edge_band_width=(1.5, 5.0),
    gray_speckles=(0.0, 0.012),
    speckle_contrast=(0.05, 0.4),
    loose_dummies_per_mpx=(0.0, 15.0),
    seam_contrast=(0.0, 0.06),
    padding_probability=(0.0, 1.0),
)

STYLES.update(
    {
        "realistic": _REAL,
        # near-square sections whose parts are alike in gray (as in the EPFL brief's picture)
        "real-square": _REAL.replace(
            name="real-square", aspect=(1.6, 2.2), magnet_ratio=(0.9, 1.2), part_balance=(0.0, 0.05)
        ),
        # the magnetic part clearly darker than the tissue
        "real-dark-magnet": _REAL.replace(
            name="real-dark-magnet", tissue_contrast=(0.08, 0.2), magnet_contrast=(0.3, 0.55)
        ),
        # every real-look variation wider, up to (never into) the ranges of the held-out families below:
        # more shading, seams, debris, loose dummies, speckles, blur and noise, fainter and stronger
        # parts, more spread between sections and between the two parts of a section
        "real-wide": _REAL.replace(
            name="real-wide",
            background=(0.35, 0.9),
            tile_gain=(0.01, 0.075),
            tile_shading=(0.05, 0.38),
            global_shading=(0.0, 0.25),
            tissue_contrast=(0.04, 0.65),
            magnet_contrast=(0.03, 0.6),
            stripe_amplitude=(0.0, 0.08),
            noise_sigma=(0.004, 0.035),
            blur_sigma=(0.5, 1.8),
            misregistration=(0.0, 4.0),
            aspect=(1.4, 3.2),
            magnet_ratio=(0.55, 1.3),
            section_brightness=(0.1, 0.6),
            part_balance=(0.0, 0.25),
            edge_band=(0.0, 0.35),
            dust_per_mpx=(10.0, 120.0),
            fibres_per_mpx=(0.2, 4.0),
            loose_dummies_per_mpx=(0.0, 25.0),
            gray_speckles=(0.0, 0.016),
            speckle_contrast=(0.05, 0.5),
            seam_contrast=(0.0, 0.075),
        ),
        # real-wide taken to the very edges of the held-out ranges: parts as light as the bare wafer or a
        # little lighter (never as light as held-bright's), mosaic shading, gains and seams up to
        # held-mosaic-jpeg's, debris, loose dummies and speckles up to held-debris's
        "real-wider": _REAL.replace(
            name="real-wider",
            background=(0.35, 0.9),
            tile_gain=(0.01, 0.08),
            tile_shading=(0.05, 0.4),
            global_shading=(0.0, 0.25),
            tissue_contrast=(-0.08, 0.65),
            magnet_contrast=(-0.04, 0.6),
            blob_contrast=(0.04, 0.35),
            stripe_amplitude=(0.0, 0.08),
            noise_sigma=(0.004, 0.035),
            blur_sigma=(0.5, 1.8),
            misregistration=(0.0, 4.0),
            aspect=(1.4, 3.2),
            magnet_ratio=(0.55, 1.3),
            section_brightness=(0.1, 0.6),
            part_balance=(0.0, 0.3),
            edge_band=(0.0, 0.35),
            dust_per_mpx=(10.0, 150.0),
            fibres_per_mpx=(0.2, 5.0),
            loose_dummies_per_mpx=(0.0, 30.0),
            gray_speckles=(0.0, 0.02),
            speckle_contrast=(0.05, 0.5),
            seam_contrast=(0.0, 0.08),
        ),
        # held-out families: never in the bundled model's training data
        "held-bright": _REAL.replace(
            name="held-bright", tissue_contrast=(-0.35, -0.1), magnet_contrast=(-0.3, -0.05), blob_contrast=(0.0, 0.1)
        ),
        "held-debris": _REAL.replace(
            name="held-debris",
            dust_per_mpx=(150.0, 400.0),
            fibres_per_mpx=(5.0, 15.0),
            loose_dummies_per_mpx=(30.0, 60.0),
            gray_speckles=(0.02, 0.04),
            speckle_contrast=(0.3, 0.6),
        ),
        "held-mosaic-jpeg": _REAL.replace(
            name="held-mosaic-jpeg",
            tile_shading=(0.4, 0.6),
            tile_gain=(0.08, 0.15),
            seam_contrast=(0.08, 0.15),
            padding_probability=(1.0, 1.0),
            jpeg_quality=(20.0, 40.0),
            bit_depths=(8,),
        ),
    }
)

# every held-out variation at once (sections lighter than the wafer, heavy debris, a coarse JPEG
# mosaic): the "alien" wafer of the adaptation benchmark, on which the bundled model fails
STYLES["held-all"] = STYLES["held-mosaic-jpeg"].replace(
    name="held-all",
    **{
        k: getattr(STYLES["held-debris"], k)
        for k in ("dust_per_mpx", "fibres_per_mpx", "loose_dummies_per_mpx", "gray_speckles", "speckle_contrast")
    },
    **{k: getattr(STYLES["held-bright"], k) for k in ("tissue_contrast", "magnet_contrast", "blob_contrast")},
)

#: styles never shown to the bundled model in training (see docs/MODEL_CARD.md)
HELD_OUT_STYLES = (
    "held-bright",
    "held-debris",
    "held-mosaic-jpeg",
    "held-all",
    "low-contrast",
    "squat",
    "huge",
)


def style_names() -> list[str]:
    """Names accepted by :func:`get_style`."""
    return list(STYLES)


def get_style(name: str | Style) -> Style:
    """The named style (a :class:`Style` is returned unchanged); InputError for unknown names."""
    if isinstance(name, Style):
        return name
    try:
        return STYLES[name]
    except KeyError:
        raise InputError(f"unknown style {name!r}; valid styles: {', '.join(STYLES)}") from None
