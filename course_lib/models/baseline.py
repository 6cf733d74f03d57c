"""The course's baseline: the smallest network that already has the shape of them all.

Every model in the survey is an *encoder* that shrinks the image while widening the
features, and a *decoder* that brings the prediction back to the input size, often with
*skip connections* that re-inject fine detail lost by the encoder. ``BaselineCNN`` is that
skeleton with nothing else: two stride-2 stages, a bottleneck, one upsampling step that
meets a skip from the half-resolution stage, and a final upsampling to the input size.
It is not from a paper; it is the yardstick every later model is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import register_model
from .blocks import ConvBNReLU, DoubleConv, check_channels, check_input, resize_to
from .contract import SizeTable


@dataclass(frozen=True)
class BaselineSizes:
    width: int  # channels of the stem; each stride-2 stage doubles it


SIZES = SizeTable(small=BaselineSizes(width=16))  # no paper, so no paper row


@register_model(
    "baseline",
    family="baseline",
    paper="course baseline (no paper): a minimal encoder-decoder",
    year=2024,
    test_kwargs={"width": 4},
)
class BaselineCNN(nn.Module):
    """Tiny encoder-decoder: stem, two stride-2 stages, bottleneck, decoder with one skip.

    Resolution and width per stage (input H x W, base width ``w``)::

        stem        H   x W    w
        down1       H/2 x W/2  2w   ──────────┐ skip
        down2       H/4 x W/4  4w             │
        bottleneck  H/4 x W/4  4w (dilated)   │
        up1         H/2 x W/2  2w   ◄── concat┘
        classifier  H/2 x W/2  K   → bilinear upsampling to H x W

    Any input size works: stride-2 convolutions round up and :func:`resize_to` aligns the
    decoder with the skip and with the input.

    Args:
        in_channels: channels of the input image (3 for RGB, 4 with a depth channel).
        num_classes: number of output classes ``K``; the output is logits [N, K, H, W].
        width: channels of the stem (16); each stride-2 stage doubles it.

    ``full=True`` is refused with a clear error: the baseline is the course's own yardstick,
    no paper's network, so it has no paper size.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12,
                 width: int | None = None, full: bool = False) -> None:
        super().__init__()
        check_channels("BaselineCNN", in_channels, num_classes)
        w = SIZES.resolve("BaselineCNN", full, width=width).width
        self.in_channels = in_channels
        # Encoder: full resolution, then two stride-2 stages.
        self.stem = ConvBNReLU(in_channels, w)
        self.down1 = nn.Sequential(ConvBNReLU(w, 2 * w, stride=2), ConvBNReLU(2 * w, 2 * w))
        self.down2 = nn.Sequential(ConvBNReLU(2 * w, 4 * w, stride=2), ConvBNReLU(4 * w, 4 * w))
        # Bottleneck: a dilated convolution widens the receptive field without shrinking.
        self.bottleneck = ConvBNReLU(4 * w, 4 * w, dilation=2)
        # Decoder: upsample, concatenate the half-resolution skip, fuse.
        self.up1 = DoubleConv(4 * w + 2 * w, 2 * w)
        self.classifier = nn.Conv2d(2 * w, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("BaselineCNN", x, self.in_channels)
        # Contracting path.
        x0 = self.stem(x)
        x1 = self.down1(x0)
        x2 = self.bottleneck(self.down2(x1))
        # Expanding path: back to H/2, concatenate the skip, fuse.
        y = self.up1(torch.cat([resize_to(x2, x1), x1], dim=1))
        # Classify at H/2 and upsample the logits to the input size.
        return resize_to(self.classifier(y), x)


__all__ = ["BaselineCNN"]
