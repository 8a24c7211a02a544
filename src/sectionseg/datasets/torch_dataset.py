"""Torch ``Dataset`` of a sectionseg dataset folder, in the format torchvision's Mask R-CNN expects.

``dataset[i] -> (image, target)``: ``image`` a ``tv_tensors.Image`` float32 ``[3, H, W]`` in [0, 1];
``target`` a dict with ``boxes`` (``tv_tensors.BoundingBoxes`` XYXY float32 ``[N, 4]``, pixel-edge
convention, tight around the masks), ``labels`` int64 ``[N]`` (1 tissue, 2 magnet; dummies are
background), ``masks`` (``tv_tensors.Mask`` uint8 ``[N, H, W]``), ``image_id`` (int), ``area``
(float32 ``[N]``, mask pixels) and ``iscrowd`` (int64 zeros ``[N]``). Images without sections give
``N = 0`` (boxes ``[0, 4]``, masks ``[0, H, W]``). A sample written with an ignore mask adds
``ignore`` (``tv_tensors.Mask`` uint8 ``[H, W]``, 1 where the content is unknown; it moves with the
image through the transforms, see :mod:`sectionseg.model.ignore`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from sectionseg.datasets.labels import instances
from sectionseg.datasets.samples import read_manifest, split_items  # noqa: F401 - read_manifest re-exported
from sectionseg.datasets.transforms import masks_to_tight_boxes
from sectionseg.geometry.raster import polygon_mask
from sectionseg.geometry.section import Section


def make_target(sections: list[Section], height: int, width: int, image_id: int = 0) -> dict:
    """Mask R-CNN target (uint8 masks, before any transform) for ``sections`` in an image of that size.

    Instances whose polygon covers no pixel centre are left out.
    """
    labels, masks = [], []
    for label, polygon in instances(sections):
        mask = polygon_mask(polygon, (height, width))
        if mask.any():
            labels.append(label)
            masks.append(mask)
    mask_t = (
        torch.from_numpy(np.stack(masks).astype(np.uint8))
        if masks
        else torch.zeros((0, height, width), dtype=torch.uint8)
    )
    return {
        "boxes": tv_tensors.BoundingBoxes(masks_to_tight_boxes(mask_t), format="XYXY", canvas_size=(height, width)),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": tv_tensors.Mask(mask_t),
        "image_id": int(image_id),
        "area": mask_t.flatten(1).sum(dim=1).to(torch.float32),
        "iscrowd": torch.zeros(len(labels), dtype=torch.int64),
    }


def to_image(rgb: np.ndarray) -> tv_tensors.Image:
    """``(H, W, 3)`` uint8 array (a 2-D gray array is repeated) to a uint8 ``tv_tensors.Image`` ``[3, H, W]``."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    return tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))))


class SectionDataset(Dataset):
    """Samples of one split of a dataset folder (or of in-memory items, see :meth:`from_items`).

    ``transforms``: called as ``transforms(image, target)`` with the uint8 image; must end with a
    float conversion (see :func:`sectionseg.datasets.transforms.build_transforms`). Without it the
    image is only converted to float32 in [0, 1].
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", transforms=None):
        self.root = Path(root)
        self.split = split
        self.manifest = read_manifest(self.root)
        self.items = split_items(self.root, self.manifest, split)
        self.memory: list[tuple[np.ndarray, list[Section]]] | None = None
        self.transforms = transforms
        self._to_float = v2.ToDtype(torch.float32, scale=True)

    @classmethod
    def from_items(cls, items: list[tuple[np.ndarray, list[Section]]], transforms=None) -> SectionDataset:
        """Dataset over in-memory ``(image (H, W, 3) uint8, sections)`` pairs."""
        self = cls.__new__(cls)
        Dataset.__init__(self)
        self.root, self.split, self.manifest, self.items = None, "memory", None, []
        self.memory = list(items)
        self.transforms = transforms
        self._to_float = v2.ToDtype(torch.float32, scale=True)
        return self

    def __len__(self) -> int:
        return len(self.memory) if self.memory is not None else len(self.items)

    def load(self, index: int) -> tuple[np.ndarray, list[Section]]:
        """The raw ``(image (H, W, 3) uint8, sections)`` of sample ``index``."""
        if self.memory is not None:
            return self.memory[index]
        from PIL import Image

        from sectionseg.formats import read_sections  # sibling stage, imported lazily

        item = self.items[index]
        with Image.open(self.root / item["image"]) as im:
            image = np.asarray(im.convert("RGB"))
        return image, read_sections(self.root / item["annotations"], fmt="labelme")

    def load_ignore(self, index: int) -> np.ndarray | None:
        """The ``(H, W)`` bool ignore mask of sample ``index``, or None when it has none."""
        if self.memory is not None or "ignore" not in self.items[index]:
            return None
        from PIL import Image

        with Image.open(self.root / self.items[index]["ignore"]) as im:
            return np.asarray(im.convert("L")) > 0

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        rgb, sections = self.load(index)
        image = to_image(rgb)
        target = make_target(sections, image.shape[-2], image.shape[-1], index)
        ignore = self.load_ignore(index)
        if ignore is not None:
            target["ignore"] = tv_tensors.Mask(torch.from_numpy(ignore.astype(np.uint8)))
        if self.transforms is not None:
            return self.transforms(image, target)
        return self._to_float(image), target


def collate_fn(batch):
    """Keep a batch as ``(images, targets)`` tuples (detection models take lists of variable-size images)."""
    return tuple(zip(*batch))
