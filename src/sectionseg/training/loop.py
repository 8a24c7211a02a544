"""Training loop for the Mask R-CNN: resumable, deterministic for a seed, CPU or CUDA.

Run folder layout (``out_dir``):

- ``config.yaml``: the run's configuration;
- ``last.pt``: the latest checkpoint (model, optimizer, LR scheduler, epoch, iteration, RNG states,
  history), written atomically at the end of every epoch and every ``train.checkpoint_every``
  iterations inside an epoch, so a killed run loses little work;
- ``best.pt``: the checkpoint with the lowest validation loss so far;
- ``log.csv`` and ``losses.png``: per-epoch train/validation losses, rewritten every epoch.

Determinism: the shuffling order of epoch ``e`` is a permutation drawn from ``seed + e``; before
every iteration the python, numpy and torch generators are reseeded from ``(seed, epoch,
iteration)``, so augmentations and the detector's ROI sampling do not depend on how the run was
interrupted. With ``num_workers = 0`` on the CPU a resumed run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sectionseg.errors import InputError
from sectionseg.io.atomic import remove_stale_temps, write_text
from sectionseg.model.build import (
    build_model,
    freeze_for_heads_only,
    load_backbone_weights,
    set_norm_eval,
)
from sectionseg.model.checkpoint import model_payload, read_checkpoint, save_payload
from sectionseg.model.config import Config, config_from_dict, dump_config
from sectionseg.training.logs import LOSS_TERMS, plot_losses, write_csv

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """Where a run stands: the next (epoch, iteration) to do, both 0-based."""

    epoch: int = 0
    iteration: int = 0
    global_step: int = 0
    best_val: float = math.inf
    history: list = field(default_factory=list)
    partial: dict = field(default_factory=dict)  # loss sums of the unfinished epoch
    partial_count: int = 0
    partial_time: float = 0.0


# ----------------------------------------------------------------------------------- helpers
def iteration_seed(seed: int, epoch: int, iteration: int) -> int:
    """A 32-bit seed derived from (seed, epoch, iteration)."""
    return int(np.random.SeedSequence([seed, epoch, iteration]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_batches(n_images: int, batch_size: int, seed: int, epoch: int, max_iters: int = 0) -> list[list[int]]:
    """Shuffled batches of image indices for ``epoch`` (drop_last), from ``seed + epoch``."""
    gen = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(n_images, generator=gen).tolist()
    n_batches = max(1, n_images // batch_size) if n_images else 0
    batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]
    return batches[:max_iters] if max_iters else batches


def lr_factor(step: int, total_steps: int, cfg) -> float:
    """Multiplier of the base LR at optimizer step ``step``: linear warm-up times cosine/step decay."""
    warm = 1.0
    if cfg.warmup_iters and step < cfg.warmup_iters:
        warm = cfg.warmup_factor + (1.0 - cfg.warmup_factor) * step / cfg.warmup_iters
    total = max(1, total_steps)
    if cfg.scheduler == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    elif cfg.scheduler == "step":
        decay = cfg.step_gamma ** sum(step >= m * total for m in cfg.step_milestones)
    else:
        decay = 1.0
    return warm * decay


def _rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _plain(x):
    """tv_tensors -> plain tensors (torchvision's detection models expect plain tensors)."""
    return x.as_subclass(torch.Tensor) if isinstance(x, torch.Tensor) else x


def prepare_batch(batch, device, max_instances: int = 300):
    """``(images, targets)`` from a collated batch, on ``device``, at most ``max_instances`` per image."""
    images, targets = batch
    out_images = [_plain(img).to(device, torch.float32) for img in images]
    out_targets = []
    for t in targets:
        t = {k: _plain(v) for k, v in t.items()}
        keep = {
            "boxes": t["boxes"].reshape(-1, 4).float(),
            "labels": t["labels"].long(),
            "masks": t["masks"].to(torch.uint8),
        }
        if len(keep["labels"]) > max_instances:
            keep = {k: v[:max_instances] for k, v in keep.items()}
        if "ignore" in t:  # areas of unknown content (sectionseg.model.ignore)
            keep["ignore"] = t["ignore"].to(torch.bool)
        out_targets.append({k: v.to(device) for k, v in keep.items()})
    return out_images, out_targets


def _fallback_collate(batch):
    return tuple(zip(*batch))


def _collate():
    try:
        from sectionseg.datasets.torch_dataset import collate_fn

        return collate_fn
    except ImportError:
        return _fallback_collate


def open_datasets(data_root, crop_size: int, *, gray_only_probability: float = 0.0, jpeg_probability: float = 0.0):
    """Train and val datasets of a dataset folder (``sectionseg.datasets.SectionDataset``).

    Train samples are augmented and cropped to ``crop_size`` (a share of them gray-only or through
    JPEG, see :func:`sectionseg.datasets.transforms.build_transforms`); val samples are whole images.
    """
    from sectionseg.datasets.torch_dataset import SectionDataset
    from sectionseg.datasets.transforms import build_transforms

    train_tf = build_transforms(
        True, crop_size=crop_size, gray_only_probability=gray_only_probability, jpeg_probability=jpeg_probability
    )
    train = SectionDataset(data_root, "train", transforms=train_tf)
    val = SectionDataset(data_root, "val", transforms=build_transforms(False, crop_size=crop_size))
    return train, val


def dataset_section_size(data_root, default: float) -> float:
    """Section long side (px) of a dataset folder's images, as its manifest records it (datasets cut at
    a scale other than the simulator's, ``sectionseg dataset --scale``), else ``default``. The model
    file keeps it as ``data.section_size``, which tells detection the scale to work at."""
    from sectionseg.datasets.torch_dataset import read_manifest

    size = read_manifest(data_root).get("params", {}).get("image_section_size")
    return float(size) if size else float(default)


@torch.no_grad()
def mean_losses(
    model, dataset, *, batch_size: int = 2, device="cpu", seed: int = 0, max_instances: int = 300, num_workers: int = 0
) -> dict:
    """Mean Mask R-CNN loss terms (and ``total``) of ``model`` over ``dataset`` (a :class:`SectionDataset`).

    Train-mode forward (torchvision computes losses only then) without gradients; BatchNorm layers in
    eval mode so their statistics do not change; the global RNG state is restored afterwards and the
    detector's sampling seeded by ``seed``, so the value is reproducible and training is unaffected.
    Also a held-out measure: lower is better, for any pair of models on the same images.
    """
    device = torch.device(device)
    sums: dict = {}
    count = 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model.train()
        set_norm_eval(model)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=False, collate_fn=_collate(), num_workers=num_workers
        )
        for batch in loader:
            images, targets = prepare_batch(batch, device, max_instances)
            losses = model(images, targets)
            n = len(images)
            for key in LOSS_TERMS:
                sums[key] = sums.get(key, 0.0) + float(losses[key]) * n
            sums["total"] = sums.get("total", 0.0) + float(sum(losses.values())) * n
            count += n
    return {k: v / count for k, v in sums.items()} if count else {}


# ----------------------------------------------------------------------------------- the loop
class Trainer:
    """One training run in ``out_dir``; see the module docstring. Call :meth:`run`."""

    def __init__(
        self,
        config: Config,
        out_dir,
        train_dataset,
        val_dataset=None,
        *,
        device: str = "cpu",
        heads_only: bool = False,
        freeze_fpn: bool = False,
        backbone_weights=None,
        init_state: dict | None = None,
        progress: bool = True,
    ):
        self.config = config
        self.out_dir = Path(out_dir)
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.device = torch.device(device)
        self.heads_only = heads_only
        self.freeze_fpn = freeze_fpn
        self.progress = progress
        self.collate = _collate()
        tc = config.train
        seed_everything(tc.seed)
        self.model = build_model(config.model)
        if backbone_weights:
            load_backbone_weights(self.model, backbone_weights)
        if init_state is not None:  # fine-tuning: start from a whole trained model
            self.model.load_state_dict(init_state)
        if heads_only:
            freeze_for_heads_only(self.model, freeze_fpn)
        self.model.to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if tc.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
        self.batches_per_epoch = len(self._batches(0))
        if self.batches_per_epoch == 0:
            raise InputError("the train split has no images")
        total = tc.epochs * self.batches_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: lr_factor(step, total, tc))
        self.state = RunState()

    # -- checkpoints
    def _batches(self, epoch: int):
        tc = self.config.train
        return epoch_batches(len(self.train_dataset), tc.batch_size, tc.seed, epoch, tc.max_iters_per_epoch)

    def _payload(self) -> dict:
        payload = model_payload(self.model, self.config, {"heads_only": self.heads_only})
        payload["training"] = {
            "epoch": self.state.epoch,
            "iteration": self.state.iteration,
            "global_step": self.state.global_step,
            "best_val": self.state.best_val,
            "history": self.state.history,
            "partial": self.state.partial,
            "partial_count": self.state.partial_count,
            "partial_time": self.state.partial_time,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": _rng_states(),
            "heads_only": self.heads_only,
            "freeze_fpn": self.freeze_fpn,
        }
        return payload

    def save(self, name: str = "last.pt", payload: dict | None = None) -> None:
        save_payload(self.out_dir / name, payload or self._payload())

    def restore(self, path) -> None:
        """Load model, optimizer, scheduler, counters and RNG states from checkpoint ``path``."""
        payload = read_checkpoint(path)
        tr = payload.get("training")
        if not tr:
            raise InputError("checkpoint has no training state (an exported model?)", path)
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(tr["optimizer"])
        self.scheduler.load_state_dict(tr["scheduler"])
        self.state = RunState(
            epoch=tr["epoch"],
            iteration=tr["iteration"],
            global_step=tr["global_step"],
            best_val=tr["best_val"],
            history=list(tr["history"]),
            partial=dict(tr["partial"]),
            partial_count=tr["partial_count"],
            partial_time=tr["partial_time"],
        )
        _set_rng_states(tr["rng"])

    # -- one epoch
    def _train_mode(self) -> None:
        self.model.train()
        if self.heads_only:  # frozen body: keep its BatchNorm statistics frozen too
            set_norm_eval(self.model.backbone.body)

    def _loss(self, batch):
        images, targets = prepare_batch(batch, self.device, self.config.data.max_instances)
        return self.model(images, targets)

    def train_epoch(self, epoch: int, total_epochs: int) -> None:
        """Run the rest of ``epoch`` from ``state.iteration``, checkpointing every K iterations."""
        tc = self.config.train
        batches = self._batches(epoch)
        start = self.state.iteration
        loader = torch.utils.data.DataLoader(
            self.train_dataset,
            batch_sampler=batches[start:],
            collate_fn=self.collate,
            num_workers=tc.num_workers,
            generator=torch.Generator().manual_seed(iteration_seed(tc.seed, epoch, start)),
        )
        self._train_mode()
        bar = tqdm(
            total=len(batches),
            initial=start,
            desc=f"epoch {epoch + 1}/{total_epochs}",
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        t0 = time.monotonic()
        batch_iter = iter(loader)
        for it in range(start, len(batches)):
            seed_everything(iteration_seed(tc.seed, epoch, it))  # before the batch: augmentation
            losses = self._loss(next(batch_iter))
            total = sum(losses.values())
            if not torch.isfinite(total):
                raise RuntimeError(
                    f"non-finite loss at epoch {epoch + 1} iteration {it + 1}: "
                    f"{ {k: float(v) for k, v in losses.items()} }"
                )
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], tc.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            st = self.state
            for key in LOSS_TERMS:
                st.partial[key] = st.partial.get(key, 0.0) + losses[key].item()
            st.partial["total"] = st.partial.get("total", 0.0) + total.item()
            st.partial_count += 1
            st.iteration = it + 1
            st.global_step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{total.item():.3f}")
            if tc.checkpoint_every and st.iteration % tc.checkpoint_every == 0 and st.iteration < len(batches):
                st.partial_time += time.monotonic() - t0
                t0 = time.monotonic()
                self.save()
        bar.close()
        self.state.partial_time += time.monotonic() - t0

    def validation_loss(self) -> dict:
        """Mean loss terms over the val split (see :func:`mean_losses`); the model goes back to
        training mode afterwards."""
        if self.val_dataset is None or len(self.val_dataset) == 0:
            return {}
        tc = self.config.train
        out = mean_losses(
            self.model,
            self.val_dataset,
            batch_size=tc.batch_size,
            device=self.device,
            seed=tc.seed,
            max_instances=self.config.data.max_instances,
            num_workers=tc.num_workers,
        )
        self._train_mode()
        return out

    # -- the whole run
    def run(self) -> list[dict]:
        """Train until ``train.epochs``; return the history (one dict per epoch, CSV columns)."""
        tc = self.config.train
        self.out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.out_dir)  # of runs killed while writing a checkpoint or a log
        write_text(self.out_dir / "config.yaml", dump_config(self.config))
        self._write_logs()
        for epoch in range(self.state.epoch, tc.epochs):
            self.train_epoch(epoch, tc.epochs)
            self._finish_epoch(epoch)
        return self.state.history

    def _finish_epoch(self, epoch: int) -> None:
        st = self.state
        n = max(1, st.partial_count)
        row = {"epoch": epoch + 1}
        for key in list(LOSS_TERMS) + ["total"]:
            row[f"train_{key}"] = st.partial.get(key, 0.0) / n
        val = self.validation_loss()
        for key in list(LOSS_TERMS) + ["total"]:
            row[f"val_{key}"] = val.get(key)
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        row["time_s"] = st.partial_time
        st.history.append(row)
        st.epoch, st.iteration = epoch + 1, 0
        st.partial, st.partial_count, st.partial_time = {}, 0, 0.0
        score = val.get("total", row["train_total"])
        payload = None
        if score < st.best_val:
            st.best_val = score
            payload = self._payload()
            self.save("best.pt", payload)
        self.save("last.pt", payload)
        self._write_logs()
        log.info("epoch %d: train %.4f val %s", epoch + 1, row["train_total"], val.get("total"))

    def _write_logs(self) -> None:
        write_csv(self.out_dir / "log.csv", self.state.history)
        if self.state.history:
            plot_losses(self.out_dir / "losses.png", self.state.history)


def train(
    config: Config | None,
    data_root,
    out_dir,
    *,
    resume: bool = False,
    epochs: int | None = None,
    heads_only: bool = False,
    freeze_fpn: bool = False,
    device: str = "cpu",
    backbone_weights=None,
    seed: int | None = None,
    max_iters_per_epoch: int | None = None,
    train_dataset=None,
    val_dataset=None,
    init_state: dict | None = None,
    progress: bool = True,
) -> list[dict]:
    """Train a model on the dataset folder ``data_root`` into the run folder ``out_dir``.

    ``resume`` continues from ``out_dir/last.pt`` with the config stored there (``config`` may then be
    None; ``epochs`` may extend it). ``train_dataset``/``val_dataset`` replace the datasets read from ``data_root``.
    ``init_state``: a whole model's state dict to start from (fine-tuning; ignored on resume).
    Returns the per-epoch history.
    """
    out_dir = Path(out_dir)
    last = out_dir / "last.pt"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but CUDA is not available")
    if resume:
        if not last.is_file():
            raise InputError("nothing to resume: no last.pt in the run folder", out_dir)
        stored = read_checkpoint(last)
        if not isinstance(stored.get("training"), dict):
            raise InputError(
                "last.pt holds no training state (a model file written by export-model?): nothing to resume from", last
            )
        config = config_from_dict(stored["config"], last)
        heads_only = stored["training"].get("heads_only", heads_only)
        freeze_fpn = stored["training"].get("freeze_fpn", freeze_fpn)
        del stored
    elif last.exists():
        raise InputError("run folder already has a checkpoint; use --resume or another folder", out_dir)
    elif config is None:
        raise ValueError("a config is needed unless the run is resumed")
    if epochs is not None:
        config.train.epochs = epochs
    if seed is not None and not resume:
        config.train.seed = seed
    if max_iters_per_epoch is not None:
        config.train.max_iters_per_epoch = max_iters_per_epoch
    if train_dataset is None:
        train_dataset, val_dataset = open_datasets(
            data_root,
            config.data.crop_size,
            gray_only_probability=config.data.gray_only_probability,
            jpeg_probability=config.data.jpeg_probability,
        )
        if not resume:
            config.data.section_size = dataset_section_size(data_root, config.data.section_size)
    trainer = Trainer(
        config,
        out_dir,
        train_dataset,
        val_dataset,
        device=device,
        heads_only=heads_only,
        freeze_fpn=freeze_fpn,
        backbone_weights=None if resume else backbone_weights,
        init_state=None if resume else init_state,
        progress=progress,
    )
    if resume:
        trainer.restore(last)
    return trainer.run()
