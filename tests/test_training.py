"""Training: the loss falls, run folder outputs, LR schedule, and resume after a real kill -9."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sectionseg.geometry.raster import fill_polygon, polygon_mask
from sectionseg.model import build_model, load_config, load_model
from sectionseg.model.checkpoint import read_checkpoint
from sectionseg.training import Trainer, epoch_batches, lr_factor, read_csv, train
from sectionseg.training.logs import LOSS_TERMS

SIZE = 128


def _section_polygons(cx, cy, angle):
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rot = np.array([[c, -s], [s, c]])
    tissue = np.array([[-20, -7], [20, -7], [20, 7], [-20, 7]], float) @ rot.T + [cx, cy]
    magnet = np.array([[-20, 7], [20, 7], [20, 13], [-20, 13]], float) @ rot.T + [cx, cy]
    return tissue, magnet


def _sample(rng):
    """(uint8 image (H, W, 3), [(label, polygon), ...]) with two tissue+magnet sections."""
    img = np.full((SIZE, SIZE, 3), 40, np.uint8)
    parts = []
    for cx, cy in [(40, 42), (88, 86)]:
        tissue, magnet = _section_polygons(cx + rng.uniform(-5, 5), cy + rng.uniform(-5, 5), rng.uniform(0, 180))
        fill_polygon(img, tissue, (200, 200, 60))
        fill_polygon(img, magnet, (90, 90, 220))
        parts += [(1, tissue), (2, magnet)]
    return img, parts


class MemoryDataset(torch.utils.data.Dataset):
    """(float image [3, H, W] in [0, 1], Mask R-CNN target) pairs made in memory."""

    def __init__(self, n, seed=0):
        rng = np.random.default_rng(seed)
        self.samples = [_sample(rng) for _ in range(n)]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        img, parts = self.samples[i]
        masks = torch.from_numpy(np.stack([polygon_mask(p, (SIZE, SIZE)) for _, p in parts]).astype(np.uint8))
        boxes = []
        for m in masks:
            ys, xs = torch.nonzero(m, as_tuple=True)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32),
            "labels": torch.tensor([label for label, _ in parts]),
            "masks": masks,
            "image_id": i,
        }
        return torch.from_numpy(img).permute(2, 0, 1).float() / 255.0, target


def _tiny_config():
    cfg = load_config("tiny")
    cfg.train.checkpoint_every = 0
    return cfg


def test_loss_falls_when_overfitting_a_fixed_batch():
    cfg = _tiny_config()
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    data = MemoryDataset(2)
    images, targets = zip(*[data[i] for i in range(2)])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for it in range(30):
        torch.manual_seed(it)
        loss = sum(model(list(images), list(targets)).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:2]), losses


def test_lr_schedule_warmup_cosine_and_step():
    cfg = _tiny_config().train
    cfg.warmup_iters, cfg.warmup_factor, cfg.scheduler = 10, 0.1, "cosine"
    assert lr_factor(0, 100, cfg) == pytest.approx(0.1)
    assert lr_factor(5, 100, cfg) < lr_factor(10, 100, cfg)
    assert lr_factor(50, 100, cfg) == pytest.approx(0.5)
    assert lr_factor(100, 100, cfg) == pytest.approx(0.0, abs=1e-9)
    cfg.scheduler, cfg.step_milestones, cfg.step_gamma = "step", [0.5], 0.1
    assert lr_factor(49, 100, cfg) == pytest.approx(1.0) and lr_factor(50, 100, cfg) == pytest.approx(0.1)


def test_epoch_batches_are_a_seeded_shuffle():
    a, b = epoch_batches(10, 2, seed=3, epoch=0), epoch_batches(10, 2, seed=3, epoch=1)
    assert a == epoch_batches(10, 2, seed=3, epoch=0) and a != b
    assert sorted(i for batch in a for i in batch) == list(range(10))
    assert len(epoch_batches(10, 3, 0, 0)) == 3 and len(epoch_batches(10, 2, 0, 0, max_iters=2)) == 2


def test_run_writes_checkpoints_log_and_plot(tmp_path):
    cfg = _tiny_config()
    cfg.train.epochs = 2
    history = train(
        cfg, None, tmp_path, train_dataset=MemoryDataset(4), val_dataset=MemoryDataset(2, 1), progress=False
    )
    assert [row["epoch"] for row in history] == [1, 2]
    rows = read_csv(tmp_path / "log.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    for term in list(LOSS_TERMS) + ["total"]:
        assert all(r[f"train_{term}"] > 0 and r[f"val_{term}"] > 0 for r in rows)
    assert (tmp_path / "losses.png").stat().st_size > 1000
    assert (tmp_path / "best.pt").exists() and (tmp_path / "config.yaml").exists()
    best_epoch = min(rows, key=lambda r: r["val_total"])["epoch"]
    assert read_checkpoint(tmp_path / "best.pt")["training"]["epoch"] == best_epoch
    model, cfg2, meta = load_model(tmp_path / "last.pt")
    assert meta["epoch"] == 2 and cfg2.train.epochs == 2
    from sectionseg.errors import InputError

    with pytest.raises(InputError, match="--resume"):
        train(cfg, None, tmp_path, train_dataset=MemoryDataset(4), progress=False)


def test_heads_only_leaves_the_backbone_body_unchanged(tmp_path):
    cfg = _tiny_config()
    cfg.train.epochs, cfg.train.max_iters_per_epoch = 1, 2
    trainer = Trainer(cfg, tmp_path, MemoryDataset(4), None, heads_only=True, freeze_fpn=True, progress=False)
    body = {k: v.clone() for k, v in trainer.model.backbone.body.state_dict().items()}
    heads = {k: v.clone() for k, v in trainer.model.roi_heads.state_dict().items()}
    trainer.run()
    after = trainer.model.backbone.body.state_dict()
    assert all(torch.equal(body[k], after[k]) for k in body)
    assert any(not torch.equal(heads[k], v) for k, v in trainer.model.roi_heads.state_dict().items())


# ----------------------------------------------------------------------------- CLI, kill -9, resume
def _write_dataset(root: Path, counts=(("train", 6), ("val", 2), ("test", 2))) -> Path:
    formats = pytest.importorskip("sectionseg.formats")
    pytest.importorskip("sectionseg.datasets.torch_dataset")
    from PIL import Image

    from sectionseg.geometry.section import Section

    rng = np.random.default_rng(7)
    splits = {}
    (root / "images").mkdir(parents=True)
    for split, n in counts:
        splits[split] = []
        for i in range(n):
            img, parts = _sample(rng)
            sections = [Section.from_arrays(parts[k][1], parts[k + 1][1]) for k in (0, 2)]
            stem = f"{split}{i}"
            Image.fromarray(img).save(root / "images" / f"{stem}.png")
            formats.write_sections(
                root / "annotations" / f"{stem}.json", sections, fmt="labelme", image_size=(SIZE, SIZE)
            )
            splits[split].append(
                {"image": f"images/{stem}.png", "annotations": f"annotations/{stem}.json", "source": "test"}
            )
    (root / "manifest.json").write_text(
        json.dumps({"format": "sectionseg-dataset", "version": 1, "classes": ["tissue", "magnet"], "splits": splits})
    )
    return root


def _cli(*args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return [sys.executable, "-m", "sectionseg.cli.main", "train", *map(str, args)], env


@pytest.mark.slow
def test_cli_resume_after_kill_matches_an_uninterrupted_run(tmp_path):
    data = _write_dataset(tmp_path / "data")
    run = tmp_path / "run"
    common = ["--data", data, "--out", run, "--epochs", 3, "--max-iters-per-epoch", 3, "--no-progress"]
    cmd, env = _cli("--config", "tiny", *common)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (run / "last.pt").exists():
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # a real, unclean kill
    proc.wait()
    state = read_checkpoint(run / "last.pt")["training"]
    killed_at = (state["epoch"], state["iteration"])
    assert killed_at < (3, 0), "the run finished before the kill; nothing was tested"

    cmd, env = _cli("--resume", *common)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = read_checkpoint(run / "last.pt")
    assert (resumed["training"]["epoch"], resumed["training"]["iteration"]) == (3, 0)
    assert resumed["training"]["global_step"] == 9

    # the same run without interruption, in a fresh process as well: this process's torch settings
    # (e.g. its thread count, which other tests of the session may have changed) must not differ
    cmd, env = _cli(
        "--config",
        "tiny",
        "--data",
        data,
        "--out",
        tmp_path / "ref",
        "--epochs",
        3,
        "--max-iters-per-epoch",
        3,
        "--no-progress",
    )
    ref_run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert ref_run.returncode == 0, ref_run.stderr[-2000:]
    history = read_csv(tmp_path / "ref" / "log.csv")
    rows = read_csv(run / "log.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row, ref in zip(rows, history):
        assert row["train_total"] == pytest.approx(ref["train_total"], rel=1e-5)
        assert row["val_total"] == pytest.approx(ref["val_total"], rel=1e-5)
    ref_state = read_checkpoint(tmp_path / "ref" / "last.pt")["state_dict"]
    for key, value in resumed["state_dict"].items():
        assert torch.allclose(value.float(), ref_state[key].float(), atol=1e-6), key
    with open(run / "log.csv", newline="") as fh:
        assert next(csv.reader(fh))[:2] == ["epoch", "train_loss_classifier"]


def test_cli_errors_exit_2(tmp_path, capsys):
    from sectionseg.cli.main import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lrr: 0.1\n")
    assert main(["train", "--config", str(bad), "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "train.lrr" in capsys.readouterr().err
    assert main(["train", "--resume", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_init_weights_continue_a_model_and_the_data_sets_the_section_size(tmp_path, capsys):
    from sectionseg.cli.main import main

    data = _write_dataset(tmp_path / "data")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["params"] = {"section_size": 127.0}  # a fine-tuning set: its wafer's sections, source px
    (data / "manifest.json").write_text(json.dumps(manifest))
    common = ["--data", str(data), "--epochs", "1", "--max-iters-per-epoch", "1", "--no-progress"]
    assert main(["train", "--config", "tiny", "--out", str(tmp_path / "z"), *common]) == 0
    tiny_size = load_config("tiny").data.section_size
    assert read_checkpoint(tmp_path / "z" / "last.pt")["config"]["data"]["section_size"] == tiny_size
    manifest["params"]["image_section_size"] = 65.0  # as `dataset --scale 0.5` records it
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert main(["train", "--config", "tiny", "--out", str(tmp_path / "a"), *common]) == 0
    first = read_checkpoint(tmp_path / "a" / "last.pt")
    assert first["config"]["data"]["section_size"] == 65.0
    # continue from it with another preset's schedule: its own architecture is kept, and its weights
    # are the start (a tiny learning rate leaves them nearly unchanged)
    assert (
        main(
            [
                "train",
                "--config",
                "cpu",
                "--init-weights",
                str(tmp_path / "a" / "last.pt"),
                "--lr",
                "1e-9",
                "--out",
                str(tmp_path / "b"),
                *common,
            ]
        )
        == 0
    )
    second = read_checkpoint(tmp_path / "b" / "last.pt")
    assert second["config"]["model"] == first["config"]["model"]
    assert second["config"]["train"]["lr"] == 1e-9
    key = "backbone.fpn.layer_blocks.0.0.weight"
    assert torch.allclose(second["state_dict"][key].float(), first["state_dict"][key].float(), atol=1e-4)
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                "--resume",
                "--init-weights",
                str(tmp_path / "a" / "last.pt"),
                "--out",
                str(tmp_path / "a"),
                *common,
            ]
        )
        == 2
    )
    assert "--init-weights" in capsys.readouterr().err
    assert main(["train", "--config", "tiny", "--lr", "0", "--out", str(tmp_path / "c"), *common]) == 2
    assert not (tmp_path / "c").exists()
