"""Torch Dataset output format, manifest handling, and whole-dataset builds (fake and real simulator)."""

import json

import numpy as np
import pytest
import tifffile
import torch
from torch.utils.data import DataLoader
from torchvision import tv_tensors

from sectionseg.datasets.build import assign_wafers, build_dataset
from sectionseg.datasets.samples import write_manifest
from sectionseg.datasets.tiles import cut_tiles
from sectionseg.datasets.torch_dataset import SectionDataset, collate_fn, read_manifest
from sectionseg.datasets.transforms import build_transforms
from sectionseg.errors import InputError
from sectionseg.geometry import Section
from sectionseg.geometry.raster import fill_polygon, polygon_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def fake_wafer(seed, width=256, height=256):
    """A small wafer: sections on a grid (random jitter), some with dummies; (rgb, sections)."""
    rng = np.random.default_rng(seed)
    rgb = np.clip(rng.normal(50, 4, (height, width, 3)), 0, 255).astype(np.uint8)
    sections = []
    for y in range(20, height - 60, 70):
        for x in range(15, width - 60, 80):
            dx, dy = rng.integers(0, 8, 2)
            s = Section.from_arrays(
                rect(x + dx, y + dy, x + dx + 50, y + dy + 30),
                rect(x + dx, y + dy + 30, x + dx + 50, y + dy + 42),
                rect(x + dx + 50, y + dy, x + dx + 56, y + dy + 30) if rng.random() < 0.3 else None,
            )
            fill_polygon(rgb, s.tissue.polygon, (200, 200, 70))
            fill_polygon(rgb, s.magnet.polygon, (90, 90, 220))
            sections.append(s)
    return rgb, sections


def fake_simulate(folder, *, seed, width, height, style="default"):
    """Stand-in for sectionseg.simulation.simulate_wafer writing the two files the build reads."""
    from sectionseg.formats import write_sections

    rgb, sections = fake_wafer(seed, width, height)
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / "rgb.tif", rgb, photometric="rgb")
    write_sections(folder / "sections.labelme.json", sections, fmt="labelme", image_size=(width, height))


@pytest.fixture
def tile_dataset(tmp_path):
    rgb, sections = fake_wafer(0, 300, 160)
    rgb[:, 150:] = 50  # right strip empty, so one tile has no section at all
    sections = [s for s in sections if s.tissue.polygon[:, 0].max() < 150]
    items = cut_tiles(rgb, sections, tmp_path, size=96, overlap=16, prefix="t", progress=False)
    write_manifest(tmp_path, {"train": items[:-1], "val": items[-1:]}, {"kind": "test"})
    return tmp_path, items


def test_dataset_items_have_maskrcnn_types(tile_dataset):
    root, items = tile_dataset
    ds = SectionDataset(root, "train")
    assert len(ds) == len(items) - 1
    n_instances = 0
    for i in range(len(ds)):
        image, target = ds[i]
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32 and image.shape == (3, 96, 96)
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        n = len(target["labels"])
        n_instances += n
        assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].format.name == "XYXY"
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (n, 4)
        assert target["labels"].dtype == torch.int64 and set(target["labels"].tolist()) <= {1, 2}
        assert isinstance(target["masks"], tv_tensors.Mask) and target["masks"].dtype == torch.uint8
        assert target["masks"].shape == (n, 96, 96)
        assert target["image_id"] == i and target["area"].shape == (n,) and target["iscrowd"].shape == (n,)
        # masks are the rasterised polygons of the annotation file
        from sectionseg.formats import read_sections

        secs = read_sections(root / items[i]["annotations"], fmt="labelme")
        tissue = [s.tissue for s in secs if s.tissue is not None and polygon_mask(s.tissue.polygon, (96, 96)).any()]
        assert int((target["labels"] == 1).sum()) == len(tissue)
    assert n_instances > 0
    val_image, val_target = SectionDataset(root, "val")[0]
    assert val_target["boxes"].shape == (0, 4) and val_target["masks"].shape == (0, 96, 96)


def test_dataloader_and_tiny_maskrcnn_forward(tile_dataset):
    import torchvision

    root, _ = tile_dataset
    ds = SectionDataset(root, "train", transforms=build_transforms(True, 96))
    torch.manual_seed(0)
    images, targets = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate_fn)))
    assert isinstance(images, tuple) and len(images) == len(targets) == 3
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=3, min_size=96, max_size=96
    )
    model.train()
    losses = model(list(images), list(targets))
    assert {"loss_classifier", "loss_mask", "loss_box_reg"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())


def test_from_items_in_memory():
    rgb, sections = fake_wafer(3, 128, 128)
    ds = SectionDataset.from_items([(rgb, sections), (rgb, [])])
    image, target = ds[0]
    assert image.shape == (3, 128, 128) and len(target["labels"]) == 2 * len(sections)
    assert torch.allclose(image[:, 0, 0], torch.from_numpy(rgb[0, 0]).float() / 255)
    assert ds[1][1]["masks"].shape == (0, 128, 128)
    with pytest.raises(IndexError):
        ds[2]


def test_bad_manifest_is_input_error(tmp_path):
    with pytest.raises(InputError):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(InputError):
        SectionDataset(tmp_path, "train")
    (tmp_path / "manifest.json").write_text(
        '{"format": "sectionseg-dataset", "classes": ["tissue", "magnet"], "splits": {"train": []}}'
    )
    with pytest.raises(InputError):
        SectionDataset(tmp_path, "nope")


def test_assign_wafers_holds_out_test_wafers():
    rng = np.random.default_rng(0)
    for n in (3, 4, 7, 10):
        got = assign_wafers(n, (900, 90, 50), rng)
        flat = got["train"] + got["val"] + got["test"]
        assert sorted(flat) == list(range(n))  # every wafer in exactly one split
        assert got["test"] and got["val"] and got["train"]
    assert assign_wafers(2, (1, 1, 1), rng)["train"] != assign_wafers(2, (1, 1, 1), rng)["test"]


def test_build_dataset_counts_split_by_wafer_and_reproducible(tmp_path):
    kwargs = dict(
        n_wafers=3,
        wafer_size=256,
        split=(20, 5, 4),
        patch_size=128,
        overlap=16,
        seed=7,
        sections_per_image=(1, 3),
        simulate=fake_simulate,
    )
    manifest = build_dataset(tmp_path / "a", **kwargs)
    splits = manifest["splits"]
    assert [len(splits[s]) for s in ("train", "val", "test")] == [20, 5, 4]
    sources = {s: {it["source"] for it in splits[s]} for s in splits}
    assert not sources["train"] & sources["test"] and not sources["train"] & sources["val"]
    assert not sources["val"] & sources["test"]
    kinds = {it["kind"] for it in splits["train"]}
    assert kinds == {"tile", "synthetic"}  # 9 tiles per wafer, the rest synthetic
    names = [it["image"] for s in splits.values() for it in s]
    assert len(names) == len(set(names))
    for it in splits["train"][:5]:
        assert (tmp_path / "a" / it["image"]).is_file() and (tmp_path / "a" / it["mask"]).is_file()
    assert SectionDataset(tmp_path / "a", "test")[0][0].shape == (3, 128, 128)
    again = build_dataset(tmp_path / "b", **kwargs)
    assert again["splits"] == manifest["splits"]
    for it in splits["val"]:
        assert (tmp_path / "a" / it["image"]).read_bytes() == (tmp_path / "b" / it["image"]).read_bytes()
    with pytest.raises(InputError):  # refuses to overwrite silently
        build_dataset(tmp_path / "a", **kwargs)


def test_build_dataset_fractions_one_wafer(tmp_path):
    manifest = build_dataset(
        tmp_path,
        n_wafers=1,
        wafer_size=256,
        split=None,
        fractions=(0.6, 0.2, 0.2),
        n_synthetic=5,
        patch_size=128,
        overlap=16,
        seed=1,
        simulate=fake_simulate,
    )
    splits = manifest["splits"]
    tiles = [tuple(it["origin"]) for s in splits.values() for it in s if it["kind"] == "tile"]
    assert len(tiles) == 9 and len(set(tiles)) == 9  # every tile once, in one split only
    assert sum(it["kind"] == "synthetic" for s in splits.values() for it in s) == 5
    assert manifest["params"]["held_out_wafers"] is False


def test_cli_dataset_end_to_end_with_simulator(tmp_path):
    simulation = pytest.importorskip("sectionseg.simulation")
    if not hasattr(simulation, "simulate_wafer"):
        pytest.skip("sectionseg.simulation.simulate_wafer is not available yet")
    from sectionseg.cli.main import main

    out = tmp_path / "ds"
    code = main(
        [
            "dataset",
            "--out",
            str(out),
            "--wafers",
            "3",
            "--wafer-size",
            "640",
            "--styles",
            "default,sparse",
            "--split",
            "6",
            "3",
            "2",
            "--patch-size",
            "256",
            "--overlap",
            "32",
            "--seed",
            "3",
            "--sections-per-image",
            "1",
            "3",
        ]
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [len(manifest["splits"][s]) for s in ("train", "val", "test")] == [6, 3, 2]
    test_sources = {it["source"] for it in manifest["splits"]["test"]}
    assert not test_sources & {it["source"] for it in manifest["splits"]["train"]}
    ds = SectionDataset(out, "train", transforms=build_transforms(True, 192))
    n = 0
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.shape == (3, 192, 192) and target["masks"].shape[1:] == (192, 192)
        n += len(target["labels"])
    assert n > 0
    assert main(["dataset", "--out", str(tmp_path / "x"), "--styles", "nope", "--wafers", "1"]) == 2


@pytest.mark.slow
def test_build_dataset_at_half_scale_in_parallel_matches_serial(tmp_path):
    from PIL import Image

    from sectionseg.formats import read_sections
    from sectionseg.io.resample import resample

    kwargs = dict(
        n_wafers=3,
        wafer_size=256,
        split=(6, 2, 2),
        patch_size=64,
        overlap=8,
        seed=2,
        sections_per_image=(1, 2),
        simulate=fake_simulate,
        scale=0.5,
    )
    manifest = build_dataset(tmp_path / "a", jobs=2, **kwargs)
    assert manifest["params"]["scale"] == 0.5 and manifest["params"]["image_section_size"] == 65.0
    tiles = [it for s in manifest["splits"].values() for it in s if it["kind"] == "tile"]
    assert tiles and max(max(it["origin"]) for it in tiles) + 64 == 128  # tiles cover the 128 px wafer
    tile = tiles[0]
    wafer = tmp_path / "a" / tile["source"]
    rgb = tifffile.imread(wafer / "rgb.tif")
    x0, y0 = tile["origin"]
    expected = resample(rgb, 0.5)[y0 : y0 + 64, x0 : x0 + 64]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / tile["image"]))[..., :3], expected)
    # a section whole inside the tile keeps its polygon, halved and shifted into the tile's frame
    scaled = [s.transformed(0.5) for s in read_sections(wafer / "sections.labelme.json", fmt="labelme")]
    inside = [
        s.tissue.polygon - (x0, y0)
        for s in scaled
        if s.tissue.polygon.min() >= 0
        and (s.tissue.polygon - (x0, y0)).min() >= 0
        and (s.tissue.polygon - (x0, y0)).max() <= 64
    ]
    found = [s.tissue.polygon for s in read_sections(tmp_path / "a" / tile["annotations"], fmt="labelme")]
    assert inside and all(any(np.allclose(p, q, atol=1e-6) for q in found) for p in inside)
    serial = build_dataset(tmp_path / "b", jobs=1, **kwargs)
    assert serial["splits"] == manifest["splits"]
    for it in manifest["splits"]["train"]:
        assert (tmp_path / "a" / it["image"]).read_bytes() == (tmp_path / "b" / it["image"]).read_bytes()
    with pytest.raises(InputError):
        build_dataset(tmp_path / "c", **{**kwargs, "scale": 0})
