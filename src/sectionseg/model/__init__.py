"""Mask R-CNN model (torchvision) for tissue and magnet parts: config, building, model files."""
from sectionseg.model.build import build_model, freeze_for_heads_only, load_backbone_weights
from sectionseg.model.checkpoint import default_model_path, export_weights, load_model, save_model
from sectionseg.model.config import (
    CLASSES, Config, DataConfig, ModelConfig, TrainConfig, config_from_dict, config_to_dict,
    load_config, preset_names,
)

__all__ = [
    "CLASSES", "Config", "DataConfig", "ModelConfig", "TrainConfig", "build_model",
    "config_from_dict", "config_to_dict", "default_model_path", "export_weights", "freeze_for_heads_only",
    "load_backbone_weights", "load_config", "load_model", "preset_names", "save_model",
]
