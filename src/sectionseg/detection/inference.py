"""Run a Mask R-CNN-style predictor over the tiles of a wafer.

A *predictor* is any callable ``predictor(images) -> outputs`` with ``images`` a list of float32
``(3, H, W)`` tensors in [0, 1] and ``outputs`` a list (one per image) of torchvision-style dicts:
``boxes (N, 4)`` x0, y0, x1, y1 in tile px, ``labels (N,)`` (1 tissue, 2 magnet), ``scores (N,)``,
``masks (N, 1, H, W)`` float probabilities, or in their place ``mask_crops`` (each mask over its own
box only, as :func:`model_predictor` returns them on the CPU). :func:`model_predictor` wraps a loaded
model; tests pass a fake one.

Each kept detection becomes a :class:`Detection` whose mask is a tight boolean *crop* with its
origin in the working frame (never a full-wafer mask).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from sectionseg.detection.tiling import Tile, WaferSource, inner_borders
from sectionseg.io.resample import resample

if TYPE_CHECKING:
    import torch

_K = TypeVar("_K")
_V = TypeVar("_V")

#: a predictor (:func:`model_predictor`): a batch of ``(h, w, 3)`` uint8 tiles -> the model's outputs per tile
Predictor = Callable[..., Any]

LABEL_NAMES = {1: "tissue", 2: "magnet"}


@dataclass(eq=False)
class Detection:
    """One part found in one tile (or merged from several), in the working frame.

    ``mask``: boolean crop; ``origin``: working px ``(x0, y0)`` of ``mask[0, 0]``'s top-left corner;
    ``label`` 1 tissue / 2 magnet; ``score`` in [0, 1]; ``tile``: index in the tile plan (-1 once
    merged from several); ``truncated``: the mask touches a tile side that is inside the wafer, so
    the part may continue in a neighbouring tile; ``border_distance``: px from the mask's box to the
    nearest inner tile side (large = well inside).
    """

    label: int
    score: float
    mask: np.ndarray
    origin: tuple[int, int]
    tile: int = -1
    truncated: bool = False
    border_distance: float = float("inf")
    sources: list[int] = field(default_factory=list)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` working px of the mask crop."""
        x0, y0 = self.origin
        return x0, y0, x0 + self.mask.shape[1], y0 + self.mask.shape[0]

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def name(self) -> str:
        return LABEL_NAMES.get(self.label, str(self.label))

    def rescaled(self, factor: float) -> Detection:
        """The same detection in a frame ``factor`` times finer (working px times ``factor``); the
        mask is resampled bilinearly (corners kept in place) and thresholded at 0.5."""
        if factor == 1.0:
            return self
        x0, y0, x1, y1 = self.box
        nx0, ny0 = math.floor(x0 * factor), math.floor(y0 * factor)
        nx1, ny1 = math.ceil(x1 * factor), math.ceil(y1 * factor)
        mask = (
            resample(
                self.mask.astype(np.float32),
                factor,
                out_origin=(nx0, ny0),
                src_origin=(x0, y0),
                out_size=(nx1 - nx0, ny1 - ny0),
            )
            > 0.5
        )
        return replace(self, mask=mask, origin=(nx0, ny0), border_distance=self.border_distance * factor)


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: tiles per model call when none is asked: two per worker process on the CPU (one core each); a GPU
#: is kept busy by larger batches (the cuda path is not measured yet, see BENCHMARKS.md)
DEFAULT_BATCH_SIZE = {"cpu": 2, "cuda": 16}


def resolve_batch_size(batch_size: int | None, device: str = "cpu") -> int:
    """``batch_size``, else :data:`DEFAULT_BATCH_SIZE` of the device."""
    if batch_size is not None:
        return int(batch_size)
    return DEFAULT_BATCH_SIZE["cuda" if str(device).startswith("cuda") else "cpu"]


def cpu_has_bf16() -> bool:
    """True when this CPU runs bfloat16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated
    and slower than fp32."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if check is not None)


def cuda_has_bf16() -> bool:
    """True when the CUDA device runs bfloat16 (Ampere and later)."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_precision(precision: str, device: str) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for ``precision`` in :data:`PRECISIONS` on ``device``:
    ``auto`` is bf16 on a CPU that runs it natively (about 1.5x faster inference on 2 cores,
    detections within a fraction of a pixel, see BENCHMARKS.md), fp32 on other CPUs; on a GPU bf16
    where it has it, else fp16 (autocast: the tensor cores). fp16 is for GPUs only (a CPU emulates
    it, slowly)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    on_gpu = str(device).startswith("cuda")
    if precision == "fp16" and not on_gpu:
        raise ValueError("precision fp16 is for --device cuda; on the CPU use bf16 or fp32")
    if precision == "auto":
        if on_gpu:
            return "bf16" if cuda_has_bf16() else "fp16"
        return "bf16" if cpu_has_bf16() else "fp32"
    return precision


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The torch dtype autocast runs in for a resolved precision (None: fp32, no autocast)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def model_predictor(
    model: Any, device: str = "cpu", precision: str = "fp32", mask_threshold: float | None = None
) -> Predictor:
    """Wrap a torchvision detection model (``torch.nn.Module``) in eval mode as a predictor (no
    gradients, float32 outputs on the CPU). ``precision``: ``fp32``, ``bf16`` or ``fp16`` (autocast:
    the convolutions and linear layers run in that type, box decoding and outputs stay float32).

    On a GPU the whole batch of tiles goes through the model in one call (``batch_size`` tiles of
    :func:`predict_tiles`; 16 by default), copied from pinned memory without waiting, with
    channels-last weights and cuDNN's autotuner (tiles all have one size).

    ``mask_threshold``: masks come back binary (``masks >= mask_threshold``, bool), cut where they
    are made (on the GPU): a quarter of the bytes to copy and keep, the same detections
    (:func:`detections_from_output` applies the same cut to probabilities)."""
    import torch

    model.eval()
    on_gpu = str(device).startswith("cuda")
    # oneDNN convolutions run 10-20 % faster on channels-last weights (measured on 2 cores); on a
    # GPU the tensor cores want channels-last too
    model.to(memory_format=torch.channels_last)
    if on_gpu:
        torch.backends.cudnn.benchmark = True
    device_type = "cuda" if on_gpu else "cpu"
    dtype = autocast_dtype(resolve_precision(precision, device))
    if dtype is not None:
        _float32_predictors(model, device_type)

    def to_device(im: torch.Tensor) -> torch.Tensor:
        if not on_gpu:
            return im
        return im.pin_memory().to(device, non_blocking=True)

    crops = not on_gpu and _is_mask_rcnn(model)

    def predict(images: list[torch.Tensor]) -> list[dict[str, Any]]:
        with (
            torch.inference_mode(),
            torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            if crops:
                return _predict_mask_crops(model, images, mask_threshold)
            outputs = model([to_device(im) for im in images])
            if mask_threshold is not None:
                for out in outputs:
                    if "masks" in out:
                        out["masks"] = out["masks"].float() >= mask_threshold
        return [
            {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu() for k, v in out.items()}
            for out in outputs
        ]

    return predict


def _is_mask_rcnn(model: Any) -> bool:
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

    return isinstance(model, GeneralizedRCNN) and getattr(model.roi_heads, "mask_predictor", None) is not None


def _predict_mask_crops(model: Any, images: list[torch.Tensor], mask_threshold: float | None) -> list[dict[str, Any]]:
    """A torchvision Mask R-CNN's forward (eval) with ``mask_crops`` in place of ``masks``: each
    detection's mask only over its own box, ``(crop (h, w), (x0, y0) tile px)``, with exactly the values
    torchvision pastes there (binary at ``mask_threshold``; probabilities when None). torchvision pastes
    every mask into a zeroed full-tile image and stacks them (300 detections x 512 x 512 floats per
    tile): 10-13 % of the model's time on 2 CPU cores (BENCHMARKS.md)."""
    from torchvision.models.detection.transform import resize_boxes

    sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
    batch, _ = model.transform(images)
    features = model.backbone(batch.tensors)
    proposals, _ = model.rpn(batch, features)
    found, _ = model.roi_heads(features, proposals, batch.image_sizes)
    outputs = []
    for out, resized, size in zip(found, batch.image_sizes, sizes):
        boxes = resize_boxes(out["boxes"], resized, size)
        crops = mask_crops(out["masks"], boxes, size, mask_threshold)
        outputs.append(
            {"boxes": boxes.float(), "labels": out["labels"], "scores": out["scores"].float(), "mask_crops": crops}
        )
    return outputs


def mask_crops(
    masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int], mask_threshold: float | None
) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """torchvision's ``paste_masks_in_image`` (``(N, 1, M, M)`` mask logits' probabilities resized
    into their boxes, expanded by one mask pixel; ``size`` the image's ``(h, w)``), keeping of each
    pasted mask only its box clipped to the image: ``(crop, (x0, y0))`` numpy crops, bool when
    ``mask_threshold`` is given."""
    import torch
    import torch.nn.functional as F
    from torchvision.models.detection.roi_heads import expand_boxes, expand_masks

    masks, scale = expand_masks(masks, padding=1)
    boxes = expand_boxes(boxes, scale).to(dtype=torch.int64)
    im_h, im_w = size
    out = []
    for mask, box in zip(masks, boxes.tolist()):
        x0, y0, x1, y1 = box
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        resized = F.interpolate(mask[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1 + 1, im_w), min(y1 + 1, im_h)
        crop = resized[cy0 - y0 : max(cy1, cy0) - y0, cx0 - x0 : max(cx1, cx0) - x0]
        crop = crop >= mask_threshold if mask_threshold is not None else crop
        out.append((crop.cpu().numpy(), (cx0, cy0)))
    return out


def _float32_predictors(model: Any, device_type: str) -> None:
    """Run the last layers of the ROI heads (class scores, box deltas, mask logits) in float32 under
    autocast: they cost little, and in bfloat16 the scores come out in steps of about 1/256 and the
    mask probabilities near 0.5 coarsely."""
    import torch

    class Float32(torch.nn.Module):
        float32_wrapper = True  # marks a layer already wrapped (the class is made anew per call)

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device_type, enabled=False):
                out: torch.Tensor = self.inner(x.float())
                return out

    heads = getattr(model, "roi_heads", None)
    for name in ("box_predictor", "mask_predictor"):
        layer = getattr(heads, name, None)
        if layer is not None and not getattr(layer, "float32_wrapper", False):
            setattr(heads, name, Float32(layer))


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> float32 ``torch.Tensor`` ``(3, H, W)`` in [0, 1] (the training input
    convention)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0)


def detections_from_output(
    output: dict[str, Any],
    tile: Tile,
    tile_index: int,
    wafer_size: tuple[int, int],
    *,
    score_threshold: float,
    mask_threshold: float,
    border_margin: int = 3,
    min_area: int = 4,
) -> list[Detection]:
    """Turn one tile's predictor output into :class:`Detection` objects in the working frame."""
    scores = np.asarray(output["scores"], dtype=np.float64).reshape(-1)
    labels = np.asarray(output["labels"]).reshape(-1)
    inner = inner_borders(tile, *wafer_size)
    h, w = tile.height, tile.width
    found = []
    for k in np.flatnonzero(scores >= score_threshold):
        if int(labels[k]) not in LABEL_NAMES:
            continue
        prob, (ox, oy) = _mask_of(output, int(k))
        binary = prob >= mask_threshold
        rows, cols = np.flatnonzero(binary.any(axis=1)), np.flatnonzero(binary.any(axis=0))
        if rows.size == 0:
            continue
        crop = binary[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        if crop.sum() < min_area:
            continue
        r0, r1, c0, c1 = oy + rows[0], oy + rows[-1] + 1, ox + cols[0], ox + cols[-1] + 1
        gaps = (c0, r0, w - c1, h - r1)  # distances to the left, top, right, bottom tile sides
        inner_gaps = [g for g, is_inner in zip(gaps, inner) if is_inner]
        distance = float(min(inner_gaps)) if inner_gaps else float("inf")
        found.append(
            Detection(
                int(labels[k]),
                float(scores[k]),
                np.ascontiguousarray(crop),
                (tile.x0 + int(c0), tile.y0 + int(r0)),
                tile_index,
                truncated=distance <= border_margin,
                border_distance=distance,
                sources=[tile_index],
            )
        )
    return found


def _mask_of(output: dict[str, Any], k: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Detection ``k``'s mask (probabilities or bool) and the tile px of its top-left pixel: its crop
    from ``mask_crops`` (:func:`mask_crops`), else the whole tile from ``masks``."""
    if "mask_crops" in output:
        crop, origin = output["mask_crops"][k]
        return np.asarray(crop), (int(origin[0]), int(origin[1]))
    prob = output["masks"][k, 0]
    return (prob.numpy() if hasattr(prob, "numpy") else np.asarray(prob)), (0, 0)


def prefetched(make: Callable[[_K], _V], keys: list[_K]) -> Iterator[tuple[_K, _V]]:
    """``(key, make(key))`` for each key in order, ``make`` of the next key running in a background
    thread meanwhile (reading and resampling the next tiles while the GPU works on these)."""
    from concurrent.futures import ThreadPoolExecutor

    if not keys:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sectionseg-tiles") as pool:
        pending = pool.submit(make, keys[0])
        for k, key in enumerate(keys):
            value = pending.result()
            if k + 1 < len(keys):
                pending = pool.submit(make, keys[k + 1])
            yield key, value


def predict_tiles(
    source: WaferSource,
    tiles: list[Tile],
    predictor: Predictor,
    *,
    batch_size: int = 2,
    score_threshold: float = 0.7,
    mask_threshold: float = 0.5,
    border_margin: int = 3,
    workers: int = 1,
    progress: bool = True,
    desc: str = "tiles",
    prefetch: bool = False,
) -> list[Detection]:
    """Run ``predictor`` on ``tiles`` of ``source`` in batches of ``batch_size``; all detections,
    unmerged, in tile order. ``workers`` > 1: batches run in that many forked processes with one
    torch thread each (:func:`~sectionseg.detection.parallel.fork_map`). ``prefetch`` (one worker:
    the GPU path): the next batch's tiles are read and resampled in a thread while the predictor
    runs (:func:`prefetched`)."""
    from tqdm.auto import tqdm

    from sectionseg.detection.parallel import fork_map

    size = max(1, batch_size)
    starts = list(range(0, len(tiles), size))

    def prepare(start: int) -> list[torch.Tensor]:
        return [to_tensor(source.tile_rgb(t)) for t in tiles[start : start + size]]

    def run_batch(start: int, tensors: list[torch.Tensor] | None = None) -> tuple[int, list[Detection]]:
        batch = tiles[start : start + size]
        outputs = predictor(prepare(start) if tensors is None else tensors)
        found = []
        for offset, (tile, output) in enumerate(zip(batch, outputs)):
            found += detections_from_output(
                output,
                tile,
                start + offset,
                source.size,
                score_threshold=score_threshold,
                mask_threshold=mask_threshold,
                border_margin=border_margin,
            )
        return len(batch), found

    bar = tqdm(total=len(tiles), desc=desc, unit="tile", disable=not progress, leave=False)
    try:
        results: list[tuple[int, list[Detection]]]
        if prefetch and workers <= 1:
            results = []
            for start, tensors in prefetched(prepare, starts):
                results.append(run_batch(start, tensors))
                bar.update(results[-1][0])
        else:
            results = fork_map(run_batch, starts, workers, on_result=lambda result: bar.update(result[0]))
    finally:
        bar.close()
    return [d for _, found in results for d in found]
