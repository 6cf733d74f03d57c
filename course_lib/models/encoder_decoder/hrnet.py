"""HRNet: no decoder at all — a high-resolution stream kept from start to end, lower-resolution
streams added one per stage, exchange units fusing every stream into every other (Sun et al.,
CVPR 2019; Wang et al., TPAMI 2020, Fig. 2-4), and the HRNetV2 segmentation head."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import register_model
from ..backbones import BasicBlock, Bottleneck
from ..blocks import ConvBNReLU, check_channels, check_input, resize_to
from ..contract import SizeTable


@dataclass(frozen=True)
class HRNetSizes:
    width: int  # the high-resolution stream; the others double it (the "W" of HRNet-W18)
    stem_channels: int
    stage1_channels: int  # stage 1's bottleneck width (x4 at its output)



# HRNetV2-W18-Small-v1 (the official seg_hrnet_w18_small_v1: streams 16/32/64/128; 1.5 M
# parameters in the model zoo of HRNet/HRNet-Semantic-Segmentation, README's Cityscapes table)
HRNET_SIZES = SizeTable(small=HRNetSizes(8, 16, 8), paper=HRNetSizes(16, 64, 32))


# --------------------------------------------------------------------------------------------
# HRNet (Sun et al. 2019; Wang et al. 2020): parallel streams and exchange units
# --------------------------------------------------------------------------------------------
class ExchangeUnit(nn.Module):
    """Multi-resolution fusion (Wang et al. 2020, Fig. 3): output stream i is the sum over
    all input streams j of

    - j == i: the stream itself;
    - j > i (lower resolution): 1x1 conv + BN to ``C_i``, then bilinear upsampling;
    - j < i (higher resolution): ``i - j`` strided 3x3 convs + BN (ReLU between them);

    followed by a ReLU.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        n = len(channels)
        self.paths = nn.ModuleList()
        for i in range(n):
            row = nn.ModuleList()
            for j in range(n):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:
                    row.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False),
                                             nn.BatchNorm2d(channels[i])))
                else:
                    steps: list[nn.Module] = []
                    for s in range(i - j):
                        last = s == i - j - 1
                        out = channels[i] if last else channels[j]
                        steps += [nn.Conv2d(channels[j], out, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(out)]
                        if not last:
                            steps.append(nn.ReLU(inplace=True))
                    row.append(nn.Sequential(*steps))
            self.paths.append(row)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for i, row in enumerate(self.paths):
            total = None
            for j, (path, x) in enumerate(zip(row, xs, strict=True)):
                y = path(x)
                if j > i:
                    y = resize_to(y, xs[i])  # upsample the lower resolution to stream i
                total = y if total is None else total + y
            outs.append(self.relu(total))
        return outs


class HRModule(nn.Module):
    """One high-resolution module: ``blocks`` basic residual blocks on every stream, then an
    exchange unit (the repeated multi-scale fusion)."""

    def __init__(self, channels: Sequence[int], blocks: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, c) for _ in range(blocks)]) for c in channels
        )
        self.fuse = ExchangeUnit(channels) if len(channels) > 1 else None

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        return xs if self.fuse is None else self.fuse(xs)


class Transition(nn.Module):
    """Between stages: adapt existing streams' channels (3x3 conv) and start a new stream at
    half the resolution from the lowest one (strided 3x3 conv)."""

    def __init__(self, prev: Sequence[int], channels: Sequence[int]) -> None:
        super().__init__()
        self.adapt = nn.ModuleList(  # zip stops at the existing streams
            ConvBNReLU(p, c) if p != c else nn.Identity()
            for p, c in zip(prev, channels, strict=False)
        )
        self.new = ConvBNReLU(prev[-1], channels[-1], stride=2)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [m(x) for m, x in zip(self.adapt, xs, strict=True)] + [self.new(xs[-1])]


@register_model("hrnet", family="encoder_decoder", paper="Wang et al., TPAMI 2020 (HRNetV2)",
                year=2019, test_kwargs={"width": 4, "stem_channels": 8, "stage1_channels": 4,
                                        "blocks": 1}, full_params=1_538_892)
class HRNet(nn.Module):
    """HRNet for segmentation: HRNetV2-W18-Small-v1 by default (the HRNetV2 head, which
    concatenates every stream, on the small W18 backbone).

    ::

        stem (two 3x3/2 convs, /4) ─ stage 1 (bottlenecks, one stream)
          ─ transition ─ stage 2: 2 streams (/4, /8)           ─ exchange
          ─ transition ─ stage 3: 3 streams (/4, /8, /16)       ─ exchange
          ─ transition ─ stage 4: 4 streams (/4, /8, /16, /32)  ─ exchange
          ─ head: upsample all to /4, concat, 1x1 conv-BN-ReLU, 1x1 conv → K, upsample x4

    Args:
        in_channels, num_classes: image channels, classes K.
        width: the high-resolution stream's channels (8; 16 full); the four streams have
            ``width x (1, 2, 4, 8)``. The official ``seg_hrnet_w18_small_v1`` config uses
            16/32/64/128 (the "W18" of the name is the family, not these widths); 18 is W18's
            proper width.
        full: HRNetV2-W18-Small-v1 (stem 64, stage 1: one bottleneck of 32, widths
            16/32/64/128, one module per stage, 2 blocks per stream), about 1.5 M parameters.
        widths: the four stream widths, for streams that do not double (replaces ``width``).
        stem_channels: stem width (16; 64 full). stage1_channels: bottleneck width of stage 1
            (8; 32 full, output x4). stage1_blocks: bottlenecks in stage 1 (1). blocks: basic
            blocks per stream in each module (2). modules: modules per stage 2-4 (1, 1, 1).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        widths: Sequence[int] | None = None,
        stem_channels: int | None = None,
        stage1_channels: int | None = None,
        stage1_blocks: int = 1,
        blocks: int = 2,
        modules: Sequence[int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        check_channels("HRNet", in_channels, num_classes)
        if width is not None and widths is not None:
            raise ValueError(f"HRNet: give width or widths, not both (got width={width}, "
                             f"widths={tuple(widths)})")
        sizes = HRNET_SIZES.resolve("HRNet", full, width=width, stem_channels=stem_channels,
                                    stage1_channels=stage1_channels)
        widths = tuple(sizes.width * m for m in (1, 2, 4, 8)) if widths is None else tuple(widths)
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"HRNet needs 4 stream widths >= 1, got {widths!r}")
        if len(modules) != 3 or min(modules) < 1 or blocks < 1 or stage1_blocks < 1:
            raise ValueError(
                f"HRNet: modules must be 3 counts >= 1 and blocks >= 1, got {modules!r}, {blocks}"
            )
        stem, s1 = sizes.stem_channels, sizes.stage1_channels
        self.in_channels = in_channels
        self.stem = nn.Sequential(ConvBNReLU(in_channels, stem, stride=2),
                                  ConvBNReLU(stem, stem, stride=2))
        layers, prev = [], stem
        for _ in range(stage1_blocks):
            layers.append(Bottleneck(prev, s1))
            prev = s1 * Bottleneck.expansion
        self.stage1 = nn.Sequential(*layers)
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        streams = [prev]
        for k, n_modules in zip((2, 3, 4), modules, strict=True):
            channels = list(widths[:k])
            self.transitions.append(Transition(streams, channels))
            self.stages.append(nn.Sequential(*[HRModule(channels, blocks)
                                               for _ in range(n_modules)]))
            streams = channels
        total = sum(widths)
        self.head = nn.Sequential(  # HRNetV2 representation head
            ConvBNReLU(total, total, kernel_size=1),
            nn.Conv2d(total, num_classes, 1),
        )

    def streams(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four parallel streams at the end of stage 4: ``[/4, /8, /16, /32]`` maps (the
        first is the high-resolution stream, kept from the stem to the head)."""
        check_input("HRNet", x, self.in_channels)
        xs = [self.stage1(self.stem(x))]  # one stream at /4
        for transition, stage in zip(self.transitions, self.stages, strict=True):
            xs = stage(transition(xs))  # add a lower-resolution stream, then modules
        return xs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = self.streams(x)
        high = xs[0]
        features = torch.cat([high] + [resize_to(y, high) for y in xs[1:]], dim=1)
        return resize_to(self.head(features), x)  # 1x1 → 1x1, bilinear to the input size


__all__ = ["ExchangeUnit", "HRModule", "Transition", "HRNet"]
