"""The DeepLab family: dilated (atrous) convolution, ASPP and an encoder-decoder (v1 → v3+).

Chen et al., "Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected
CRFs", ICLR 2015 (**v1**, the survey's 扩张卷积模型): VGG16 whose last two pools keep stride 1
and whose later convolutions are dilated instead ("hole algorithm"), so the score map is at
stride 8; fc6 becomes a 3x3 convolution of rate 12 ("DeepLab-LargeFOV"); the scores are
bilinearly upsampled and refined by a dense CRF (:meth:`DeepLabV1.crf`).

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
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import register_model
from .backbones import build_backbone
from .blocks import ConvBNReLU, DepthwiseSeparableConv, check_channels, resize_to
from .contract import SizeTable
from .crf import DEEPLAB_CRF, CRFParams, dense_crf
from .heads import FCNHead

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


class AtrousConv2d(nn.Conv2d):
    """A dilated ("atrous") 3x3 convolution with "same" padding, ``Conv2d`` in every respect
    (same parameters) but one shortcut: when the rate is at least the map's height (width),
    the off-centre rows (columns) of the filter only ever see zero padding, so they are
    skipped — the result is identical and cheaper. This is the degeneration the DeepLab v3
    paper points out (Sec. 3.3): as the rate nears the feature-map size, a 3x3 atrous filter
    becomes a 1x1 filter, which is why v3 adds the image-pooling branch.
    """

    def __init__(self, in_ch: int, out_ch: int, rate: int, bias: bool = False,
                 groups: int = 1) -> None:
        super().__init__(in_ch, out_ch, 3, padding=rate, dilation=rate, bias=bias,
                         groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rate = self.dilation[0]
        rows = slice(1, 2) if rate >= x.shape[-2] else slice(None)
        cols = slice(1, 2) if rate >= x.shape[-1] else slice(None)
        if rows.start is None and cols.start is None:
            return super().forward(x)
        padding = (0 if rows.start else rate, 0 if cols.start else rate)
        dilation = (1 if rows.start else rate, 1 if cols.start else rate)
        return F.conv2d(x, self.weight[:, :, rows, cols], self.bias, padding=padding,
                        dilation=dilation, groups=self.groups)


def atrous_conv_bn_relu(in_ch: int, out_ch: int, rate: int, separable: bool = False
                        ) -> nn.Sequential:
    """ASPP's 3x3 branch: atrous conv, BN, ReLU — or, ``separable``, the depthwise atrous conv
    (BN, ReLU) then a pointwise 1x1 (BN, ReLU), laid out as ``DepthwiseSeparableConv``."""
    if not separable:
        return nn.Sequential(AtrousConv2d(in_ch, out_ch, rate), nn.BatchNorm2d(out_ch),
                             nn.ReLU(inplace=True))
    depthwise = nn.Sequential(AtrousConv2d(in_ch, in_ch, rate, groups=in_ch),
                              nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True))
    return nn.Sequential(depthwise, ConvBNReLU(in_ch, out_ch, 1))


# --------------------------------------------------------------------------------------------
# DeepLab v1 (Chen et al. 2015): dilated VGG16, LargeFOV fc6, bilinear upsampling, dense CRF
# --------------------------------------------------------------------------------------------
@register_model("deeplabv1", family="dilated", paper="Chen et al., ICLR 2015", year=2015,
                test_kwargs={"width": 4, "fc_channels": 16}, full_params=20_496_204)
class DeepLabV1(nn.Module):
    """DeepLab v1 (LargeFOV): VGG at output stride 8 → fc6 (3x3, rate 12) → fc7 → fc8 → x8.

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
        super().__init__()
        check_channels("DeepLabV1", in_channels, num_classes)
        sizes = V1_SIZES.resolve("DeepLabV1", full, backbone=backbone, width=width,
                                 fc_channels=fc_channels, rate=rate)
        fc_channels = sizes.fc_channels
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, output_stride,
                                       full=full)
        norm = None if full else "bn"
        self.classifier = nn.Sequential(
            ConvBNReLU(self.backbone.channels["c5"], fc_channels, 3, dilation=sizes.rate,
                       norm=norm),
            nn.Dropout2d(dropout),  # fc6: 3x3, rate 12
            ConvBNReLU(fc_channels, fc_channels, 1, norm=norm),  # fc7
            nn.Dropout2d(dropout),
            nn.Conv2d(fc_channels, num_classes, 1),  # fc8: class scores at stride 8
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)  # pool5 at stride 8 (pool4/pool5 keep stride 1)
        return resize_to(self.classifier(feats["c5"]), x)  # bilinear x8 to the image

    @torch.no_grad()
    def crf(
        self, x: torch.Tensor, params: CRFParams | None = None, **crf_kwargs: Any
    ) -> torch.Tensor:
        """Eval-mode scores refined by the dense CRF: class probabilities [N, K, H, W].

        ``params`` defaults to DeepLab's CRF (10 iterations, w 3 / θγ 1, w 4 / θα 67 / θβ 3)
        with the position stds rescaled from 500-pixel images to the input size;
        ``crf_kwargs`` go to :func:`course_lib.models.crf.dense_crf` (``method``,
        ``window``, ...). The model's training mode is restored afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            logits = self(x)
        finally:
            self.train(was_training)
        params = params or DEEPLAB_CRF.scaled(max(x.shape[-2:]))
        return dense_crf(logits.float(), x.float(), params, **crf_kwargs)


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


@register_model("deeplabv2", family="dilated", paper="Chen et al., TPAMI 2017", year=2017,
                test_kwargs={"width": 4}, full_params=43_384_944)
class DeepLabV2(nn.Module):
    """DeepLab v2: dilated ResNet (output stride 8) → ASPP-L (sum of rates 6/12/18/24) → x8.

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
        super().__init__()
        check_channels("DeepLabV2", in_channels, num_classes)
        sizes = V2_SIZES.resolve("DeepLabV2", full, backbone=backbone, width=width)
        rates = tuple(rates) if rates else aspp_rates(V2_RATES, 8, output_stride)
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, output_stride,
                                       full=full)
        self.aspp = ASPPSum(self.backbone.channels["c5"], num_classes, rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)  # conv5_x at stride 8
        return resize_to(self.aspp(feats["c5"]), x)  # ASPP-L scores, bilinear to the image


# --------------------------------------------------------------------------------------------
# DeepLab v3 (Chen et al. 2017, Fig. 5): parallel ASPP with image pooling, concatenated
# --------------------------------------------------------------------------------------------
class ASPPPooling(nn.Sequential):
    """Image-level features: global average pool → 1x1 conv → BN → ReLU → upsample."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), ConvBNReLU(in_ch, out_ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to(super().forward(x), x)  # "bilinearly upsample" the 1x1 map


class ASPP(nn.Module):
    """DeepLab v3's ASPP: [1x1, 3x3 rate r1, r2, r3, image pooling] → concat → 1x1 project
    (BN, ReLU, dropout 0.5 as in torchvision). ``separable=True`` makes the dilated
    branches depthwise-separable (v3+)."""

    def __init__(self, in_ch: int, rates: Sequence[int], out_ch: int = 256,
                 separable: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        self.rates = tuple(rates)
        self.branches = nn.ModuleList(
            [ConvBNReLU(in_ch, out_ch, 1)]
            + [atrous_conv_bn_relu(in_ch, out_ch, r, separable) for r in self.rates]
            + [ASPPPooling(in_ch, out_ch)]
        )
        self.project = nn.Sequential(
            ConvBNReLU(len(self.branches) * out_ch, out_ch, 1), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DeepLabHead(nn.Sequential):
    """ASPP → 3x3 conv (BN, ReLU) → 1x1 classes (torchvision's ``DeepLabHead``)."""

    def __init__(self, in_ch: int, num_classes: int, rates: Sequence[int],
                 channels: int = 256) -> None:
        super().__init__(
            ASPP(in_ch, rates, channels),
            ConvBNReLU(channels, channels, 3),
            nn.Conv2d(channels, num_classes, 1),
        )


@register_model("deeplabv3", family="dilated", paper="Chen et al., arXiv 2017", year=2017,
                output="dict", test_kwargs={"width": 4, "channels": 16, "output_stride": 8},
                full_params=41_999_448)
class DeepLabV3(nn.Module):
    """DeepLab v3: dilated ResNet → ASPP (+ image pooling) → 3x3 → classes → bilinear.

    ``forward`` returns ``{"out": logits}`` plus ``"aux"`` (the ``FCNHead`` on ``c4``) when
    ``aux=True`` (the default), in training and in eval, like torchvision's
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
        super().__init__()
        check_channels("DeepLabV3", in_channels, num_classes)
        sizes = V3_SIZES.resolve("DeepLabV3", full, backbone=backbone, width=width,
                                 channels=channels)
        channels = sizes.channels
        rates = tuple(rates) if rates else aspp_rates(V3_RATES, 16, output_stride)
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, output_stride,
                                       full=full)
        ch = self.backbone.channels
        self.classifier = DeepLabHead(ch["c5"], num_classes, rates, channels)
        if not aspp:  # ablation: one plain 3x3 convolution (rate 1) where ASPP was
            self.classifier[0] = ConvBNReLU(ch["c5"], channels, 3)
        self.aux_classifier = FCNHead(ch["c4"], num_classes) if aux else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(x)  # c5 at the output stride
        result = {"out": resize_to(self.classifier(feats["c5"]), x)}  # ASPP head, bilinear
        if self.aux_classifier is not None:  # auxiliary FCN head on c4
            result["aux"] = resize_to(self.aux_classifier(feats["c4"]), x)
        return result


# --------------------------------------------------------------------------------------------
# DeepLab v3+ (Chen et al. 2018, Fig. 2): v3 encoder + a decoder with a stride-4 skip
# --------------------------------------------------------------------------------------------
@register_model("deeplabv3plus", family="dilated", paper="Chen et al., ECCV 2018", year=2018,
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


# --------------------------------------------------------------------------------------------
# Receptive fields: theoretical (a formula) and effective (a gradient), Luo et al. 2016
# --------------------------------------------------------------------------------------------
def dilated_receptive_field(layers: Sequence[tuple[int, int, int]]) -> int:
    """Theoretical receptive field of a chain of ``(kernel_size, stride, dilation)`` layers.

    A dilated kernel of size ``k`` and rate ``d`` spans ``d (k - 1) + 1`` pixels, so it adds
    ``d (k - 1)`` times the product of the strides before it:
    ``r = 1 + sum_l d_l (k_l - 1) prod_{j<l} s_j`` (:func:`basics.receptive_field` with
    ``d = 1``). Three 3x3 convolutions of rate 1 see 7 pixels, of rates 1, 2, 4 see 15.
    """
    from .basics import receptive_field

    checked = []
    for layer in layers:
        if len(layer) != 3 or min(int(v) for v in layer) < 1:
            raise ValueError(
                f"each layer must be (kernel_size, stride, dilation) >= 1, got {layer!r}"
            )
        k, s, d = (int(v) for v in layer)
        checked.append((d * (k - 1) + 1, s))
    return receptive_field(checked)


def conv_stack(
    rates: Sequence[int],
    channels: int = 8,
    in_channels: int = 1,
    kernel_size: int = 3,
    strides: Sequence[int] | None = None,
    seed: int = 0,
) -> nn.Sequential:
    """A plain stack of ``len(rates)`` convolutions (``kernel_size``, dilation ``rates[i]``,
    "same" padding, bias-free) each followed by a ReLU — one child per layer, so
    ``stack[:k]`` is the first ``k`` layers. Every stack with as many layers has exactly the
    same parameters whatever its rates: only the spacing of the taps differs. Weights are
    Kaiming-normal from ``seed``.
    """
    if not rates or min(int(r) for r in rates) < 1:
        raise ValueError(f"rates must be a non-empty sequence of integers >= 1, got {rates!r}")
    strides = tuple(strides) if strides is not None else (1,) * len(rates)
    if len(strides) != len(rates):
        raise ValueError(f"strides ({len(strides)}) and rates ({len(rates)}) differ in length")
    generator = torch.Generator().manual_seed(seed)
    layers = []
    prev = in_channels
    for r, s in zip(rates, strides, strict=True):
        conv = nn.Conv2d(prev, channels, kernel_size, stride=int(s), dilation=int(r),
                         padding=int(r) * (kernel_size - 1) // 2, bias=False)
        with torch.no_grad():  # Kaiming normal (fan-in, ReLU gain) from our own generator
            std = (2.0 / (prev * kernel_size**2)) ** 0.5
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
        layers.append(nn.Sequential(conv, nn.ReLU()))
        prev = channels
    return nn.Sequential(*layers)


def _first_in_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ValueError("the model has no Conv2d: pass an input tensor instead of a size")


def effective_receptive_field(
    model: nn.Module,
    inputs: torch.Tensor | int | tuple[int, int],
    samples: int = 4,
    position: tuple[int, int] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """The effective receptive field (Luo et al., NeurIPS 2016) of one output pixel: [H, W].

    For each input image, the sum over channels of the output at ``position`` (default: the
    centre of the output) is differentiated with respect to the input; the result is
    ``|gradient|`` summed over the input channels and averaged over the images. Zero means
    "this input pixel cannot change that output"; the non-zero support is the theoretical
    receptive field (with holes if dilation leaves some pixels unvisited).

    Args:
        model: any network; it is run in eval mode (BatchNorm statistics would otherwise
            connect every pixel of the batch) and its mode is restored afterwards. A dict
            output uses ``"out"``.
        inputs: images [N, C, H, W] to average over, or a size ``H`` / ``(H, W)``: then
            ``samples`` uniform random images (``seed``) with the first convolution's channels.
        position: ``(row, col)`` of the output pixel.
    """
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() != 4:
            raise ValueError(f"inputs must be [N, C, H, W], got shape {tuple(inputs.shape)}")
        x = inputs.detach().float().clone()
    else:
        h, w = (inputs, inputs) if isinstance(inputs, int) else (int(v) for v in inputs)
        if h < 1 or w < 1 or samples < 1:
            raise ValueError(f"size and samples must be >= 1, got {inputs!r}, {samples}")
        generator = torch.Generator().manual_seed(seed)
        x = torch.rand(samples, _first_in_channels(model), h, w, generator=generator)
    param = next(model.parameters(), None)
    x = x.to(param.device if param is not None else "cpu").requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            out = model(x)
            out = out["out"] if isinstance(out, dict) else out
            r, c = position if position is not None else (out.shape[-2] // 2, out.shape[-1] // 2)
            if not (0 <= r < out.shape[-2] and 0 <= c < out.shape[-1]):
                raise ValueError(f"position {(r, c)} is outside the output {tuple(out.shape[-2:])}")
            (grad,) = torch.autograd.grad(out[:, :, r, c].sum(), x)
    finally:
        model.train(was_training)
    return grad.abs().sum(1).mean(0).detach().cpu()


def receptive_field_stats(erf: torch.Tensor, mass: float = 0.9) -> dict[str, float]:
    """Numbers that describe an ERF map [H, W] (from :func:`effective_receptive_field`).

    ``extent``: side of the bounding box of the non-zero pixels (the measured theoretical RF,
    clipped by the image); ``holes``: share of that box whose gradient is exactly zero
    (dilation's "gridding"); ``mass_side``: side of the smallest square around the peak's
    centre of mass holding ``mass`` of the total gradient (Luo et al.: far smaller than the
    theoretical RF, and Gaussian-shaped).
    """
    if erf.dim() != 2:
        raise ValueError(f"erf must be a 2-D map [H, W], got shape {tuple(erf.shape)}")
    total = float(erf.sum())
    if total <= 0:
        raise ValueError("the ERF is zero everywhere: the output does not depend on the input")
    support = erf > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    box = support[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    ys, xs = torch.meshgrid(torch.arange(erf.shape[0]), torch.arange(erf.shape[1]),
                            indexing="ij")
    cy = float((erf * ys).sum() / total)
    cx = float((erf * xs).sum() / total)
    chebyshev = torch.maximum((ys - round(cy)).abs(), (xs - round(cx)).abs())
    by_ring = torch.bincount(chebyshev.flatten(), weights=erf.flatten().double())
    radius = int(torch.searchsorted(torch.cumsum(by_ring, 0) / by_ring.sum(),
                                    torch.tensor([mass], dtype=torch.float64)).item())
    return {
        "extent": int(max(box.shape)),
        "holes": float(1.0 - box.float().mean()),
        "mass_side": 2 * radius + 1,
    }


# --------------------------------------------------------------------------------------------
# Speed against torchvision
# --------------------------------------------------------------------------------------------
def benchmark_vs_torchvision(
    size: int = 128, batch: int = 2, repeats: int = 5, device: torch.device | str | None = None
) -> dict[str, Any]:
    """Training-step time of our full DeepLab v3 (ResNet-50, output stride 8, 21 classes, aux)
    against ``torchvision.models.segmentation.deeplabv3_resnet50`` (no weights) on the same
    input; returns ``{"ours_ms", "torchvision_ms", "ratio", "device", "size", "batch"}``
    (``ratio`` = ours / torchvision, medians of ``repeats`` steps)."""
    from torchvision.models.segmentation import deeplabv3_resnet50

    from .. import config
    from ..bench import train_step_time

    device = config.get_device() if device is None else torch.device(device)
    torch.manual_seed(0)
    x = torch.rand(batch, 3, size, size, device=device)
    target = torch.randint(0, 21, (batch, size, size), device=device)
    ours = DeepLabV3(num_classes=21, output_stride=8, aux=True, full=True).to(device)
    theirs = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21,
                                aux_loss=True).to(device)
    t_theirs = train_step_time(theirs, x, target, repeats=repeats)["median_ms"]
    t_ours = train_step_time(ours, x, target, repeats=repeats)["median_ms"]
    return {"ours_ms": t_ours, "torchvision_ms": t_theirs, "ratio": t_ours / t_theirs,
            "device": device.type, "size": size, "batch": batch}


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
    "benchmark_vs_torchvision",
    "dilated_receptive_field",
    "conv_stack",
    "effective_receptive_field",
    "receptive_field_stats",
]
