"""Shared heads and the one segmentation-model skeleton: backbone → classifier (+ aux) → resize.

torchvision's ``models/segmentation/_utils.py`` writes a whole segmentation model in a few
lines, and so does :class:`SimpleSegmentationModel`: a backbone that returns a dict of
feature maps (``c2..c5``, see :mod:`course_lib.models.backbones`), a classifier head on one
of them, an optional auxiliary head on another, one bilinear resize back to the input.
A family that fits this shape (DeepLab v1–v3, PSPNet, DANet, ...) writes only its
constructor; its forward pass is this one.

Also here, once: torchvision's ``FCNHead`` (the auxiliary head of PSPNet and DeepLab v3) and
the course's GroupNorm rule.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ConvBNReLU, resize_to


def group_norm(channels: int, max_groups: int = 32, min_per_group: int = 2) -> nn.Module:
    """GroupNorm with as many groups as possible (≤ ``max_groups``, the paper's 32) such that
    each group holds at least ``min_per_group`` channels; identity for a single channel.

    With at least two channels per group, the statistics are never taken over one value, even
    for a 1x1 map of a single image (a pooled branch with batch 1).
    """
    groups = next((g for g in (32, 16, 8, 4, 2, 1)
                   if g <= max_groups and channels % g == 0 and channels // g >= min_per_group),
                  None)
    return nn.Identity() if groups is None else nn.GroupNorm(groups, channels)


class FCNHead(nn.Sequential):
    """The auxiliary head (torchvision's ``FCNHead``; PSPNet's deep supervision on ``c4``):
    3x3 conv to ``in_ch // 4`` channels, BatchNorm, ReLU, dropout 0.1, 1x1 conv to classes."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.1) -> None:
        inter = max(in_ch // 4, 1)
        super().__init__(
            ConvBNReLU(in_ch, inter, 3),
            nn.Dropout(dropout),
            nn.Conv2d(inter, num_classes, 1),
        )


class SimpleSegmentationModel(nn.Module):
    """Backbone → ``classifier(features[out_key])`` (+ ``aux_classifier(features[aux_key])``).

    ``forward`` returns ``{"out": logits}`` and, when an auxiliary head is given, ``"aux"``
    (both [N, K, H, W], resized bilinearly to the input), in training and in eval, as
    torchvision's segmentation models do; :func:`course_lib.train.fit` adds the auxiliary
    loss with :data:`course_lib.losses.AUX_WEIGHT`.
    """

    def __init__(self, backbone: nn.Module, classifier: nn.Module,
                 aux_classifier: nn.Module | None = None, out_key: str = "c5",
                 aux_key: str = "c4") -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier
        self.out_key, self.aux_key = out_key, aux_key

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(x)
        result = {"out": resize_to(self.classifier(features[self.out_key]), x)}
        if self.aux_classifier is not None:
            result["aux"] = resize_to(self.aux_classifier(features[self.aux_key]), x)
        return result


__all__ = ["FCNHead", "SimpleSegmentationModel", "group_norm"]
