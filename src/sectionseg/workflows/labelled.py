"""Training data from one labelled wafer image: overlapping patches (``sectionseg tiles``) and
synthetic pastes (``sectionseg synth``), each written as one dataset folder with a manifest.

Labels are in px of the image after ``label_scale``; x, y from the top-left corner of the top-left pixel.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sectionseg.errors import InputError

if TYPE_CHECKING:
    from sectionseg.geometry.section import Section

log = logging.getLogger(__name__)


def warn_outside(sections: list[Section], width: int, height: int, path) -> int:
    """Log a warning when sections reach outside the ``width x height`` image (they are clipped or
    dropped); return how many do."""
    outside = 0
    for s in sections:
        pts = np.concatenate([p.polygon for p in s.parts().values()])
        outside += bool(
            pts[:, 0].min() < 0 or pts[:, 1].min() < 0 or pts[:, 0].max() > width or pts[:, 1].max() > height
        )
    if outside:
        log.warning(
            "%s: %d of %d labelled sections reach outside the %dx%d px image and are clipped or "
            "dropped (labels of another image size? see --scale)",
            path,
            outside,
            len(sections),
            width,
            height,
        )
    return outside


def load_labelled_wafer(
    image: str | os.PathLike,
    labels: str | os.PathLike,
    *,
    fluo: str | os.PathLike | None = None,
    label_scale: float = 1.0,
) -> tuple[np.ndarray, dict[str, Any], list[Section]]:
    """``(rgb, normalisation record, sections)`` of a labelled wafer: ``image`` an 8-bit RGB wafer
    image (gray, gray, fluo) or, with ``fluo``, the gray image; ``labels`` any annotation file, its
    coordinates multiplied by ``label_scale``. A warning names the labels that lie outside the image."""
    from sectionseg.datasets.samples import load_wafer_rgb
    from sectionseg.formats import read_sections

    rgb, record = load_wafer_rgb(image, fluo)
    sections = read_sections(labels, scale=label_scale)
    warn_outside(sections, rgb.shape[1], rgb.shape[0], labels)
    return rgb, record, sections


def write_tile_set(
    image: str | os.PathLike,
    labels: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    fluo: str | os.PathLike | None = None,
    label_scale: float = 1.0,
    size: int = 512,
    overlap: int = 64,
    min_area: float = 20.0,
    keep_empty: bool = True,
) -> tuple[list[dict], list[Section]]:
    """Cut a labelled wafer image into ``size`` x ``size`` px patches overlapping by ``overlap`` px
    (the last patch of a row or column flush with the border) into the dataset folder ``out_dir``:
    ``images/*.png``, ``annotations/*.json`` (labelme), ``masks/*.png`` (uint16 instance ids),
    ``manifest.json`` (every patch in ``train``), written as one set.

    Sections cut by a patch border keep their clipped part; clipped parts under ``min_area`` px^2
    are dropped; ``keep_empty=False`` writes no patch without a section. Inputs as in
    :func:`load_labelled_wafer`. Returns the manifest's items (one dict per patch) and the sections read.
    """
    from sectionseg.datasets.samples import write_manifest
    from sectionseg.datasets.tiles import cut_tiles
    from sectionseg.io.outset import output_set

    rgb, record, sections = load_labelled_wafer(image, labels, fluo=fluo, label_scale=label_scale)
    params = {
        "kind": "tiles",
        "image": str(image),
        "fluo": fluo,
        "labels": str(labels),
        "scale": label_scale,
        "size": size,
        "overlap": overlap,
        "min_area": min_area,
        "skip_empty": not keep_empty,
        "normalisation": record,
    }
    with output_set(Path(out_dir), "tiles") as stage:  # the whole dataset or what the folder held before
        items = cut_tiles(
            rgb,
            sections,
            stage,
            size,
            overlap,
            prefix=Path(image).stem,
            source=str(image),
            min_area=min_area,
            keep_empty=keep_empty,
        )
        write_manifest(stage, {"train": items}, params)
    return items, sections


def write_synthetic_set(
    image: str | os.PathLike,
    labels: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    count: int,
    fluo: str | os.PathLike | None = None,
    label_scale: float = 1.0,
    size: int = 512,
    seed: int = 0,
    sections_per_image: tuple[int, int] = (3, 8),
    margin: int = 6,
) -> list[dict]:
    """``count`` artificial ``size`` x ``size`` px images into the dataset folder ``out_dir``: every
    labelled section (tissue, magnet, dummy, with ``margin`` px of background) cut out of the wafer
    and pasted at random positions and angles, without overlap, ``sections_per_image`` (min, max) an
    image, onto section-free background of the same wafer. Writes ``images/``, ``annotations/``
    (labelme), ``masks/`` and ``manifest.json`` (every image in ``train``) as one set; same ``seed``,
    same files. Inputs as in :func:`load_labelled_wafer`. Returns the manifest's items.

    InputError when fewer than ``sections_per_image[0]`` sections fit on an image, or no section
    lies wholly inside the image.
    """
    from sectionseg.datasets.samples import write_manifest
    from sectionseg.datasets.synth import fitting_sections, write_synthetic
    from sectionseg.io.outset import output_set

    lo, hi = sections_per_image
    rgb, record, sections = load_labelled_wafer(image, labels, fluo=fluo, label_scale=label_scale)
    fit = fitting_sections(sections, size, margin)
    if lo > fit:
        room = f"only about {fit} sections of this wafer fit" if fit else "no section of this wafer fits"
        raise InputError(f"--sections-per-image MIN {lo}: {room} on a {size} px image")
    params = {
        "kind": "synthetic",
        "image": str(image),
        "fluo": fluo,
        "labels": str(labels),
        "scale": label_scale,
        "count": count,
        "size": size,
        "seed": seed,
        "sections_per_image": [lo, hi],
        "margin": margin,
        "normalisation": record,
    }
    with output_set(out_dir, "synth") as stage:  # the whole set or what the folder held before
        try:
            items = write_synthetic(
                stage, rgb, sections, count, size, seed, (lo, hi), prefix="synth", source=str(image), margin=margin
            )
        except ValueError as exc:  # e.g. no section fully inside the image
            raise InputError(str(exc), labels) from None
        write_manifest(stage, {"train": items}, params)
    return items
