"""Write dataset samples (image + labelme ground truth + instance mask) and the manifest.

Folder layout (the contract with the training code)::

    ROOT/manifest.json          see :func:`write_manifest`
    ROOT/images/STEM.png        (H, W, 3) uint8 model input (gray, gray, fluo)
    ROOT/annotations/STEM.json  labelme JSON (sectionseg.formats), dummies kept as ``dummy`` shapes
    ROOT/masks/STEM.png         uint16 instance ids for eyeballing (0 background, see labels.instance_id_image)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sectionseg.datasets.labels import CLASSES, instance_id_image
from sectionseg.geometry.section import Section
from sectionseg.io.atomic import write_text
from sectionseg.io.images import write_image
from sectionseg.io.jsontext import dumps as strict_json

MANIFEST_FORMAT = "sectionseg-dataset"
MANIFEST_VERSION = 1
SPLITS = ("train", "val", "test")


def write_sample(root: str | os.PathLike, stem: str, image: np.ndarray, sections: list[Section], *,
                 source: str = "", write_mask: bool = True, **extra) -> dict:
    """Write one sample under ``root``; return its manifest item (paths relative to ``root``).

    ``image``: ``(H, W, 3)`` uint8; ``sections``: polygons in this image's pixel frame.
    ``extra`` keys (JSON-ready) are added to the item, e.g. ``kind`` or ``origin``.
    """
    from sectionseg.formats import write_sections  # formats is a sibling stage, imported lazily

    root = Path(root)
    height, width = image.shape[:2]
    item = {"image": f"images/{stem}.png", "annotations": f"annotations/{stem}.json", "source": source}
    write_image(root / item["image"], np.ascontiguousarray(image))
    write_sections(root / item["annotations"], sections, fmt="labelme",
                   image_path=f"../images/{stem}.png", image_size=(width, height))
    if write_mask:
        item["mask"] = f"masks/{stem}.png"
        write_image(root / item["mask"], instance_id_image(sections, height, width))
    item.update(extra)
    return item


def write_manifest(root: str | os.PathLike, splits: dict[str, list[dict]], params: dict) -> dict:
    """Write ``root/manifest.json`` and return it.

    ``{"format": "sectionseg-dataset", "version": 1, "classes": ["tissue", "magnet"],
    "splits": {"train": [item...], "val": [...], "test": [...]}, "params": {...}}``; each item has
    ``image``, ``annotations`` (paths relative to ``root``) and ``source``. Missing splits are empty.
    """
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "classes": list(CLASSES),
                "splits": {name: list(splits.get(name, [])) for name in SPLITS}, "params": params}
    for name, items in splits.items():
        if name not in SPLITS:
            manifest["splits"][name] = list(items)
    write_text(Path(root) / "manifest.json", strict_json(manifest, indent=1) + "\n")
    return manifest


def load_wafer_rgb(image_path: str | os.PathLike,
                   fluo_path: str | os.PathLike | None = None) -> tuple[np.ndarray, dict]:
    """The ``(H, W, 3)`` uint8 model input of a wafer, and a JSON-ready record of how it was made.

    With ``fluo_path`` the image is the gray image and both are composed (gray, gray, fluo); without
    it an ``(H, W, 3)`` uint8 file (e.g. a simulator's ``rgb.tif``) is used as it is, and a gray file is
    composed alone (third channel = gray, with a warning).
    """
    from sectionseg.errors import InputError
    from sectionseg.io.images import compose_rgb, load_composed, read_image

    if fluo_path is not None:
        composed = load_composed(image_path, fluo_path)
        return composed.rgb, composed.record()
    image = read_image(image_path, expect_gray=False)
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return np.asarray(image), {"channels": "as read (RGB file)"}
    if image.ndim == 3 and image.shape[2] == 3 and np.array_equal(image[..., 0], image[..., 2]):
        image = image[..., 0]
    if image.ndim != 2:
        raise InputError(f"expected a gray image (then give --fluo) or an 8-bit RGB image, got shape "
                         f"{image.shape} {image.dtype}", image_path)
    composed = compose_rgb(image, None, gray_name=str(image_path))
    return composed.rgb, composed.record()
