"""Model files that carry their own config and class names.

A model file is a ``torch.save`` dict::

    {"format": "sectionseg-model", "version": 1, "config": {...}, "classes": [...],
     "state_dict": {...}, "extra": {...}, "training": {...}  # training state: only in run checkpoints
    }

:func:`load_model` needs nothing else to rebuild the model. :func:`export_weights` strips the
training state and can store the weights as float16 (half the size); they are converted back to
float32 on load.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from sectionseg.errors import InputError
from sectionseg.io.atomic import atomic_path
from sectionseg.model.build import build_model
from sectionseg.model.config import CLASSES, Config, config_from_dict, config_to_dict
from sectionseg.model.files import default_model_path  # noqa: F401 - re-exported

FORMAT = "sectionseg-model"
VERSION = 1


def model_payload(model: torch.nn.Module, config: Config, extra: dict | None = None) -> dict:
    """The checkpoint dict of ``model`` (state dict on the CPU)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "config": config_to_dict(config),
        "classes": list(CLASSES),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }


def save_payload(path: str | os.PathLike, payload: dict) -> None:
    """Atomically ``torch.save`` ``payload`` to ``path`` (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def save_model(path: str | os.PathLike, model: torch.nn.Module, config: Config, extra: dict | None = None) -> None:
    """Atomically write ``model`` with its config, class names and ``extra`` metadata."""
    save_payload(path, model_payload(model, config, extra))


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read and check a model/checkpoint file; InputError when it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise InputError("model file not found", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except MemoryError:
        raise
    except Exception as exc:  # torch raises many types for corrupt files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read model file: {reason}", path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"not a {FORMAT} file", path)
    if payload.get("version") != VERSION:
        raise InputError(f"unsupported model file version {payload.get('version')!r}", path)
    return payload


def load_config_of(path: str | os.PathLike) -> Config:
    """The :class:`Config` stored in a model file."""
    return config_from_dict(read_checkpoint(path)["config"], path)


def float_state(payload: dict) -> dict:
    """The state dict of a read model file, floating-point tensors as float32 (files may store float16)."""
    return {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()}


def load_weights(path: str | os.PathLike) -> tuple[Config, dict]:
    """``(config, float32 state dict)`` of a model file or checkpoint, to start a training run from."""
    payload = read_checkpoint(path)
    return config_from_dict(payload["config"], path), float_state(payload)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model stored at ``path``.

    Returns ``(model, config, meta)``: the model in eval mode on ``device`` (float32), its
    :class:`Config`, and ``meta`` = ``{"classes": [...], "extra": {...}, "epoch": ... or None}``.
    """
    payload = read_checkpoint(path)
    config = config_from_dict(payload["config"], path)
    model = build_model(config.model)
    state = float_state(payload)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"weights do not fit the stored config: {exc}", path) from None
    model.to(device).eval()
    training = payload.get("training") or {}
    meta = {
        "classes": list(payload.get("classes", CLASSES)),
        "extra": payload.get("extra", {}),
        "epoch": training.get("epoch"),
    }
    return model, config, meta


def export_weights(
    ckpt: str | os.PathLike, out: str | os.PathLike, half: bool = False, info: dict | None = None
) -> None:
    """Write the model of checkpoint ``ckpt`` to ``out`` without training state.

    ``half=True`` stores floating-point tensors as float16 (about half the file size).
    """
    payload = read_checkpoint(ckpt)
    state = payload["state_dict"]
    if half:
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    slim = {key: payload[key] for key in ("format", "version", "config", "classes")}
    slim["state_dict"] = state
    training = payload.get("training") or {}
    slim["extra"] = dict(payload.get("extra", {}), half=bool(half), epoch=training.get("epoch"), **(info or {}))
    save_payload(out, slim)
