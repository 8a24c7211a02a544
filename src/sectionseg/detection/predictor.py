"""The model behind whole-wafer detection: a model file, a loaded model or the bundled one, made a
predictor for :func:`~sectionseg.detection.inference.predict_tiles` (eval mode, score threshold,
proposals per tile, arithmetic), and its identity for reports."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from sectionseg.detection.inference import Predictor, model_predictor, resolve_precision
from sectionseg.errors import InputError

#: models loaded by :func:`resolve_model` with ``reuse=True``: (path, size, mtime, device, thread) ->
#: (loaded tuple, identity); a batch worker loads its model once for all its wafers
_LOADED: dict[tuple[str, int, int, str, int], tuple[Any, dict[str, Any]]] = {}


def _load_reused(path: str | os.PathLike[str], device: str) -> tuple[Any, dict[str, Any]]:
    from sectionseg.model import load_model

    info = Path(path).stat()
    key = (str(Path(path).resolve()), info.st_size, info.st_mtime_ns, str(device), threading.get_ident())
    if key not in _LOADED:
        if len(_LOADED) >= 8:  # models of many threads or files: start again
            _LOADED.clear()
        _LOADED[key] = (load_model(path, device=device), model_identity(path))
    loaded, identity = _LOADED[key]
    return loaded, dict(identity)


def resolve_model(
    model: Any,
    device: str = "cpu",
    score_threshold: float | None = None,
    precision: str = "fp32",
    proposals: int | None = None,
    reuse: bool = False,
    mask_threshold: float | None = None,
) -> tuple[Predictor, dict[str, Any]]:
    """``(predictor, info)`` for a model path, a loaded ``(model, config, meta)`` tuple, a bare
    torch module, or None (the bundled model; InputError when it is missing). With
    ``score_threshold`` the model's own box score threshold is set to it, with ``proposals`` its
    number of region proposals per tile (the model is changed). ``precision``: see
    :func:`~sectionseg.detection.inference.resolve_precision`. ``reuse``: a model file loaded by this
    thread before (same file, size and modification time, device) is taken again instead of loaded
    (every setting above is applied anew on each call). ``mask_threshold``: the predictor returns
    binary masks cut there (see :func:`~sectionseg.detection.inference.model_predictor`)."""
    import torch

    from sectionseg.model import default_model_path, load_model

    info: dict[str, Any] = {}
    if model is None:
        model = default_model_path()
        if not Path(model).is_file():
            raise InputError("the bundled model is missing (train one with 'sectionseg train' and pass --model)", model)
    if isinstance(model, (str, os.PathLike)) and reuse:
        model, info = _load_reused(model, device)
    elif isinstance(model, (str, os.PathLike)):
        info = model_identity(model)
        model = load_model(model, device=device)
    if isinstance(model, tuple):
        net, config, meta = model
        info.setdefault("epoch", meta.get("epoch"))
        info["reference_size"] = float(config.data.section_size)
        model = net
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a path, a load_model() tuple or a torch module, not {type(model)}")
    model.to(device).eval()
    heads: Any = getattr(model, "roi_heads", None)
    if score_threshold is not None and hasattr(heads, "score_thresh"):
        # boxes below the threshold would be dropped anyway: skip their mask head and (H, W) masks
        heads.score_thresh = float(score_threshold)
    if proposals is not None:
        set_proposals(model, proposals)
    info["precision"] = resolve_precision(precision, device)
    info["proposals"] = getattr(getattr(model, "rpn", None), "_post_nms_top_n", {}).get("testing")
    return model_predictor(model, device, info["precision"], mask_threshold), info


def set_proposals(model: Any, proposals: int) -> None:
    """Keep ``proposals`` region proposals per tile at inference (torchvision's
    ``rpn_post_nms_top_n_test``; pre-NMS candidates at least twice as many)."""
    if not proposals >= 1:
        raise InputError(f"proposals must be a positive integer, got {proposals}")
    rpn = model.rpn
    rpn._post_nms_top_n["testing"] = int(proposals)
    rpn._pre_nms_top_n["testing"] = max(int(rpn._pre_nms_top_n["testing"]), 2 * int(proposals))


def model_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Path, sha256 prefix, config name and epoch of a model file (for reports)."""
    import hashlib

    import torch

    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    info: dict[str, Any] = {"path": str(path), "sha256": digest.hexdigest()[:16]}
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        extra = payload.get("extra") or {}
        training = payload.get("training") or {}
        m = (payload.get("config") or {}).get("model") or {}
        info["config"] = (
            extra.get("config_name")
            or extra.get("preset")
            or (
                f"{m.get('backbone')} width {m.get('backbone_width')}, {m.get('norm')} norm, "
                f"FPN {m.get('fpn_channels')}"
            )
        )
        info["epoch"] = training.get("epoch", extra.get("epoch"))
        if extra.get("section_size"):  # an adapted model knows its wafer's section size
            info["section_size"] = float(extra["section_size"])
        if extra.get("config_name") == "adapted":  # fine-tuned on labelled sections of one wafer
            info["adapted"] = True
    except Exception:  # identity is informative only; load_model reports real problems
        pass
    return info
