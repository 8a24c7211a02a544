"""Training of the Mask R-CNN: resumable loop, CSV log and loss-curve plot."""

from sectionseg.training.logs import LOSS_TERMS, plot_losses, read_csv, write_csv
from sectionseg.training.loop import Trainer, epoch_batches, lr_factor, mean_losses, train

__all__ = [
    "LOSS_TERMS",
    "Trainer",
    "epoch_batches",
    "lr_factor",
    "mean_losses",
    "plot_losses",
    "read_csv",
    "train",
    "write_csv",
]
