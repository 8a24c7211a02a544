"""Inference arithmetic (fp32 / bf16) and the number of region proposals."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sectionseg.cli.main import main
from sectionseg.detection import inference
from sectionseg.detection.inference import resolve_precision
from sectionseg.detection.parallel import can_fork
from sectionseg.detection.models import resolve_model
from sectionseg.detection.pipeline import detect_wafer
from sectionseg.evaluation import compare_sections
from sectionseg.formats import read_sections
from sectionseg.io.images import read_image
from sectionseg.model import default_model_path


def test_auto_precision_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "fp32"
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", "cpu")


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
    assert out["scores"].dtype == torch.float32 and out["masks"].dtype == torch.float32


@pytest.fixture(scope="module")
def wafer(tmp_path_factory):
    out = tmp_path_factory.mktemp("wafer")
    assert main(["simulate", "--out", str(out), "--seed", "1005", "--width", "700", "--height", "600",
                 "--sections", "12"]) == 0
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


def test_detect_cli_records_its_options_and_refuses_bad_ones(wafer, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["detect", str(wafer / "gray.tif"), "--out", str(out), "--proposals", "0", "--no-progress"]) == 2
    assert "--proposals" in capsys.readouterr().err and not out.exists()
    assert main(["detect", str(wafer / "gray.tif"), "--out", str(out), "--workers", "0", "--no-progress"]) == 2
    assert "--workers" in capsys.readouterr().err and not out.exists()
    out = tmp_path / "det"
    assert main(["detect", str(wafer / "gray.tif"), "--fluo", str(wafer / "fluo.tif"), "--out", str(out),
                 "--section-size", "130", "--precision", "fp32", "--proposals", "200", "--workers", "2",
                 "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["params"]["precision"] == "fp32" and report["params"]["proposals"] == 200
    assert report["model"]["proposals"] == 200 and report["params"]["workers"] == (2 if can_fork() else 1)
    assert report["worker_peak_memory_mb"] >= 0
