"""Training logs: the per-epoch CSV and the loss-curve plot, both rewritten atomically every epoch."""

from __future__ import annotations

import csv
import io
import os

from sectionseg.io.atomic import atomic_path, write_text

LOSS_TERMS = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")
COLUMNS = (
    ["epoch"]
    + [f"train_{t}" for t in LOSS_TERMS]
    + ["train_total"]
    + [f"val_{t}" for t in LOSS_TERMS]
    + ["val_total", "lr", "time_s"]
)


def write_csv(path: str | os.PathLike, history: list[dict]) -> None:
    """Write one row per finished epoch (``history`` rows are dicts keyed by :data:`COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(path, buf.getvalue())


def read_csv(path: str | os.PathLike) -> list[dict]:
    """Rows of a log written by :func:`write_csv` (numbers as floats, epoch as int)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        out.append({k: (int(v) if k == "epoch" else float(v) if v not in ("", None) else None) for k, v in row.items()})
    return out


def plot_losses(path: str | os.PathLike, history: list[dict]) -> None:
    """PNG with one panel per loss term (and the total): train vs validation against epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    terms = list(LOSS_TERMS) + ["total"]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), constrained_layout=True)
    epochs = [row["epoch"] for row in history]
    for ax, term in zip(axes.flat, terms):
        for split, style in (("train", "-o"), ("val", "--s")):
            values = [row.get(f"{split}_{term}") for row in history]
            pts = [(e, v) for e, v in zip(epochs, values) if v is not None]
            if pts:
                ax.plot(*zip(*pts), style, markersize=3, label=split)
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
