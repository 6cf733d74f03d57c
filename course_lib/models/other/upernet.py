"""UPerNet (Xiao et al., ECCV 2018, Fig. 3): a pyramid pooling module on top of an FPN — the
decoder most segmentation toolboxes (mmsegmentation's default for Swin/ConvNeXt) start from.

- **PPM** (PSPNet's pyramid pooling) on the last stage ``c5``: average-pool to 1, 2, 3 and 6
  bins, 1x1 ConvBNReLU each, upsample, concatenate with ``c5``, 3x3 ConvBNReLU: the top of the
  pyramid carries the whole image's context;
- **FPN**: 1x1 laterals on ``c2..c4``, top-down (upsample + add) from the PPM output, a 3x3
  ConvBNReLU on each level;
- **fusion**: all four levels upsampled to stride 4, concatenated, a 3x3 ConvBNReLU, then the
  class scores (the paper's "fused feature map" for scene parsing), x4 bilinear.

Deviations: the paper's object/part/material/texture heads (Unified Perceptual Parsing) are
left out — only the scene-parsing head; the PPM's branches use GroupNorm (as the course's
PSPNet, so a batch of one trains) where the paper has BatchNorm; the PPM is written here
(families do not import each other), the same computation as
:class:`course_lib.models.multiscale.PyramidPooling` followed by the 3x3 bottleneck.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import register_model
from ..backbones import FEATURE_KEYS, build_backbone
from ..blocks import ConvBNReLU, check_channels, check_input, group_norm, resize_to
from ..contract import SizeTable

PPM_BINS = (1, 2, 3, 6)


@dataclass(frozen=True)
class UPerNetSizes:
    backbone: str
    width: int  # the backbone's base width (64)
    channels: int  # the decoder's width (512 in the paper and mmsegmentation)


SIZES = SizeTable(small=UPerNetSizes("resnet_tiny", 16, 32),
                  paper=UPerNetSizes("resnet50", 64, 512))


class PoolingPyramid(nn.Module):
    """PPM: ``[x, up(branch_b(pool_b(x))) for b in bins]`` → concat → 3x3 ConvBNReLU."""

    def __init__(self, in_ch: int, out_ch: int, bins: Sequence[int] = PPM_BINS) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_ch, out_ch, 1, bias=False),
                          group_norm(out_ch), nn.ReLU(inplace=True))
            for b in bins)
        self.bottleneck = ConvBNReLU(in_ch + len(bins) * out_ch, out_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [resize_to(branch(x), x) for branch in self.branches]  # pool, 1x1, upsample
        return self.bottleneck(torch.cat([x, *pooled], dim=1))  # concat, 3x3


@register_model("upernet", family="other", paper="Xiao et al., ECCV 2018", year=2018,
                test_kwargs={"width": 4, "channels": 8}, full_params=64_027_724)
class UPerNet(nn.Module):
    """UPerNet: ResNet → PPM on ``c5`` → FPN top-down over ``c2..c4`` → fuse all levels at
    stride 4 → classes → x4 bilinear.

    Args:
        in_channels, num_classes: image channels and ``K``. width: the backbone's base width
        (16; 64 full). full: the paper's sizes (ResNet-50, 512-channel decoder). backbone: a
        ResNet name. channels: the decoder's width.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 full: bool = False, backbone: str | None = None,
                 channels: int | None = None) -> None:
        super().__init__()
        check_channels("UPerNet", in_channels, num_classes)
        sizes = SIZES.resolve("UPerNet", full, backbone=backbone, width=width,
                              channels=channels)
        self.in_channels = in_channels
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, full=full)
        ch, c = self.backbone.channels, sizes.channels
        self.ppm = PoolingPyramid(ch["c5"], c)
        self.lateral = nn.ModuleList(ConvBNReLU(ch[k], c, 1) for k in FEATURE_KEYS[:-1])
        self.smooth = nn.ModuleList(ConvBNReLU(c, c, 3) for _ in FEATURE_KEYS[:-1])
        self.fuse = ConvBNReLU(len(FEATURE_KEYS) * c, c, 3)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(c, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("UPerNet", x, self.in_channels)
        feats = self.backbone(x)  # c2..c5, strides 4..32
        top = self.ppm(feats["c5"])  # PPM: the top of the pyramid
        levels = [top]
        for key, lateral, smooth in zip(reversed(FEATURE_KEYS[:-1]), reversed(self.lateral),
                                        reversed(self.smooth), strict=True):
            top = lateral(feats[key]) + resize_to(top, feats[key])  # top-down: up + add
            levels.insert(0, smooth(top))  # 3x3 on each level
        fused = self.fuse(torch.cat([resize_to(p, levels[0]) for p in levels], dim=1))
        return resize_to(self.classifier(fused), x)  # classes at stride 4, x4 bilinear


__all__ = ["PoolingPyramid", "UPerNet"]
