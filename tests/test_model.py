"""Model config (strict YAML), building, model files (reload, half export), backbone weights."""

from __future__ import annotations

import pytest
import torch

from sectionseg.errors import InputError
from sectionseg.model import (
    CLASSES,
    build_model,
    export_weights,
    freeze_for_heads_only,
    load_backbone_weights,
    load_config,
    load_model,
    preset_names,
    save_model,
)
from sectionseg.model.checkpoint import read_checkpoint


def _tiny(score_thresh=0.0):
    cfg = load_config("tiny")
    cfg.model.box_score_thresh = score_thresh  # an untrained model must still output detections
    torch.manual_seed(0)
    return cfg, build_model(cfg.model).eval()


def _image(seed=0, h=96, w=128):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(3, h, w, generator=g) * 0.2
    img[:, 20:40, 30:90] = 0.9
    return img


def test_presets_load_and_describe_the_requested_models():
    assert {"tiny", "cpu", "gpu", "seed"} <= set(preset_names())
    seed = load_config("seed")
    assert seed.model.backbone == "resnet50" and seed.model.norm == "batch"
    assert seed.data.crop_size == 512 and seed.model.box_detections_per_img >= 300
    assert seed.model.anchor_sizes == [16, 32, 64, 128, 256]
    cpu = load_config("cpu")
    assert cpu.model.backbone == "resnet18" and cpu.model.norm == "group"
    assert cpu.model.box_representation_size < seed.model.box_representation_size
    assert cpu.data.max_instances >= 300


def test_cpu_preset_builds_torchvision_maskrcnn_with_groupnorm_and_slim_heads():
    from torchvision.models.detection import MaskRCNN

    cfg = load_config("cpu")
    model = build_model(cfg.model)
    assert isinstance(model, MaskRCNN)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.backbone.body.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model.roi_heads.box_head.fc7.out_features == 256
    assert model.roi_heads.box_predictor.cls_score.out_features == len(CLASSES) == 3
    assert model.roi_heads.detections_per_img == 300
    assert model.rpn.anchor_generator.num_anchors_per_location()[0] == 5


def test_unknown_config_key_is_an_input_error_naming_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  backbone: resnet18\n  anchor_sizez: [1, 2]\n")
    with pytest.raises(InputError) as err:
        load_config(path)
    assert "model.anchor_sizez" in str(err.value) and str(path) in str(err.value)
    path.write_text("modle:\n  backbone: resnet18\n")
    with pytest.raises(InputError, match="modle"):
        load_config(path)


@pytest.mark.parametrize(
    "text, key",
    [
        ("model:\n  backbone: resnet99\n", "model.backbone"),
        ("train:\n  lr: fast\n", "train.lr"),
        ("train:\n  epochs: 2.5\n", "train.epochs"),
        ("data:\n  crop_size: -4\n", "data.crop_size"),
        ("model:\n  anchor_sizes: [16, 32]\n", "model.anchor_sizes"),
    ],
)
def test_bad_config_values_name_the_key(tmp_path, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        load_config(path)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(InputError, match="tiny"):
        load_config("no-such-preset")


def test_model_keeps_the_image_size():
    _, model = _tiny()
    images, _ = model.transform([_image(h=136, w=200)])
    assert images.image_sizes == [(136, 200)]
    assert images.tensors.shape[-2:] == (160, 224)  # padded to a multiple of 32, not rescaled


def test_checkpoint_reloads_to_identical_predictions(tmp_path):
    cfg, model = _tiny()
    img = _image()
    with torch.no_grad():
        before = model([img])[0]
    assert len(before["boxes"]) > 0
    save_model(tmp_path / "m.pt", model, cfg, {"note": "test"})
    payload = read_checkpoint(tmp_path / "m.pt")
    assert payload["format"] == "sectionseg-model" and payload["version"] == 1
    assert payload["classes"] == ["background", "tissue", "magnet"]
    loaded, cfg2, meta = load_model(tmp_path / "m.pt")
    assert cfg2 == cfg and meta["extra"]["note"] == "test" and not loaded.training
    with torch.no_grad():
        after = loaded([img])[0]
    for key in ("boxes", "labels", "scores", "masks"):
        assert torch.equal(before[key], after[key]), key


def test_half_export_is_smaller_and_predicts_nearly_the_same(tmp_path):
    cfg, model = _tiny()
    save_model(tmp_path / "m.pt", model, cfg)
    export_weights(tmp_path / "m.pt", tmp_path / "h.pt", half=True)
    assert (tmp_path / "h.pt").stat().st_size < 0.6 * (tmp_path / "m.pt").stat().st_size
    state = read_checkpoint(tmp_path / "h.pt")["state_dict"]
    assert all(v.dtype != torch.float32 for v in state.values())
    half_model, _, meta = load_model(tmp_path / "h.pt")
    assert meta["extra"]["half"] is True
    assert all(p.dtype == torch.float32 for p in half_model.parameters())
    img = _image(1)
    with torch.no_grad():
        a, b = model([img])[0], half_model([img])[0]
    top = min(5, len(a["scores"]), len(b["scores"]))
    assert top > 0
    assert torch.allclose(a["scores"][:top], b["scores"][:top], atol=0.02)


def test_not_a_model_file_is_an_input_error(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        load_model(tmp_path / "x.pt")
    torch.save({"format": "something-else"}, tmp_path / "y.pt")
    with pytest.raises(InputError, match="sectionseg-model"):
        load_model(tmp_path / "y.pt")


def test_backbone_weights_load_and_mismatch_is_reported(tmp_path):
    cfg, model = _tiny()
    torch.manual_seed(5)
    donor = build_model(cfg.model)
    body_state = {k: v for k, v in donor.backbone.body.state_dict().items()}
    body_state["fc.weight"] = torch.zeros(10, 512)  # classifier keys are ignored
    torch.save(body_state, tmp_path / "r18.pt")
    load_backbone_weights(model, tmp_path / "r18.pt")
    assert torch.equal(model.backbone.body.conv1.weight, donor.backbone.body.conv1.weight)
    torch.save({"conv1.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="conv1.weight"):
        load_backbone_weights(model, tmp_path / "bad.pt")


def test_heads_only_freezes_body_and_optionally_fpn():
    _, model = _tiny()
    freeze_for_heads_only(model, freeze_fpn=False)
    assert not any(p.requires_grad for p in model.backbone.body.parameters())
    assert all(p.requires_grad for p in model.backbone.fpn.parameters())
    assert all(p.requires_grad for p in model.roi_heads.parameters())
    freeze_for_heads_only(model, freeze_fpn=True)
    assert not any(p.requires_grad for p in model.backbone.fpn.parameters())
    assert all(p.requires_grad for p in model.rpn.parameters())


def test_export_model_command_records_name_and_half(tmp_path, capsys):
    from sectionseg.cli.main import main

    cfg, model = _tiny()
    save_model(tmp_path / "m.pt", model, cfg)
    assert main(["export-model", str(tmp_path / "m.pt"), str(tmp_path / "e.pt"), "--half", "--name", "unit"]) == 0
    assert "float16" in capsys.readouterr().out
    _, cfg2, meta = load_model(tmp_path / "e.pt")
    assert cfg2 == cfg and meta["extra"]["name"] == "unit" and meta["extra"]["half"] is True
    # "export", the command's earlier name, is an alias
    assert main(["export", str(tmp_path / "m.pt"), str(tmp_path / "e2.pt"), "--half", "--name", "unit"]) == 0
    assert "float16" in capsys.readouterr().out
    assert load_model(tmp_path / "e2.pt")[2]["extra"]["name"] == "unit"
    assert main(["export", str(tmp_path / "missing.pt"), str(tmp_path / "x.pt")]) == 2
    assert not (tmp_path / "x.pt").exists()
