"""Training augmentation with ``torchvision.transforms.v2``, so masks and boxes move with the image.

The pipeline is called as ``transforms(image, target)`` with ``image`` a ``tv_tensors.Image`` (uint8
``[3, H, W]``) and ``target`` the Mask R-CNN dict of :mod:`sectionseg.datasets.torch_dataset`
(``boxes`` ``BoundingBoxes`` XYXY, ``labels``, ``masks`` ``Mask`` ``[N, H, W]``, ``area``, ``iscrowd``,
``image_id``). Only shape-preserving augmentations are used (rotation, crop, flips, blur, intensity):
sections are rigid polygons, so elastic, shear or perspective distortions would teach wrong shapes.

After the geometric transforms, boxes are recomputed from the masks (a rotated box is loose), instances
whose mask left the crop are dropped (``SanitizeBoundingBoxes``), then ``area``/``iscrowd`` are
recomputed. Randomness comes from torch's generator (seed it with ``torch.manual_seed``; DataLoader
workers get their own seeds).
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F


def masks_to_tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    """XYXY float32 ``[N, 4]`` boxes around the nonzero pixels of ``masks`` ``[N, H, W]``.

    Pixel-edge convention of the package: pixel ``(col, row)`` covers ``[col, col+1) x [row, row+1)``,
    so the box is ``[xmin, ymin, xmax + 1, ymax + 1]`` in pixel indices (``torchvision.ops.masks_to_boxes``
    + 1 on the max side). Empty masks give ``[0, 0, 0, 0]``.
    """
    n = masks.shape[0]
    boxes = torch.zeros((n, 4), dtype=torch.float32)
    if n == 0:
        return boxes
    masks = masks.bool()
    cols = masks.any(dim=1)  # [N, W]
    rows = masks.any(dim=2)  # [N, H]
    nonempty = cols.any(dim=1)
    w, h = cols.shape[1], rows.shape[1]
    ix = torch.arange(w).expand_as(cols)
    iy = torch.arange(h).expand_as(rows)
    boxes[:, 0] = torch.where(cols, ix, w).amin(dim=1).float()
    boxes[:, 1] = torch.where(rows, iy, h).amin(dim=1).float()
    boxes[:, 2] = torch.where(cols, ix, -1).amax(dim=1).float() + 1
    boxes[:, 3] = torch.where(rows, iy, -1).amax(dim=1).float() + 1
    boxes[~nonempty] = 0
    return boxes


def _split(inputs: tuple) -> tuple[Any, dict]:
    sample = inputs if len(inputs) > 1 else inputs[0]
    if not (isinstance(sample, (tuple, list)) and len(sample) == 2 and isinstance(sample[1], dict)):
        raise TypeError("this transform expects to be called as transform(image, target_dict)")
    return sample[0], sample[1]


class TightBoxes(v2.Transform):
    """Replace ``target["boxes"]`` by the tight boxes of ``target["masks"]`` (see :func:`masks_to_tight_boxes`)."""

    def forward(self, *inputs):
        image, target = _split(inputs)
        masks = target["masks"]
        target = dict(target)
        target["boxes"] = tv_tensors.BoundingBoxes(
            masks_to_tight_boxes(masks), format="XYXY", canvas_size=tuple(masks.shape[-2:])
        )
        return image, target


class FinalizeTarget(v2.Transform):
    """Recompute ``area`` (mask pixels, float32) and ``iscrowd`` (zeros, int64) after instances were dropped."""

    def forward(self, *inputs):
        image, target = _split(inputs)
        target = dict(target)
        masks = target["masks"]
        target["area"] = masks.flatten(1).sum(dim=1).to(torch.float32) if masks.shape[0] else torch.zeros(0)
        target["iscrowd"] = torch.zeros(masks.shape[0], dtype=torch.int64)
        target["labels"] = target["labels"].to(torch.int64)
        return image, target


class RandomGamma(v2.Transform):
    """Gamma adjustment of the image only (masks/boxes untouched).

    With probability ``p``, ``gamma`` is drawn uniformly in ``gamma_range``; otherwise the image is kept.
    """

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, gamma_range: tuple[float, float] = (0.7, 1.4), p: float = 0.5):
        super().__init__()
        self.gamma_range = gamma_range
        self.p = p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        lo, hi = self.gamma_range
        apply = bool(torch.rand(()) < self.p)
        return {"gamma": float(torch.empty(()).uniform_(lo, hi)) if apply else 1.0}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["gamma"] == 1.0:
            return inpt
        return F.adjust_gamma(inpt, params["gamma"])


class RandomRotation(v2.RandomRotation):
    """``v2.RandomRotation`` whose image fill can be the image's per-channel median (``fill="median"``).

    Corners uncovered by the rotation then look like wafer background instead of black, which the
    model never sees at inference. Masks are filled with 0 (and rotated with nearest interpolation).
    """

    def __init__(self, degrees, interpolation=InterpolationMode.BILINEAR, fill="median"):
        self.median_fill = isinstance(fill, str) and fill == "median"
        fills = {tv_tensors.Image: 0 if self.median_fill else fill, tv_tensors.Mask: 0}
        super().__init__(degrees=degrees, interpolation=interpolation, expand=False, fill=fills)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        params = super().make_params(flat_inputs)
        images = [x for x in flat_inputs if isinstance(x, tv_tensors.Image)]
        if self.median_fill and images:
            params["image_fill"] = [float(v) for v in images[0].flatten(1).median(dim=1).values]
        return params

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Image) and "image_fill" in params:
            return F.rotate(
                inpt,
                params["angle"],
                interpolation=self.interpolation,
                expand=False,
                center=self.center,
                fill=params["image_fill"],
            )
        return super().transform(inpt, {"angle": params["angle"]})


class GrayOnly(v2.Transform):
    """With probability ``p`` the third channel (fluorescence) is replaced by the first (gray): the
    input detection composes for a wafer without a fluorescence image. Image only."""

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"apply": bool(torch.rand(()) < self.p)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params["apply"] or inpt.shape[-3] < 3:
            return inpt
        out = inpt.clone()
        out[..., 2, :, :] = inpt[..., 0, :, :]
        return out


def geometric_transforms(
    crop_size: int = 512, fill: int | tuple[int, int, int] | str = "median", degrees: float = 180.0
) -> list[v2.Transform]:
    """Rotation by any angle (no expansion), crop (padded when needed) and flips.

    ``fill``: image value outside the rotated image, or ``"median"`` (per-channel image median);
    crop padding uses ``fill`` (0 for ``"median"``).
    """
    pad_fill = {tv_tensors.Image: 0 if isinstance(fill, str) else fill, tv_tensors.Mask: 0}
    return [
        RandomRotation(degrees=degrees, interpolation=InterpolationMode.BILINEAR, fill=fill),
        v2.RandomCrop(crop_size, pad_if_needed=True, fill=pad_fill),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
    ]


def photometric_transforms(
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    blur_kernel: int = 9,
    p_blur: float = 0.5,
    brightness: float = 0.25,
    contrast: float = 0.25,
    gamma_range: tuple[float, float] = (0.7, 1.4),
    p_gamma: float = 0.5,
) -> list[v2.Transform]:
    """Gaussian blur (random sigma), brightness/contrast jitter and gamma: image only."""
    return [
        v2.RandomApply([v2.GaussianBlur(kernel_size=blur_kernel, sigma=blur_sigma)], p=p_blur),
        v2.ColorJitter(brightness=brightness, contrast=contrast),
        RandomGamma(gamma_range, p=p_gamma),
    ]


def build_transforms(
    train: bool,
    crop_size: int = 512,
    *,
    fill: int | tuple[int, int, int] | str = "median",
    min_box_size: float = 2.0,
    gray_only_probability: float = 0.0,
    jpeg_probability: float = 0.0,
    **photometric,
) -> v2.Compose:
    """The augmentation pipeline (``train=True``) or the plain conversion (``train=False``).

    Train: rotation (any angle, ``fill`` outside the image: a value or ``"median"``) -> random crop
    to ``crop_size`` (padded when smaller) -> flips -> blur / brightness-contrast / gamma
    (``photometric`` keyword arguments of :func:`photometric_transforms`) -> JPEG artefacts (quality
    30-95, share ``jpeg_probability``) -> gray-only input (share ``gray_only_probability``) -> tight
    boxes from masks -> drop instances with a box side below ``min_box_size`` px -> area/iscrowd ->
    float32 image in [0, 1]. Eval: float32 image in [0, 1] only.
    """
    to_float = v2.ToDtype(torch.float32, scale=True)  # images only; masks stay uint8
    if not train:
        return v2.Compose([to_float])
    extra: list[v2.Transform] = []
    if jpeg_probability > 0:
        extra.append(v2.RandomApply([v2.JPEG((30, 95))], p=jpeg_probability))
    if gray_only_probability > 0:
        extra.append(GrayOnly(gray_only_probability))
    return v2.Compose(
        [
            *geometric_transforms(crop_size, fill),
            *photometric_transforms(**photometric),
            *extra,
            TightBoxes(),
            v2.SanitizeBoundingBoxes(min_size=min_box_size),
            FinalizeTarget(),
            to_float,
        ]
    )
