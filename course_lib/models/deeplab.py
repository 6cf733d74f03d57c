"""The DeepLab family: dilated (atrous) convolution, ASPP and an encoder-decoder (v1 → v3+).

Chen et al., "Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected
CRFs", ICLR 2015 (**v1**, the survey's 扩张卷积模型): VGG16 whose last two pools keep stride 1
and whose later convolutions are dilated instead ("hole algorithm"), so the score map is at
stride 8; fc6 becomes a 3x3 convolution of rate 12 ("DeepLab-LargeFOV"); the scores are
bilinearly upsampled and refined by a dense CRF (:func:`course_lib.models.crf.refine`).

Chen et al., "DeepLab: ... Atrous Convolution, and Fully Connected CRFs", TPAMI 2017
(**v2**, Fig. 4): atrous *spatial pyramid* pooling — four parallel 3x3 convolutions of rates
6, 12, 18, 24 on the stride-8 ResNet-101 map, each predicting class scores; their scores are
*summed* (ASPP-L).

Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017 (**v3**,
Fig. 5): ASPP becomes a feature module — a 1x1 convolution, three 3x3 of rates 6/12/18 and
image-level pooling (global average → 1x1 conv → upsample), 256 channels each with batch
norm, concatenated and projected by a 1x1 conv. The rates are tied to the output stride:
6/12/18 at stride 16, doubled (12/24/36) at stride 8 — :func:`aspp_rates`.

Chen et al., "Encoder-Decoder with Atrous Separable Convolution", ECCV 2018 (**v3+**,
Fig. 2): the v3 encoder at stride 16 plus a light decoder — the ASPP output upsampled x4 and
concatenated with 48 channels reduced from the stride-4 low-level features, two 3x3
convolutions, classes, x4 upsample; ASPP and decoder use depthwise-separable convolutions.

v1, v2 and v3 are a backbone, a classifier head (and v3's auxiliary head) on
:class:`~course_lib.models.heads.SimpleSegmentationModel`, torchvision's skeleton: each
writes only its constructor, and returns ``{"out"[, "aux"]}``. v3+ has a decoder, so it
writes its own forward pass.

The receptive-field tools of notebook 11 live in :mod:`course_lib.receptive_field` (they are
importable from here too).

Deviations (stated once, here):

- small by default (VGG/ResNet "tiny" backbones of width 16, 64-channel ASPP; v1's fc6 rate
  4 instead of 12 and 256 channels instead of 1024); ``full=True`` gives the paper sizes
  (v1 VGG16 LargeFOV; v2 ResNet-101; v3 ResNet-50 — torchvision's reference, the paper used
  ResNet-101 — with torchvision's head and auxiliary ``FCNHead`` on ``c4``; v3+ ResNet-50
  instead of the paper's Xception / ResNet-101);
- v1's CRF is post-processing with fixed parameters (:mod:`course_lib.models.crf`), not
  part of ``forward``; v2 is trained without the CRF and without multi-scale inputs;
- v3's image-pooling branch keeps BatchNorm (as torchvision and the paper): it works with
  batch 1 in eval, but training needs batch ≥ 2 (BatchNorm of one value per channel).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..receptive_field import (  # re-exported: notebook 11 imports them from here
    conv_stack,
    dilated_receptive_field,
    effective_receptive_field,
    receptive_field_stats,
)
from . import register_model
from .backbones import build_backbone
from .blocks import (  # ASPP and its atrous branches live in blocks (Panoptic-DeepLab uses them)
    ASPP,
    ASPPPooling,
    AtrousConv2d,
    ConvBNReLU,
    DepthwiseSeparableConv,
    atrous_conv_bn_relu,
    check_channels,
    resize_to,
)
from .contract import SizeTable
from .heads import FCNHead, SimpleSegmentationModel

V2_RATES = (6, 12, 18, 24)  # at output stride 8 (the paper's only setting)
V3_RATES = (6, 12, 18)  # at output stride 16; doubled at 8


@dataclass(frozen=True)
class V1Sizes:
    backbone: str
    width: int  # the backbone's base width
    fc_channels: int  # fc6 / fc7
    rate: int  # fc6's dilation (LargeFOV: 12)


@dataclass(frozen=True)
class V2Sizes:
    backbone: str
    width: int


@dataclass(frozen=True)
class V3Sizes:
    backbone: str
    width: int
    channels: int  # ASPP (and v3+'s decoder)


@dataclass(frozen=True)
class V3PlusSizes(V3Sizes):
    low_level_channels: int  # the reduced stride-4 skip


V1_SIZES = SizeTable(small=V1Sizes("vgg_tiny", 16, 256, 4), paper=V1Sizes("vgg16", 64, 1024, 12))
V2_SIZES = SizeTable(small=V2Sizes("resnet_tiny", 16), paper=V2Sizes("resnet101", 64))
V3_SIZES = SizeTable(small=V3Sizes("resnet_tiny", 16, 64), paper=V3Sizes("resnet50", 64, 256))
V3PLUS_SIZES = SizeTable(small=V3PlusSizes("resnet_tiny", 16, 64, 48),
                         paper=V3PlusSizes("resnet50", 64, 256, 48))


def aspp_rates(base_rates: Sequence[int], base_stride: int, output_stride: int) -> tuple[int, ...]:
    """ASPP rates tied to the output stride: ``base_rates`` are for ``base_stride``; a map twice
    as dense needs twice the rate to see the same part of the image.

    ``aspp_rates((6, 12, 18), 16, 8) == (12, 24, 36)``; a rate that would not be a whole
    number raises a ValueError.
    """
    rates = []
    for r in base_rates:
        scaled = r * base_stride / output_stride
        if scaled != int(scaled) or scaled < 1:
            raise ValueError(
                f"rate {r} at output stride {base_stride} becomes {scaled} at output stride "
                f"{output_stride}: pass integer `rates` explicitly"
            )
        rates.append(int(scaled))
    return tuple(rates)


# --------------------------------------------------------------------------------------------
# DeepLab v1 (Chen et al. 2015): dilated VGG16, LargeFOV fc6, bilinear upsampling, dense CRF
# --------------------------------------------------------------------------------------------
@register_model("deeplabv1", family="deeplab", paper="Chen et al., ICLR 2015", year=2015,
                output="dict", test_kwargs={"width": 4, "fc_channels": 16},
                full_params=20_496_204)
class DeepLabV1(SimpleSegmentationModel):
    """DeepLab v1 (LargeFOV): VGG at output stride 8 → fc6 (3x3, rate 12) → fc7 → fc8 → x8.

    Its forward pass is :class:`SimpleSegmentationModel`'s: ``{"out": logits}``, the fc8
    scores of pool5 (stride 8: pool4/pool5 keep stride 1) upsampled bilinearly x8. The
    paper's dense CRF is post-processing, not part of the network:
    :func:`course_lib.models.crf.refine` applies it to any model's scores.

    Args:
        in_channels, num_classes: image channels and ``K`` (logits [N, K, H, W]).
        width: backbone base width (16; 64 full). full: paper sizes (VGG16 without
            batch-norm, LargeFOV head).
        backbone: a VGG name (vgg_tiny; vgg16 full).
        fc_channels: fc6/fc7 width (256; 1024 full). rate: fc6 dilation (4; 12 full).
        output_stride: 8 (the paper) or 16/32. dropout: after fc6 and fc7 (0.5).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        backbone: str | None = None,
        fc_channels: int | None = None,
        rate: int | None = None,
        output_stride: int = 8,
        dropout: float = 0.5,
    ) -> None:
        check_channels("DeepLabV1", in_channels, num_classes)
        sizes = V1_SIZES.resolve("DeepLabV1", full, backbone=backbone, width=width,
                                 fc_channels=fc_channels, rate=rate)
        fc = sizes.fc_channels
        trunk = build_backbone(sizes.backbone, in_channels, sizes.width, output_stride, full=full)
        norm = None if full else "bn"
        classifier = nn.Sequential(
            ConvBNReLU(trunk.channels["c5"], fc, 3, dilation=sizes.rate, norm=norm),
            nn.Dropout2d(dropout),  # fc6: 3x3, rate 12
            ConvBNReLU(fc, fc, 1, norm=norm),  # fc7
            nn.Dropout2d(dropout),
            nn.Conv2d(fc, num_classes, 1),  # fc8: class scores at stride 8
        )
        super().__init__(trunk, classifier)


# --------------------------------------------------------------------------------------------
# DeepLab v2 (Chen et al. 2017, Fig. 4): ASPP-L, the SUM of four dilated 3x3 classifiers
# --------------------------------------------------------------------------------------------
class ASPPSum(nn.Module):
    """DeepLab v2's ASPP: parallel 3x3 convolutions of ``rates`` straight to class scores,
    summed (kazuto1011/deeplab-pytorch's ``_ASPP``; the paper's branches had fc6/fc7/fc8)."""

    def __init__(self, in_ch: int, num_classes: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.rates = tuple(rates)
        self.branches = nn.ModuleList(
            AtrousConv2d(in_ch, num_classes, r, bias=True) for r in self.rates
        )
        for conv in self.branches:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)  # sum fusion


@register_model("deeplabv2", family="deeplab", paper="Chen et al., TPAMI 2017", year=2017,
                output="dict", test_kwargs={"width": 4}, full_params=43_384_944)
class DeepLabV2(SimpleSegmentationModel):
    """DeepLab v2: dilated ResNet (output stride 8) → ASPP-L (sum of rates 6/12/18/24) → x8.

    Its forward pass is :class:`SimpleSegmentationModel`'s: ``{"out": logits}``, the
    ASPP-L scores of ``c5`` (conv5_x at stride 8) upsampled bilinearly to the image.

    Args:
        in_channels, num_classes: image channels and ``K``. width: backbone base width (16;
        64 full). full: paper sizes (ResNet-101). backbone: ResNet name (resnet_tiny;
        resnet101 full). output_stride: 8 (the paper) or 16 (rates halved). rates: override
        the ASPP rates.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        backbone: str | None = None,
        output_stride: int = 8,
        rates: Sequence[int] | None = None,
    ) -> None:
        check_channels("DeepLabV2", in_channels, num_classes)
        sizes = V2_SIZES.resolve("DeepLabV2", full, backbone=backbone, width=width)
        rates = tuple(rates) if rates else aspp_rates(V2_RATES, 8, output_stride)
        trunk = build_backbone(sizes.backbone, in_channels, sizes.width, output_stride, full=full)
        super().__init__(trunk, ASPPSum(trunk.channels["c5"], num_classes, rates))


# --------------------------------------------------------------------------------------------
# DeepLab v3 (Chen et al. 2017, Fig. 5): parallel ASPP with image pooling, concatenated
# --------------------------------------------------------------------------------------------
class DeepLabHead(nn.Sequential):
    """ASPP → 3x3 conv (BN, ReLU) → 1x1 classes (torchvision's ``DeepLabHead``)."""

    def __init__(self, in_ch: int, num_classes: int, rates: Sequence[int],
                 channels: int = 256) -> None:
        super().__init__(
            ASPP(in_ch, rates, channels),
            ConvBNReLU(channels, channels, 3),
            nn.Conv2d(channels, num_classes, 1),
        )


@register_model("deeplabv3", family="deeplab", paper="Chen et al., arXiv 2017", year=2017,
                output="dict", test_kwargs={"width": 4, "channels": 16, "output_stride": 8},
                full_params=41_999_448)
class DeepLabV3(SimpleSegmentationModel):
    """DeepLab v3: dilated ResNet → ASPP (+ image pooling) → 3x3 → classes → bilinear.

    Its forward pass is :class:`SimpleSegmentationModel`'s: ``{"out": logits}`` plus
    ``"aux"`` (the ``FCNHead`` on ``c4``) when ``aux=True`` (the default), in training and
    in eval, like torchvision's
    ``deeplabv3_resnet50(aux_loss=True)`` — whose parameter count ``full=True`` matches
    exactly (42,004,074 for 21 classes, tested).

    Args:
        in_channels, num_classes: image channels and ``K``. width: backbone base width (16;
        64 full). full: paper sizes (ResNet-50, 256-channel ASPP). backbone: ResNet name
        (resnet_tiny; resnet50 full). output_stride: 16 (the paper's training) or 8
        (torchvision's; rates doubled). rates: override the ASPP rates. channels: ASPP
        width (64; 256 full). aux: auxiliary head. aspp: ``False`` replaces ASPP by one
        plain 3x3 convolution of the same width (an ablation, not in the paper).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        backbone: str | None = None,
        output_stride: int = 16,
        rates: Sequence[int] | None = None,
        channels: int | None = None,
        aux: bool = True,
        aspp: bool = True,
    ) -> None:
        check_channels("DeepLabV3", in_channels, num_classes)
        sizes = V3_SIZES.resolve("DeepLabV3", full, backbone=backbone, width=width,
                                 channels=channels)
        rates = tuple(rates) if rates else aspp_rates(V3_RATES, 16, output_stride)
        trunk = build_backbone(sizes.backbone, in_channels, sizes.width, output_stride, full=full)
        ch = trunk.channels
        head = DeepLabHead(ch["c5"], num_classes, rates, sizes.channels)
        if not aspp:  # ablation: one plain 3x3 convolution (rate 1) where ASPP was
            head[0] = ConvBNReLU(ch["c5"], sizes.channels, 3)
        super().__init__(trunk, head, FCNHead(ch["c4"], num_classes) if aux else None)


# --------------------------------------------------------------------------------------------
# DeepLab v3+ (Chen et al. 2018, Fig. 2): v3 encoder + a decoder with a stride-4 skip
# --------------------------------------------------------------------------------------------
@register_model("deeplabv3plus", family="deeplab", paper="Chen et al., ECCV 2018", year=2018,
                test_kwargs={"width": 4, "channels": 16, "low_level_channels": 8},
                full_params=26_693_820)
class DeepLabV3Plus(nn.Module):
    """DeepLab v3+: separable-ASPP encoder (output stride 16) + decoder → logits.

    Decoder (Fig. 2): ASPP features upsampled to stride 4, concatenated with a 1x1
    projection (48 channels) of the low-level ``c2`` features, two 3x3 depthwise-separable
    convolutions, 1x1 classes, x4 bilinear upsample.

    Args:
        in_channels, num_classes: image channels and ``K``. width: backbone base width (16;
        64 full). full: paper sizes (ResNet-50 — the paper's were Xception / ResNet-101 —
        256-channel ASPP and decoder). backbone: ResNet name (resnet_tiny; resnet50 full).
        output_stride: 16 (the paper) or 8. rates: override the ASPP rates. channels:
        ASPP/decoder width (64; 256 full). low_level_channels: the skip's width (48).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        backbone: str | None = None,
        output_stride: int = 16,
        rates: Sequence[int] | None = None,
        channels: int | None = None,
        low_level_channels: int | None = None,
    ) -> None:
        super().__init__()
        check_channels("DeepLabV3Plus", in_channels, num_classes)
        sizes = V3PLUS_SIZES.resolve("DeepLabV3Plus", full, backbone=backbone, width=width,
                                     channels=channels, low_level_channels=low_level_channels)
        channels, low_level_channels = sizes.channels, sizes.low_level_channels
        rates = tuple(rates) if rates else aspp_rates(V3_RATES, 16, output_stride)
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, output_stride,
                                       full=full)
        ch = self.backbone.channels
        self.aspp = ASPP(ch["c5"], rates, channels, separable=True, dropout=0.1)
        self.low_level = ConvBNReLU(ch["c2"], low_level_channels, 1)  # 48-channel skip
        self.decoder = nn.Sequential(
            DepthwiseSeparableConv(channels + low_level_channels, channels, 3),
            DepthwiseSeparableConv(channels, channels, 3),
            nn.Conv2d(channels, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        low = self.low_level(feats["c2"])  # low-level features, stride 4
        high = resize_to(self.aspp(feats["c5"]), low)  # encoder output, x4 to stride 4
        logits = self.decoder(torch.cat([high, low], dim=1))  # concat, 2 x 3x3, classes
        return resize_to(logits, x)  # x4 bilinear to the image


__all__ = [
    "V2_RATES",
    "V3_RATES",
    "aspp_rates",
    "DeepLabV1",
    "AtrousConv2d",
    "atrous_conv_bn_relu",
    "ASPPSum",
    "DeepLabV2",
    "ASPPPooling",
    "ASPP",
    "DeepLabHead",
    "DeepLabV3",
    "DeepLabV3Plus",
    "dilated_receptive_field",
    "conv_stack",
    "effective_receptive_field",
    "receptive_field_stats",
]
