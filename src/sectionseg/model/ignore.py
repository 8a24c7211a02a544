"""Areas whose content is unknown, left out of the detector's background loss.

A training target may carry ``target["ignore"]``: a ``[H, W]`` uint8/bool mask (the image's px)
of areas that may hold sections nobody labelled, e.g. the unlabelled rest of a wafer that a model
is being adapted to. There, a box the matcher calls *background* (IoU with every labelled part below
the low threshold) may in truth sit on an unlabelled section, so it must teach nothing: RPN anchors
and ROI proposals labelled background whose box lies more than :data:`IGNORE_FRACTION` inside the
mask get label -1 (the samplers skip them). Foreground matches and boxes in plain areas train as
usual; a target without ``ignore`` trains exactly as in torchvision.

Boxes are XYXY in the model's input px (edges; origin at the top-left corner of the top-left pixel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork

#: A background box more than this share inside the ignore mask is left out of the loss.
IGNORE_FRACTION = 0.3


def box_fractions(mask: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Share of each box's area (``boxes`` ``[N, 4]`` XYXY px) covered by ``mask`` ``[H, W]``.

    Computed on the pixel grid with an integral image (box edges rounded to whole px, clipped to
    the mask; a box outside the mask covers nothing). Returns float32 ``[N]`` in [0, 1].
    """
    height, width = mask.shape[-2:]
    integral = F.pad(mask.to(torch.float64).cumsum(0).cumsum(1), (1, 0, 1, 0))
    x0 = boxes[:, 0].round().clamp(0, width).long()
    y0 = boxes[:, 1].round().clamp(0, height).long()
    x1 = boxes[:, 2].round().clamp(0, width).long()
    y1 = boxes[:, 3].round().clamp(0, height).long()
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).to(torch.float64).clamp(min=1.0)
    return (inside / area).clamp(0, 1).to(torch.float32)


def ignore_background(labels: torch.Tensor, boxes: torch.Tensor, ignore: torch.Tensor | None) -> torch.Tensor:
    """``labels`` with every background entry (0) whose box lies over ``ignore`` set to -1.

    When that would leave nothing to train on (no foreground, every background box over the mask:
    torchvision's losses would be the mean of nothing, NaN), the least covered background boxes stay.
    """
    if ignore is None or not bool(ignore.any()):
        return labels
    background = labels == 0
    fractions = box_fractions(ignore.to(boxes.device), boxes)
    unknown = background & (fractions > IGNORE_FRACTION)
    if background.any() and not bool(((labels >= 0) & ~unknown).any()):
        unknown = background & (fractions > fractions[background].min())
    return torch.where(unknown, torch.full_like(labels, -1), labels)


class IgnoringRPN(RegionProposalNetwork):
    """torchvision's RPN whose background anchors over ``target["ignore"]`` do not train."""

    def assign_targets_to_anchors(self, anchors, targets):
        labels, matched = super().assign_targets_to_anchors(anchors, targets)
        labels = [ignore_background(lab, a, t.get("ignore")) for lab, a, t in zip(labels, anchors, targets)]
        return labels, matched


class IgnoringRoIHeads(RoIHeads):
    """torchvision's ROI heads whose background proposals over ``target["ignore"]`` do not train."""

    _ignore: list | None = None

    def select_training_samples(self, proposals, targets):
        # assign_targets_to_proposals sees no targets: hand it their masks for the call
        self._ignore = [t.get("ignore") for t in targets]
        try:
            return super().select_training_samples(proposals, targets)
        finally:
            self._ignore = None

    def assign_targets_to_proposals(self, proposals, gt_boxes, gt_labels):
        matched, labels = super().assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        if self._ignore is not None:
            labels = [ignore_background(lab, p, m) for lab, p, m in zip(labels, proposals, self._ignore)]
        return matched, labels


def use_ignore_masks(model) -> None:
    """Make a torchvision Mask R-CNN honour ``target["ignore"]`` (in place; weights untouched)."""
    model.rpn.__class__ = IgnoringRPN
    model.roi_heads.__class__ = IgnoringRoIHeads
