"""Build torchvision's Mask R-CNN from a :class:`~sectionseg.model.config.ModelConfig`.

Classes: 0 background, 1 tissue, 2 magnet. The ResNet-FPN backbone is created with
``weights=None`` (trained from scratch; nothing is ever downloaded); a user-supplied backbone state
dict can be loaded with :func:`load_backbone_weights`.

Input: a list of float32 ``[3, H, W]`` tensors in [0, 1]. With ``keep_image_size`` (default) the
images are *not* resized by the model (only normalised and padded to a multiple of 32), so a
training crop and a large inference tile are seen at the same pixel scale, and a target may then
carry an ``ignore`` mask (:mod:`sectionseg.model.ignore`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from functools import partial

import torch
from torch import nn
from torchvision.models import resnet18, resnet34, resnet50
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.models.resnet import BasicBlock
from torchvision.ops import misc as misc_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from sectionseg.errors import InputError
from sectionseg.model.config import CLASSES, ModelConfig
from sectionseg.model.ignore import use_ignore_masks

_RESNETS = {"resnet18": (resnet18, 512), "resnet34": (resnet34, 512), "resnet50": (resnet50, 2048)}


class KeepSizeTransform(GeneralizedRCNNTransform):
    """``GeneralizedRCNNTransform`` that normalises and pads but never rescales the images."""

    def resize(self, image, target=None):
        return image, target


def _norm_layer(cfg: ModelConfig):
    if cfg.norm == "group":
        return partial(nn.GroupNorm, cfg.group_norm_groups)
    if cfg.norm == "frozen_batch":
        return misc_ops.FrozenBatchNorm2d
    return nn.BatchNorm2d


def _narrow_resnet(name: str, width: int, norm_layer) -> nn.Module:
    """ResNet-18/34 layout with ``width`` stem channels (64 in torchvision) built from torchvision's
    ``BasicBlock``; children named like torchvision's ResNet so the FPN extractor works. For tests
    and tiny experiments."""
    blocks = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}[name]
    layers = OrderedDict(
        conv1=nn.Conv2d(3, width, 7, 2, 3, bias=False),
        bn1=norm_layer(width),
        relu=nn.ReLU(inplace=True),
        maxpool=nn.MaxPool2d(3, 2, 1),
    )
    inplanes = width
    for k, n in enumerate(blocks):
        planes, stride = width * 2**k, 1 if k == 0 else 2
        down = None
        if stride != 1 or inplanes != planes:
            down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), norm_layer(planes))
        seq = [BasicBlock(inplanes, planes, stride, down, norm_layer=norm_layer)]
        seq += [BasicBlock(planes, planes, norm_layer=norm_layer) for _ in range(n - 1)]
        layers[f"layer{k + 1}"] = nn.Sequential(*seq)
        inplanes = planes
    body = nn.Sequential(layers)
    for m in body.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return body


def build_backbone(cfg: ModelConfig) -> BackboneWithFPN:
    """ResNet body (weights=None) + FPN with ``cfg.fpn_channels`` channels and 5 output levels."""
    factory, last_channels = _RESNETS[cfg.backbone]
    if cfg.backbone_width == 64:
        body = factory(weights=None, norm_layer=_norm_layer(cfg))
    else:
        body = _narrow_resnet(cfg.backbone, cfg.backbone_width, _norm_layer(cfg))
        last_channels = cfg.backbone_width * 8
    # Same freezing rule as torchvision's _resnet_fpn_extractor: the last `trainable_layers` stages train.
    stages = ["layer4", "layer3", "layer2", "layer1", "conv1"][: cfg.trainable_layers]
    if cfg.trainable_layers == 5:
        stages.append("bn1")
    for name, param in body.named_parameters():
        if all(not name.startswith(stage) for stage in stages):
            param.requires_grad_(False)
    return_layers = {f"layer{k}": str(k - 1) for k in (1, 2, 3, 4)}
    in_channels = [last_channels // 8 * 2 ** (k - 1) for k in (1, 2, 3, 4)]
    return BackboneWithFPN(body, return_layers, in_channels, cfg.fpn_channels, extra_blocks=LastLevelMaxPool())


def build_model(cfg: ModelConfig) -> MaskRCNN:
    """A randomly initialised torchvision ``MaskRCNN`` (3 classes) as ``cfg`` describes."""
    backbone = build_backbone(cfg)
    ch = cfg.fpn_channels
    anchors = AnchorGenerator(
        sizes=tuple((int(s),) for s in cfg.anchor_sizes),
        aspect_ratios=(tuple(float(a) for a in cfg.aspect_ratios),) * 5,
    )
    head_norm = partial(nn.GroupNorm, cfg.group_norm_groups) if cfg.norm == "group" else None
    mask_layers = [int(c) for c in cfg.mask_head_layers]
    model = MaskRCNN(
        backbone,
        num_classes=None,
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        image_mean=list(cfg.image_mean),
        image_std=list(cfg.image_std),
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
        rpn_batch_size_per_image=cfg.rpn_batch_size_per_image,
        box_head=TwoMLPHead(ch * 7 * 7, cfg.box_representation_size),
        box_predictor=FastRCNNPredictor(cfg.box_representation_size, len(CLASSES)),
        box_batch_size_per_image=cfg.box_batch_size_per_image,
        box_detections_per_img=cfg.box_detections_per_img,
        box_score_thresh=cfg.box_score_thresh,
        box_nms_thresh=cfg.box_nms_thresh,
        mask_head=MaskRCNNHeads(ch, mask_layers, 1, norm_layer=head_norm),
        mask_predictor=MaskRCNNPredictor(mask_layers[-1], cfg.mask_predictor_channels, len(CLASSES)),
    )
    if cfg.keep_image_size:
        model.transform = KeepSizeTransform(cfg.min_size, cfg.max_size, list(cfg.image_mean), list(cfg.image_std))
        use_ignore_masks(model)  # ignore masks are in input px: only where inputs keep their size
    return model


def load_backbone_weights(model: MaskRCNN, path: str | os.PathLike) -> None:
    """Load a user-supplied ResNet state dict (torchvision key names) into the backbone body.

    Keys of the classification head (``fc.*``) and a leading ``backbone.body.`` or ``module.``
    prefix are ignored. Raises InputError when no key matches or shapes disagree.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for files that are no state dict
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read backbone weights (a torch state dict .pt file): {reason}", path) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"backbone weights must be a state dict, got {type(state).__name__}", path)
    cleaned = OrderedDict()
    for key, value in state.items():
        for prefix in ("module.", "backbone.body."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        if not key.startswith("fc."):
            cleaned[key] = value
    body = model.backbone.body
    own = body.state_dict()
    matched = [k for k in cleaned if k in own]
    if not matched:
        raise InputError("no backbone key matches the model's ResNet body", path)
    for key in matched:
        if own[key].shape != cleaned[key].shape:
            raise InputError(
                f"backbone weight '{key}' has shape {tuple(cleaned[key].shape)}, "
                f"the model needs {tuple(own[key].shape)}",
                path,
            )
    body.load_state_dict({k: cleaned[k] for k in matched}, strict=False)


def freeze_for_heads_only(model: MaskRCNN, freeze_fpn: bool = False) -> None:
    """Freeze the backbone body (and the FPN when ``freeze_fpn``); RPN and ROI heads keep training."""
    for p in model.backbone.body.parameters():
        p.requires_grad_(False)
    if freeze_fpn:
        for p in model.backbone.fpn.parameters():
            p.requires_grad_(False)


def set_norm_eval(model: nn.Module) -> None:
    """Put BatchNorm layers in eval mode (running statistics frozen), leaving the rest as is."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
