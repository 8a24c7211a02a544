"""Training throughput and inference time of the model presets on synthetic 512x512 patches.

Usage::

    python benchmarks/bench_model.py [--presets cpu seed] [--device cpu|cuda] [--iters 3] [--threads N]

For each preset: training images/s (batch of the preset, crops of the preset's ``data.crop_size``),
inference seconds per 512x512 patch, peak memory (process max RSS on the CPU; torch's peak
allocated memory on CUDA). Prints one markdown row per preset. Keep ``--iters`` small on a CPU.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time

import numpy as np
import torch

from sectionseg.geometry.raster import polygon_mask
from sectionseg.model import build_model, load_config


def synthetic_batch(batch: int, size: int, n_sections: int = 20, seed: int = 0):
    """Images with ``n_sections`` random elongated parts (~130 x 50 px) and their targets."""
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for _ in range(batch):
        img = rng.uniform(0.0, 0.2, (3, size, size)).astype(np.float32)
        masks, boxes, labels = [], [], []
        for k in range(n_sections):
            cx, cy, ang = rng.uniform(40, size - 40), rng.uniform(40, size - 40), rng.uniform(0, math.pi)
            c, s = math.cos(ang), math.sin(ang)
            half = np.array([[-65, -25], [65, -25], [65, 25], [-65, 25]]) * (size / 512)
            poly = half @ np.array([[c, -s], [s, c]]).T + [cx, cy]
            m = polygon_mask(poly, (size, size))
            if not m.any():
                continue
            ys, xs = np.nonzero(m)
            img[:, m] = 0.8
            masks.append(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            labels.append(1 + k % 2)
        images.append(torch.from_numpy(img))
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.tensor(labels),
                "masks": torch.from_numpy(np.stack(masks).astype(np.uint8)),
            }
        )
    return images, targets


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return rss / 1024


def bench(preset: str, device: torch.device, iters: int) -> dict:
    cfg = load_config(preset)
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    images, targets = synthetic_batch(cfg.train.batch_size, cfg.data.crop_size)
    images = [i.to(device) for i in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    model.train()
    for it in range(iters + 1):  # the first iteration is warm-up
        if it == 1:
            sync()
            t0 = time.perf_counter()
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync()
    train_ips = iters * len(images) / (time.perf_counter() - t0)

    model.eval()
    patch, _ = synthetic_batch(1, 512, seed=1)
    patch = [patch[0].to(device)]
    with torch.no_grad():
        model(patch)
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            model(patch)
        sync()
    infer_s = (time.perf_counter() - t0) / iters
    return {
        "preset": preset,
        "backbone": f"{cfg.model.backbone}-FPN ({cfg.model.norm})",
        "crop": cfg.data.crop_size,
        "batch": cfg.train.batch_size,
        "train_ips": train_ips,
        "infer_s": infer_s,
        "peak_mb": peak_memory_mb(device),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["cpu", "seed"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.iters} timed iterations"
    )
    print("| preset | backbone | params (M) | crop | batch | train img/s | infer s / 512 px patch | peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    for preset in args.presets:
        r = bench(preset, device, args.iters)
        print(
            f"| {r['preset']} | {r['backbone']} | {r['params_m']:.1f} | {r['crop']} | {r['batch']} | "
            f"{r['train_ips']:.2f} | {r['infer_s']:.3f} | {r['peak_mb']:.0f} |"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
