"""detect-batch: manifests and folders, fingerprints and run keys, a LocalCluster of 2 workers over 3
small wafers and a corrupt one, a killed run resumed, Zarr input read lazily."""

import json
import os

import numpy as np
import pytest
import tifffile

from sectionseg.batch.fingerprint import fingerprint, input_record
from sectionseg.batch.jobs import discover_folder, find_jobs, read_manifest
from sectionseg.batch.summary import read_summary
from sectionseg.cli.main import main
from sectionseg.errors import InputError

FAST = ["--section-size", "48", "--tile-size", "256", "--overlap", "64"]


@pytest.fixture(scope="module")
def wafers(tmp_path_factory):
    """Three small simulated wafers (sub-folder layout, as ``simulate`` writes them) and a corrupt one."""
    from sectionseg.simulation import simulate_wafer

    root = tmp_path_factory.mktemp("wafers")
    for k, name in enumerate(("w1", "w2", "w3")):
        simulate_wafer(root / name, seed=2000 + k, width=420, height=300, n_sections=3)
    (root / "bad").mkdir()
    (root / "bad" / "gray.tif").write_bytes(b"II*\x00 this is not a TIFF")
    return root


def _manifest(tmp_path, text: str):
    path = tmp_path / "manifest.csv"
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- wafers of a batch
def test_manifest_rows_and_relative_paths(tmp_path, wafers):
    relative = os.path.relpath(wafers / "w2" / "gray.tif", tmp_path)
    path = _manifest(
        tmp_path,
        f"# a season\nname,gray,fluo,section_size\nA,{wafers}/w1/gray.tif,{wafers}/w1/fluo.tif,130\n\nB,{relative},,\n",
    )
    jobs = read_manifest(path)
    assert [j.name for j in jobs] == ["A", "B"] and [j.line for j in jobs] == [3, 5]
    assert jobs[0].fluo.endswith("w1/fluo.tif") and jobs[0].section_size == 130
    assert jobs[1].fluo is None
    assert os.path.samefile(jobs[1].gray, wafers / "w2" / "gray.tif")


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("name,gray\nA,x.tif\n", 1, "lacks the column(s) fluo"),
        ("name,gray,fluo\nA,{w}/w1/gray.tif,\nA,{w}/w2/gray.tif,\n", 3, "already used on line 2"),
        ("name,gray,fluo\nA,{w}/w1/gray.tif,\nB,{w}/missing.tif,\n", 3, "gray image not found"),
        ("name,gray,fluo\nA,{w}/w1/gray.tif,{w}/w1/nofluo.tif\n", 2, "fluorescence image not found"),
        ("name,gray,fluo\nA,{w}/w1/gray.tif\n", 2, "field(s)"),
        ("name,gray,fluo\n../up,{w}/w1/gray.tif,\n", 2, "cannot be a folder name"),
    ],
)
def test_manifest_errors_name_file_and_line(tmp_path, wafers, capsys, text, line, message):
    path = _manifest(tmp_path, text.format(w=wafers))
    with pytest.raises(InputError) as err:
        read_manifest(path)
    assert err.value.line == line and message in str(err.value)
    assert main(["detect-batch", str(path), "--out", str(tmp_path / "out")]) == 2
    printed = capsys.readouterr().err
    assert f"{path}:{line}:" in printed and len(printed.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written


def test_folder_discovery_pairs_images_by_name(tmp_path, wafers):
    flat = tmp_path / "flat"
    flat.mkdir()
    image = np.zeros((20, 20), np.uint8)
    for name in ("a.tif", "a_fluo.tif", "b_gray.tif", "b-FLUO.tiff", "c.png"):
        tifffile.imwrite(flat / name, image) if "tif" in name else (flat / name).write_bytes(b"png")
    (flat / "notes.txt").write_text("ignored")
    jobs = discover_folder(flat)
    assert [(j.name, bool(j.fluo)) for j in jobs] == [("a", True), ("b", True), ("c", False)]
    assert jobs[1].gray.endswith("b_gray.tif") and jobs[1].fluo.endswith("b-FLUO.tiff")
    # sub-folders as simulate writes them; the corrupt one is a wafer too (it fails alone later)
    assert [(j.name, bool(j.fluo)) for j in find_jobs(wafers)] == [
        ("bad", False),
        ("w1", True),
        ("w2", True),
        ("w3", True),
    ]
    tifffile.imwrite(flat / "d_fluo.tif", image)
    with pytest.raises(InputError, match="d_fluo.tif has no gray image"):
        discover_folder(flat)
    with pytest.raises(InputError, match="holds one wafer"):
        discover_folder(wafers / "w1")


# ----------------------------------------------------------------------------- fingerprints
def test_run_key_follows_content_model_and_options(tmp_path, tiny_model):
    path = tmp_path / "g.tif"
    tifffile.imwrite(path, np.arange(5000 * 300, dtype=np.uint16).reshape(5000, 300))  # 3 MB: sampled
    base = input_record(path, None, None, tiny_model, {"score_threshold": 0.7})
    assert base == input_record(path, None, None, tiny_model, {"score_threshold": 0.7, "workers": 4})
    assert base["run_key"] != input_record(path, None, None, tiny_model, {"score_threshold": 0.6})["run_key"]
    assert base["run_key"] != input_record(path, None, None, None, {"score_threshold": 0.7})["run_key"]
    full = fingerprint(path, "full")
    assert full["hash"] == "full" and "mtime_ns" not in full
    os.utime(path, ns=(1, 1))  # touched: quick notices, full does not
    assert fingerprint(path)["mtime_ns"] == 1 and fingerprint(path, "full") == full
    assert base["run_key"] != input_record(path, None, None, tiny_model, {"score_threshold": 0.7})["run_key"]


def test_a_batch_worker_loads_its_model_once(tiny_model):
    from sectionseg.detection.predictor import resolve_model

    first, info = resolve_model(tiny_model, reuse=True, precision="fp32", score_threshold=0.5)
    again, info2 = resolve_model(tiny_model, reuse=True, precision="fp32", score_threshold=0.3)
    fresh, _ = resolve_model(tiny_model, precision="fp32")
    net = first.__closure__  # the predictors wrap the same module, not a fresh one
    assert info == info2 and info["sha256"]
    module = [c.cell_contents for c in net if hasattr(c.cell_contents, "roi_heads")][0]
    again_module = [c.cell_contents for c in again.__closure__ if hasattr(c.cell_contents, "roi_heads")][0]
    fresh_module = [c.cell_contents for c in fresh.__closure__ if hasattr(c.cell_contents, "roi_heads")][0]
    assert module is again_module is not fresh_module and module.roi_heads.score_thresh == 0.3


# ----------------------------------------------------------------------------- the batch on Dask
@pytest.fixture(scope="module")
def first_batch(tmp_path_factory, wafers, tiny_model):
    """One ``detect-batch`` over the wafer folder on a LocalCluster of 2 worker processes, after w1
    was detected with ``detect`` into its place: ``(root, exit code, printed lines)``."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("batch") / "out"
    assert (
        main(
            [
                "detect",
                str(wafers / "w1" / "gray.tif"),
                "--fluo",
                str(wafers / "w1" / "fluo.tif"),
                "--out",
                str(root / "w1"),
                "--model",
                str(tiny_model),
                "--no-progress",
                *FAST,
            ]
        )
        == 0
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            ["detect-batch", str(wafers), "--out", str(root), "--model", str(tiny_model), "--local-workers", "2", *FAST]
        )
    return root, code, printed.getvalue()


@pytest.mark.slow  # with its fixture first_batch: a Dask batch on two workers (~15 s)
def test_batch_on_two_workers_and_a_bad_wafer_fails_alone(first_batch):
    root, code, printed = first_batch
    assert code == 1  # a wafer failed
    assert "2 done, 1 skipped, 1 failed" in printed and "summary.csv" in printed
    rows = {r["name"]: r for r in read_summary(root / "summary.csv")}
    # w1, detected by 'detect' with the same inputs and options, is recognised and skipped
    assert {n: r["status"] for n, r in rows.items()} == {"bad": "failed", "w1": "skipped", "w2": "done", "w3": "done"}
    assert "cannot read image" in rows["bad"]["error"] and "gray.tif" in rows["bad"]["error"]
    assert rows["w1"]["worker"] != "local" and rows["w1"]["seconds"]  # the time of the run that made it
    for name in ("w1", "w2", "w3"):
        report = json.loads((root / name / "report.json").read_text())
        assert report["run_key"] and report["inputs"]["fingerprints"]["gray"]["hash"] == "quick"
        assert int(rows[name]["sections"]) == report["counts"]["sections"]
        lone = report["counts"]["unpaired_tissue"] + report["counts"]["unpaired_magnet"]
        assert int(rows[name]["lone_parts"]) == lone
        assert int(rows[name]["doubtful_parts"]) == lone + report["counts"]["poor_fits"]
        assert (root / name / "overlay.png").is_file() and (root / name / "sections.magc").is_file()
    assert json.loads((root / "w2" / "report.json").read_text())["params"]["workers"] == 1
    assert not (root / "bad").exists()


@pytest.mark.slow  # with its fixture first_batch: a Dask batch on two workers (~15 s)
def test_a_killed_batch_resumes_with_the_missing_wafers_only(first_batch, tmp_path, wafers, tiny_model):
    import shutil

    from sectionseg.batch.jobs import find_jobs
    from sectionseg.batch.run import run_batch
    from sectionseg.cli.detect import add_detection_arguments, detection_options
    from sectionseg.cli.main import _OneLineParser
    from sectionseg.io.atomic import host_tag

    root = tmp_path / "out"
    shutil.copytree(first_batch[0], root)
    # killed while w2's set was being replaced entry by entry, and while w3 was being written for
    # the first time by a process that is gone (its half-written staging folder is all there is)
    (root / "w2" / ".sectionseg-incomplete").write_text("")
    stale = root / f".w3.sectionseg-new-{host_tag()}-99999999-abcdefgh"
    os.rename(root / "w3", stale)
    (stale / ".sectionseg-set.json").unlink()
    before = (root / "w1" / "report.json").stat().st_mtime_ns
    parser = _OneLineParser()
    add_detection_arguments(parser, workers=False)
    options = detection_options(parser.parse_args(FAST))
    rows = run_batch(
        find_jobs(wafers), root, model=str(tiny_model), options=options, local_workers=2, processes=False, echo=None
    )  # worker threads: the same tasks, faster to start
    assert {r["name"]: r["status"] for r in rows} == {"bad": "failed", "w1": "skipped", "w2": "done", "w3": "done"}
    assert read_summary(root / "summary.csv") == [{k: str(v) for k, v in r.items()} for r in rows]
    assert not (root / "w2" / ".sectionseg-incomplete").exists() and not stale.exists()
    assert (root / "w1" / "report.json").stat().st_mtime_ns == before  # untouched
    # another option: every wafer runs again
    options["score_threshold"] = 0.6
    rows = run_batch(
        find_jobs(wafers), root, model=str(tiny_model), options=options, local_workers=2, processes=False, echo=None
    )
    assert [r["status"] for r in rows] == ["failed", "done", "done", "done"]


def test_scheduler_that_cannot_be_reached_is_one_line(tmp_path, wafers, tiny_model, capsys, monkeypatch):
    from sectionseg.batch import run

    monkeypatch.setattr(run, "CONNECT_TIMEOUT", "1s")
    path = _manifest(tmp_path, f"name,gray,fluo\nA,{wafers}/w1/gray.tif,\n")
    code = main(
        [
            "detect-batch",
            str(path),
            "--out",
            str(tmp_path / "out"),
            "--model",
            str(tiny_model),
            "--scheduler",
            "tcp://127.0.0.1:9",
            *FAST,
        ]
    )
    assert code == 2 and "cannot reach the Dask scheduler" in capsys.readouterr().err


# ----------------------------------------------------------------------------- huge / lazy images
def test_zarr_and_ome_zarr_images_are_read_lazily(tmp_path):
    import zarr
    from detection_fakes import SCRIPTED, GroundTruthPredictor, rectangle

    from sectionseg.detection import detect_wafer, plan_tiles
    from sectionseg.io.images import LazyImage, image_size, read_image

    tissue, magnet = rectangle(600, 500, 120, 50, 10), rectangle(600, 552, 110, 46, 10)
    gray = np.random.default_rng(0).integers(0, 65535, (3000, 3000)).astype(np.uint16)
    group = zarr.open_group(str(tmp_path / "w.ome.zarr"), mode="w")
    group.attrs["multiscales"] = [
        {"version": "0.4", "axes": [{"name": a} for a in "czyx"], "datasets": [{"path": "0"}, {"path": "1"}]}
    ]
    group.create_array("0", shape=(1, 1) + gray.shape, chunks=(1, 1, 256, 256), dtype=gray.dtype)[:] = gray[None, None]
    group.create_array("1", shape=(1, 1, 1500, 1500), chunks=(1, 1, 256, 256), dtype=gray.dtype)
    image = read_image(tmp_path / "w.ome.zarr")
    assert isinstance(image, LazyImage) and image.shape == (3000, 3000)
    assert image_size(tmp_path / "w.ome.zarr") == (3000, 3000)
    assert np.array_equal(np.asarray(image), gray)
    image = read_image(tmp_path / "w.ome.zarr")  # a fresh one: count its reads
    tiles = plan_tiles(3000, 3000, 512, 64)
    result = detect_wafer(
        image,
        predictor=GroundTruthPredictor([(1, tissue), (2, magnet)], tiles),
        scale=1.0,
        settings=SCRIPTED,
        tile_size=512,
        overlap=64,
        progress=False,
        refine=False,
        skip_empty=False,
    )
    assert len(result.sections) == 1
    # the largest read: the normalisation's strided subsample (1500 x 1500); then 512 px tiles and
    # small fit windows (the content check's 1024 px blocks: test_detection_tiling)
    assert image.largest_read == 1500 * 1500 == image.size // 4
    # a plain Zarr array works through every command's image reading, detect's checks included
    zarr.create_array(str(tmp_path / "plain.zarr"), shape=gray.shape, chunks=(512, 512), dtype=gray.dtype)[:] = gray
    assert np.array_equal(read_image(tmp_path / "plain.zarr")[100:200, 50:70], gray[100:200, 50:70])
    from sectionseg.cli._checks import check_image_file

    assert check_image_file(tmp_path / "plain.zarr") == tmp_path / "plain.zarr"


def test_big_tiled_tiff_is_read_tile_by_tile(tmp_path, monkeypatch):
    from sectionseg.io import images

    monkeypatch.setattr(images, "LAZY_MIN_BYTES", 1000)
    data = (np.arange(600 * 700, dtype=np.uint32) % 60000).astype(np.uint16).reshape(600, 700)
    tifffile.imwrite(tmp_path / "t.tif", data, tile=(128, 128), compression="zlib")
    image = images.read_image(tmp_path / "t.tif")
    assert isinstance(image, images.LazyImage)
    assert np.array_equal(image[130:300, 5:400], data[130:300, 5:400]) and image.largest_read == 170 * 395
    # small windows come from decoded tiles kept in a per-process cache; any window reads right
    assert image.chunks == (128, 128) and len(image._cache) == 0  # 8 tiles: read directly
    assert np.array_equal(image[130:140, 5:140], data[130:140, 5:140]) and len(image._cache) == 2
    rng = np.random.default_rng(0)
    for _ in range(200):
        r, c, h, w = *rng.integers(0, 590, 1), *rng.integers(0, 690, 1), *rng.integers(1, 300, 2)
        assert np.array_equal(image[r : r + h, c : c + w], data[r : r + h, c : c + w])
    assert np.array_equal(image[::7, 3::5], data[::7, 3::5]) and image[599, 699] == data[599, 699]
    assert np.array_equal(image[-10:, -20:-3], data[-10:, -20:-3])
    monkeypatch.setattr(images, "LAZY_CACHE_BYTES", 3 * 128 * 128 * 2)
    image._cache.clear()
    for k in range(5):
        assert np.array_equal(image[k * 128 : k * 128 + 10, 0:10], data[k * 128 : k * 128 + 10, 0:10])
    assert list(image._cache) == [(2, 0), (3, 0), (4, 0)]  # the budget holds: the oldest went
