"""Multi-scale and pyramid networks: the feature pyramid network (FPN) and PSPNet.

Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017 (the survey's
多尺度和基于金字塔网络的模型): a backbone's stages see the image at strides 4, 8, 16, 32 —
deep stages know *what* is there, shallow ones *where*. Fig. 3 of the paper builds a pyramid
with both: a 1x1 *lateral* convolution brings every stage to the same width, a *top-down*
path upsamples the coarser map (nearest neighbour, x2) and adds it to the lateral of the
finer one, and a 3x3 convolution *smooths* each sum. Kirillov et al., "Panoptic Feature
Pyramid Networks", CVPR 2019 (Fig. 3) put a semantic-segmentation branch on that pyramid:
each level is brought to stride 4 by stages of (3x3 conv, GroupNorm, ReLU, x2 bilinear
upsample), the four maps are summed, a 1x1 convolution predicts the classes and a x4
bilinear upsample returns to the image.

Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017 (Fig. 3): a dilated ResNet keeps the
last feature map at stride 8; the *pyramid pooling module* average-pools it into 1x1, 2x2,
3x3 and 6x6 bins (global to sub-region context), reduces each pooled map with a 1x1
convolution to 1/4 of the channels, upsamples them back and concatenates them with the
feature map; a 3x3 convolution fuses the lot. An auxiliary FCN head on ``c4`` (res4b22)
adds a deep-supervision loss with weight 0.4 (paper Sec. 3.4).

Deviations from the papers (stated once, here):

- small by default (``resnet_tiny`` width 16, pyramid 64 / segmentation 32 channels for
  FPN, 64 fused channels for PSPNet); ``full=True`` gives the paper sizes (ResNet-50,
  pyramid 256 / segmentation 128; ResNet-50 dilated, 512 fused channels, 1024 → 256 aux);
- every upsampling goes to the *size* of the finer map, not by a fixed factor of 2, so odd
  input sizes work (stride-2 steps round up);
- PSPNet's pooled branches use GroupNorm instead of BatchNorm (see :class:`PyramidPooling`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import evaluating
from . import register_model
from .backbones import FEATURE_KEYS, build_backbone
from .blocks import ConvBNReLU, check_channels, resize_to
from .contract import SizeTable
from .heads import FCNHead, FeaturePyramid, SimpleSegmentationModel, group_norm


@dataclass(frozen=True)
class FPNSizes:
    backbone: str
    width: int  # the backbone's base width
    pyramid_channels: int  # the pyramid's width (256 in the paper)
    segmentation_channels: int  # the semantic head's width (128 in the paper)


@dataclass(frozen=True)
class PSPNetSizes:
    backbone: str
    width: int
    channels: int  # the fusion convolution's width (512 in the paper)


FPN_SIZES = SizeTable(small=FPNSizes("resnet_tiny", 16, 64, 32),
                      paper=FPNSizes("resnet50", 64, 256, 128))
PSPNET_SIZES = SizeTable(small=PSPNetSizes("resnet_tiny", 16, 64),
                         paper=PSPNetSizes("resnet50", 64, 512))


# --------------------------------------------------------------------------------------------
# FPN (Lin et al. 2017, Fig. 3; the pyramid itself, shared with Mask R-CNN, is
# heads.FeaturePyramid) and its semantic branch (Kirillov et al. 2019, Fig. 3)
# --------------------------------------------------------------------------------------------
class SemanticFPNHead(nn.Module):
    """Panoptic FPN's semantic branch (Kirillov et al. 2019, Fig. 3).

    Level ``P_s`` (stride ``s`` = 4, 8, 16, 32) goes through ``max(1, log2(s / 4))`` stages
    of 3x3 conv (``channels``), GroupNorm, ReLU, each but P4's followed by a x2 bilinear
    upsample (to the size of the next finer level); the four stride-4 maps are summed and a
    1x1 convolution predicts the classes (at stride 4).

    ``levels`` (indices into ``strides``; default: all) builds and sums the branches of those
    levels only — an ablation (e.g. ``levels=(3,)``: the coarsest level alone, still brought
    to stride 4 by its three stages). ``forward`` always takes the whole pyramid (for the sizes).

    ``norm="bn"`` replaces the paper's GroupNorm by BatchNorm — an ablation: GroupNorm
    normalises every image with statistics over its *whole* map, a global (image-level) signal
    that BatchNorm in eval mode (fixed running statistics) does not carry (notebook 09).
    """

    def __init__(
        self, in_ch: int, channels: int, num_classes: int, strides: Sequence[int],
        dropout: float = 0.0, levels: Sequence[int] | None = None, norm: str = "gn",
    ) -> None:
        super().__init__()
        if norm not in ("gn", "bn"):
            raise ValueError(f"norm must be 'gn' (GroupNorm, the paper) or 'bn', got {norm!r}")
        self.strides = tuple(int(s) for s in strides)
        n = len(self.strides)
        self.levels = tuple(range(n)) if levels is None else tuple(int(i) for i in levels)
        if not self.levels or len(set(self.levels)) != len(self.levels) or not all(
                0 <= i < n for i in self.levels):
            raise ValueError(f"levels must be distinct indices in 0..{n - 1}, got {levels!r}")
        self.branches = nn.ModuleList()
        self.targets: list[list[int]] = []  # per level: the level whose size each stage goes to
        for s in (self.strides[i] for i in self.levels):
            targets = []
            while s > self.strides[0]:  # x2 upsampling steps down to the finest stride
                s //= 2
                targets.append(self.strides.index(s))
            self.targets.append(targets)
            stages = [
                nn.Sequential(  # 3x3 conv, GroupNorm (32 groups in the paper), ReLU
                    nn.Conv2d(in_ch if i == 0 else channels, channels, 3, padding=1, bias=False),
                    group_norm(channels) if norm == "gn" else nn.BatchNorm2d(channels),
                    nn.ReLU(inplace=True),
                )
                for i in range(max(1, len(targets)))
            ]
            self.branches.append(nn.ModuleList(stages))
        self.dropout = nn.Dropout2d(dropout) if dropout else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def branch_outputs(self, pyramid: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Each used level brought to stride 4 (``channels`` maps), before the sum.

        The classifier is a 1x1 convolution (linear), so the logits are the sum over levels of
        ``classifier(branch)`` (plus one bias): each level's share of a class score can be read
        off exactly (notebook 09 draws it).
        """
        if len(pyramid) != len(self.strides):
            raise ValueError(f"the head expects {len(self.strides)} levels, got {len(pyramid)}")
        sizes = [p.shape[-2:] for p in pyramid]
        outputs = []
        chosen = [pyramid[i] for i in self.levels]
        for p, stages, targets in zip(chosen, self.branches, self.targets, strict=True):
            for i, stage in enumerate(stages):
                p = stage(p)  # 3x3 conv, GroupNorm, ReLU
                if i < len(targets):  # x2 bilinear upsample (to the finer level's size)
                    p = resize_to(p, sizes[targets[i]])
            outputs.append(p)
        return outputs

    def forward(self, pyramid: Sequence[torch.Tensor]) -> torch.Tensor:
        total = torch.stack(self.branch_outputs(pyramid)).sum(0)  # element-wise sum at stride 4
        return self.classifier(self.dropout(total))


@register_model("fpn", family="multiscale", paper="Lin et al., CVPR 2017; Kirillov et al., "
                "CVPR 2019", year=2017,
                test_kwargs={"width": 4, "pyramid_channels": 16, "segmentation_channels": 16},
                full_params=28_477_772)
class FPN(nn.Module):
    """FPN with a panoptic-FPN semantic head: backbone → pyramid ``P2..P5`` → head → x4.

    Args:
        in_channels, num_classes: image channels and ``K`` (logits [N, K, H, W]).
        width: the backbone's base width (16; 64 full). full: paper sizes (ResNet-50,
            256 / 128). backbone: a ResNet/VGG name (resnet_tiny; resnet50 full).
        pyramid_channels: pyramid width (64; 256 in the paper); segmentation_channels: the
            semantic head's width (32; 128 in the paper).
        output_stride: of the backbone (32 as in the paper; 16/8 dilate the last stages).
        levels: ablation — the pyramid levels the semantic head reads (names from
            ``"c2".."c5"``; default all four, the paper). ``("c5",)``: the coarsest level only.
        top_down: ablation — ``False`` drops the top-down path (each level sees its own stage).
            With ``levels=("c2",), top_down=False`` the head sees only the stride-4 stage.
            Stages the head does not read are still computed (and get no gradient).
        head_norm: ablation — ``"gn"`` (GroupNorm, the paper) or ``"bn"`` (BatchNorm) in the
            semantic head.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        backbone: str | None = None,
        pyramid_channels: int | None = None,
        segmentation_channels: int | None = None,
        output_stride: int = 32,
        dropout: float = 0.0,
        levels: Sequence[str] | None = None,
        top_down: bool = True,
        head_norm: str = "gn",
    ) -> None:
        super().__init__()
        check_channels("FPN", in_channels, num_classes)
        levels = FEATURE_KEYS if levels is None else tuple(levels)
        unknown = [k for k in levels if k not in FEATURE_KEYS]
        if unknown or not levels or len(set(levels)) != len(levels):
            raise ValueError(f"FPN levels must be distinct names from {FEATURE_KEYS}, "
                             f"got {list(levels)}")
        self.levels = tuple(k for k in FEATURE_KEYS if k in levels)
        sizes = FPN_SIZES.resolve("FPN", full, backbone=backbone, width=width,
                                  pyramid_channels=pyramid_channels,
                                  segmentation_channels=segmentation_channels)
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, output_stride,
                                       full=full)
        ch, strides = self.backbone.channels, self.backbone.strides
        self.pyramid = FeaturePyramid([ch[k] for k in FEATURE_KEYS], sizes.pyramid_channels,
                                      top_down)
        self.head = SemanticFPNHead(sizes.pyramid_channels, sizes.segmentation_channels,
                                    num_classes,
                                    [strides[k] for k in FEATURE_KEYS], dropout,
                                    [FEATURE_KEYS.index(k) for k in self.levels], head_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)  # C2..C5, strides 4..32
        pyramid = self.pyramid(feats)  # P2..P5, all pyramid_channels wide
        logits = self.head(list(pyramid.values()))  # summed at stride 4, classified
        return resize_to(logits, x)  # x4 bilinear upsample to the image


def level_contributions(
    model: FPN, images: torch.Tensor,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """What each pyramid level says about the predicted class, pixel by pixel (notebook 09).

    Returns the pyramid ``P2..P5`` of ``images`` (a list of [N, C, H_k, W_k]) and the share of
    each level the head reads in the logit of the class the model predicts at every stride-4
    pixel, [N, levels, H/4, W/4]: the head's 1x1 classifier is linear, so that logit is
    exactly the sum of the shares plus the classifier's bias of the class. Eval mode, no
    gradient; the model's modes are restored.
    """
    if not isinstance(model, FPN):
        raise TypeError(f"level_contributions needs an FPN, got {type(model).__name__}")
    with evaluating(model):
        pyramid = list(model.pyramid(model.backbone(images)).values())
        branches = model.head.branch_outputs(pyramid)
        weight = model.head.classifier.weight
        parts = torch.stack([F.conv2d(b, weight) for b in branches], 1)  # [N, L, K, h, w]
        logits = parts.sum(1) + model.head.classifier.bias.view(1, -1, 1, 1)
        winner = logits.argmax(1)  # the predicted class at stride 4, [N, h, w]
        index = winner[:, None, None].expand(-1, parts.shape[1], 1, -1, -1)
        share = parts.gather(2, index)[:, :, 0]
    return pyramid, share


# --------------------------------------------------------------------------------------------
# PSPNet (Zhao et al. 2017, Fig. 3)
# --------------------------------------------------------------------------------------------
class PyramidPooling(nn.Module):
    """The pyramid pooling module: adaptive average pooling to ``bins`` x ``bins`` (1, 2, 3, 6),
    a 1x1 conv to ``in_ch // len(bins)`` channels per bin, bilinear upsampling back, and
    concatenation with the input (→ ``2 * in_ch`` channels for four bins).

    Norm of the pooled branches: GroupNorm (:func:`group_norm`, ≥ 2 channels per group)
    instead of the paper's BatchNorm. BatchNorm fails on the 1x1 bin in training with batch 1
    (one value per channel); GroupNorm normalises each image on its own, so the module works
    with any batch size, in training and in eval.
    """

    def __init__(self, in_ch: int, bins: Sequence[int] = (1, 2, 3, 6),
                 branch_ch: int | None = None) -> None:
        super().__init__()
        if not bins or min(bins) < 1:
            raise ValueError(f"pyramid bins must be >= 1, got {list(bins)}")
        self.bins = tuple(int(b) for b in bins)
        branch_ch = max(in_ch // len(self.bins), 1) if branch_ch is None else branch_ch
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(in_ch, branch_ch, 1, bias=False),
                group_norm(branch_ch),
                nn.ReLU(inplace=True),
            )
            for b in self.bins
        )
        self.out_channels = in_ch + len(self.bins) * branch_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # pool → 1x1 conv → upsample, for every bin; then concatenate with x
        return torch.cat([x] + [resize_to(branch(x), x) for branch in self.branches], dim=1)


class PSPHead(nn.Sequential):
    """PSPNet's classifier on ``c5``: pyramid pooling → 3x3 fuse (BN, ReLU) → dropout →
    1x1 classes (Fig. 3, right half)."""

    def __init__(self, in_ch: int, num_classes: int, channels: int,
                 bins: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1) -> None:
        ppm = PyramidPooling(in_ch, bins)
        super().__init__(
            ppm,  # pool at 1, 2, 3, 6 bins, 1x1 conv, upsample, concatenate with c5
            ConvBNReLU(ppm.out_channels, channels, 3),  # 3x3 fuse
            nn.Dropout2d(dropout),
            nn.Conv2d(channels, num_classes, 1),  # class scores at stride 8
        )


@register_model("pspnet", family="multiscale", paper="Zhao et al., CVPR 2017", year=2017,
                output="dict", test_kwargs={"width": 4, "channels": 16}, full_params=48_950_872)
class PSPNet(SimpleSegmentationModel):
    """PSPNet: dilated ResNet (output stride 8) → pyramid pooling → 3x3 fuse → classes.

    Its forward pass is :class:`SimpleSegmentationModel`'s: ``{"out": logits, "aux":
    aux_logits}`` (both [N, K, H, W]) in training *and* in eval mode (``"aux"`` only when
    ``aux=True``, the default), like torchvision's segmentation models:
    :func:`course_lib.train.fit` adds ``aux_weight`` (0.4, the paper's) times the auxiliary
    loss; prediction uses ``"out"``. The auxiliary head is the FCN head on ``c4`` (res4b22).

    Args:
        in_channels, num_classes: image channels and ``K``.
        width: the backbone's base width (16; 64 full). full: paper sizes (ResNet-50, 512
            channels). backbone: ResNet name (resnet_tiny; resnet50 full — the paper's
            ResNet-50/101 dilated). output_stride: 8 (the paper) or 16.
        bins: pooling bin sizes (1, 2, 3, 6). channels: the fusion conv's width (64; 512 in
            the paper). aux: add the auxiliary FCN head on ``c4``. dropout: before the
            classifier (0.1).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        backbone: str | None = None,
        output_stride: int = 8,
        bins: Sequence[int] = (1, 2, 3, 6),
        channels: int | None = None,
        aux: bool = True,
        dropout: float = 0.1,
    ) -> None:
        check_channels("PSPNet", in_channels, num_classes)
        sizes = PSPNET_SIZES.resolve("PSPNet", full, backbone=backbone, width=width,
                                     channels=channels)
        trunk = build_backbone(sizes.backbone, in_channels, sizes.width, output_stride, full=full)
        ch = trunk.channels
        head = PSPHead(ch["c5"], num_classes, sizes.channels, bins, dropout)
        super().__init__(trunk, head, FCNHead(ch["c4"], num_classes) if aux else None)

    @property
    def ppm(self) -> PyramidPooling:
        """The pyramid pooling module (the first stage of the classifier)."""
        return self.classifier[0]


__all__ = [
    "FeaturePyramid",
    "SemanticFPNHead",
    "FPN",
    "level_contributions",
    "PyramidPooling",
    "PSPHead",
    "PSPNet",
]
