"""RGB-D segmentation (survey §4.2, the 2.5D data sets): where the depth channel enters.

Three ways to give a network a depth map beside the colour image, all built by one class so
that only the fusion differs:

* **RGB only**: ``FuseNet(in_channels=3, depth_channels=0)``, a SegNet-like encoder-decoder;
* **early fusion**: ``FuseNet(in_channels=4, depth_channels=0)``: depth is a fourth input
  channel of the same network (the first convolution mixes it with the colours);
* **late (two-stream) fusion**: ``FuseNet(in_channels=4)``: FuseNet (Hazirbas, Ma, Domokos
  and Cremers, "FuseNet: Incorporating Depth into Semantic Segmentation via Fusion-based CNN
  Architecture", ACCV 2016) runs a second encoder on the depth map and adds its features
  into the RGB encoder after every stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import register_model
from .blocks import ConvBNReLU, check_channels, check_input
from .contract import SizeTable

__all__ = ["FuseNet", "FuseNetSizes"]


@dataclass(frozen=True)
class FuseNetSizes:
    width: int  # channels of the first stage; each later stage doubles them, up to 8 x width
    blocks: tuple[int, ...]  # 3x3 convolutions per encoder stage (mirrored by the decoder)


# paper: the VGG-16 encoder (2, 2, 3, 3, 3 convolutions; 64 ... 512 channels) in both streams
SIZES = SizeTable(small=FuseNetSizes(width=16, blocks=(1, 2, 2)),
                  paper=FuseNetSizes(width=64, blocks=(2, 2, 3, 3, 3)))


def _conv_stack(channels: list[int]) -> nn.Sequential:
    """3x3 ConvBNReLU from ``channels[0]`` through each later entry."""
    return nn.Sequential(*(ConvBNReLU(a, b) for a, b in zip(channels, channels[1:],
                                                                 strict=False)))


@register_model(
    "fusenet",
    family="rgbd",
    paper="Hazirbas et al., ACCV 2016",
    year=2016,
    test_kwargs={"width": 4, "in_channels": 3},  # two streams: 2 "colour" + 1 depth channel
    full_params=44_192_132,
)
class FuseNet(nn.Module):
    """FuseNet (Hazirbas et al., ACCV 2016): two encoders, RGB and depth, whose features are
    summed after every stage into the RGB stream; a SegNet decoder on the fused features.

    The paper's Fig. 2 shows the two VGG-16 encoders side by side: each depth stage ends in a
    *fusion layer*, an element-wise sum of the depth stage's output into the RGB stage's
    output, before both are max-pooled; the RGB stream continues with the sum, the depth
    stream with its own features. The decoder mirrors the RGB encoder and upsamples with the
    RGB stream's pooling indices (max-unpooling, as in SegNet)::

        rgb   ─ stage 1 ─(+)─ pool ─ stage 2 ─(+)─ pool ─ ... ─ unpool ─ decoder ─ classes
                          │                    │
        depth ─ stage 1 ──┘─ pool ─ stage 2 ───┘─ pool ...

    Args:
        in_channels: channels of the input image; its last ``depth_channels`` channels are
            the depth stream's, the others the RGB stream's.
        num_classes: number of output classes ``K``; the output is logits [N, K, H, W].
        width: channels of the first stage (16; paper 64); doubled per stage up to 8x.
        full: the paper's sizes (VGG-16 encoders: ``width=64``, ``blocks=(2, 2, 3, 3, 3)``).
        blocks: 3x3 convolutions per encoder stage ((1, 2, 2); paper (2, 2, 3, 3, 3)); the
            input side must be at least ``2 ** len(blocks)``.
        depth_channels: how many trailing input channels the depth encoder takes; ``None`` =
            1 when the input has more than one channel, else 0; ``0`` builds the single-stream
            network (RGB only with 3 input channels, *early fusion* with 4).

    Deviations from the paper: no dropout (the paper drops 50 % after the last three stages),
    and ``blocks`` picks the depth of the encoders (the paper's VGG-16 is ``full=True``); the
    paper's fusion variant "SF5" (sum after each of the five stages) is the one built.
    """

    def __init__(self, in_channels: int = 4, num_classes: int = 4, width: int | None = None,
                 full: bool = False, blocks: tuple[int, ...] | None = None,
                 depth_channels: int | None = None) -> None:
        super().__init__()
        check_channels("FuseNet", in_channels, num_classes)
        sizes = SIZES.resolve("FuseNet", full, width=width, blocks=blocks)
        if depth_channels is None:
            depth_channels = 1 if in_channels > 1 else 0
        if not 0 <= depth_channels < in_channels:
            raise ValueError(f"FuseNet: depth_channels must be in 0..in_channels-1 "
                             f"({in_channels - 1}), got {depth_channels}")
        self.in_channels = in_channels
        self.depth_channels = depth_channels
        self.min_side = 2 ** len(sizes.blocks)
        w = sizes.width
        ch = [min(w * 2 ** i, 8 * w) for i in range(len(sizes.blocks))]
        rgb_in = in_channels - depth_channels

        def encoder(first: int) -> nn.ModuleList:
            return nn.ModuleList(
                _conv_stack([first if i == 0 else ch[i - 1]] + [ch[i]] * n)
                for i, n in enumerate(sizes.blocks))

        self.rgb_encoder = encoder(rgb_in)
        # no depth stream: an empty list, so the single-stream network has no depth weights
        self.depth_encoder = encoder(depth_channels) if depth_channels else nn.ModuleList()
        # decoder stage i mirrors encoder stage i: n convolutions, the last one narrowing to
        # stage i-1's channels
        self.decoder = nn.ModuleList(
            _conv_stack([ch[i]] * n + [ch[max(i - 1, 0)]])
            for i, n in enumerate(sizes.blocks))
        self.classifier = nn.Conv2d(ch[0], num_classes, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("FuseNet", x, self.in_channels)
        if min(x.shape[-2:]) < self.min_side:
            raise ValueError(f"FuseNet: input sides must be at least {self.min_side} "
                             f"(2 ** stages), got {tuple(x.shape[-2:])}")
        split = self.in_channels - self.depth_channels
        rgb, depth = x[:, :split], x[:, split:]
        indices, sizes = [], []
        for i, stage in enumerate(self.rgb_encoder):
            rgb = stage(rgb)
            if self.depth_channels:
                # the fusion layer: depth features summed into the RGB stream (Fig. 2)
                depth = self.depth_encoder[i](depth)
                rgb = rgb + depth
                depth = F.max_pool2d(depth, 2)
            sizes.append(rgb.shape[-2:])
            rgb, where = F.max_pool2d(rgb, 2, return_indices=True)
            indices.append(where)
        # SegNet's decoder: unpool to the recorded positions of the maxima, then convolve
        for i in reversed(range(len(self.decoder))):
            rgb = F.max_unpool2d(rgb, indices[i], 2, output_size=sizes[i])
            rgb = self.decoder[i](rgb)
        return self.classifier(rgb)
