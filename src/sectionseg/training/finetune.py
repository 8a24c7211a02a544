"""Fine-tuning a trained model on an adaptation dataset (a new wafer's few labelled sections).

The run starts from the base model's weights and architecture; only the optimisation changes
(:data:`FINETUNE_TRAIN`: AdamW, a short warm-up, a cosine decay, frequent checkpoints). By default
the backbone body is frozen and the FPN, RPN and ROI heads train (``all_layers=True`` trains
everything). The run folder is a normal training run folder, so a killed fine-tuning resumes from
its ``last.pt``; :func:`export_adapted` writes the final model file with what detection needs to
know about the wafer (``extra["section_size"]``, the sections' long side in source px).
"""

from __future__ import annotations

import os
from pathlib import Path

from sectionseg.errors import InputError
from sectionseg.model.checkpoint import export_weights, load_weights
from sectionseg.model.config import Config
from sectionseg.training.loop import train

#: Optimisation of a fine-tuning run (the base model's ``train`` section is replaced by this).
FINETUNE_TRAIN = {
    "optimizer": "adamw",
    "lr": 3e-4,
    "weight_decay": 1e-4,
    "warmup_iters": 20,
    "warmup_factor": 0.1,
    "scheduler": "cosine",
    "checkpoint_every": 25,
    "batch_size": 2,
    "max_iters_per_epoch": 0,
    "num_workers": 0,
}


def finetune_config(base: Config, epochs: int, lr: float | None = None, seed: int = 0) -> Config:
    """The base model's config with the fine-tuning optimisation (:data:`FINETUNE_TRAIN`)."""
    for key, value in FINETUNE_TRAIN.items():
        setattr(base.train, key, value)
    base.train.epochs = int(epochs)
    base.train.seed = int(seed)
    if lr is not None:
        base.train.lr = float(lr)
    return base


def finetune(
    base_model: str | os.PathLike,
    data_root,
    run_dir,
    *,
    epochs: int,
    all_layers: bool = True,
    lr: float | None = None,
    resume: bool = False,
    device: str = "cpu",
    seed: int = 0,
    max_iters_per_epoch: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Fine-tune the model file ``base_model`` on the dataset folder ``data_root`` into ``run_dir``
    for ``epochs`` (the default of a fine-tuning: :data:`sectionseg.workflows.finetune.DEFAULT_EPOCHS`).

    ``resume`` continues ``run_dir/last.pt`` (the base model is then not read again; ``epochs`` may
    extend the run). Returns the per-epoch history (see :func:`sectionseg.training.train`).
    """
    if resume:
        return train(
            None,
            data_root,
            run_dir,
            resume=True,
            epochs=epochs,
            device=device,
            max_iters_per_epoch=max_iters_per_epoch,
            progress=progress,
        )
    stored, state = load_weights(base_model)
    config = finetune_config(stored, epochs, lr, seed)
    return train(
        config,
        data_root,
        run_dir,
        heads_only=not all_layers,
        device=device,
        init_state=state,
        max_iters_per_epoch=max_iters_per_epoch,
        progress=progress,
    )


def export_adapted(
    run_dir, out: str | os.PathLike, *, section_size: float, base_model: str | os.PathLike, info: dict | None = None
) -> Path:
    """Write the best checkpoint of ``run_dir`` as the adapted model file ``out`` (float32).

    ``section_size``: long side of this wafer's sections in source px; ``detect`` uses it as its
    scale hint when the user gives none.
    """
    run_dir = Path(run_dir)
    best = run_dir / "best.pt"
    if not best.is_file():
        best = run_dir / "last.pt"
    if not best.is_file():
        raise InputError("the fine-tuning run has no checkpoint", run_dir)
    extra = {
        "config_name": "adapted",
        "section_size": float(section_size),
        "base_model": str(base_model),
        **(info or {}),
    }
    export_weights(best, out, half=False, info=extra)
    return Path(out)
