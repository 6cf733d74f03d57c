"""TernausNet: a U-Net whose contracting path is a pre-trained VGG11 (survey: 编码器-解码器).

Iglovikov & Shvets, "TernausNet: U-Net with VGG11 Encoder Pre-Trained on ImageNet for Image
Segmentation", arXiv 1801.05746, 2018. U-Net (Ronneberger et al. 2015) trains its encoder
from scratch; TernausNet keeps U-Net's shape and swaps the contracting path for the
convolutions of VGG11 (Simonyan & Zisserman 2015, Table 1, column A) with its ImageNet
weights, the lever the paper measures (Fig. 3: Jaccard index over the training epochs from
random and from pre-trained weights; the network was part of the winning entry of the Kaggle
Carvana challenge).

Fig. 1 of the paper, read from left to right:

- *encoder* — VGG11's eight 3x3 convolutions with ReLU in five blocks (64; 128; 256, 256;
  512, 512; 512, 512 channels), each block ended by a 2x2 max-pool; the fully connected
  layers are dropped;
- *centre* — after pool5 (stride 32): a 3x3 convolution, then the first up-convolution;
- *decoder* — every step is a 3x3 transposed convolution with stride 2 ("doubles the size
  of a feature map while reducing the number of channels by half"), then the encoder map of
  that resolution *before* its pool is concatenated and a 3x3 convolution follows; the last
  step, at full resolution, concatenates the first block's map (64 channels);
- *classifier* — a 1x1 convolution to the classes.

The channel plan is the authors' code (ternaus/TernausNet, ``UNet11`` with
``num_filters=32``): with ``f`` decoder filters (32) the centre gives ``8f``, the decoder
steps ``8f, 4f, 2f, f`` and the last 3x3 convolution ``f``; each 3x3 convolution before an
up-convolution has twice the channels that up-convolution gives.

Deviations (stated once, here):

- the small network (the default) uses the course's ``vgg_tiny`` encoder (one convolution
  per block, batch-norm, ``width`` 16) so that notebook 03 loads the shapes world's
  pre-trained ``vgg_tiny`` (:func:`course_lib.pretrain.load_pretrained` on
  ``model.encoder``) as the paper loaded ImageNet; ``full=True`` is VGG11 at width 64 with
  no normalisation, as in the paper, and no weights are downloaded;
- the small decoder has as many filters as the encoder's first block (``decoder_scale``
  1; the paper's is 0.5: 32 for 64) and batch-norm after every decoder convolution (the
  paper has none), so it trains in the couple of CPU minutes a notebook has;
- pooling rounds up (``ceil_mode``) so odd sizes work: an up-sampled map one pixel larger
  than its skip is cropped at the bottom-right (FCN's crop, offset 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import register_model
from .backbones import build_backbone
from .blocks import ConvBNReLU, check_channels, check_input, make_norm
from .contract import SizeTable
from .heads import crop_to


@dataclass(frozen=True)
class TernausSizes:
    width: int  # channels of the encoder's first block (VGG: width x 1, 2, 4, 8, 8)
    backbone: str  # "vgg11" (the paper) or any VGG of course_lib.models.backbones
    decoder_scale: float  # decoder filters f = width x decoder_scale (the paper: 32 = 64 x 0.5)
    norm: str | None  # normalisation after every convolution (None in the paper)


TERNAUS_SIZES = SizeTable(small=TernausSizes(16, "vgg_tiny", 1.0, "bn"),
                          paper=TernausSizes(64, "vgg11", 0.5, None))


class DecoderBlock(nn.Sequential):
    """One decoder step of Fig. 1: 3x3 convolution (``in_ch`` → ``mid_ch``), then a 3x3
    transposed convolution with stride 2 (``mid_ch`` → ``out_ch``, the map doubles in size),
    then ReLU (the authors' ``DecoderBlock``)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, norm: str | None) -> None:
        super().__init__(
            ConvBNReLU(in_ch, mid_ch, norm=norm),
            nn.ConvTranspose2d(mid_ch, out_ch, 3, stride=2, padding=1, output_padding=1,
                               bias=norm is None),
            make_norm(norm, out_ch),
            nn.ReLU(inplace=True),
        )


@register_model("ternausnet", family="ternausnet",
                paper="Iglovikov & Shvets, arXiv 2018", year=2018,
                test_kwargs={"width": 4}, full_params=22_927_756)
class TernausNet(nn.Module):
    """TernausNet: U-Net with a VGG encoder that can start from pre-trained weights (Fig. 1).

    ::

        x ─ conv1 ──────────────────────────────────────────────── cat ─ conv → 1x1 → K
              └ pool ─ conv2 ───────────────────────────── cat ─ dec2 ┘ (up x2)
                        └ pool ─ conv3 ─────────── cat ─ dec3 ┘
                                  └ ... conv5 ─ cat ─ dec5 ┘
                                         └ pool ─ centre ┘ (3x3 conv, up x2)

    ``model.encoder`` is a :class:`~course_lib.models.backbones.VGGBackbone`; its blocks'
    maps *before* their pools are the skips (``conv1`` at full resolution is the finest), and
    :func:`course_lib.pretrain.load_pretrained` loads pre-trained weights into it.

    Args:
        in_channels, num_classes: image channels, classes K.
        width: channels of the encoder's first block (64 in the paper; 16 by default).
        full: the paper's network: VGG11 at width 64, no batch-norm, 32 decoder filters.
        backbone: the VGG (``"vgg11"`` in the paper, ``"vgg_tiny"`` by default).
        decoder_scale: decoder filters per encoder channel of the first block (0.5 in the
            paper; 1 by default).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        backbone: str | None = None,
        decoder_scale: float | None = None,
    ) -> None:
        super().__init__()
        check_channels("TernausNet", in_channels, num_classes)
        sizes = TERNAUS_SIZES.resolve("TernausNet", full, width=width, backbone=backbone,
                                      decoder_scale=decoder_scale)
        if not sizes.backbone.startswith("vgg"):
            raise ValueError(f"TernausNet: the encoder is a VGG (vgg_tiny, vgg11, ...), "
                             f"got backbone {sizes.backbone!r}")
        if sizes.decoder_scale <= 0:
            raise ValueError(f"TernausNet: decoder_scale must be positive, got "
                             f"{sizes.decoder_scale}")
        self.in_channels = in_channels
        self.encoder = build_backbone(sizes.backbone, in_channels, sizes.width, norm=sizes.norm)
        enc = [sizes.width * m for m in (1, 2, 4, 8, 8)]  # conv1..conv5 (before their pools)
        f = max(1, round(sizes.width * sizes.decoder_scale))
        norm = sizes.norm
        self.centre = DecoderBlock(enc[4], 16 * f, 8 * f, norm)
        self.dec5 = DecoderBlock(8 * f + enc[4], 16 * f, 8 * f, norm)
        self.dec4 = DecoderBlock(8 * f + enc[3], 16 * f, 4 * f, norm)
        self.dec3 = DecoderBlock(4 * f + enc[2], 8 * f, 2 * f, norm)
        self.dec2 = DecoderBlock(2 * f + enc[1], 4 * f, f, norm)
        self.dec1 = ConvBNReLU(f + enc[0], f, norm=norm)
        self.classifier = nn.Conv2d(f, num_classes, 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Contracting path: pool5 and the five blocks' maps before their pools (conv1 first)."""
        check_input("TernausNet", x, self.in_channels)
        skips = []
        for block in (self.encoder.stage1, self.encoder.stage2, self.encoder.stage3,
                      self.encoder.stage4, self.encoder.stage5):
            x = block[:-1](x)  # the block's 3x3 convolutions (VGG's conv_k)
            skips.append(x)
            x = block[-1](x)  # its 2x2 max-pool
        return x, skips

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bottom, skips = self.encode(x)
        y = self.centre(bottom)  # 3x3 conv, up-convolution: back to stride 16
        for dec, skip in zip((self.dec5, self.dec4, self.dec3, self.dec2), skips[:0:-1],
                             strict=True):
            y = dec(torch.cat([crop_to(y, skip), skip], dim=1))  # concatenate, conv, up x2
        y = self.dec1(torch.cat([crop_to(y, skips[0]), skips[0]], dim=1))  # full resolution
        return self.classifier(y)


__all__ = ["TernausSizes", "TERNAUS_SIZES", "DecoderBlock", "TernausNet"]
