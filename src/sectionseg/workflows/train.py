"""Training a model on a dataset folder (``sectionseg train``), from a config name or file."""

from __future__ import annotations

import os
from typing import Any


def train_model(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    config: str | os.PathLike = "cpu",
    init_weights: str | os.PathLike | None = None,
    lr: float | None = None,
    resume: bool = False,
    **train_kwargs: Any,
) -> list[dict]:
    """Train the Mask R-CNN on the dataset folder ``data_dir`` into the run folder ``run_dir``.

    Parameters
    ----------
    data_dir : path
        Dataset folder with ``manifest.json`` (``sectionseg dataset``, ``tiles``, ``synth``); the
        train split trains, the val split gives a validation loss every epoch.
    run_dir : path
        Run folder: ``last.pt`` / ``best.pt`` checkpoints, ``log.csv``, ``losses.png``, ``config.yaml``.
    config : str or path
        Preset name (``tiny``, ``cpu``, ``seed``) or YAML file (ignored with ``resume``: the run's own).
    init_weights : path, optional
        Model file to start from: its weights and its architecture (which replaces the config's
        ``model`` section); every layer trains.
    lr : float, optional
        Learning rate, overriding the config's.
    resume : bool
        Continue the run in ``run_dir`` from its ``last.pt``.
    **train_kwargs
        ``epochs``, ``heads_only``, ``freeze_fpn``, ``device``, ``backbone_weights``, ``seed``,
        ``max_iters_per_epoch``, ``progress``: see :func:`sectionseg.training.train`.

    Returns
    -------
    list of dict
        The per-epoch history (losses; ``val_total`` when there is a val split).
    """
    from sectionseg.model.config import load_config
    from sectionseg.training.loop import train

    cfg = None if resume else load_config(config)
    init_state = None
    if init_weights:
        from sectionseg.model.checkpoint import load_weights

        stored, init_state = load_weights(init_weights)
        if cfg is not None:
            cfg.model = stored.model  # the weights' own architecture
    if lr is not None and cfg is not None:
        cfg.train.lr = lr
    return train(cfg, data_dir, run_dir, resume=resume, init_state=init_state, **train_kwargs)
