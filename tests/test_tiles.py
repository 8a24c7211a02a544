"""Tiles: origins cover the image, clipping keeps the clipped part, written files agree."""

import json

import numpy as np
import pytest
import shapely
import tifffile

from sectionseg.cli.main import main
from sectionseg.datasets.labels import instance_id_image
from sectionseg.datasets.tiles import cut_tiles, iter_tiles, tile_sections
from sectionseg.geometry import Section
from sectionseg.geometry.raster import fill_polygon


def rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


@pytest.mark.parametrize(
    "width,height,size,overlap", [(1000, 700, 256, 32), (512, 512, 512, 64), (513, 300, 256, 0), (100, 90, 256, 64)]
)
def test_tiles_cover_image_exactly(width, height, size, overlap):
    origins = iter_tiles(width, height, size, overlap)
    covered = np.zeros((height, width), int)
    for x0, y0 in origins:
        assert x0 >= 0 and y0 >= 0
        assert x0 + min(size, width) <= width and y0 + min(size, height) <= height  # never beyond the image
        covered[y0 : y0 + size, x0 : x0 + size] += 1
    assert covered.min() >= 1
    xs, ys = sorted({o[0] for o in origins}), sorted({o[1] for o in origins})
    assert xs[0] == 0 and ys[0] == 0
    assert xs[-1] == max(0, width - size) and ys[-1] == max(0, height - size)  # last tile flush
    assert all(b - a <= size - overlap for a, b in zip(xs, xs[1:]))  # at least `overlap` shared
    assert len(origins) == len(xs) * len(ys)


def test_iter_tiles_rejects_bad_overlap():
    with pytest.raises(ValueError):
        iter_tiles(100, 100, 64, 64)


def test_straddling_section_is_clipped_into_both_tiles():
    tissue, magnet = rect(200, 50, 300, 110), rect(200, 110, 300, 140)
    sections = [Section.from_arrays(tissue, magnet, rect(230, 20, 240, 50))]
    origins = iter_tiles(512, 256, size=256, overlap=0)
    assert origins == [(0, 0), (256, 0)]
    left = tile_sections(sections, 0, 0, 256)
    right = tile_sections(sections, 256, 0, 256)
    assert len(left) == len(right) == 1
    assert left[0].extra.get("clipped") and right[0].extra.get("clipped")
    assert left[0].tissue.area == pytest.approx(56 * 60) and right[0].tissue.area == pytest.approx(44 * 60)
    # back in wafer coordinates, the pieces tile the original part
    for name, original in (("tissue", tissue), ("magnet", magnet)):
        a = shapely.Polygon(getattr(left[0], name).polygon)
        b = shapely.affinity.translate(shapely.Polygon(getattr(right[0], name).polygon), 256, 0)
        assert a.intersection(b).area == pytest.approx(0, abs=1e-6)
        assert a.union(b).symmetric_difference(shapely.Polygon(original)).area == pytest.approx(0, abs=1e-6)
    assert left[0].dummy is not None and right[0].dummy is None  # dummy lies in the left tile only
    xs = right[0].tissue.polygon[:, 0]
    assert xs.min() == pytest.approx(0) and xs.max() == pytest.approx(44)


def test_small_pieces_and_lone_dummies_are_dropped():
    sliver = Section.from_arrays(rect(250, 10, 258, 40), rect(250, 40, 258, 44))  # 2 px into the right tile
    right = tile_sections([sliver], 256, 0, 256)
    assert len(right) == 1 and right[0].magnet is None  # 2 x 4 px magnet piece < 20 px^2
    assert right[0].tissue.area == pytest.approx(2 * 30)
    assert tile_sections([sliver], 256, 0, 256, min_area=1.0)[0].magnet.area == pytest.approx(2 * 4)
    assert tile_sections([sliver], 0, 0, 256, min_fraction=0.9) == []  # 75 % of each part is inside
    assert len(tile_sections([sliver], 0, 0, 256, min_fraction=0.5)) == 1
    only_dummy_inside = Section.from_arrays(rect(10, 10, 50, 40), rect(10, 40, 50, 50), rect(60, 10, 70, 50))
    assert tile_sections([only_dummy_inside], 55, 0, 100) == []  # a dummy alone is no instance


def _wafer(width=300, height=200):
    """Dark wafer with three sections (tissue bright, magnet bluish), the middle one with a dummy."""
    rgb = np.full((height, width, 3), 20, np.uint8)
    sections = []
    for i, x in enumerate((20, 120, 220)):
        s = Section.from_arrays(
            rect(x, 60, x + 60, 100), rect(x, 100, x + 60, 115), rect(x + 20, 40, x + 40, 60) if i == 1 else None
        )
        fill_polygon(rgb, s.tissue.polygon, (200, 200, 60))
        fill_polygon(rgb, s.magnet.polygon, (90, 90, 230))
        if s.dummy is not None:
            fill_polygon(rgb, s.dummy.polygon, (150, 150, 150))
        sections.append(s)
    return rgb, sections


def test_cut_tiles_writes_aligned_images_annotations_masks(tmp_path):
    from PIL import Image

    from sectionseg.formats import read_sections

    rgb, sections = _wafer()
    items = cut_tiles(rgb, sections, tmp_path, size=128, overlap=16, prefix="w", progress=False)
    assert len(items) == len(iter_tiles(300, 200, 128, 16))
    n_dummies = 0
    for item in items:
        x0, y0 = item["origin"]
        image = np.asarray(Image.open(tmp_path / item["image"]))
        assert image.shape == (128, 128, 3) and np.array_equal(image, rgb[y0 : y0 + 128, x0 : x0 + 128])
        secs = read_sections(tmp_path / item["annotations"], fmt="labelme")
        n_dummies += sum(s.dummy is not None for s in secs)
        mask = np.asarray(Image.open(tmp_path / item["mask"]))
        assert mask.dtype == np.uint16 and np.array_equal(mask, instance_id_image(secs, 128, 128))
        # the clipped tissue polygons cover exactly the tissue-coloured pixels of the patch
        tissue = np.zeros((128, 128), np.uint8)
        for s in secs:
            if s.tissue is not None:
                fill_polygon(tissue, s.tissue.polygon, 1)
        assert np.array_equal(tissue.astype(bool), (image == (200, 200, 60)).all(axis=2))
        doc = json.loads((tmp_path / item["annotations"]).read_text())
        assert doc["imageWidth"] == 128 and doc["imageHeight"] == 128
        assert doc["imagePath"] == "../" + item["image"]
    assert n_dummies >= 1  # dummies are kept in the annotations


def test_cli_tiles_gray_and_fluo(tmp_path):
    from sectionseg.formats import write_sections

    rgb, sections = _wafer()
    tifffile.imwrite(tmp_path / "gray.tif", rgb[..., 0].astype(np.uint16) * 100)
    tifffile.imwrite(tmp_path / "fluo.tif", rgb[..., 2])
    write_sections(tmp_path / "gt.json", sections, fmt="labelme")
    out = tmp_path / "out"
    code = main(
        [
            "tiles",
            str(tmp_path / "gray.tif"),
            "--fluo",
            str(tmp_path / "fluo.tif"),
            "--labels",
            str(tmp_path / "gt.json"),
            "--out",
            str(out),
            "--size",
            "128",
            "--overlap",
            "16",
        ]
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "sectionseg-dataset" and manifest["classes"] == ["tissue", "magnet"]
    assert len(manifest["splits"]["train"]) == len(iter_tiles(300, 200, 128, 16))
    assert all(
        (out / it["image"]).is_file() and (out / it["annotations"]).is_file() for it in manifest["splits"]["train"]
    )


def test_write_tile_set_api_matches_the_command(tmp_path):
    """``sectionseg.workflows.write_tile_set``, the work of ``tiles``, called directly."""
    from sectionseg.formats import write_sections
    from sectionseg.workflows import write_tile_set

    rgb, sections = _wafer()
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    write_sections(tmp_path / "gt.json", sections, fmt="labelme")
    items, read = write_tile_set(
        tmp_path / "rgb.tif", tmp_path / "gt.json", tmp_path / "api", size=128, overlap=16, keep_empty=False
    )
    assert len(read) == len(sections) and 0 < len(items) <= len(iter_tiles(300, 200, 128, 16))
    assert (
        main(
            [
                "tiles",
                str(tmp_path / "rgb.tif"),
                "--labels",
                str(tmp_path / "gt.json"),
                "--out",
                str(tmp_path / "cli"),
                "--size",
                "128",
                "--overlap",
                "16",
                "--skip-empty",
            ]
        )
        == 0
    )
    api, cli = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("api", "cli"))
    assert api["splits"] == cli["splits"]
    assert api["params"]["skip_empty"] is True and api["params"]["size"] == 128


def test_cli_tiles_rgb_and_missing_labels(tmp_path, capsys):
    rgb, _ = _wafer()
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    code = main(
        ["tiles", str(tmp_path / "rgb.tif"), "--labels", str(tmp_path / "nope.json"), "--out", str(tmp_path / "out")]
    )
    assert code == 2
    assert "nope.json" in capsys.readouterr().err
