"""Synthetic pastes: no overlap, polygons match pixels, background free of sections, reproducible."""

import json

import numpy as np
import pytest
import shapely
import tifffile

from sectionseg.cli.main import main
from sectionseg.datasets.synth import extract_patches, generate_synthetic, rotate_patch, write_synthetic
from sectionseg.geometry import Section
from sectionseg.geometry.raster import fill_polygon, polygon_mask

TISSUE, MAGNET, DUMMY, BACKGROUND = (210, 200, 60), (80, 90, 235), (150, 40, 150), 40


def rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def make_wafer(seed=0, width=360, height=300):
    """Noisy background with 6 sections, one of them with a dummy strip."""
    rng = np.random.default_rng(seed)
    rgb = np.clip(rng.normal(BACKGROUND, 3, (height, width, 3)), 0, 255).astype(np.uint8)
    sections = []
    for i in range(6):
        x, y = 20 + (i % 3) * 115, 40 + (i // 3) * 130
        s = Section.from_arrays(
            rect(x, y, x + 60, y + 36),
            rect(x, y + 36, x + 60, y + 52),
            rect(x + 20, y - 14, x + 40, y) if i == 4 else None,
        )
        for name, colour in (("tissue", TISSUE), ("magnet", MAGNET), ("dummy", DUMMY)):
            if getattr(s, name) is not None:
                fill_polygon(rgb, getattr(s, name).polygon, colour)
        sections.append(s)
    return rgb, sections


def mean_colour(image, polygon):
    mask = polygon_mask(polygon, image.shape[:2])
    assert mask.sum() > 20
    return image[mask].astype(float).mean(axis=0)


def test_rotated_patch_polygons_follow_pixels():
    rgb, sections = make_wafer()
    patch = extract_patches(rgb, sections[:1], margin=5)[0]
    for angle in (0.0, 33.0, 90.0, 211.5):
        rot = rotate_patch(patch, angle)
        assert np.allclose(mean_colour(rot.image, rot.section.tissue.polygon), TISSUE, atol=6)
        assert np.allclose(mean_colour(rot.image, rot.section.magnet.polygon), MAGNET, atol=6)
        assert rot.section.tissue.area == pytest.approx(60 * 36, rel=1e-6)
        expected = (patch.section.tissue.angle + angle) % 180
        assert min(abs(rot.section.tissue.angle - expected), 180 - abs(rot.section.tissue.angle - expected)) < 0.5
        assert rot.footprint.contains(shapely.Polygon(rot.section.tissue.polygon))


def test_synthetic_images_no_overlap_and_pixels_match():
    rgb, sections = make_wafer()
    out = list(generate_synthetic(rgb, sections, 4, size=256, rng=3, n_per_image=(3, 5), margin=5))
    assert len(out) == 4
    counts, angles, dummies = [], [], 0
    for image, secs in out:
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        counts.append(len(secs))
        areas = [shapely.unary_union([shapely.Polygon(p.polygon) for p in s.parts().values()]) for s in secs]
        for i in range(len(areas)):
            for j in range(i + 1, len(areas)):
                assert areas[i].distance(areas[j]) > 0, "pasted sections overlap"
        covered = np.zeros((256, 256), bool)
        for s in secs:
            for p in s.parts().values():
                assert p.polygon.min() >= 0 and p.polygon.max() <= 256  # fully inside the image
            assert np.allclose(mean_colour(image, s.tissue.polygon), TISSUE, atol=6)
            assert np.allclose(mean_colour(image, s.magnet.polygon), MAGNET, atol=6)
            if s.dummy is not None:
                dummies += 1
                assert np.allclose(mean_colour(image, s.dummy.polygon), DUMMY, atol=10)
            angles.append(s.tissue.angle)
            covered |= polygon_mask(
                shapely.unary_union([shapely.Polygon(p.polygon) for p in s.parts().values()]).buffer(6).exterior.coords,
                (256, 256),
            )
        # outside the pasted sections: wafer background only (the wafer's own sections were painted out)
        outside = image[~covered].astype(float)
        assert abs(outside.mean() - BACKGROUND) < 3
        assert not np.any(np.all(np.abs(outside - TISSUE) < 25, axis=1))
    assert all(3 <= c <= 5 for c in counts)
    assert np.ptp(angles) > 30  # rotated by various angles
    assert dummies >= 1  # the dummy strip travels with its section


def test_same_seed_same_images():
    rgb, sections = make_wafer()
    a = list(generate_synthetic(rgb, sections, 2, size=200, rng=11, n_per_image=(2, 4)))
    b = list(generate_synthetic(rgb, sections, 2, size=200, rng=np.random.default_rng(11), n_per_image=(2, 4)))
    c = list(generate_synthetic(rgb, sections, 2, size=200, rng=12, n_per_image=(2, 4)))
    for (ia, sa), (ib, sb) in zip(a, b):
        assert np.array_equal(ia, ib) and sa == sb
    assert not all(np.array_equal(ia, ic) for (ia, _), (ic, _) in zip(a, c))


def test_no_pastable_section_is_an_error():
    rgb, _ = make_wafer()
    with pytest.raises(ValueError):
        next(generate_synthetic(rgb, [Section.from_arrays(rect(-5, 0, 30, 20), rect(-5, 20, 30, 30))], 1, 128))


def test_write_synthetic_and_cli(tmp_path):
    from sectionseg.formats import read_sections, write_sections

    rgb, sections = make_wafer()
    items = write_synthetic(tmp_path / "api", rgb, sections, 2, size=160, rng=1, n_per_image=(1, 3), progress=False)
    assert [it["kind"] for it in items] == ["synthetic"] * 2
    secs = read_sections(tmp_path / "api" / items[0]["annotations"], fmt="labelme")
    assert 1 <= len(secs) <= 3

    tifffile.imwrite(tmp_path / "wafer.tif", rgb, photometric="rgb")
    write_sections(tmp_path / "gt.json", sections, fmt="labelme")
    argv = [
        "synth",
        str(tmp_path / "wafer.tif"),
        "--labels",
        str(tmp_path / "gt.json"),
        "--count",
        "3",
        "--size",
        "160",
        "--seed",
        "5",
        "--sections-per-image",
        "2",
        "3",
    ]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    assert main(argv + ["--out", str(tmp_path / "b")]) == 0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["params"]["seed"] == 5 and len(manifest["splits"]["train"]) == 3
    for it in manifest["splits"]["train"]:
        for key in ("image", "annotations", "mask"):
            assert (tmp_path / "a" / it[key]).read_bytes() == (tmp_path / "b" / it[key]).read_bytes()
    assert main(argv[:4] + ["--count", "1", "--sections-per-image", "4", "2", "--out", str(tmp_path / "c")]) == 2


def test_touching_neighbours_are_not_pasted_along():
    rng = np.random.default_rng(0)
    rgb = np.clip(rng.normal(BACKGROUND, 3, (200, 260, 3)), 0, 255).astype(np.uint8)
    sections = [Section.from_arrays(rect(x, 60, x + 50, 90), rect(x, 90, x + 50, 102)) for x in (40, 93, 146)]
    for s in sections:  # 3 px gaps: each section's margin holds a strip of its neighbours
        fill_polygon(rgb, s.tissue.polygon, TISSUE)
        fill_polygon(rgb, s.magnet.polygon, MAGNET)
    for image, secs in generate_synthetic(rgb, sections, 3, size=220, rng=2, n_per_image=(2, 3), margin=8):
        for s in secs:
            union = shapely.unary_union([shapely.Polygon(p.polygon) for p in s.parts().values()])
            ring = polygon_mask(union.buffer(7).exterior.coords, image.shape[:2]) & ~polygon_mask(
                union.buffer(2.5).exterior.coords, image.shape[:2]
            )
            # even blended by the feathered alpha, a neighbour strip would stand out from the background
            assert np.abs(image[ring].astype(float) - BACKGROUND).max() < 25, "neighbour pasted along"


def test_wafer_smaller_than_image_size():
    rgb, sections = make_wafer(width=200, height=150)
    sections = [s for s in sections if s.tissue.polygon.max() < 140]
    ((image, secs),) = generate_synthetic(rgb, sections, 1, size=256, rng=0, n_per_image=(2, 2))
    assert image.shape == (256, 256, 3) and len(secs) == 2
