"""Panoptic-DeepLab (Cheng et al., CVPR 2020, Fig. 2): one backbone, two branches, three heads.

A *semantic* branch (ASPP → decoder → head: class scores per pixel) and a class-agnostic
*instance* branch (its own ASPP → decoder → two heads: an object-centre heat-map and, at every
pixel, the offset to its object's centre). Both decoders are DeepLab v3+-style: the ASPP
output is upsampled to stride 8 and to stride 4, each time concatenated with a projection of
the backbone's feature at that stride and fused by a 5x5 depthwise-separable convolution.
The heads are a 5x5 depthwise-separable convolution and a 1x1 convolution each.
:mod:`.grouping` turns the three maps into a panoptic segmentation.

Deviations (stated once, here): the course's small ResNet by default; the paper's semantic
loss is a bootstrapped cross-entropy (hardest 15 % of the pixels, small instances weighted 3x),
here the plain cross-entropy (:func:`.training.panoptic_loss`); the offsets are predicted at
the input's resolution in input pixels (the paper predicts them at stride 4 and rescales).
ASPP is DeepLab v3's (:class:`course_lib.models.blocks.ASPP`): Panoptic-DeepLab *is* DeepLab
with an instance branch, so it uses the same module, which lives in ``blocks`` for both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import register_model
from ..backbones import build_backbone
from ..blocks import (
    ASPP,
    ConvBNReLU,
    DepthwiseSeparableConv,
    check_channels,
    check_input,
    resize_to,
)
from ..contract import SizeTable

OUTPUT_STRIDE = 16
ASPP_RATES = (6, 12, 18)  # at output stride 16, the paper's (and DeepLab v3's)


@dataclass(frozen=True)
class PanopticDeepLabSizes:
    backbone: str
    width: int  # the backbone's base width (64 in the paper)
    semantic_channels: int  # ASPP and decoder width of the semantic branch (256)
    instance_channels: int  # decoder width of the instance branch (128; its ASPP is 256)
    head_channels: int  # the instance heads' width (32)


SIZES = SizeTable(small=PanopticDeepLabSizes("resnet_tiny", 16, 48, 32, 16),
                  paper=PanopticDeepLabSizes("resnet50", 64, 256, 128, 32))


class PanopticDecoder(nn.Module):
    """ASPP on ``c5`` → x2 → concat ``project(c3)`` → 5x5 fuse → x2 → concat ``project(c2)`` →
    5x5 fuse: ``channels`` maps at stride 4 (Fig. 2, one decoder)."""

    def __init__(self, channels: dict[str, int], aspp_channels: int, decoder_channels: int,
                 low_channels: tuple[int, int]) -> None:
        super().__init__()
        self.aspp = ASPP(channels["c5"], ASPP_RATES, aspp_channels, dropout=0.1)
        self.project_c3 = ConvBNReLU(channels["c3"], low_channels[0], 1)
        self.project_c2 = ConvBNReLU(channels["c2"], low_channels[1], 1)
        self.fuse_c3 = DepthwiseSeparableConv(aspp_channels + low_channels[0],
                                              decoder_channels, 5)
        self.fuse_c2 = DepthwiseSeparableConv(decoder_channels + low_channels[1],
                                              decoder_channels, 5)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.aspp(features["c5"])  # context at stride 16
        low = self.project_c3(features["c3"])  # stride-8 skip
        x = self.fuse_c3(torch.cat([resize_to(x, low), low], dim=1))  # x2, concat, fuse
        low = self.project_c2(features["c2"])  # stride-4 skip
        return self.fuse_c2(torch.cat([resize_to(x, low), low], dim=1))  # x2, concat, fuse


class PredictionHead(nn.Sequential):
    """5x5 depthwise-separable conv → 1x1 conv to ``out_channels`` (the paper's heads)."""

    def __init__(self, in_ch: int, mid_ch: int, out_channels: int) -> None:
        super().__init__(DepthwiseSeparableConv(in_ch, mid_ch, 5),
                         nn.Conv2d(mid_ch, out_channels, 1))


@register_model("panoptic_deeplab", family="panoptic", paper="Cheng et al., CVPR 2020",
                year=2020, output="dict",
                test_kwargs={"width": 4, "semantic_channels": 16, "instance_channels": 8,
                             "head_channels": 8},
                full_params=54_969_590)
class PanopticDeepLab(nn.Module):
    """Panoptic-DeepLab: backbone → (semantic ASPP + decoder → classes) ∥ (instance ASPP +
    decoder → centre heat-map, offsets).

    ``forward(x)`` returns ``{"out": class logits [N, K, H, W], "center": the centre heat-map
    [N, 1, H, W] (regressed, no activation, as in the paper), "offset": (dy, dx)
    [N, 2, H, W] in input pixels}``; :func:`.grouping.panoptic_prediction` makes the panoptic ids.

    Args:
        in_channels, num_classes: image channels and ``K``. width: the backbone's base width
        (16; 64 full). full: the paper's sizes (ResNet-50, 256/128-channel decoders, 32-channel
        instance heads). backbone: a ResNet name. semantic_channels, instance_channels,
        head_channels: the branches' widths.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 3, width: int | None = None,
                 full: bool = False, backbone: str | None = None,
                 semantic_channels: int | None = None, instance_channels: int | None = None,
                 head_channels: int | None = None) -> None:
        super().__init__()
        check_channels("PanopticDeepLab", in_channels, num_classes)
        sizes = SIZES.resolve("PanopticDeepLab", full, backbone=backbone, width=width,
                              semantic_channels=semantic_channels,
                              instance_channels=instance_channels, head_channels=head_channels)
        self.in_channels, self.sizes = in_channels, sizes
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, OUTPUT_STRIDE,
                                       full=full)
        ch = self.backbone.channels
        sem, inst = sizes.semantic_channels, sizes.instance_channels
        # the paper's skips: 64 and 32 channels (semantic), 32 and 16 (instance)
        self.semantic_decoder = PanopticDecoder(ch, sem, sem, (max(sem // 4, 1),
                                                               max(sem // 8, 1)))
        self.instance_decoder = PanopticDecoder(ch, sem, inst, (max(inst // 4, 1),
                                                                max(inst // 8, 1)))
        self.semantic_head = PredictionHead(sem, sem, num_classes)
        self.center_head = PredictionHead(inst, sizes.head_channels, 1)
        self.offset_head = PredictionHead(inst, sizes.head_channels, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input("PanopticDeepLab", x, self.in_channels)
        features = self.backbone(x)  # c2..c5, c5 at stride 16
        semantic = self.semantic_decoder(features)  # semantic branch, stride 4
        instance = self.instance_decoder(features)  # instance branch, stride 4
        return {
            "out": resize_to(self.semantic_head(semantic), x),  # classes
            "center": resize_to(self.center_head(instance), x),  # centre heat-map
            "offset": resize_to(self.offset_head(instance), x),  # (dy, dx) to the centre
        }


__all__ = ["PanopticDeepLab", "PanopticDecoder", "PredictionHead"]
