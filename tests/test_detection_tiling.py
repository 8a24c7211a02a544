"""Tile plan, lazy tile reading and resampling of the working frame."""

import numpy as np
import pytest
import tifffile

from sectionseg.detection.tiling import WaferSource, inner_borders, plan_tiles
from sectionseg.errors import InputError
from sectionseg.io.images import read_image


@pytest.mark.parametrize(
    "size,tile,overlap",
    [((1000, 700), 256, 64), ((512, 512), 512, 128), ((300, 200), 512, 128), ((1301, 997), 200, 50)],
)
def test_plan_covers_the_image_with_the_overlap(size, tile, overlap):
    width, height = size
    tiles = plan_tiles(width, height, tile, overlap)
    covered = np.zeros((height, width), np.uint8)
    for t in tiles:
        assert 0 <= t.x0 < t.x1 <= width and 0 <= t.y0 < t.y1 <= height
        assert t.width == min(tile, width) and t.height == min(tile, height)
        covered[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert covered.min() >= 1
    # neighbouring tiles overlap by at least `overlap` px, so a part that short is whole in one tile
    xs = sorted({t.x0 for t in tiles})
    assert all(b - a <= tile - overlap for a, b in zip(xs, xs[1:]))


def test_plan_rejects_bad_parameters():
    with pytest.raises(InputError):
        plan_tiles(100, 100, 16, 4)
    with pytest.raises(InputError):
        plan_tiles(100, 100, 64, 64)


def test_inner_borders():
    tiles = plan_tiles(600, 600, 256, 64)
    assert inner_borders(tiles[0], 600, 600) == (False, False, True, True)
    assert inner_borders(tiles[-1], 600, 600) == (True, True, False, False)


def test_tile_is_normalised_crop_at_scale_one(rng):
    gray = rng.integers(1000, 3000, (300, 400)).astype(np.uint16)
    fluo = rng.integers(0, 500, (300, 400)).astype(np.uint16)
    src = WaferSource(gray, fluo)
    tile = plan_tiles(400, 300, 128, 32)[5]
    rgb = src.tile_rgb(tile)
    assert rgb.shape == (128, 128, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], src.gray_norm.apply(gray[tile.y0 : tile.y1, tile.x0 : tile.x1]))
    np.testing.assert_array_equal(rgb[..., 2], src.fluo_norm.apply(fluo[tile.y0 : tile.y1, tile.x0 : tile.x1]))


def test_resampled_tiles_keep_geometry():
    # a bright square [100, 160) px in the source sits at [50, 80) in the working frame at scale 0.5
    gray = np.zeros((400, 400), np.uint8)
    gray[100:160, 200:260] = 255
    src = WaferSource(gray, scale=0.5)
    assert src.size == (200, 200)
    tile = plan_tiles(*src.size, 128, 32)[0]
    g = src.tile_rgb(tile)[..., 0]
    ys, xs = np.nonzero(g > 127)
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (50, 80, 100, 128)
    # upsampling by 2: square [200, 320) x [400, 520)
    up = WaferSource(gray, scale=2.0)
    win = up.gray_window(380, 180, 540, 340)
    ys, xs = np.nonzero(win > 127)
    assert (ys.min() + 180, ys.max() + 181, xs.min() + 380, xs.max() + 381) == (200, 320, 400, 520)
    np.testing.assert_allclose(up.to_source([[400.0, 200.0]]), [[200.0, 100.0]])


def test_different_sizes_are_refused():
    with pytest.raises(InputError, match="same pixels"):
        WaferSource(np.zeros((10, 10), np.uint8), np.zeros((10, 12), np.uint8))


class ReadRecorder:
    """A 2-D array stand-in that records the size of every block read from it."""

    def __init__(self, array):
        self.array, self.reads = array, []
        self.shape, self.ndim, self.dtype = array.shape, array.ndim, array.dtype

    def __getitem__(self, key):
        block = self.array[key]
        self.reads.append(block.size)
        return block


def test_memory_mapped_wafer_is_read_tile_by_tile(tmp_path, rng):
    from detection_fakes import SCRIPTED, GroundTruthPredictor, rectangle

    from sectionseg.detection import detect_wafer

    path = tmp_path / "gray.tif"
    tifffile.imwrite(path, rng.integers(0, 255, (1200, 1500)).astype(np.uint8))
    mm = read_image(path)
    assert isinstance(mm, np.memmap)
    recorder = ReadRecorder(mm)
    tiles = plan_tiles(1500, 1200, 256, 64)
    parts = [(1, rectangle(300, 300, 120, 50, 10)), (2, rectangle(300, 352, 110, 46, 10))]
    result = detect_wafer(
        recorder,
        predictor=GroundTruthPredictor(parts, tiles),
        scale=1.0,
        settings=SCRIPTED,
        tile_size=256,
        overlap=64,
        progress=False,
        refine=False,
        skip_empty=False,
    )
    assert len(result.sections) == 1
    # first read: the normalisation's subsample (at most ~2 Mpx); then only tiles and fit windows
    assert recorder.reads[0] <= 2_000_000
    assert max(recorder.reads[1:]) <= 256 * 256
    assert sum(recorder.reads[1:]) < 2 * mm.size


def test_content_pass_reads_the_wafer_in_bounded_blocks(tmp_path, rng):
    from sectionseg.detection.content import content_flags

    path = tmp_path / "gray.tif"
    image = np.full((1200, 1500), 180, np.uint8)
    image[100:160, 200:330] = 60  # one dark part in the top-left corner
    tifffile.imwrite(path, np.clip(image + rng.normal(0, 2, image.shape), 0, 255).astype(np.uint8))
    recorder = ReadRecorder(read_image(path))
    source = WaferSource(recorder)
    tiles = plan_tiles(1500, 1200, 256, 64)
    flags = content_flags(source, tiles)
    assert flags[0] and sum(flags) < len(tiles) // 2  # the corner tiles are busy, bare ones are not
    # square blocks whatever the wafer's width, never the whole wafer at once
    assert max(recorder.reads[1:]) <= 1024 * 1024 < 1200 * 1500
