"""Inference arithmetic (fp32 / bf16) and the number of region proposals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sectionseg.cli.main import main
from sectionseg.detection import inference
from sectionseg.detection.inference import resolve_precision
from sectionseg.detection.parallel import can_fork
from sectionseg.detection.pipeline import detect_wafer
from sectionseg.detection.predictor import resolve_model
from sectionseg.evaluation import compare_sections
from sectionseg.formats import read_sections
from sectionseg.io.images import read_image
from sectionseg.model import default_model_path


def test_auto_precision_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", "cpu")


def test_gpu_path_runs_big_batches_in_half_precision(monkeypatch):
    """The cuda path's choices, checked without a GPU: bf16 autocast where the GPU has it, else fp16;
    16 tiles per model call; the next batch prepared while the model runs."""
    import torch

    monkeypatch.setattr(inference, "cuda_has_bf16", lambda: True)
    assert resolve_precision("auto", "cuda") == "bf16" and resolve_precision("auto", "cuda:1") == "bf16"
    monkeypatch.setattr(inference, "cuda_has_bf16", lambda: False)
    assert resolve_precision("auto", "cuda") == "fp16" and resolve_precision("fp32", "cuda") == "fp32"
    assert inference.autocast_dtype("fp16") == torch.float16 and inference.autocast_dtype("bf16") == torch.bfloat16
    assert inference.autocast_dtype("fp32") is None
    assert inference.resolve_batch_size(None, "cuda") == 16 and inference.resolve_batch_size(None, "cpu") == 2
    assert inference.resolve_batch_size(5, "cuda") == 5


def test_prefetched_batches_give_the_same_detections():
    """Tiles read ahead in a thread (the GPU path) reach the predictor in the same batches, in order,
    and give the same detections as the plain loop."""
    from detection_fakes import GroundTruthPredictor, rectangle

    from sectionseg.detection.tiling import WaferSource, plan_tiles

    rng = np.random.default_rng(3)
    gray = rng.integers(0, 255, (900, 1300)).astype(np.uint8)
    tiles = plan_tiles(1300, 900, 256, 64)
    parts = [
        (1, rectangle(300, 300, 120, 50, 10)),
        (2, rectangle(300, 352, 110, 46, 10)),
        (1, rectangle(900, 600, 120, 50, 70)),
    ]
    calls = {}
    for prefetch in (False, True):
        truth = GroundTruthPredictor(parts, tiles)
        sizes = []

        def predictor(images, truth=truth, sizes=sizes):
            sizes.append([tuple(im.shape) for im in images])
            return truth(images)

        found = inference.predict_tiles(
            WaferSource(gray), tiles, predictor, batch_size=5, score_threshold=0.5, progress=False, prefetch=prefetch
        )
        calls[prefetch] = (sizes, [(d.label, d.origin, d.mask.sum(), d.tile) for d in found])
    assert calls[True] == calls[False]
    sizes = calls[True][0]
    assert [len(b) for b in sizes] == [5] * (len(tiles) // 5) + ([len(tiles) % 5] if len(tiles) % 5 else [])
    assert len(calls[True][1]) >= 3
    assert list(inference.prefetched(lambda k: k * k, [1, 2, 3])) == [(1, 1), (2, 4), (3, 9)]


@pytest.mark.skipif(not can_fork(), reason="no fork")
def test_on_a_gpu_the_model_runs_in_this_process_and_workers_only_fit(monkeypatch):
    """CUDA does not survive fork: with --device cuda and --workers the model's batches stay in the
    main process (prefetched), only the fitting goes to workers."""
    import os

    from detection_fakes import SCRIPTED, GroundTruthPredictor, rectangle

    from sectionseg.detection.tiling import plan_tiles

    gray = np.random.default_rng(4).integers(0, 255, (700, 900)).astype(np.uint8)
    tiles = plan_tiles(900, 700, 256, 64)
    truth = GroundTruthPredictor([(1, rectangle(300, 300, 120, 50, 10)), (2, rectangle(300, 352, 110, 46, 10))], tiles)
    pids, sizes = set(), []

    def predictor(images):
        pids.add(os.getpid())
        sizes.append(len(images))
        return truth(images)

    result = detect_wafer(
        gray,
        predictor=predictor,
        scale=1.0,
        settings=SCRIPTED,
        tile_size=256,
        overlap=64,
        device="cuda",
        workers=2,
        refine=False,
        skip_empty=False,
        progress=False,
    )
    assert pids == {os.getpid()} and sizes[0] == 16 and sum(sizes) == len(tiles)
    assert result.params["batch_size"] == 16 and result.params["workers"] == 2 and len(result.sections) == 1


def test_the_model_runs_under_autocast_in_the_precision_asked():
    import torch

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, images):
            seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), len(images)))
            return [{"scores": torch.zeros(0), "masks": torch.zeros(0, 1, 4, 4)} for _ in images]

    for precision in ("bf16", "fp32"):
        inference.model_predictor(Probe(), "cpu", precision)([torch.rand(3, 8, 8)] * 3)
    assert seen == [(True, torch.bfloat16, 3), (False, seen[1][1], 3)]


def test_masks_come_back_binary_and_give_the_same_detections():
    """With a mask threshold the predictor cuts masks where they are made (on the GPU: a quarter of
    the bytes to copy); the detections are those of the probabilities."""
    import torch

    from sectionseg.detection.tiling import Tile

    probs = torch.zeros(2, 1, 32, 32)
    probs[0, 0, 4:20, 6:30] = 0.8
    probs[0, 0, 4:20, 5] = 0.5  # exactly at the cut: kept by both
    probs[1, 0, 10:14, 10:25] = 0.49

    class Fixed(torch.nn.Module):
        def forward(self, images):
            return [
                {
                    "boxes": torch.zeros(2, 4),
                    "labels": torch.tensor([1, 2]),
                    "scores": torch.tensor([0.9, 0.8]),
                    "masks": probs.clone(),
                }
                for _ in images
            ]

    plain = inference.model_predictor(Fixed(), "cpu", "fp32")([torch.rand(3, 32, 32)])[0]
    cut = inference.model_predictor(Fixed(), "cpu", "fp32", mask_threshold=0.5)([torch.rand(3, 32, 32)])[0]
    assert plain["masks"].dtype == torch.float32 and cut["masks"].dtype == torch.bool
    found = [
        inference.detections_from_output(out, Tile(0, 0, 32, 32), 0, (32, 32), score_threshold=0.5, mask_threshold=0.5)
        for out in (plain, cut)
    ]
    assert [(d.label, d.origin, d.mask.tolist()) for d in found[0]] == [
        (d.label, d.origin, d.mask.tolist()) for d in found[1]
    ]
    assert len(found[0]) == 1 and found[0][0].mask.shape == (16, 25)


def test_proposals_are_set_on_the_model():
    import torch

    from sectionseg.model import build_model, load_config

    torch.manual_seed(0)
    model = build_model(load_config("tiny").model)
    _, info = resolve_model(model, proposals=77, precision="fp32")
    assert model.rpn._post_nms_top_n["testing"] == 77 and info["proposals"] == 77
    assert model.rpn._pre_nms_top_n["testing"] >= 154 and info["precision"] == "fp32"
    for _ in range(2):  # bf16: the score and mask layers are wrapped to run in float32, once
        predict = inference.model_predictor(model, precision="bf16")
    heads = model.roi_heads
    assert heads.box_predictor.float32_wrapper and not hasattr(heads.box_predictor.inner, "float32_wrapper")
    out = predict([torch.rand(3, 64, 64)])[0]
    assert out["scores"].dtype == torch.float32 and "masks" not in out  # masks over their boxes only
    assert all(crop.dtype == np.float32 for crop, _ in out["mask_crops"])


@pytest.fixture(scope="module")
def wafer(tmp_path_factory):
    out = tmp_path_factory.mktemp("wafer")
    assert (
        main(["simulate", "--out", str(out), "--seed", "1005", "--width", "700", "--height", "600", "--sections", "12"])
        == 0
    )
    return out


def test_bf16_finds_the_same_sections_as_fp32(wafer):
    """The bundled model in bfloat16 gives the sections of float32 within a fraction of a pixel."""
    if not default_model_path().is_file():
        pytest.skip("no bundled model")
    gray, fluo = read_image(wafer / "gray.tif"), read_image(wafer / "fluo.tif")
    truth = read_sections(wafer / "sections.labelme.json")
    found = {}
    for precision in ("fp32", "bf16"):
        result = detect_wafer(gray, fluo, section_size=130, precision=precision, progress=False)
        assert result.params["model"]["precision"] == precision
        found[precision] = result.sections
        metrics = compare_sections(truth, result.sections)
        assert metrics["section_recall"] >= 0.9, precision
    assert len(found["bf16"]) == len(found["fp32"])
    a = np.array(sorted(s.tissue.centre for s in found["fp32"]))
    b = np.array(sorted(s.tissue.centre for s in found["bf16"]))
    assert np.median(np.abs(a - b)) < 0.5


def test_masks_cut_to_their_boxes_are_the_pasted_masks_there(wafer):
    """On the CPU the predictor keeps each mask over its box only (torchvision pastes every mask into a
    full tile): the detections are the same, mask for mask."""
    import torch

    from sectionseg.detection.tiling import Tile, WaferSource

    if not default_model_path().is_file():
        pytest.skip("no bundled model")
    from sectionseg.model import load_model

    net = load_model(default_model_path())[0]
    model = resolve_model(net, precision="fp32", score_threshold=0.3)[0]
    source = WaferSource(read_image(wafer / "gray.tif"), read_image(wafer / "fluo.tif"), scale=0.5)
    tiles = [Tile(0, 0, 256, 256), Tile(100, 44, 350, 300)]  # the second one reaches the wafer's edge
    images = [inference.to_tensor(source.tile_rgb(t)) for t in tiles]
    cut = model(images)
    with torch.inference_mode():
        pasted = net(images)
    for k, tile in enumerate(tiles):
        assert "mask_crops" in cut[k] and "masks" in pasted[k]
        found = [
            inference.detections_from_output(
                out, tile, k, source.size, score_threshold=0.3, mask_threshold=0.5, border_margin=3
            )
            for out in (cut[k], pasted[k])
        ]
        assert len(found[0]) == len(found[1]) > 3
        for a, b in zip(*found):
            assert (a.label, a.origin, a.truncated, a.border_distance) == (
                b.label,
                b.origin,
                b.truncated,
                b.border_distance,
            )
            assert np.array_equal(a.mask, b.mask)


def test_detect_cli_records_its_options_and_refuses_bad_ones(wafer, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["detect", str(wafer / "gray.tif"), "--out", str(out), "--proposals", "0", "--no-progress"]) == 2
    assert "--proposals" in capsys.readouterr().err and not out.exists()
    assert main(["detect", str(wafer / "gray.tif"), "--out", str(out), "--workers", "0", "--no-progress"]) == 2
    assert "--workers" in capsys.readouterr().err and not out.exists()
    out = tmp_path / "det"
    assert (
        main(
            [
                "detect",
                str(wafer / "gray.tif"),
                "--fluo",
                str(wafer / "fluo.tif"),
                "--out",
                str(out),
                "--section-size",
                "130",
                "--precision",
                "fp32",
                "--proposals",
                "200",
                "--workers",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["params"]["precision"] == "fp32" and report["params"]["proposals"] == 200
    assert report["model"]["proposals"] == 200 and report["params"]["workers"] == (2 if can_fork() else 1)
    assert report["worker_peak_memory_mb"] >= 0
