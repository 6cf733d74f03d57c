"""BiSeNet (Yu et al., ECCV 2018, Fig. 2): a wide-and-shallow spatial path for detail, a
narrow-and-deep context path for the receptive field, fused — a real-time segmenter.

- **Spatial path** (Fig. 2a): three 3x3 stride-2 ConvBNReLU layers (64, 128, 256 channels in
  the paper): a stride-8 map that keeps the image's detail, cheap because it is shallow;
- **context path** (Fig. 2a): a fast backbone (ResNet-18 in the paper) down to stride 32, a
  global average pool on top ("tail"), and an **attention refinement module** (ARM, Fig. 2b)
  on the stride-16 and stride-32 features: ``x * sigmoid(BN(conv1x1(avgpool(x))))``, a
  channel attention read from the whole map;
- **feature fusion module** (FFM, Fig. 2c): concatenate both paths, ConvBNReLU, then a
  squeeze-and-excitation-like re-weighting ``f + f * sigmoid(conv(relu(conv(avgpool(f)))))``;
- a head at stride 8, upsampled x8. Two auxiliary heads on the context path supervise it
  (the paper's "auxiliary loss functions"); here one, on the refined stride-16 features
  (``"aux"``), trained by :func:`course_lib.train.fit` with its auxiliary weight.

Deviations: the paper's 3x3 refinement convs after each ARM upsampling follow the authors'
released code; one auxiliary head instead of two.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import register_model
from ..backbones import build_backbone
from ..blocks import ConvBNReLU, check_channels, check_input, resize_to
from ..contract import SizeTable


@dataclass(frozen=True)
class BiSeNetSizes:
    backbone: str
    width: int  # the context path's base width (64 in ResNet-18)
    spatial: int  # the spatial path's first width (64; then 128, 256)
    context: int  # the context path's refined width (128)


SIZES = SizeTable(small=BiSeNetSizes("resnet_tiny", 16, 16, 32),
                  paper=BiSeNetSizes("resnet18", 64, 64, 128))


class AttentionRefinement(nn.Module):
    """ARM (Fig. 2b): 3x3 ConvBNReLU to ``out_ch``, then a channel attention from the global
    average: ``y * sigmoid(BN(conv1x1(avgpool(y))))``."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_ch, out_ch, 3)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                       nn.Conv2d(out_ch, out_ch, 1, bias=False),
                                       nn.BatchNorm2d(out_ch), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * self.attention(y)  # global pool → 1x1 → BN → sigmoid → re-weight


class FeatureFusion(nn.Module):
    """FFM (Fig. 2c): concat → ConvBNReLU 1x1 → ``f + f * attention(f)`` (SE-like)."""

    def __init__(self, in_ch: int, out_ch: int, reduction: int = 4) -> None:
        super().__init__()
        self.fuse = ConvBNReLU(in_ch, out_ch, 1)
        mid = max(out_ch // reduction, 1)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(out_ch, mid, 1),
                                       nn.ReLU(inplace=True), nn.Conv2d(mid, out_ch, 1),
                                       nn.Sigmoid())

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        f = self.fuse(torch.cat([spatial, context], dim=1))  # concatenate, 1x1 ConvBNReLU
        return f + f * self.attention(f)  # re-weight the channels, keep the original


@register_model("bisenet", family="other", paper="Yu et al., ECCV 2018", year=2018,
                output="dict", test_kwargs={"width": 4, "spatial": 8, "context": 8},
                full_params=13_702_104)
class BiSeNet(nn.Module):
    """BiSeNet: spatial path ∥ context path (ARM on stride 16 and 32, global context) → FFM →
    classes at stride 8 → x8 bilinear. ``forward`` returns ``{"out", "aux"}``.

    Args:
        in_channels, num_classes: image channels and ``K``. width: the context backbone's base
        width (16; 64 full). full: the paper's sizes (ResNet-18, 64-128-256 spatial path,
        128-channel context). backbone: a ResNet name. spatial: the spatial path's first
        width. context: the context path's width. aux: the auxiliary head.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 full: bool = False, backbone: str | None = None, spatial: int | None = None,
                 context: int | None = None, aux: bool = True) -> None:
        super().__init__()
        check_channels("BiSeNet", in_channels, num_classes)
        sizes = SIZES.resolve("BiSeNet", full, backbone=backbone, width=width,
                              spatial=spatial, context=context)
        self.in_channels = in_channels
        s, c = sizes.spatial, sizes.context
        self.spatial_path = nn.Sequential(ConvBNReLU(in_channels, s, 3, stride=2),
                                          ConvBNReLU(s, 2 * s, 3, stride=2),
                                          ConvBNReLU(2 * s, 4 * s, 3, stride=2))
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, full=full)
        ch = self.backbone.channels
        self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNReLU(ch["c5"], c, 1))
        self.arm32 = AttentionRefinement(ch["c5"], c)
        self.arm16 = AttentionRefinement(ch["c4"], c)
        self.refine32 = ConvBNReLU(c, c, 3)
        self.refine16 = ConvBNReLU(c, c, 3)
        self.ffm = FeatureFusion(4 * s + c, 4 * s)
        self.head = nn.Sequential(ConvBNReLU(4 * s, 4 * s, 3), nn.Conv2d(4 * s, num_classes, 1))
        self.aux_head = nn.Sequential(ConvBNReLU(c, c, 3), nn.Conv2d(c, num_classes, 1)) \
            if aux else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input("BiSeNet", x, self.in_channels)
        spatial = self.spatial_path(x)  # spatial path: stride 8, detail
        feats = self.backbone(x)  # context path: c4 stride 16, c5 stride 32
        c32 = self.arm32(feats["c5"]) + self.global_context(feats["c5"])  # ARM + global tail
        c32 = self.refine32(resize_to(c32, feats["c4"]))  # x2 to stride 16
        c16 = self.arm16(feats["c4"]) + c32  # ARM on stride 16, sum
        c16 = self.refine16(resize_to(c16, spatial))  # x2 to stride 8
        fused = self.ffm(spatial, c16)  # feature fusion module
        result = {"out": resize_to(self.head(fused), x)}  # classes, x8 bilinear
        if self.aux_head is not None:  # the context path's own supervision
            result["aux"] = resize_to(self.aux_head(c16), x)
        return result


__all__ = ["AttentionRefinement", "BiSeNet", "FeatureFusion"]
