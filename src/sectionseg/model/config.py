"""Model and training configuration: dataclasses read from YAML, validated strictly on load.

A config file has three sections, ``model``, ``train`` and ``data``; every key is optional (the
dataclass default applies) but an unknown key, a wrong type or an out-of-range value is an
:class:`~sectionseg.errors.InputError` that names the file and the key. Named presets live in
``sectionseg/model/presets/<name>.yaml`` (``tiny``, ``cpu``, ``seed``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from sectionseg.errors import InputError
from sectionseg.geometry.scale import REFERENCE_SECTION_SIZE

CLASSES = ("background", "tissue", "magnet")


@dataclass
class ModelConfig:
    """Mask R-CNN architecture (torchvision ``MaskRCNN``)."""

    backbone: str = "resnet50"  # resnet18 | resnet34 | resnet50
    # stem channels; 64 = torchvision's ResNet, less = narrow ResNet-18/34 layout (tests, tiny experiments)
    backbone_width: int = 64
    norm: str = "batch"  # batch | group | frozen_batch
    group_norm_groups: int = 32  # groups of GroupNorm (norm == "group")
    trainable_layers: int = 5  # backbone stages that train (0..5)
    fpn_channels: int = 256  # FPN output channels
    anchor_sizes: list = field(default_factory=lambda: [16, 32, 64, 128, 256])  # px, one per FPN level
    aspect_ratios: list = field(default_factory=lambda: [0.5, 1.0, 2.0])  # height / width
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    box_representation_size: int = 1024  # TwoMLPHead width
    mask_head_layers: list = field(default_factory=lambda: [256, 256, 256, 256])
    mask_predictor_channels: int = 256
    box_detections_per_img: int = 300
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    # Images are fed at their own size (no GeneralizedRCNNTransform resizing) when keep_image_size
    # is true, so large inference tiles keep their pixel scale; min_size/max_size apply otherwise.
    keep_image_size: bool = True
    min_size: int = 512
    max_size: int = 512
    image_mean: list = field(default_factory=lambda: [0.485, 0.456, 0.406])
    image_std: list = field(default_factory=lambda: [0.229, 0.224, 0.225])


@dataclass
class TrainConfig:
    """Optimisation and checkpointing."""

    epochs: int = 20
    batch_size: int = 2
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 200  # linear warm-up from warmup_factor * lr
    warmup_factor: float = 0.001
    scheduler: str = "cosine"  # cosine | step | constant
    step_milestones: list = field(default_factory=lambda: [0.7, 0.9])  # fractions of all iterations
    step_gamma: float = 0.1
    grad_clip: float = 10.0  # max gradient norm; 0 disables
    checkpoint_every: int = 50  # iterations between mid-epoch checkpoints; 0 disables
    max_iters_per_epoch: int = 0  # 0 = the whole train split each epoch
    num_workers: int = 0
    seed: int = 0


@dataclass
class DataConfig:
    """How images are fed during training."""

    crop_size: int = 512  # square training crops, px
    # long side of a section in the training data, px: detection and fine-tuning bring wafers to this scale
    section_size: float = REFERENCE_SECTION_SIZE
    max_instances: int = 300  # ground-truth instances kept per image
    # share of training samples whose third channel repeats gray (what detection feeds without a
    # fluorescence image)
    gray_only_probability: float = 0.0
    jpeg_probability: float = 0.0  # share of training samples passed through JPEG (quality 30-95)


@dataclass
class Config:
    """The whole configuration of a run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)


_CHOICES = {
    ("model", "backbone"): ("resnet18", "resnet34", "resnet50"),
    ("model", "norm"): ("batch", "group", "frozen_batch"),
    ("train", "optimizer"): ("sgd", "adamw"),
    ("train", "scheduler"): ("cosine", "step", "constant"),
}


def preset_names() -> list[str]:
    """Names of the bundled presets."""
    folder = resources.files("sectionseg.model") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _check_value(section: str, name: str, value, annotation, source):
    where = f"{section}.{name}"
    if annotation in ("int", int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"config key '{where}' must be an integer, got {value!r}", source)
    elif annotation in ("float", float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"config key '{where}' must be a number, got {value!r}", source)
        value = float(value)
    elif annotation in ("bool", bool):
        if not isinstance(value, bool):
            raise InputError(f"config key '{where}' must be true or false, got {value!r}", source)
    elif annotation in ("str", str):
        if not isinstance(value, str):
            raise InputError(f"config key '{where}' must be a string, got {value!r}", source)
        choices = _CHOICES.get((section, name))
        if choices and value not in choices:
            raise InputError(f"config key '{where}' must be one of {', '.join(choices)}, got {value!r}", source)
    elif annotation in ("list", list):
        if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise InputError(f"config key '{where}' must be a list of numbers, got {value!r}", source)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise InputError(f"config key '{where}' must not be negative, got {value!r}", source)
    return value


def _section_from_dict(cls, section: str, data, source):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"config section '{section}' must be a mapping", source)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise InputError(f"unknown config key '{section}.{key}' (known: {', '.join(fields)})", source)
        kwargs[key] = _check_value(section, key, value, fields[key].type, source)
    return cls(**kwargs)


def config_from_dict(data, source: str | os.PathLike | None = None) -> Config:
    """Build a validated :class:`Config` from a plain dict (as read from YAML or a checkpoint)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError("config must be a mapping with sections model, train, data", source)
    sections = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig}
    for key in data:
        if key not in sections:
            raise InputError(f"unknown config key '{key}' (known: {', '.join(sections)})", source)
    cfg = Config(**{name: _section_from_dict(cls, name, data.get(name), source) for name, cls in sections.items()})
    _check_consistency(cfg, source)
    return cfg


def _check_consistency(cfg: Config, source) -> None:
    m = cfg.model
    if len(m.anchor_sizes) != 5:
        raise InputError("config key 'model.anchor_sizes' needs 5 sizes, one per FPN level", source)
    if not m.aspect_ratios or min(m.aspect_ratios) <= 0:
        raise InputError("config key 'model.aspect_ratios' needs positive ratios", source)
    if m.trainable_layers > 5:
        raise InputError("config key 'model.trainable_layers' must be in 0..5", source)
    if not m.mask_head_layers:
        raise InputError("config key 'model.mask_head_layers' needs at least one layer", source)
    if m.backbone_width != 64 and (m.backbone == "resnet50" or m.backbone_width < 1):
        raise InputError("config key 'model.backbone_width' other than 64 needs resnet18 or resnet34", source)
    if m.norm == "group":
        widths = [m.fpn_channels, m.backbone_width] + list(m.mask_head_layers)
        if any(int(w) % m.group_norm_groups for w in widths):
            raise InputError("GroupNorm needs channel counts divisible by 'model.group_norm_groups'", source)
    for key in ("batch_size", "epochs"):
        if getattr(cfg.train, key) < 1:
            raise InputError(f"config key 'train.{key}' must be at least 1", source)
    if cfg.data.crop_size < 32:
        raise InputError("config key 'data.crop_size' must be at least 32", source)
    if cfg.data.section_size <= 0:
        raise InputError("config key 'data.section_size' must be positive", source)
    for key in ("gray_only_probability", "jpeg_probability"):
        if not 0.0 <= getattr(cfg.data, key) <= 1.0:
            raise InputError(f"config key 'data.{key}' must be in [0, 1]", source)


def load_config(name_or_path: str | os.PathLike) -> Config:
    """Load a preset by name (``tiny``, ``cpu``, ``seed``) or a YAML file by path."""
    text_source: str
    path = Path(name_or_path)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise InputError("config file not found", path)
        text_source, source = path.read_text(encoding="utf-8"), path
    else:
        preset = resources.files("sectionseg.model") / "presets" / f"{name_or_path}.yaml"
        if not preset.is_file():
            raise InputError(f"no such preset or config file: {name_or_path!s} (presets: {', '.join(preset_names())})")
        text_source, source = preset.read_text(encoding="utf-8"), f"preset:{name_or_path}"
    try:
        data = yaml.safe_load(text_source)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise InputError(f"invalid YAML: {exc}", source, None if line is None else line + 1) from None
    return config_from_dict(data, source)


def config_to_dict(cfg: Config) -> dict:
    """Plain nested dict of ``cfg`` (YAML/JSON/pickle friendly)."""
    return dataclasses.asdict(cfg)


def dump_config(cfg: Config) -> str:
    """YAML text of ``cfg``."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
