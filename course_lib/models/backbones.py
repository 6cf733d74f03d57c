"""Backbones: VGG-style and ResNet-style feature extractors shared by the model families.

Most segmentation networks of the survey start from a classification network with its
classifier cut off (FCN and DeepLab v1 from VGG16, PSPNet, DeepLab v2/v3 and Mask R-CNN from
ResNet). This module builds those trunks once.

The contract between a backbone and the heads on top of it (written once, torchvision-style)
-------------------------------------------------------------------------------------------
``backbone(x)`` returns an ``OrderedDict`` with the keys ``"c2"``, ``"c3"``, ``"c4"``, ``"c5"``:
the outputs of the four last stages, at nominal strides 4, 8, 16 and 32 of the input.
Every backbone also carries three plain attributes:

- ``channels``: ``{"c2": C2, ..., "c5": C5}`` — the channel count of each feature;
- ``strides``:  ``{"c2": 4, "c3": 8, "c4": 16, "c5": 32}`` at ``output_stride=32``; with
  ``output_stride=16`` the last stride-2 step is replaced by dilation (``"c5": 16``), with
  ``output_stride=8`` the last two are (``"c4": 8, "c5": 8``), as torchvision's
  ``replace_stride_with_dilation`` does;
- ``dilation``: ``32 // output_stride`` — how much denser the last feature is than at
  stride 32, i.e. the dilation a head placed on ``"c5"`` needs to keep the stride-32
  receptive field (DeepLab v1 dilates VGG's fc6 this way).

A feature at stride ``s`` of an ``H x W`` input is ``ceil(H / s) x ceil(W / s)`` (odd sizes
work: every stride-2 step rounds up, as Caffe's pooling did for FCN).

Sizes: small widths by default (``width=16``, batch-norm, fit for a laptop CPU); the paper
networks with ``full=True`` (``build_backbone("vgg16", full=True)`` has exactly the
parameters of ``torchvision.models.vgg16().features``, ``build_backbone("resnet50",
full=True)`` those of ``torchvision.models.resnet50()`` without its ``fc``). No pretrained
weights are ever downloaded: the course trains from scratch.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .blocks import make_norm

FEATURE_KEYS = ("c2", "c3", "c4", "c5")
NOMINAL_STRIDES = {"c2": 4, "c3": 8, "c4": 16, "c5": 32}

# convolutions per VGG stage (Simonyan & Zisserman 2015, Table 1: A = vgg11, D = vgg16, E = vgg19)
VGG_DEPTHS: dict[str, tuple[int, ...]] = {
    "vgg_tiny": (1, 1, 1, 1, 1),
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
# (block type, blocks per stage) (He et al. 2016, Table 1)
RESNET_DEPTHS: dict[str, tuple[str, tuple[int, ...]]] = {
    "resnet_tiny": ("basic", (1, 1, 1, 1)),
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}
BACKBONES = tuple(VGG_DEPTHS) + tuple(RESNET_DEPTHS)


def _dilation_plan(output_stride: int) -> tuple[bool, bool, bool]:
    """Which of the stride-8, stride-16, stride-32 steps become dilation instead of stride."""
    plans = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}
    if output_stride not in plans:
        raise ValueError(f"output_stride must be 32, 16 or 8, got {output_stride!r}")
    return plans[output_stride]


def _strides(output_stride: int) -> dict[str, int]:
    return {k: min(s, output_stride) for k, s in NOMINAL_STRIDES.items()}


def _check_input(x: torch.Tensor, in_channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f"expected input [N, {in_channels}, H, W], got shape {tuple(x.shape)}"
        )


# --------------------------------------------------------------------------------------------
# VGG (Simonyan & Zisserman, ICLR 2015): stages of 3x3 conv + ReLU, each ended by a 2x2 max-pool
# --------------------------------------------------------------------------------------------
class VGGBackbone(nn.Module):
    """VGG trunk (the "features" part of VGG16, Table 1 column D of the paper).

    Stage ``k`` (k = 1..5) is ``depths[k-1]`` 3x3 convolutions followed by max-pooling; its
    output is the paper's ``pool{k}``, so ``"c3"`` = pool3, ``"c4"`` = pool4 and
    ``"c5"`` = pool5 — exactly the three maps FCN-8s fuses. Stage widths are
    ``width x (1, 2, 4, 8, 8)`` (64..512 in the paper).

    Deviations: batch-norm after each convolution by default (``norm="bn"``; the 2014 network
    had none and ``full=True`` removes it) so the net trains from scratch; pooling rounds up
    (``ceil_mode``, as Caffe did) so odd sizes work. For ``output_stride`` 16/8 the last
    pools keep stride 1 (3x3 window, DeepLab v1's choice) and the convolutions after them
    are dilated by 2 (then 4).
    """

    def __init__(
        self,
        in_channels: int = 3,
        depths: tuple[int, ...] = VGG_DEPTHS["vgg16"],
        width: int = 16,
        output_stride: int = 32,
        norm: str | None = "bn",
    ) -> None:
        super().__init__()
        if len(depths) != 5 or min(depths) < 1:
            raise ValueError(f"VGG needs 5 stage depths >= 1, got {depths!r}")
        if width < 1 or in_channels < 1:
            raise ValueError(f"width and in_channels must be >= 1, got {width}, {in_channels}")
        dilate_s8, dilate_s16, dilate_s32 = _dilation_plan(output_stride)
        # stage k's pool (k = 1..5) keeps stride 1 when that step is replaced by dilation
        keep_pool = (False, False, dilate_s8, dilate_s16, dilate_s32)
        widths = [width * m for m in (1, 2, 4, 8, 8)]
        self.in_channels = in_channels
        self.output_stride = output_stride
        self.dilation = 32 // output_stride
        stages = []
        prev, dilation = in_channels, 1
        for k, (depth, ch) in enumerate(zip(depths, widths, strict=True)):
            layers: list[nn.Module] = []
            for _ in range(depth):
                layers += [
                    nn.Conv2d(prev, ch, 3, padding=dilation, dilation=dilation, bias=norm is None),
                    make_norm(norm, ch),
                    nn.ReLU(inplace=True),
                ]
                prev = ch
            if keep_pool[k]:
                layers.append(nn.MaxPool2d(3, stride=1, padding=1))
                dilation *= 2  # what follows sees a map that is 2x denser than planned
            else:
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
            stages.append(nn.Sequential(*layers))
        self.stage1, self.stage2, self.stage3, self.stage4, self.stage5 = stages
        self.channels = dict(zip(FEATURE_KEYS, widths[1:], strict=True))
        self.strides = _strides(output_stride)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        _check_input(x, self.in_channels)
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        x = self.stage1(x)  # pool1, stride 2
        out["c2"] = x = self.stage2(x)  # pool2, stride 4
        out["c3"] = x = self.stage3(x)  # pool3, stride 8
        out["c4"] = x = self.stage4(x)  # pool4, stride 16 (8 at output_stride 8)
        out["c5"] = self.stage5(x)  # pool5, stride 32 (or output_stride)
        return out


# --------------------------------------------------------------------------------------------
# ResNet (He et al., CVPR 2016): a 7x7 stem, then four stages of residual blocks (Fig. 5)
# --------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """Two 3x3 convolutions plus the identity (Fig. 5 left; ResNet-18/34)."""

    expansion = 1

    def __init__(
        self, in_ch: int, ch: int, stride: int = 1, dilation: int = 1,
        first_dilation: int | None = None, norm: str | None = "bn",
    ) -> None:
        super().__init__()
        d0 = dilation if first_dilation is None else first_dilation
        self.conv1 = nn.Conv2d(in_ch, ch, 3, stride, padding=d0, dilation=d0, bias=False)
        self.bn1 = make_norm(norm, ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = make_norm(norm, ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, ch * self.expansion, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class Bottleneck(nn.Module):
    """1x1 reduce → 3x3 → 1x1 expand (x4) plus the identity (Fig. 5 right; ResNet-50/101).

    As in torchvision ("ResNet v1.5") the stride sits on the 3x3 convolution, not the first 1x1.
    """

    expansion = 4

    def __init__(
        self, in_ch: int, ch: int, stride: int = 1, dilation: int = 1,
        first_dilation: int | None = None, norm: str | None = "bn",
    ) -> None:
        super().__init__()
        d0 = dilation if first_dilation is None else first_dilation
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = make_norm(norm, ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, stride, padding=d0, dilation=d0, bias=False)
        self.bn2 = make_norm(norm, ch)
        self.conv3 = nn.Conv2d(ch, ch * self.expansion, 1, bias=False)
        self.bn3 = make_norm(norm, ch * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, ch * self.expansion, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


def _shortcut(in_ch: int, out_ch: int, stride: int, norm: str | None) -> nn.Module | None:
    """Projection shortcut (1x1 conv + norm) when the shape changes, else ``None`` (identity)."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), make_norm(norm, out_ch))


class ResNetBackbone(nn.Module):
    """ResNet trunk: stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) and ``layer1..layer4``.

    ``layer1..layer4`` give ``"c2".."c5"`` (the paper's conv2_x..conv5_x). Widths are
    ``width x (1, 2, 4, 8)`` times the block's expansion (64..512 x 4 = 2048 for ResNet-50).
    ``output_stride`` 16/8 turns the stride-2 of layer4 (and layer3) into dilation 2 (and 4);
    the first block of a dilated stage keeps the previous dilation, as in torchvision.
    """

    def __init__(
        self,
        in_channels: int = 3,
        block: str = "basic",
        layers: tuple[int, ...] = (1, 1, 1, 1),
        width: int = 16,
        output_stride: int = 32,
        norm: str | None = "bn",
    ) -> None:
        super().__init__()
        blocks = {"basic": BasicBlock, "bottleneck": Bottleneck}
        if block not in blocks:
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"ResNet needs 4 stage depths >= 1, got {layers!r}")
        if width < 1 or in_channels < 1:
            raise ValueError(f"width and in_channels must be >= 1, got {width}, {in_channels}")
        block_cls = blocks[block]
        self.in_channels = in_channels
        self.output_stride = output_stride
        self.dilation = 32 // output_stride
        # stem: conv1 + pool (stride 4)
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        dilate = (False,) + _dilation_plan(output_stride)
        prev, dilation = width, 1
        stages = []
        for i, (n, dil) in enumerate(zip(layers, dilate, strict=True)):
            ch = width * 2**i
            stride = 1 if i == 0 else 2
            previous = dilation
            if dil:  # replace this stage's stride 2 by dilation
                dilation *= stride
                stride = 1
            mods = [block_cls(prev, ch, stride, dilation, previous, norm)]
            prev = ch * block_cls.expansion
            mods += [block_cls(prev, ch, 1, dilation, None, norm) for _ in range(n - 1)]
            stages.append(nn.Sequential(*mods))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.channels = {k: width * 2**i * block_cls.expansion for i, k in enumerate(FEATURE_KEYS)}
        self.strides = _strides(output_stride)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        _check_input(x, self.in_channels)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # stem, stride 4
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        out["c2"] = x = self.layer1(x)  # conv2_x, stride 4
        out["c3"] = x = self.layer2(x)  # conv3_x, stride 8
        out["c4"] = x = self.layer3(x)  # conv4_x, stride 16 (8 at output_stride 8)
        out["c5"] = self.layer4(x)  # conv5_x, stride 32 (or output_stride)
        return out


def build_backbone(
    name: str = "vgg_tiny",
    in_channels: int = 3,
    width: int | None = None,
    output_stride: int = 32,
    norm: str | None = "bn",
    full: bool = False,
) -> VGGBackbone | ResNetBackbone:
    """A backbone by name (``BACKBONES``): ``vgg_tiny, vgg11..vgg19, resnet_tiny, resnet18..101``.

    ``width`` defaults to 16 (64 with ``full=True``). ``full=True`` builds the paper network:
    width 64 and, for VGG, no batch-norm (convolutions with bias, as in 2014).
    """
    if width is None:
        width = 64 if full else 16
    if name in VGG_DEPTHS:
        return VGGBackbone(in_channels, VGG_DEPTHS[name], width, output_stride,
                           None if full else norm)
    if name in RESNET_DEPTHS:
        block, layers = RESNET_DEPTHS[name]
        return ResNetBackbone(in_channels, block, layers, width, output_stride, norm)
    raise ValueError(f"unknown backbone {name!r}; valid backbones are: {', '.join(BACKBONES)}")


__all__ = [
    "BACKBONES",
    "FEATURE_KEYS",
    "VGG_DEPTHS",
    "RESNET_DEPTHS",
    "VGGBackbone",
    "ResNetBackbone",
    "BasicBlock",
    "Bottleneck",
    "build_backbone",
]
