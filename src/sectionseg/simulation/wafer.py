"""Simulate one wafer and write its images and ground truth into a folder.

Output folder (see docs/ARCHITECTURE.md): ``gray.tif``, ``fluo.tif``, ``rgb.tif`` (the model input
``(gray, gray, fluo)`` uint8), ``sections.labelme.json`` (full-fidelity ground truth, dummies
included), ``sections.magc``, ``sections.coco.json``, ``magc/source_sections_{tissue,mag}.txt``
and ``simulation.json`` (seed, style, sampled parameters, size, counts, software version).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from sectionseg.errors import InputError
from sectionseg.geometry.section import sections_bounds
from sectionseg.simulation.layout import add_dummies, layout_from_file, random_layout
from sectionseg.simulation.render import render_wafer
from sectionseg.simulation.styles import Style, get_style

DEFAULT_SIZE = 5000  # px: a real wafer overview at working resolution is about 5000 x 5000
#: most sections a random layout is asked for per megapixel of image (the densest styles place ~30;
#: beyond ~100 the layout spends minutes failing to place them)
MAX_DENSITY = 100.0
MAX_SIDE = 100000  # px
#: peak memory of a simulation per image pixel, bytes (measured ~30, with room for the styles' layers)
BYTES_PER_PIXEL = 80


def max_sections(width: int, height: int) -> int:
    """The most sections a random layout of a ``width x height`` px wafer is asked for."""
    return max(10, int(MAX_DENSITY * width * height / 1e6))


def check_request(
    width: int | None,
    height: int | None,
    n_sections: int | None = None,
    density: float | None = None,
    layout: bool = False,
) -> None:
    """InputError for sizes, counts and densities a simulation cannot honour (before any work):
    see :data:`MAX_DENSITY`; the memory estimate is :func:`memory_needed`."""
    for name, value in (("width", width), ("height", height)):
        _check_positive(name, value, 64)
        if value is not None and value > MAX_SIDE:
            raise InputError(f"{name} must be at most {MAX_SIDE} px, got {value}")
    _check_positive("number of sections", n_sections, 0)
    _check_positive("density", density, 0)
    if layout:
        return
    w, h = width or DEFAULT_SIZE, height or DEFAULT_SIZE
    if n_sections is not None and n_sections > max_sections(w, h):
        raise InputError(
            f"{n_sections} sections do not fit on a {w}x{h} px wafer (at most "
            f"{max_sections(w, h)}: {MAX_DENSITY:g} per megapixel)"
        )
    if density is not None and density > MAX_DENSITY:
        raise InputError(f"density must be at most {MAX_DENSITY:g} sections per megapixel, got {density:g}")


def memory_needed(width: int | None, height: int | None) -> float:
    """Bytes a simulation of that size needs at its peak (an estimate)."""
    return float(width or DEFAULT_SIZE) * float(height or DEFAULT_SIZE) * BYTES_PER_PIXEL


def _check_positive(name: str, value, minimum: float = 1) -> None:
    if value is not None and (not math.isfinite(float(value)) or value < minimum):
        raise InputError(f"{name} must be >= {minimum}, got {value}")


def simulate_wafer(
    out_dir: str | os.PathLike,
    *,
    seed: int,
    width: int | None = None,
    height: int | None = None,
    n_sections: int | None = None,
    density: float | None = None,
    style: str | Style = "default",
    layout_path: str | os.PathLike | None = None,
    layout_scale: float = 1.0,
    dummies: bool = True,
    margin: float = 20.0,
    beads=None,
    overview_beads_um: float | None = None,
) -> dict:
    """Simulate a wafer and write it into ``out_dir`` (created if needed); return the summary dict
    that is also saved as ``simulation.json``.

    - ``seed``: everything (layout, appearance, noise) follows from it: same seed, same files.
    - ``width``/``height``: image size in px (default 5000, or the layout's extent + ``margin``
      with ``layout_path``).
    - ``n_sections`` or ``density`` (sections per megapixel) override the style's density.
    - ``layout_path``: take the sections from an annotation file (any format
      :func:`sectionseg.formats.read_sections` reads), coordinates times ``layout_scale``; dummies
      are then added at random unless ``dummies`` is False.
    - ``beads``: a :class:`sectionseg.simulation.beads.BeadSettings` to also write the sections' bead
      images into ``out_dir/beads`` (MagC's layout, section ids = the wafer's section indices, their
      serial order in ``beads/ground_truth.json``); its ``n_sections`` is replaced by the wafer's
      count plus the lost sections. The bead images draw from their own random stream: the wafer's
      files are the same with or without them.
    - ``overview_beads_um``: with ``beads``, the fluorescence image's magnets show their section's
      own beads (the face of the same simulated block, :meth:`BeadSeries.section_face`) instead of
      random ones, drawn at this many um per wafer px, centred on the magnet, in the magnet's frame
      (:func:`sectionseg.geometry.orientation.magnet_frame`; mirrored for a section whose bead
      images are mirrored): the overview then tells the serial order as the bead images do
      (:mod:`sectionseg.serial.overview`). Only the magnets' beads change (the block is made wide
      enough for the largest magnet, so the bead images differ from those without this option).
    """
    from sectionseg import __version__
    from sectionseg.formats import write_sections
    from sectionseg.io.atomic import write_text
    from sectionseg.io.images import compose_rgb, write_image
    from sectionseg.io.jsontext import dumps as strict_json
    from sectionseg.io.memory import check_memory
    from sectionseg.io.outset import output_set

    check_request(width, height, n_sections, density, layout=layout_path is not None)
    sty = get_style(style)
    rng = np.random.default_rng(seed)
    params = sty.sample(rng)
    if layout_path is not None:
        sections, width, height = _file_layout(rng, layout_path, layout_scale, params, width, height, margin, dummies)
        check_request(width, height, layout=True)
    else:
        width, height = width or DEFAULT_SIZE, height or DEFAULT_SIZE
        sections = random_layout(
            rng,
            width,
            height,
            n_sections=n_sections,
            density=params["density"] if density is None else density,
            size_range=params["size_range"],
            aspect_range=params["aspect_range"],
            magnet_ratio_range=params["magnet_ratio_range"],
            trapezoid=params["taper_range"],
            dummy_probability=params["dummy_probability"] if dummies else 0.0,
            dummy_gap_range=(0.0, params["dummy_gap"]),
            dummy_width_range=(6.0, params["dummy_width"]),
            touching_fraction=params["touching_fraction"],
            region=params["region"],
            hole=params["hole"],
            margin=margin,
        )
    check_memory(memory_needed(width, height), f"simulating a {width}x{height} px wafer")
    series, patterns = None, None
    if overview_beads_um is not None:
        if beads is None:
            raise InputError("overview beads need bead settings (simulate --beads)")
        if not (math.isfinite(overview_beads_um) and overview_beads_um > 0):
            raise InputError(f"overview bead pixel size must be > 0 um, got {overview_beads_um}")
        series, patterns = _overview_patterns(sections, seed, beads, float(overview_beads_um))
    gray, fluo = render_wafer(sections, width, height, params, rng, magnet_beads=patterns)

    with output_set(out_dir, "simulate") as out:  # the whole folder or nothing
        write_image(out / "gray.tif", gray)
        write_image(out / "fluo.tif", fluo)
        composed = compose_rgb(gray, fluo)
        write_image(out / "rgb.tif", composed.rgb)
        size = (int(width), int(height))
        write_sections(out / "sections.labelme.json", sections, "labelme", image_path="rgb.tif", image_size=size)
        write_sections(out / "sections.coco.json", sections, "coco", image_path="rgb.tif", image_size=size)
        write_sections(out / "sections.magc", sections, "magc")
        write_sections(out / "magc", sections, "magc-pair")

        summary = {
            "software": f"sectionseg {__version__}",
            "seed": int(seed),
            "style": sty.name,
            "width": int(width),
            "height": int(height),
            "layout": None if layout_path is None else {"path": str(layout_path), "scale": float(layout_scale)},
            "n_sections": len(sections),
            "n_dummies": sum(s.dummy is not None for s in sections),
            "bit_depth": int(params["bit_depth"]),
            "params": params,
            "normalisation": composed.record(),
            "files": [
                "gray.tif",
                "fluo.tif",
                "rgb.tif",
                "sections.labelme.json",
                "sections.magc",
                "sections.coco.json",
                "magc/",
                "simulation.json",
            ],
        }
        if beads is not None:
            summary["beads"] = _write_beads(out / "beads", seed, len(sections), beads, series)
            summary["files"].append("beads/")
            summary["beads"]["overview_pixel_um"] = None if overview_beads_um is None else float(overview_beads_um)
        write_text(out / "simulation.json", strict_json(summary, indent=2) + "\n")
    return summary


def _bead_series(seed: int, n: int, settings, block_um: float | None = None):
    """The bead series of the wafer's ``n`` sections (ids 0..n-1), its own random stream."""
    from dataclasses import replace

    from sectionseg.simulation.beads import simulate_bead_sections

    lost = 0 if settings.missing <= 0 else max(1, int(round(settings.missing * n / (1 - settings.missing))))
    settings = replace(settings, n_sections=n + lost, missing=lost / (n + lost))
    return simulate_bead_sections(
        np.random.default_rng([int(seed), 14]), settings, ids=list(range(n)), block_um=block_um
    )


def _overview_patterns(sections, seed: int, settings, pixel_um: float):
    """The bead series (block wide enough for every magnet at ``pixel_um``) and, per section index,
    its face's beads in image px (see :func:`simulate_wafer`)."""
    from sectionseg.geometry.orientation import magnet_frame

    frames = {i: magnet_frame(s) for i, s in enumerate(sections) if s.magnet is not None and s.tissue is not None}
    reach = max([math.hypot(length, width) for _, length, width in frames.values()], default=1.0)
    series = _bead_series(seed, len(sections), settings, block_um=1.2 * reach * pixel_um + 20.0)
    patterns = {}
    for i, (a, length, width) in frames.items():
        xy_um, signal = series.section_face(i)
        f = xy_um / pixel_um
        if series.poses[i]["flipped"]:  # the section landed upside down: its face is mirrored
            f[:, 0] = -f[:, 0]
        f += (length / 2.0, width / 2.0)
        inv = _invert_affine(a)
        patterns[i] = (f @ inv[:, :2].T + inv[:, 2], signal)
    return series, patterns


def _invert_affine(a: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine."""
    lin = np.linalg.inv(a[:, :2])
    return np.c_[lin, -lin @ a[:, 2]]


def _write_beads(folder: Path, seed: int, n: int, settings, series=None) -> dict:
    """Bead images of the wafer's ``n`` sections (ids 0..n-1) into ``folder`` (``series``: already
    simulated); returns a summary."""
    from sectionseg.simulation.beads import write_bead_folder

    if series is None:
        series = _bead_series(seed, n, settings)
    write_bead_folder(folder, series)
    return {
        "folder": folder.name,
        "channels": series.channels,
        "lost_sections": len(series.missing),
        "damaged": len(series.damaged),
        "flipped": len(series.flipped),
    }


def _file_layout(rng, path, scale, params, width, height, margin, dummies):
    """Sections from ``path`` (scaled), dummies added; image size defaults to the extent + margin."""
    sections = layout_from_file(path, scale)
    if not sections:
        raise InputError("the layout file has no sections", path)
    if dummies:
        sections = add_dummies(
            rng,
            sections,
            probability=params["dummy_probability"],
            gap_range=(0.0, params["dummy_gap"]),
            width_range=(6.0, params["dummy_width"]),
        )
    x0, y0, x1, y1 = sections_bounds(sections)
    if x0 < 0 or y0 < 0:
        raise InputError(f"the layout has negative coordinates (min x {x0:.1f}, min y {y0:.1f})", path)
    width = width or int(math.ceil(x1 + margin))
    height = height or int(math.ceil(y1 + margin))
    return sections, width, height
