"""Shared heads and the one segmentation-model skeleton: backbone → classifier (+ aux) → resize.

torchvision's ``models/segmentation/_utils.py`` writes a whole segmentation model in a few
lines, and so does :class:`SimpleSegmentationModel`: a backbone that returns a dict of
feature maps (``c2..c5``, see :mod:`course_lib.models.backbones`), a classifier head on one
of them, an optional auxiliary head on another, one bilinear resize back to the input.
A family that fits this shape (DeepLab v1–v3, PSPNet, DANet, ...) writes only its
constructor; its forward pass is this one.

Also here, once, the pieces several families share: torchvision's ``FCNHead`` (the
auxiliary head of PSPNet and DeepLab v3), FCN's top-left crop (:func:`crop_to`, also
LinkNet's), the feature pyramid (:class:`FeaturePyramid`: FPN, Mask R-CNN, PANet) and the
course's GroupNorm rule (:func:`group_norm`, defined with the other norms in
:mod:`~course_lib.models.blocks`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .blocks import ConvBNReLU, group_norm, resize_to


def crop_to(x: torch.Tensor, ref: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    """FCN's crop layer: keep the top-left ``H x W`` of ``x`` (the size of ``ref``)."""
    h, w = ref.shape[-2:] if isinstance(ref, torch.Tensor) else ref
    if x.shape[-2] < h or x.shape[-1] < w:
        raise ValueError(f"cannot crop {tuple(x.shape[-2:])} to the larger size {(h, w)}")
    return x[..., :h, :w]


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


class FeaturePyramid(nn.Module):
    """Lateral 1x1 convs, top-down nearest upsampling + addition, 3x3 smoothing (Fig. 3).

    ``forward(features)`` takes a mapping of maps ordered fine to coarse (the backbone's
    ``c2..c5``) and returns an ``OrderedDict`` with the same keys of ``out_channels`` maps:
    ``P_k = smooth_k(lateral_k(C_k) + up(P'_{k+1}))``. With the weights copied it computes
    exactly what ``torchvision.ops.FeaturePyramidNetwork`` does (tested).

    ``top_down=False`` drops the top-down addition (``P_k = smooth_k(lateral_k(C_k))``): an
    ablation, not the paper's network — each level then knows only its own stage.
    """

    def __init__(self, in_channels_list: Sequence[int], out_channels: int = 256,
                 top_down: bool = True) -> None:
        super().__init__()
        self.top_down = bool(top_down)
        if not in_channels_list or min(in_channels_list) < 1 or out_channels < 1:
            raise ValueError(
                f"FeaturePyramid needs channel counts >= 1, got {list(in_channels_list)} "
                f"→ {out_channels}"
            )
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels_list)
        self.smooth = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels_list
        )
        for m in self.modules():  # the paper's (and torchvision's) initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, features: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        names, maps = list(features), list(features.values())
        if len(maps) != len(self.lateral):
            raise ValueError(f"FeaturePyramid expects {len(self.lateral)} maps, got {names}")
        top = self.lateral[-1](maps[-1])  # coarsest level: lateral only
        results = [self.smooth[-1](top)]
        for i in range(len(maps) - 2, -1, -1):  # top-down, coarse to fine
            lateral = self.lateral[i](maps[i])  # lateral 1x1
            if self.top_down:
                top = lateral + resize_to(top, lateral, mode="nearest")  # upsample + add
            else:  # ablation: no top-down path
                top = lateral
            results.insert(0, self.smooth[i](top))  # 3x3 smoothing
        return OrderedDict(zip(names, results, strict=True))


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
        features = self.backbone(x)  # c2..c5
        logits = self.classifier(features[self.out_key])  # the head on the last stage
        result = {"out": resize_to(logits, x)}  # bilinear to the image
        if self.aux_classifier is not None:  # deep supervision on an earlier stage
            result["aux"] = resize_to(self.aux_classifier(features[self.aux_key]), x)
        return result


__all__ = ["FCNHead", "FeaturePyramid", "SimpleSegmentationModel", "crop_to", "group_norm"]
