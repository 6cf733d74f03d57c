"""LinkNet: a ResNet encoder and light decoder blocks whose outputs are *added* to the encoder
features of the same size (Chaurasia & Culurciello, VCIP 2017, Fig. 1 and 3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import register_model
from ..backbones import build_backbone
from ..blocks import ConvBNReLU, check_channels
from ..contract import SizeTable
from ..heads import crop_to


@dataclass(frozen=True)
class LinkNetSizes:
    backbone: str
    width: int



LINKNET_SIZES = SizeTable(small=LinkNetSizes("resnet18", 16), paper=LinkNetSizes("resnet18", 64))


# --------------------------------------------------------------------------------------------
# LinkNet (Chaurasia & Culurciello 2017, Fig. 1 and 3)
# --------------------------------------------------------------------------------------------
class LinkNetDecoderBlock(nn.Sequential):
    """LinkNet decoder block (Fig. 3): 1x1 conv m → m/4, full-conv x2, 1x1 conv m/4 → n.

    ``kernel_size=3`` is the paper's 3x3 full-convolution (``output_padding=1`` makes it
    double exactly); ``4`` is smp's 4x4 variant (no checkerboard asymmetry). ``mid_channels``
    overrides the inner width m/4.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3,
                 mid_channels: int | None = None) -> None:
        if kernel_size not in (3, 4):
            raise ValueError(f"LinkNet decoder kernel_size must be 3 or 4, got {kernel_size}")
        mid = max(in_ch // 4, 1) if mid_channels is None else mid_channels
        super().__init__(
            ConvBNReLU(in_ch, mid, kernel_size=1),
            nn.ConvTranspose2d(mid, mid, kernel_size, stride=2, padding=1,
                               output_padding=1 if kernel_size == 3 else 0, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            ConvBNReLU(mid, out_ch, kernel_size=1),
        )


@register_model("linknet", family="encoder_decoder",
                paper="Chaurasia & Culurciello, VCIP 2017", year=2017,
                test_kwargs={"width": 8, "backbone": "resnet_tiny"},  # see note below
                full_params=11_533_580)
class LinkNet(nn.Module):
    """LinkNet: ResNet encoder, light decoder blocks joined to the encoder by *addition*.

    ::

        x ─ stem (/4) ─ e1 (/4) ─ e2 (/8) ─ e3 (/16) ─ e4 (/32)
                         │          │          │          │
        out ◄ final ◄ d1 ◄─(+)── d2 ◄──(+)── d3 ◄──(+)── d4

    Note: with ``width=4`` on CPU, training aborted with heap corruption inside oneDNN
    (torch 2.14, not reproducible with ``torch.backends.mkldnn.enabled = False``), hence
    width 8 in the tiny test configuration.

    Adding (not concatenating) keeps the decoder as narrow as the encoder: the paper's point
    is a real-time network whose decoder costs little.

    Args:
        in_channels, num_classes: image channels, classes K.
        width: backbone base width (16; 64 with ``full``). full: ResNet-18 at width 64.
        backbone: a name of :mod:`course_lib.models.backbones` (resnet18, the paper's); any
            of them gives the four maps c2..c5 the decoder needs (notebook 07 measured LinkNet
            on the course's pre-trained ``vgg_tiny``).
        kernel_size: 3 (paper) or 4 (smp) for the decoder's transposed convolutions.
        min_decoder_channels: floor of the decoder widths (in/4 per block, c2/2 at the end;
            16 by default, which leaves the paper's sizes unchanged; 1 = the bare ratios).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        backbone: str | None = None,
        kernel_size: int = 3,
        min_decoder_channels: int = 16,
    ) -> None:
        super().__init__()
        check_channels("LinkNet", in_channels, num_classes)
        sizes = LINKNET_SIZES.resolve("LinkNet", full, backbone=backbone, width=width)
        if min_decoder_channels < 1:
            raise ValueError(f"min_decoder_channels must be >= 1, got {min_decoder_channels}")
        floor = min_decoder_channels
        self.encoder = build_backbone(sizes.backbone, in_channels, sizes.width)
        ch = self.encoder.channels
        keys = ("c2", "c3", "c4", "c5")
        # decoder block i maps e_i's channels to e_{i-1}'s (d1: e1 → e1, to stride 2)
        self.decoder = nn.ModuleDict({
            key: LinkNetDecoderBlock(ch[key], ch[keys[i - 1]] if i else ch["c2"], kernel_size,
                                     mid_channels=max(ch[key] // 4, floor))
            for i, key in enumerate(keys)
        })
        final = max(ch["c2"] // 2, floor)  # 32 in the paper
        self.final = nn.Sequential(  # final block: full-conv x2, 3x3 conv, 1x1 classifier
            nn.ConvTranspose2d(ch["c2"], final, 3, stride=2, padding=1, output_padding=1,
                               bias=False),
            nn.BatchNorm2d(final),
            nn.ReLU(inplace=True),
            ConvBNReLU(final, final),
            nn.Conv2d(final, num_classes, 1),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encoder: e4 and the features e1..e3 the decoder adds back."""
        feats = self.encoder(x)
        return feats["c5"], [feats["c2"], feats["c3"], feats["c4"]]

    def decode(
        self, x: torch.Tensor, kept: list[torch.Tensor], size: Sequence[int]
    ) -> torch.Tensor:
        for key, skip in zip(("c5", "c4", "c3"), reversed(kept), strict=True):
            x = crop_to(self.decoder[key](x), skip) + skip  # decoder block, then the link (+)
        x = self.decoder["c2"](x)  # d1: stride 2
        return crop_to(self.final(x), tuple(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bottom, kept = self.encode(x)
        return self.decode(bottom, kept, x.shape[-2:])


__all__ = ["LinkNetDecoderBlock", "LinkNet"]
