import logging

import numpy as np
import pytest
import tifffile

from sectionseg.errors import InputError
from sectionseg.io.atomic import write_text
from sectionseg.io.images import compose_rgb, load_composed, read_image, write_image


def test_read_16bit_tiff_is_memory_mapped(tmp_path):
    data = (np.arange(200 * 300, dtype=np.uint32) % 65535).astype(np.uint16).reshape(200, 300)
    tifffile.imwrite(tmp_path / "g.tif", data)
    image = read_image(tmp_path / "g.tif")
    assert isinstance(image, np.memmap)
    assert image.dtype == np.uint16 and np.array_equal(image, data)


def test_read_png_and_jpeg(tmp_path):
    gray = np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1))
    write_image(tmp_path / "g.png", gray)
    write_image(tmp_path / "g.jpg", gray)
    assert np.array_equal(read_image(tmp_path / "g.png"), gray)
    assert np.abs(read_image(tmp_path / "g.jpg").astype(int) - gray).max() < 10


def test_rgb_where_gray_expected(tmp_path):
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[..., 0] = 200
    write_image(tmp_path / "c.png", rgb)
    with pytest.raises(InputError, match="RGB colour image") as err:
        read_image(tmp_path / "c.png")
    assert str(tmp_path / "c.png") in str(err.value)
    # an RGB file with equal channels is a gray image
    write_image(tmp_path / "g.png", np.dstack([rgb[..., 0]] * 3))
    assert read_image(tmp_path / "g.png").ndim == 2


@pytest.mark.parametrize("content", [b"", b"not an image at all"])
def test_bad_files(tmp_path, content):
    (tmp_path / "bad.tif").write_bytes(content)
    with pytest.raises(InputError) as err:
        read_image(tmp_path / "bad.tif")
    assert "bad.tif" in str(err.value)
    with pytest.raises(InputError, match="no such"):
        read_image(tmp_path / "missing.tif")


def test_compose_channels_and_normalisation(rng):
    gray = rng.integers(1000, 3000, (64, 80)).astype(np.uint16)
    fluo = rng.integers(0, 500, (64, 80)).astype(np.uint16)
    composed = compose_rgb(gray, fluo)
    rgb = composed.rgb
    assert rgb.shape == (64, 80, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[..., 0], rgb[..., 1])
    # monotone mapping of each channel
    order = np.argsort(gray.ravel())
    assert np.all(np.diff(rgb[..., 0].ravel()[order].astype(int)) >= 0)
    assert np.corrcoef(rgb[..., 2].ravel(), fluo.ravel())[0, 1] > 0.99
    rec = composed.record()
    assert rec["channels"] == ["gray", "gray", "fluo"] and rec["gray"]["low"] < rec["gray"]["high"]


def test_compose_without_fluo_warns(rng, caplog):
    gray = rng.integers(0, 255, (10, 12)).astype(np.uint8)
    with caplog.at_level(logging.WARNING):
        composed = compose_rgb(gray)
    assert "no fluorescence" in caplog.text
    assert np.array_equal(composed.rgb[..., 2], composed.rgb[..., 0])


def test_mismatched_sizes(tmp_path):
    write_image(tmp_path / "g.tif", np.zeros((20, 30), np.uint8))
    write_image(tmp_path / "f.tif", np.zeros((20, 31), np.uint8))
    with pytest.raises(InputError, match="31x20") as err:
        load_composed(tmp_path / "g.tif", tmp_path / "f.tif")
    assert "f.tif" in str(err.value)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "first")

    class Boom(Exception):
        pass

    from sectionseg.io.atomic import atomic_path

    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_uses_normal_file_mode(tmp_path):
    import os
    import stat

    write_text(tmp_path / "a.txt", "x")
    mode = stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
