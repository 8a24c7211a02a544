"""Adaptation on a wafer the detectors do not know: every area that is not bare wafer is found
without a detector and kept out of synthetic backgrounds and context tiles."""

import numpy as np
import pytest
import shapely

from sectionseg.datasets.adapt import build_adaptation_set, content_regions, unknown_areas
from sectionseg.datasets.synth import footprint
from sectionseg.datasets.torch_dataset import SectionDataset
from sectionseg.geometry.raster import polygon_mask
from sectionseg.io.images import compose_rgb
from sectionseg.simulation import get_style, random_layout, render_wafer


def _wafer(style, seed=4, size=900, n=14):
    rng = np.random.default_rng(seed)
    params = get_style(style).sample(rng)
    params.update(bit_depth=8, padding_probability=1.0, section_size=110.0)
    sections = random_layout(
        rng,
        size,
        size,
        n_sections=n,
        region="full",
        size_range=(100, 120),
        aspect_range=params["aspect_range"],
        magnet_ratio_range=params["magnet_ratio_range"],
    )
    gray, fluo = render_wafer(sections, size, size, params, rng)
    return sections, gray, fluo


def _covered(regions, sections):
    union = shapely.unary_union([footprint(r, 0) for r in regions])
    return [footprint(s, 0).intersection(union).area / footprint(s, 0).area for s in sections]


@pytest.mark.parametrize("style, with_fluo", [("realistic", False), ("held-bright", True)])
def test_content_regions_cover_every_unlabelled_section_of_either_polarity(style, with_fluo):
    # (gray-only wafers whose magnets are within a few % of the wafer's level lose those magnets)
    sections, gray, fluo = _wafer(style)
    rgb = compose_rgb(gray, fluo if with_fluo else None).rgb
    labelled, rest = sections[:4], sections[4:]
    area = float(np.median([s.tissue.area for s in sections]))
    regions = content_regions(rgb, labelled, min_area=0.3 * area)
    covered = np.array(_covered(regions, rest))
    assert covered.min() > 0.7 and np.mean(covered > 0.9) >= 0.9, style


def test_padding_and_small_debris_are_no_content():
    sections, gray, fluo = _wafer("realistic")
    rgb = compose_rgb(gray, fluo).rgb
    area = float(np.median([s.tissue.area for s in sections]))
    regions = content_regions(rgb, sections, min_area=0.3 * area)  # everything labelled
    assert all(footprint(r, 0).area >= 0.3 * area for r in regions)
    padded = gray == 0
    if padded.any():
        union = shapely.unary_union([footprint(r, 0) for r in regions])
        ys, xs = np.nonzero(padded)
        sample = np.random.default_rng(0).choice(xs.size, size=min(200, xs.size), replace=False)
        inside = shapely.contains_xy(union, xs[sample] + 0.5, ys[sample] + 0.5) if not union.is_empty else []
        assert not np.any(inside)


def test_context_tiles_show_no_unlabelled_section(tmp_path):
    sections, gray, fluo = _wafer("realistic", seed=7)
    rgb = compose_rgb(gray, fluo).rgb
    labelled, unlabelled = sections[:3], sections[3:]
    area = float(np.median([s.tissue.area for s in sections]))
    content = content_regions(rgb, labelled, min_area=0.3 * area)
    manifest = build_adaptation_set(
        tmp_path,
        rgb,
        labelled,
        content=content,
        n_synthetic=2,
        n_val=1,
        size=256,
        seed=0,
        crowd="paint",
        progress=False,
    )
    assert manifest["params"]["content_regions"] == len(content) > 0
    ds = SectionDataset(tmp_path, "train")
    checked = 0
    for k, item in enumerate(ds.items):
        if item["kind"] != "tile":
            continue
        image, secs = ds.load(k)
        x0, y0 = item["origin"]
        original = rgb[y0 : y0 + 256, x0 : x0 + 256, 0]
        h, w = original.shape
        kept = np.zeros((h, w), bool)
        for s in labelled:
            kept |= polygon_mask(footprint(s, 6).exterior.coords, (h, w), offset=(x0, y0))
        for s in unlabelled:  # every unlabelled part in the tile is painted over (away from labelled ones)
            for part in (s.tissue, s.magnet):
                inside = polygon_mask(part.polygon, (h, w), offset=(x0, y0)) & ~kept
                if inside.sum() > 50:
                    checked += 1
                    assert np.mean(image[:h, :w, 0][inside] != original[inside]) > 0.8
        for s in labelled:  # the labelled sections are kept as they are
            for part in (s.tissue, s.magnet):
                inside = polygon_mask(part.polygon, (h, w), offset=(x0, y0))
                if inside.any():
                    assert np.mean(image[:h, :w, 0][inside] == original[inside]) > 0.99
    assert checked > 0


@pytest.mark.parametrize("style", ["held-all", "realistic"])
def test_unknown_areas_cover_unlabelled_sections_under_vignetting_and_leave_bare_wafer(style):
    # held-all: strong vignetting in every mosaic tile, where content_regions' level test gives up
    sections, gray, _ = _wafer(style)
    rgb = compose_rgb(gray, None).rgb
    labelled, rest = sections[:4], sections[4:]
    area = float(np.median([s.tissue.area for s in sections]))
    unknown = unknown_areas(rgb, labelled, part_area=area)
    assert unknown.shape == gray.shape and unknown.dtype == bool
    for s in rest:  # (nearly) all of every unlabelled part
        for part in (s.tissue, s.magnet):
            inside = polygon_mask(part.polygon, gray.shape)
            assert unknown[inside].mean() > 0.9, style
    for s in labelled:  # the labelled sections train
        assert not unknown[polygon_mask(s.tissue.polygon, gray.shape)].any()
    sections_share = np.mean([polygon_mask(s.tissue.polygon, gray.shape).sum() for s in sections]) * len(sections)
    assert unknown.mean() < 1.0 - 0.5 * (1.0 - 2 * sections_share / gray.size)  # at least half the bare wafer left
