"""Mask R-CNN model (torchvision) for tissue and magnet parts: config, building, model files.

The names below load their module (and torch) on first use, so that ``sectionseg.model.files`` and
``sectionseg.model.config`` can be used without importing torch (fast argument checks in the CLI).
"""

import importlib

_HOME = {
    "build_model": "build",
    "freeze_for_heads_only": "build",
    "load_backbone_weights": "build",
    "default_model_path": "files",
    "export_weights": "checkpoint",
    "load_model": "checkpoint",
    "save_model": "checkpoint",
    "CLASSES": "config",
    "Config": "config",
    "DataConfig": "config",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "config_from_dict": "config",
    "config_to_dict": "config",
    "load_config": "config",
    "preset_names": "config",
}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOME))
