"""RefineNet (Lin et al., CVPR 2017, Fig. 2-3): multi-path refinement — every stage of the
encoder refines the coarser prediction above it, with residual connections all the way.

A **RefineNet block** (Fig. 3) takes one or two inputs (a backbone stage and the output of the
block above) and applies:

- **residual conv units** (RCU, Fig. 3b): ``x + conv3x3(relu(conv3x3(relu(x))))``, two per
  input path — an adaptation of the backbone's features;
- **multi-resolution fusion** (Fig. 3c): a 3x3 convolution per path, every path upsampled to
  the largest resolution, summed;
- **chained residual pooling** (CRP, Fig. 3d): ``relu``, then a chain of ``5x5 max-pool
  (stride 1) → 3x3 conv`` blocks, each block's output added to the running sum: context from
  ever larger windows, weighted by learned convolutions;
- one more RCU at the output.

The 4-cascaded network (Fig. 2c) runs RefineNet-4 on ``c5`` alone (512 channels in the paper),
then RefineNet-3, -2, -1 each on ``c_k`` and the block above (256), then two RCUs, a
dropout and the classifier at stride 4, x4 bilinear.

Deviations: the chain has ``crp_blocks`` = 2 pooling blocks (the paper's Fig. 3d; its
released code used 4); a 3x3 convolution adapts each backbone stage to the block's width
first (as the authors' code does); the paper's ResNet-101 with ``full=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import register_model
from ..backbones import build_backbone
from ..blocks import check_channels, check_input, resize_to
from ..contract import SizeTable


@dataclass(frozen=True)
class RefineNetSizes:
    backbone: str
    width: int  # the backbone's base width (64)
    channels: int  # RefineNet-1..3's width (256); RefineNet-4 has twice this (512)
    crp_blocks: int  # pooling blocks in a chained residual pooling (2)


SIZES = SizeTable(small=RefineNetSizes("resnet_tiny", 16, 16, 2),
                  paper=RefineNetSizes("resnet101", 64, 256, 2))


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)


class ResidualConvUnit(nn.Module):
    """RCU (Fig. 3b): ``x + conv(relu(conv(relu(x))))`` (no normalisation, as in the paper)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(), conv3x3(channels, channels), nn.ReLU(),
                                   conv3x3(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ChainedResidualPooling(nn.Module):
    """CRP (Fig. 3d): ``x = relu(x)``; ``path = x``; repeat: ``path = conv(pool(path))``,
    ``x = x + path``."""

    def __init__(self, channels: int, blocks: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.chain = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(5, stride=1, padding=2), conv3x3(channels, channels))
            for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        path = x
        for block in self.chain:
            path = block(path)  # pool 5x5, conv 3x3: a larger window each time
            x = x + path  # residual sum
        return x


class RefineBlock(nn.Module):
    """One RefineNet block: RCUs per path → multi-resolution fusion → CRP → output RCU."""

    def __init__(self, in_channels: Sequence[int], channels: int, crp_blocks: int) -> None:
        super().__init__()
        self.paths = nn.ModuleList(
            nn.Sequential(ResidualConvUnit(c), ResidualConvUnit(c)) for c in in_channels)
        # fusion convs only when there are several paths to fuse (Fig. 3c)
        self.fusion = nn.ModuleList(conv3x3(c, channels) for c in in_channels) \
            if len(in_channels) > 1 else None
        self.crp = ChainedResidualPooling(channels, crp_blocks)
        self.output = ResidualConvUnit(channels)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        paths = [rcu(x) for rcu, x in zip(self.paths, inputs, strict=True)]  # 2 RCUs per path
        if self.fusion is None:
            fused = paths[0]
        else:  # multi-resolution fusion: 3x3 conv, upsample to the largest, sum
            largest = max(paths, key=lambda p: p.shape[-1] * p.shape[-2])
            fused = sum(resize_to(conv(p), largest) for conv, p in zip(self.fusion, paths,
                                                                       strict=True))
        return self.output(self.crp(fused))  # chained residual pooling, output RCU


@register_model("refinenet", family="other", paper="Lin et al., CVPR 2017", year=2017,
                test_kwargs={"width": 4, "channels": 8}, full_params=109_743_180)
class RefineNet(nn.Module):
    """4-cascaded RefineNet (Fig. 2c): ResNet → RefineNet-4 (``c5``) → -3 (``c4`` + above) →
    -2 (``c3``) → -1 (``c2``) → 2 RCUs → classes at stride 4 → x4 bilinear.

    Args:
        in_channels, num_classes: image channels and ``K``. width: the backbone's base width
        (16; 64 full). full: the paper's sizes (ResNet-101, 512/256 channels). backbone: a
        ResNet name. channels: RefineNet-1..3's width (RefineNet-4: twice). crp_blocks: the
        pooling blocks of each chained residual pooling.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 full: bool = False, backbone: str | None = None, channels: int | None = None,
                 crp_blocks: int | None = None) -> None:
        super().__init__()
        check_channels("RefineNet", in_channels, num_classes)
        sizes = SIZES.resolve("RefineNet", full, backbone=backbone, width=width,
                              channels=channels, crp_blocks=crp_blocks)
        self.in_channels = in_channels
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, full=full)
        ch, c = self.backbone.channels, sizes.channels
        widths = {"c5": 2 * c, "c4": c, "c3": c, "c2": c}
        self.adapt = nn.ModuleDict({k: conv3x3(ch[k], w) for k, w in widths.items()})
        self.refine4 = RefineBlock([2 * c], 2 * c, sizes.crp_blocks)
        self.refine3 = RefineBlock([c, 2 * c], c, sizes.crp_blocks)
        self.refine2 = RefineBlock([c, c], c, sizes.crp_blocks)
        self.refine1 = RefineBlock([c, c], c, sizes.crp_blocks)
        self.head = nn.Sequential(ResidualConvUnit(c), ResidualConvUnit(c), nn.Dropout(0.5),
                                  nn.Conv2d(c, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("RefineNet", x, self.in_channels)
        feats = self.backbone(x)
        f = {k: conv(feats[k]) for k, conv in self.adapt.items()}  # adapt each stage's width
        y = self.refine4(f["c5"])  # RefineNet-4, stride 32
        y = self.refine3(f["c4"], y)  # RefineNet-3, stride 16
        y = self.refine2(f["c3"], y)  # RefineNet-2, stride 8
        y = self.refine1(f["c2"], y)  # RefineNet-1, stride 4
        return resize_to(self.head(y), x)  # 2 RCUs, classes, x4 bilinear


__all__ = ["ChainedResidualPooling", "RefineBlock", "RefineNet", "ResidualConvUnit"]
