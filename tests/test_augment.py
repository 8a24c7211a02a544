"""Augmentation: masks, boxes and pixels stay aligned through every transform; no distortions."""

import cv2
import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2

from sectionseg.datasets.torch_dataset import make_target, to_image
from sectionseg.datasets.transforms import (
    FinalizeTarget,
    RandomGamma,
    RandomRotation,
    TightBoxes,
    build_transforms,
    masks_to_tight_boxes,
)
from sectionseg.geometry import Section
from sectionseg.geometry.raster import fill_polygon

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SIZE = 160
# tissue instances red-dominant, magnet instances blue-dominant, all distinct
TISSUE_COLOURS = [(230, 60, 30), (170, 20, 100)]
MAGNET_COLOURS = [(30, 110, 220), (110, 170, 250)]


def box(cx, cy, w, h, angle):
    a = np.radians(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], float) / 2
    return pts @ rot.T + (cx, cy)


def sample():
    """Image with two sections; each of the 4 instances has its own colour. Returns image, target, colours."""
    rgb = np.full((SIZE, SIZE, 3), 15, np.uint8)
    s1 = Section.from_arrays(box(50, 45, 50, 26, 20), box(45, 70, 50, 14, 20))
    s2 = Section.from_arrays(box(110, 110, 44, 24, -35), box(120, 125, 44, 12, -35))
    colours = [TISSUE_COLOURS[0], MAGNET_COLOURS[0], TISSUE_COLOURS[1], MAGNET_COLOURS[1]]
    for poly, col in zip([s1.tissue, s1.magnet, s2.tissue, s2.magnet], colours):
        fill_polygon(rgb, poly.polygon, col)
    target = make_target([s1, s2], SIZE, SIZE, image_id=7)
    assert target["masks"].sum(dim=(1, 2)).min() > 100
    assert not (target["masks"].sum(0) > 1).any()
    return to_image(rgb), target, colours


def as_uint8(image):
    img = image.as_subclass(torch.Tensor)
    if img.is_floating_point():
        img = (img * 255).round()
    return img.to(torch.uint8)


def inner_mean(image, mask):
    """Mean colour of the image inside the mask eroded by 2 px (interpolated edges left out), or None."""
    m = cv2.erode(mask.numpy().astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
    if m.sum() < 10:
        return None
    return as_uint8(image).permute(1, 2, 0).numpy()[m].astype(float).mean(axis=0)


def check_boxes(target, tol=1.0):
    masks, boxes = target["masks"], target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format == tv_tensors.BoundingBoxFormat.XYXY
    assert isinstance(masks, tv_tensors.Mask) and masks.dtype == torch.uint8
    keep = masks.flatten(1).bool().any(dim=1)
    if keep.any():
        ref = masks_to_boxes(masks[keep])
        assert (boxes[keep].as_subclass(torch.Tensor) - ref).abs().max() <= tol + 1e-4


def check_colours(image, target, colours):
    for i, col in enumerate(colours):
        got = inner_mean(image, target["masks"][i])
        if got is not None:
            assert np.allclose(got, col, atol=6), (i, got, col)


GEOMETRIC = {
    "rotate30": v2.RandomRotation(degrees=(30, 30), interpolation=v2.InterpolationMode.BILINEAR),
    "rotate137": v2.RandomRotation(degrees=(137, 137), interpolation=v2.InterpolationMode.BILINEAR),
    "rotate_random": v2.RandomRotation(degrees=180, interpolation=v2.InterpolationMode.BILINEAR),
    "rotate_median_fill": RandomRotation(degrees=180, fill="median"),
    "crop": v2.RandomCrop(96),
    "crop_pad": v2.RandomCrop(200, pad_if_needed=True),
    "hflip": v2.RandomHorizontalFlip(p=1.0),
    "vflip": v2.RandomVerticalFlip(p=1.0),
}
PHOTOMETRIC = {
    "blur": v2.GaussianBlur(kernel_size=9, sigma=(0.1, 2.0)),
    "jitter": v2.ColorJitter(brightness=0.3, contrast=0.3),
    "gamma": RandomGamma((0.6, 1.5), p=1.0),
}


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
def test_each_geometric_transform_keeps_masks_boxes_pixels_aligned(name):
    torch.manual_seed(0)
    for _ in range(4):
        image, target, colours = sample()
        out_img, out_t = GEOMETRIC[name](image, target)
        assert out_t["masks"].shape[-2:] == out_img.shape[-2:]
        check_colours(out_img, out_t, colours)
        if name.endswith("flip"):  # v2 moves boxes exactly for flips (crops and rotations loosen them)
            check_boxes(out_t)
        out_img, out_t = TightBoxes()(out_img, out_t)  # rotation: boxes recomputed from masks
        check_boxes(out_t)
        check_colours(out_img, out_t, colours)


def test_rotation_preserves_shapes():
    """Rigid: the area of an instance that stays inside the image is unchanged by rotation."""
    image, target, _ = sample()
    areas = target["masks"].flatten(1).sum(1).float()
    _, out = GEOMETRIC["rotate30"](image, target)
    assert torch.allclose(out["masks"].flatten(1).sum(1).float(), areas, rtol=0.06)


@pytest.mark.parametrize("name", sorted(PHOTOMETRIC))
def test_photometric_transforms_change_image_only(name):
    torch.manual_seed(1)
    image, target, colours = sample()
    out_img, out_t = PHOTOMETRIC[name](image, target)
    assert out_img.shape == image.shape and out_img.dtype == image.dtype
    for key in ("masks", "boxes", "labels"):
        assert torch.equal(out_t[key], target[key])
    # per-channel monotonic changes keep tissue red-dominant and magnet blue-dominant
    for i, label in enumerate(target["labels"].tolist()):
        r, _, b = inner_mean(out_img, out_t["masks"][i])
        assert (r > b) if label == 1 else (b > r)


def test_composed_geometric_pipeline_alignment():
    tf = build_transforms(True, 128, p_blur=0.0, brightness=0.0, contrast=0.0, p_gamma=0.0)
    torch.manual_seed(2)
    for _ in range(8):
        image, target, colours = sample()
        out_img, out_t = tf(image, target)
        check_boxes(out_t)
        for i in range(len(out_t["labels"])):
            got = inner_mean(out_img, out_t["masks"][i])
            if got is not None:  # matches the colour of one instance of the same class
                options = TISSUE_COLOURS if out_t["labels"][i] == 1 else MAGNET_COLOURS
                assert min(np.abs(got - np.array(c)).max() for c in options) <= 6


def test_composed_full_pipeline_outputs():
    tf = build_transforms(True, 128)
    torch.manual_seed(3)
    for _ in range(8):
        image, target, _ = sample()
        out_img, out_t = tf(image, target)
        assert isinstance(out_img, tv_tensors.Image) and out_img.dtype == torch.float32
        assert out_img.shape == (3, 128, 128) and out_img.min() >= 0 and out_img.max() <= 1
        n = len(out_t["labels"])
        assert out_t["boxes"].shape == (n, 4) and out_t["masks"].shape == (n, 128, 128)
        assert out_t["area"].shape == (n,) and out_t["iscrowd"].shape == (n,)
        assert out_t["labels"].dtype == torch.int64 and out_t["iscrowd"].dtype == torch.int64
        assert torch.equal(out_t["area"], out_t["masks"].flatten(1).sum(1).float())
        check_boxes(out_t)
        assert (out_t["masks"].flatten(1).sum(1) > 0).all()  # emptied instances were dropped
        w = out_t["boxes"][:, 2] - out_t["boxes"][:, 0]
        h = out_t["boxes"][:, 3] - out_t["boxes"][:, 1]
        assert (w >= 2).all() and (h >= 2).all()
        for i, label in enumerate(out_t["labels"].tolist()):
            mean = inner_mean(out_img, out_t["masks"][i])
            if mean is not None:
                assert (mean[0] > mean[2]) if label == 1 else (mean[2] > mean[0])


def test_instances_cropped_away_are_dropped_consistently():
    image, target, _ = sample()
    tf = v2.Compose([v2.RandomCrop(60), TightBoxes(), v2.SanitizeBoundingBoxes(min_size=2), FinalizeTarget()])
    torch.manual_seed(4)
    counts = set()
    for _ in range(10):
        _, out = tf(image, target)
        n = len(out["labels"])
        counts.add(n)
        assert out["masks"].shape[0] == out["boxes"].shape[0] == out["area"].shape[0] == out["iscrowd"].shape[0] == n
    assert min(counts) < 4


def test_empty_target_passes_through():
    image = to_image(np.zeros((100, 90, 3), np.uint8))
    target = make_target([], 100, 90)
    out_img, out_t = build_transforms(True, 64)(image, target)
    assert out_img.shape == (3, 64, 64)
    assert out_t["boxes"].shape == (0, 4) and out_t["masks"].shape == (0, 64, 64) and out_t["labels"].shape == (0,)


def test_pipeline_has_no_distortions():
    allowed = (
        v2.RandomRotation,
        v2.RandomCrop,
        v2.RandomHorizontalFlip,
        v2.RandomVerticalFlip,
        v2.RandomApply,
        v2.GaussianBlur,
        v2.ColorJitter,
        RandomGamma,
        TightBoxes,
        v2.SanitizeBoundingBoxes,
        FinalizeTarget,
        v2.ToDtype,
    )
    forbidden = (
        v2.ElasticTransform,
        v2.RandomAffine,
        v2.RandomPerspective,
        v2.RandomResizedCrop,
        v2.ScaleJitter,
        v2.RandomZoomOut,
        v2.RandomIoUCrop,
    )

    def walk(t):
        yield t
        for child in getattr(t, "transforms", []):
            yield from walk(child)

    for train in (True, False):
        found = list(walk(build_transforms(train)))[1:]
        assert found and all(isinstance(t, allowed) for t in found), [type(t).__name__ for t in found]
        assert not any(isinstance(t, forbidden) for t in found)
    rotations = [t for t in walk(build_transforms(True)) if isinstance(t, v2.RandomRotation)]
    assert rotations and not rotations[0].expand and tuple(rotations[0].degrees) == (-180.0, 180.0)


def test_tight_boxes_pixel_edge_convention():
    masks = torch.zeros((2, 10, 12), dtype=torch.uint8)
    masks[0, 2:5, 3:9] = 1
    boxes = masks_to_tight_boxes(masks)
    assert boxes[0].tolist() == [3, 2, 9, 5] and boxes[1].tolist() == [0, 0, 0, 0]


def test_median_fill_rotation_corners_look_like_background():
    image, target, colours = sample()
    image = tv_tensors.Image(
        torch.where(image == 15, torch.tensor([100, 110, 120], dtype=torch.uint8)[:, None, None], image)
    )
    out_img, out_t = RandomRotation(degrees=(45, 45))(image, target)
    assert out_img[:, 0, 0].tolist() == [100, 110, 120]  # a corner that came from outside the image
    assert out_t["masks"][:, 0, 0].sum() == 0
    check_colours(out_img, out_t, colours)


def _sample(h=64, w=64):
    image = tv_tensors.Image(torch.randint(0, 255, (3, h, w), dtype=torch.uint8))
    masks = torch.zeros((1, h, w), dtype=torch.uint8)
    masks[0, 16:40, 12:50] = 1
    target = {
        "boxes": tv_tensors.BoundingBoxes(torch.tensor([[12.0, 16, 50, 40]]), format="XYXY", canvas_size=(h, w)),
        "labels": torch.tensor([1]),
        "masks": tv_tensors.Mask(masks),
        "area": torch.tensor([912.0]),
        "iscrowd": torch.tensor([0]),
        "image_id": 0,
    }
    return image, target


def test_gray_only_repeats_gray_in_the_third_channel_at_its_rate():
    from sectionseg.datasets.transforms import GrayOnly

    torch.manual_seed(0)
    image, target = _sample()
    out, t = GrayOnly(1.0)(image, target)
    assert torch.equal(out[2], image[0]) and torch.equal(out[:2], image[:2])
    assert torch.equal(t["masks"], target["masks"])
    assert torch.equal(GrayOnly(0.0)(image, target)[0], image)
    hits = sum(torch.equal(GrayOnly(0.5)(image, target)[0][2], image[0]) for _ in range(200))
    assert 60 < hits < 140


def test_training_pipeline_with_gray_only_and_jpeg_keeps_masks_and_dtype():
    torch.manual_seed(1)
    image, target = _sample(96, 96)
    tf = build_transforms(True, crop_size=64, gray_only_probability=1.0, jpeg_probability=1.0)
    out, t = tf(image, target)
    assert out.dtype == torch.float32 and out.shape == (3, 64, 64)
    assert torch.equal(out[2], out[0])
    assert t["masks"].dtype == torch.uint8 and set(t["masks"].unique().tolist()) <= {0, 1}
