"""Write dataset samples (image + labelme ground truth + instance mask) and the manifest.

Folder layout (the contract with the training code)::

    ROOT/manifest.json          see :func:`write_manifest`
    ROOT/images/STEM.png        (H, W, 3) uint8 model input (gray, gray, fluo)
    ROOT/annotations/STEM.json  labelme JSON (sectionseg.formats), dummies kept as ``dummy`` shapes
    ROOT/masks/STEM.png         uint16 instance ids for eyeballing (0 background, see labels.instance_id_image)
    ROOT/ignore/STEM.png        optional uint8 mask, 255 where the content is unknown (no background
                                loss there, see sectionseg.model.ignore); item key ``ignore``
"""

from __future__ import annotations

import json
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


def write_sample(
    root: str | os.PathLike,
    stem: str,
    image: np.ndarray,
    sections: list[Section],
    *,
    source: str = "",
    write_mask: bool = True,
    ignore: np.ndarray | None = None,
    **extra,
) -> dict:
    """Write one sample under ``root``; return its manifest item (paths relative to ``root``).

    ``image``: ``(H, W, 3)`` uint8; ``sections``: polygons in this image's pixel frame; ``ignore``:
    optional ``(H, W)`` mask of areas whose content is unknown (unlabelled sections may lie there).
    ``extra`` keys (JSON-ready) are added to the item, e.g. ``kind`` or ``origin``.
    """
    from sectionseg.formats import write_sections  # formats is a sibling stage, imported lazily

    root = Path(root)
    height, width = image.shape[:2]
    item = {"image": f"images/{stem}.png", "annotations": f"annotations/{stem}.json", "source": source}
    write_image(root / item["image"], np.ascontiguousarray(image))
    write_sections(
        root / item["annotations"],
        sections,
        fmt="labelme",
        image_path=f"../images/{stem}.png",
        image_size=(width, height),
    )
    if write_mask:
        item["mask"] = f"masks/{stem}.png"
        write_image(root / item["mask"], instance_id_image(sections, height, width))
    if ignore is not None:
        if np.shape(ignore) != (height, width):
            raise ValueError(f"ignore mask {np.shape(ignore)} does not match the image {(height, width)}")
        item["ignore"] = f"ignore/{stem}.png"
        write_image(root / item["ignore"], np.where(np.asarray(ignore, bool), 255, 0).astype(np.uint8))
    item.update(extra)
    return item


def write_manifest(root: str | os.PathLike, splits: dict[str, list[dict]], params: dict) -> dict:
    """Write ``root/manifest.json`` and return it.

    ``{"format": "sectionseg-dataset", "version": 1, "classes": ["tissue", "magnet"],
    "splits": {"train": [item...], "val": [...], "test": [...]}, "params": {...}}``; each item has
    ``image``, ``annotations`` (paths relative to ``root``) and ``source``. Missing splits are empty.
    """
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "classes": list(CLASSES),
        "splits": {name: list(splits.get(name, [])) for name in SPLITS},
        "params": params,
    }
    for name, items in splits.items():
        if name not in SPLITS:
            manifest["splits"][name] = list(items)
    write_text(Path(root) / "manifest.json", strict_json(manifest, indent=1) + "\n")
    return manifest


def read_manifest(root: str | os.PathLike) -> dict:
    """Read and check ``root/manifest.json`` (see :func:`write_manifest`); InputError when the folder
    is no dataset, or an output set being replaced (:func:`sectionseg.io.outset.check_complete`)."""
    from sectionseg.errors import InputError
    from sectionseg.io.outset import check_complete

    path = Path(root) / "manifest.json"
    check_complete(root)
    if not path.is_file():
        raise InputError("no manifest.json: not a sectionseg dataset folder", Path(root))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"invalid JSON: {getattr(exc, 'msg', exc)}", path, getattr(exc, "lineno", None)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise InputError(f"not a {MANIFEST_FORMAT} manifest (missing or wrong 'format')", path)
    if list(manifest.get("classes", [])) != list(CLASSES):
        raise InputError(f"classes {manifest.get('classes')} differ from {list(CLASSES)}", path)
    if not isinstance(manifest.get("splits"), dict):
        raise InputError('no "splits" object', path)
    return manifest


def split_items(root: str | os.PathLike, manifest: dict, split: str) -> list[dict]:
    """The items of ``split``; InputError for an unknown split or an item whose files are missing."""
    from sectionseg.errors import InputError

    path = Path(root) / "manifest.json"
    if split not in manifest["splits"]:
        raise InputError(f"no split {split!r} (have {sorted(manifest['splits'])})", path)
    items = manifest["splits"][split]
    for k, item in enumerate(items):
        if not isinstance(item, dict) or not all(isinstance(item.get(key), str) for key in ("image", "annotations")):
            raise InputError(f'splits.{split}[{k}]: an item needs "image" and "annotations" paths', path)
        for key in ("image", "annotations", "ignore"):
            if key in item and not (Path(root) / item[key]).is_file():
                raise InputError(f"splits.{split}[{k}]: {key} {item[key]} is missing from the dataset folder", path)
    return list(items)


def check_split(root: str | os.PathLike, split: str) -> int:
    """Check that ``split`` of the dataset folder ``root`` holds images, all present; return how many."""
    from sectionseg.errors import InputError

    manifest = read_manifest(root)
    items = split_items(root, manifest, split)
    if not items:
        counts = ", ".join(f"{name}: {len(v)}" for name, v in manifest["splits"].items())
        raise InputError(f"split {split!r} has no images ({counts})", Path(root) / "manifest.json")
    return len(items)


def load_wafer_rgb(
    image_path: str | os.PathLike, fluo_path: str | os.PathLike | None = None
) -> tuple[np.ndarray, dict]:
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
        raise InputError(
            f"expected a gray image (then give --fluo) or an 8-bit RGB image, got shape {image.shape} {image.dtype}",
            image_path,
        )
    composed = compose_rgb(image, None, gray_name=str(image_path))
    return composed.rgb, composed.record()
