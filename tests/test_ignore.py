"""Ignore masks: areas of unknown content carried through datasets and transforms and left out of
the detector's background loss (sectionseg.model.ignore)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from sectionseg.datasets.samples import write_manifest, write_sample
from sectionseg.datasets.torch_dataset import SectionDataset
from sectionseg.datasets.transforms import build_transforms, geometric_transforms
from sectionseg.geometry.section import Section
from sectionseg.model import build_model, load_config
from sectionseg.model.ignore import box_fractions, ignore_background
from sectionseg.training.loop import prepare_batch


def _rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def test_box_fractions_measure_the_covered_share_of_each_box():
    mask = torch.zeros(100, 100, dtype=torch.bool)
    mask[:, :50] = True  # the left half
    boxes = torch.tensor([[0, 0, 40, 40], [60, 0, 90, 30], [30, 10, 70, 50], [-20, 0, 20, 10], [200, 0, 210, 10]])
    got = box_fractions(mask, boxes.float())
    assert got.tolist() == pytest.approx([1.0, 0.0, 0.5, 0.5, 0.0])


def test_only_background_over_the_mask_is_ignored():
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[:32] = True
    boxes = torch.tensor([[0, 0, 20, 20], [0, 40, 20, 60], [0, 0, 20, 20], [0, 0, 20, 20]]).float()
    labels = torch.tensor([0, 0, 1, -1])
    assert ignore_background(labels, boxes, mask).tolist() == [-1, 0, 1, -1]
    assert ignore_background(labels, boxes, None).tolist() == labels.tolist()


def test_something_stays_to_train_on_when_the_mask_covers_everything():
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[:, :60] = True
    boxes = torch.tensor([[0, 0, 20, 20], [40, 0, 64, 20]]).float()  # both mostly inside the mask
    assert ignore_background(torch.tensor([0, 0]), boxes, mask).tolist() == [-1, 0]  # the least covered stays


def test_ignore_mask_travels_through_the_dataset_and_the_transforms(tmp_path):
    image = np.full((96, 128, 3), 120, np.uint8)
    image[10:40, 20:70] = 40
    ignore = np.zeros((96, 128), bool)
    ignore[60:90, 80:120] = True
    section = Section.from_arrays(_rect(20, 10, 70, 25), _rect(20, 25, 70, 40))
    items = [write_sample(tmp_path, "a", image, [section], ignore=ignore)]
    items.append(write_sample(tmp_path, "b", image, [section]))
    write_manifest(tmp_path, {"train": items}, {})
    ds = SectionDataset(tmp_path, "train", transforms=build_transforms(False))
    _, target = ds[0]
    assert torch.equal(target["ignore"].bool(), torch.from_numpy(ignore))
    assert "ignore" not in ds[1][1]
    images, targets = prepare_batch(([ds[0][0]], [target]), "cpu")
    assert targets[0]["ignore"].dtype == torch.bool and int(targets[0]["ignore"].sum()) == int(ignore.sum())
    _, moved = build_transforms(True, crop_size=64)(*SectionDataset(tmp_path, "train")[0])
    assert moved["ignore"].shape == (64, 64) and len(moved["masks"]) == len(moved["labels"])


def test_geometric_transforms_move_the_mask_with_the_image():
    torch.manual_seed(3)
    mask = torch.zeros(128, 128, dtype=torch.uint8)
    mask[30:70, 40:100] = 1
    image = tv_tensors.Image((mask * 255).expand(3, -1, -1).clone())
    target = {
        "boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(128, 128)),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": tv_tensors.Mask(torch.zeros(0, 128, 128, dtype=torch.uint8)),
        "ignore": tv_tensors.Mask(mask),
    }
    for _ in range(5):
        out, moved = v2.Compose(geometric_transforms(96, fill=0))(image, target)
        bright, marked = out[0] > 127, moved["ignore"].bool()
        assert (bright ^ marked).float().mean() < 0.02 and marked.any()


def test_ignored_background_changes_the_rpn_loss_and_keeps_it_finite():
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    image = torch.rand(3, 128, 128)
    target = {
        "boxes": torch.tensor([[20.0, 20.0, 60.0, 40.0]]),
        "labels": torch.tensor([1]),
        "masks": torch.zeros(1, 128, 128, dtype=torch.uint8),
    }
    target["masks"][0, 20:40, 20:60] = 1
    losses = {}
    for name, ignore in (("none", None), ("half", slice(64, None)), ("all", slice(None))):
        t = dict(target)
        if ignore is not None:
            t["ignore"] = torch.zeros(128, 128, dtype=torch.bool)
            t["ignore"][ignore] = True
        torch.manual_seed(1)
        losses[name] = model([image], [t])
        assert all(torch.isfinite(v) for v in losses[name].values())
    assert losses["half"]["loss_objectness"] != losses["none"]["loss_objectness"]
    assert losses["all"]["loss_objectness"] != losses["half"]["loss_objectness"]
