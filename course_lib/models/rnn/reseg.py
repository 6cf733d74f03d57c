"""ReSeg (Visin et al., CVPR Workshops 2016, Fig. 1): ReNet layers on a VGG trunk's features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import register_model
from ..backbones import build_backbone
from ..blocks import ConvBNReLU, check_channels, check_input, resize_to
from ..contract import SizeTable
from .renet import ReNetLayer

CONTEXTS = ("renet", "conv", "none")


def _matched_conv(in_ch: int, out_ch: int, params: int, stride: int) -> nn.Sequential:
    """Two 3x3 ConvBNReLU (in_ch → mid → out_ch) whose weights number about ``params``."""
    mid = max(1, round(params / (9 * (in_ch + out_ch) + 2)))
    return nn.Sequential(ConvBNReLU(in_ch, mid, 3, stride=stride), ConvBNReLU(mid, out_ch, 3))



@dataclass(frozen=True)
class ReSegSizes:
    width: int  # the VGG trunk's base width (64 in VGG-16)
    backbone: str  # a VGG of course_lib.models.backbones
    feature_stride: int  # 4: up to conv3_3 (the paper's CamVid model), 8: up to pool3
    hidden: tuple[int, ...]  # units per direction of each ReNet layer
    patch: tuple[int, ...]  # patch side of each ReNet layer
    up_channels: tuple[int, ...]  # filters of each x2 upsampling step (bilinear, then 3x3 conv)


RESEG_SIZES = SizeTable(
    small=ReSegSizes(width=16, backbone="vgg_tiny", feature_stride=8, hidden=(32, 32),
                     patch=(1, 1), up_channels=(32, 16, 16)),
    # ReSeg's CamVid configuration (fvisin/reseg: evaluate_camvid.py): VGG-16 up to conv3_3,
    # two ReNet layers of 100 GRU units per direction on 1x1 patches, two x2 upsampling steps
    # of 50 filters (the paper: 2x2/2 transposed convolutions; see ReSeg's deviations)
    paper=ReSegSizes(width=64, backbone="vgg16", feature_stride=4, hidden=(100, 100),
                     patch=(1, 1), up_channels=(50, 50)),
)


@register_model("reseg", family="rnn", paper="Visin et al., CVPR Workshops 2016", year=2016,
                test_kwargs={"width": 4, "hidden": (6, 6), "up_channels": (8, 8, 8)},
                full_params=2_607_100)
class ReSeg(nn.Module):
    """ReSeg (Visin et al. 2016, Fig. 1): VGG features → ReNet layers → upsampling → classes.

    The paper's figure: a pre-trained VGG-16 up to conv3_3 extracts local features (stride
    4); ReNet layers sweep them (each output sees the whole image); upsampling layers
    bring the map back to full resolution; a softmax classifies every pixel.

    Args:
        context: ``"renet"`` (the paper), ``"none"`` (the same network without the ReNet
            layers: the CNN twin of the context lesson) or ``"conv"`` (each ReNet layer
            replaced by two 3x3 convolutions with about as many parameters: the CNN of equal
            size for the speed lesson).
        cell: ``"gru"`` (the paper) or ``"lstm"``.
        backbone, feature_stride, hidden, patch, up_channels: see :class:`ReSegSizes`.

    Deviations: trained from scratch (the paper started from ImageNet weights); batch-norm
    in the VGG trunk (``full=True`` removes it); each x2 upsampling step is a bilinear
    resize followed by a 3x3 convolution (Odena, Dumoulin & Olah 2016's resize-convolution)
    instead of the paper's 2x2/2 transposed convolution, whose four kernel positions each
    paint one pixel of every 2x2 block: trained from scratch it named the car and the boat
    in a checkerboard; a 1x1 classifier after the upsampling and a
    final bilinear resize, so any input size gives logits of its own size.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 full: bool = False, context: str = "renet", cell: str = "gru",
                 backbone: str | None = None, feature_stride: int | None = None,
                 hidden: Sequence[int] | None = None, patch: Sequence[int] | None = None,
                 up_channels: Sequence[int] | None = None) -> None:
        super().__init__()
        check_channels("ReSeg", in_channels, num_classes)
        sizes = RESEG_SIZES.resolve(
            "ReSeg", full, width=width, backbone=backbone, feature_stride=feature_stride,
            hidden=None if hidden is None else tuple(hidden),
            patch=None if patch is None else tuple(patch),
            up_channels=None if up_channels is None else tuple(up_channels))
        if context not in CONTEXTS:
            raise ValueError(f"ReSeg: context must be one of {', '.join(CONTEXTS)}, "
                             f"got {context!r}")
        if sizes.feature_stride not in (4, 8) or not sizes.backbone.startswith("vgg"):
            raise ValueError(f"ReSeg: needs a VGG backbone at feature_stride 4 or 8, got "
                             f"{sizes.backbone!r} at {sizes.feature_stride}")
        if len(sizes.patch) != len(sizes.hidden):
            raise ValueError(f"ReSeg: one patch size per ReNet layer, got hidden={sizes.hidden} "
                             f"and patch={sizes.patch}")
        self.in_channels, self.context_kind = in_channels, context
        vgg = build_backbone(sizes.backbone, in_channels, width=sizes.width, full=full)
        last = vgg.stage3 if sizes.feature_stride == 8 else vgg.stage3[:-1]  # conv3_3, no pool
        self.features = nn.Sequential(vgg.stage1, vgg.stage2, last)
        channels = 4 * sizes.width
        layers: list[nn.Module] = []
        for hid, p in zip(sizes.hidden, sizes.patch, strict=True):
            renet = ReNetLayer(channels, hid, p, cell)
            if context == "renet":
                layers.append(renet)
            elif context == "conv":
                size = sum(t.numel() for t in renet.parameters())
                layers.append(_matched_conv(channels, renet.out_channels, size, stride=p))
            channels = renet.out_channels if context != "none" else channels
        self.context = nn.Sequential(*layers)
        ups: list[nn.Module] = []
        for ch in sizes.up_channels:  # resize-convolution: no checkerboard (see Deviations)
            ups += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                    nn.Conv2d(channels, ch, 3, padding=1), nn.ReLU(inplace=True)]
            channels = ch
        self.upsample = nn.Sequential(*ups)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("ReSeg", x, self.in_channels)
        f = self.features(x)  # local features: VGG up to conv3_3 (stride 4) or pool3 (8)
        f = self.context(f)  # ReNet layers: every position now sees the whole image
        f = self.upsample(f)  # x2 each: bilinear, then a 3x3 convolution
        return resize_to(self.classifier(f), x)  # per-pixel class scores at the input size
