"""DANet, CCNet, OCNet and OCR: attention heads that bring context to every pixel.

All four put a head on a dilated ResNet (output stride 8, :mod:`course_lib.models.backbones`)
and keep torchvision's segmentation skeleton (:class:`~course_lib.models.heads.
SimpleSegmentationModel`): ``forward`` returns ``{"out", "aux"}``, the auxiliary
:class:`~course_lib.models.heads.FCNHead` on ``c4`` trained with weight 0.4. OCR uses that
auxiliary head's output twice: as the deep-supervision loss and as its soft object regions.

Each model also has ``attention_maps(x)``: the attention of its head as dense maps
``{name: [N, h, w, h, w]}`` at the feature resolution (``maps[n, i, j]`` is where pixel
``(i, j)`` looks), drawn by :class:`course_lib.widgets.attention.AttentionExplorer`.

Deviations (stated once, here):

- small by default (``resnet_tiny`` of width 16, heads of ``c5 / 4`` channels); ``full=True``
  gives the papers' ResNet-101 and head widths (no reference parameter count is published:
  ``full_params`` pins ours, and a test checks it against torchvision's ResNet-101 plus the
  reference heads' layers counted by hand);
- DANet: the reference also trains a classifier on each branch (``sa_output``,
  ``sc_output``); here one classifier on the sum and the ``FCNHead`` on ``c4`` instead;
- CCNet: BatchNorm + ReLU where the reference uses InPlace-ABN (leaky ReLU); the reference's
  deep-supervision head on ``c4`` (3x3 conv to 512) is torchvision's ``FCNHead`` here;
- OCNet: only the base object context (no pyramid / ASP variants);
- OCR: the soft object regions come from the ``FCNHead`` on ``c4`` at output stride 8, as in
  mmseg's ResNet configuration (the paper's HRNet reads one map).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ...runtime import evaluating, model_device
from .. import register_model
from ..backbones import build_backbone
from ..blocks import ConvBNReLU, check_channels, resize_to
from ..contract import SizeTable
from ..heads import FCNHead, SimpleSegmentationModel
from .blocks import (
    ChannelAttention,
    ObjectAttention,
    ObjectContextPooling,
    PositionAttention,
    RecurrentCrissCross,
    SpatialGather,
    soft_object_regions,
)

OUTPUT_STRIDE = 8  # every paper of this module: dilated ResNet, last two strides -> dilation


@dataclass(frozen=True)
class ContextSizes:
    """Sizes of an attention head on a dilated ResNet."""

    backbone: str
    width: int  # the backbone's base width (64 in the papers)
    channels: int  # the head's width (512 in the papers; c5 / 4 for DANet and CCNet)
    key_channels: int = 1  # OCR only: the pixel-region relation's width (256)
    recurrence: int = 2  # CCNet only: loops of criss-cross attention (R = 2 in the paper)


SIZES = SizeTable(small=ContextSizes("resnet_tiny", 16, 32, 16),
                  paper=ContextSizes("resnet101", 64, 512, 256))


def _dense(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """[N, h*w, h*w] attention -> [N, h, w, h, w] (query pixel, then the map it reads)."""
    h, w = features.shape[-2:]
    return weights.view(weights.shape[0], h, w, h, w)


class _ContextModel(SimpleSegmentationModel):
    """Dilated ResNet + an attention head on ``c5`` + ``FCNHead`` on ``c4`` (shared set-up)."""

    def __init__(self, name: str, in_channels: int, num_classes: int, aux: bool, full: bool,
                 given: dict[str, int | None]) -> None:
        check_channels(name, in_channels, num_classes)
        sizes = SIZES.resolve(name, full, **given)
        backbone = build_backbone(sizes.backbone, in_channels, sizes.width, OUTPUT_STRIDE,
                                  full=full)
        classifier = self.build_head(backbone.channels["c5"], num_classes, sizes)
        aux_classifier = FCNHead(backbone.channels["c4"], num_classes) if aux else None
        super().__init__(backbone, classifier, aux_classifier)
        self.sizes = sizes

    def build_head(self, in_ch: int, num_classes: int, sizes: ContextSizes) -> nn.Module:
        raise NotImplementedError

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def decode(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The heads on the backbone's features: ``{"out", "aux"}`` at the feature size."""
        logits = {"out": self.classifier(features["c5"])}
        if self.aux_classifier is not None:
            logits["aux"] = self.aux_classifier(features["c4"])
        return logits

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.decode(self.backbone(x))  # backbone, then the heads
        return {name: resize_to(value, x) for name, value in logits.items()}  # bilinear x8


class DilatedFCN(_ContextModel):
    """The baseline of the attention papers' ablations (DANet's Table 1, CCNet's Table 2): the
    same dilated ResNet with a plain :class:`~course_lib.models.heads.FCNHead` on ``c5``: a
    3x3 convolution sees a 3x3 neighbourhood of the stride-8 map, no attention.

    Args:
        in_channels, num_classes: image channels and ``K``. width: the backbone's base width.
        aux: the ``FCNHead`` on ``c4``. full: the papers' ResNet-101.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 aux: bool = True, full: bool = False) -> None:
        super().__init__("DilatedFCN", in_channels, num_classes, aux, full, {"width": width})

    def build_head(self, in_ch: int, num_classes: int, sizes: ContextSizes) -> nn.Module:
        return FCNHead(in_ch, num_classes)


# --------------------------------------------------------------------------------------------
# Training the heads on one shared backbone: its features computed once
# --------------------------------------------------------------------------------------------
def backbone_features(backbone: nn.Module, images: torch.Tensor, batch_size: int = 32
                      ) -> torch.Tensor:
    """``c4`` and ``c5`` of a (frozen) dilated backbone for every image, concatenated along
    the channels: [N, C4 + C5, H / 8, W / 8] on the CPU, computed in eval mode."""
    chunks = []
    with evaluating(backbone):
        for start in range(0, len(images), batch_size):
            batch = images[start: start + batch_size].to(model_device(backbone))
            features = backbone(batch)
            if features["c4"].shape[-2:] != features["c5"].shape[-2:]:
                raise ValueError(f"backbone_features needs c4 and c5 at one stride (output "
                                 f"stride 8 or 16), got {tuple(features['c4'].shape)} and "
                                 f"{tuple(features['c5'].shape)}")
            chunks.append(torch.cat([features["c4"], features["c5"]], dim=1).cpu())
    return torch.cat(chunks)


class HeadsOnFeatures(nn.Module):
    """A context model's heads trained on :func:`backbone_features` (the backbone frozen).

    ``forward(features)`` splits the cached ``[c4, c5]`` and returns the model's ``decode``:
    ``{"out", "aux"}`` at the feature resolution, to be trained against labels subsampled to
    that resolution (DeepLab's training: "we subsample the ground truth by 8"). The heads
    are the model's own modules: after training, ``model`` predicts at full resolution.
    """

    def __init__(self, model: _ContextModel) -> None:
        super().__init__()
        self.model = model
        self.c4_channels = model.backbone.channels["c4"]
        for parameter in model.backbone.parameters():
            parameter.requires_grad_(False)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        c4, c5 = features[:, : self.c4_channels], features[:, self.c4_channels:]
        return self.model.decode({"c4": c4, "c5": c5})


# --------------------------------------------------------------------------------------------
# DANet (Fu et al., CVPR 2019, Fig. 2): position and channel attention in parallel, summed
# --------------------------------------------------------------------------------------------
class DANetHead(nn.Module):
    """Two branches on ``c5`` (each: 3x3 conv to ``channels``, attention, 3x3 conv), summed,
    dropout 0.1, 1x1 classifier (junfu1115/DANet's ``DANetHead``)."""

    def __init__(self, in_ch: int, num_classes: int, channels: int) -> None:
        super().__init__()
        self.position_in = ConvBNReLU(in_ch, channels, 3)
        self.position = PositionAttention(channels)
        self.position_out = ConvBNReLU(channels, channels, 3)
        self.channel_in = ConvBNReLU(in_ch, channels, 3)
        self.channel = ChannelAttention(channels)
        self.channel_out = ConvBNReLU(channels, channels, 3)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(channels, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pam = self.position_out(self.position(self.position_in(x)))  # position attention
        cam = self.channel_out(self.channel(self.channel_in(x)))  # channel attention
        return self.classifier(pam + cam)  # sum fusion, then classes


@register_model("danet", family="attention", paper="Fu et al., CVPR 2019", year=2019,
                output="dict", test_kwargs={"width": 4, "channels": 8},
                full_params=68_794_586)
class DANet(_ContextModel):
    """DANet: dilated ResNet → position attention ∥ channel attention → sum → classes.

    Fig. 2 of the paper: the ``c5`` features go through two parallel modules; the position
    attention module (Fig. 3A, :class:`~.blocks.PositionAttention`) lets every pixel gather
    features from every other pixel by similarity; the channel attention module (Fig. 3B,
    :class:`~.blocks.ChannelAttention`) re-weights channels by their correlations. Both start
    as the identity (``gamma = 0``).

    Args:
        in_channels, num_classes: image channels and ``K``.
        width: the backbone's base width (16; 64 full). channels: each branch's width
            (``c5 / 4``: 32; 512 full). aux: the ``FCNHead`` on ``c4``. full: paper sizes
            (ResNet-101).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 channels: int | None = None, aux: bool = True, full: bool = False) -> None:
        super().__init__("DANet", in_channels, num_classes, aux, full,
                         {"width": width, "channels": channels})

    def build_head(self, in_ch: int, num_classes: int, sizes: ContextSizes) -> nn.Module:
        return DANetHead(in_ch, num_classes, sizes.channels)

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"position attention": [N, h, w, h, w]}``: the PAM's weights for every pixel."""
        head = self.classifier
        features = head.position_in(self.backbone(x)["c5"])
        return {"position attention": _dense(head.position.attention(features), features)}


# --------------------------------------------------------------------------------------------
# CCNet (Huang et al., ICCV 2019, Fig. 2): recurrent criss-cross attention
# --------------------------------------------------------------------------------------------
class RCCAHead(nn.Module):
    """3x3 conv to ``channels``, criss-cross attention ``recurrence`` times, 3x3 conv,
    concatenated with ``c5``, 3x3 conv, dropout 0.1, 1x1 classes (the reference's
    ``RCCAModule``; mmseg's ``CCHead``)."""

    def __init__(self, in_ch: int, num_classes: int, channels: int, recurrence: int) -> None:
        super().__init__()
        self.reduce = ConvBNReLU(in_ch, channels, 3)
        self.rcca = RecurrentCrissCross(channels, recurrence)
        self.expand = ConvBNReLU(channels, channels, 3)
        self.bottleneck = ConvBNReLU(in_ch + channels, channels, 3)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(channels, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.expand(self.rcca(self.reduce(x)))  # H -> H' -> H'' (R loops)
        return self.classifier(self.bottleneck(torch.cat([x, context], dim=1)))


@register_model("ccnet", family="attention", paper="Huang et al., ICCV 2019", year=2019,
                output="dict", test_kwargs={"width": 4, "channels": 8},
                full_params=68_793_561)
class CCNet(_ContextModel):
    """CCNet: dilated ResNet → recurrent criss-cross attention (R = 2) → classes.

    Fig. 2 of the paper: the reduced ``c5`` map passes the criss-cross attention module
    twice (shared weights): after the first loop each pixel has gathered its row and
    column, after the second every pixel of the image (Fig. 4). Each loop costs
    ``H*W*(H+W-1)`` weights instead of full attention's ``(H*W)^2``.

    Args:
        in_channels, num_classes: image channels and ``K``.
        width: the backbone's base width (16; 64 full). channels: the head's width
            (``c5 / 4``: 32; 512 full). recurrence: loops R (2, the paper's choice).
        aux: the ``FCNHead`` on ``c4``. full: paper sizes (ResNet-101).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 channels: int | None = None, recurrence: int | None = None, aux: bool = True,
                 full: bool = False) -> None:
        super().__init__("CCNet", in_channels, num_classes, aux, full,
                         {"width": width, "channels": channels, "recurrence": recurrence})

    def build_head(self, in_ch: int, num_classes: int, sizes: ContextSizes) -> nn.Module:
        return RCCAHead(in_ch, num_classes, sizes.channels, sizes.recurrence)

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"criss-cross, loop 1", ..., "criss-cross, loops 1-R"}`` [N, h, w, h, w].

        The composed map is the product of the loops' weights (the paths of attention,
        ignoring the residual connections): non-zero everywhere after two loops.
        """
        head = self.classifier
        features = head.reduce(self.backbone(x)["c5"])
        loops = head.rcca.attention(features)
        maps = {"criss-cross, loop 1": _dense(loops[0], features)}
        composed = loops[0]
        for weights in loops[1:]:
            composed = weights @ composed
        if len(loops) > 1:
            maps[f"criss-cross, loops 1-{len(loops)}"] = _dense(composed, features)
        return maps


# --------------------------------------------------------------------------------------------
# OCNet (Yuan & Wang 2018): object context pooling
# --------------------------------------------------------------------------------------------
class ObjectContextHead(nn.Sequential):
    """3x3 conv to ``channels``, base object context, 1x1 classes (OCNet's base-OC head)."""

    def __init__(self, in_ch: int, num_classes: int, channels: int) -> None:
        super().__init__(ConvBNReLU(in_ch, channels, 3), ObjectContextPooling(channels),
                         nn.Conv2d(channels, num_classes, 1))


@register_model("ocnet", family="attention", paper="Yuan & Wang, arXiv 2018", year=2018,
                output="dict", test_kwargs={"width": 4, "channels": 8},
                full_params=55_227_224)
class OCNet(_ContextModel):
    """OCNet (base-OC): dilated ResNet → object context pooling → classes.

    The context of a pixel is the average of the pixels that belong to the same object —
    estimated by self-attention: ``softmax_j(q_i . k_j)`` weights (:class:`~.blocks.
    ObjectContextPooling`) — concatenated with its own features.

    Args:
        in_channels, num_classes: image channels and ``K``.
        width: the backbone's base width (16; 64 full). channels: the head's width
            (32; 512 full). aux: the ``FCNHead`` on ``c4``. full: paper sizes (ResNet-101).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 channels: int | None = None, aux: bool = True, full: bool = False) -> None:
        super().__init__("OCNet", in_channels, num_classes, aux, full,
                         {"width": width, "channels": channels})

    def build_head(self, in_ch: int, num_classes: int, sizes: ContextSizes) -> nn.Module:
        return ObjectContextHead(in_ch, num_classes, sizes.channels)

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"object context": [N, h, w, h, w]}``: the self-attention pooling weights."""
        features = self.classifier[0](self.backbone(x)["c5"])
        return {"object context": _dense(self.classifier[1].attention(features), features)}


# --------------------------------------------------------------------------------------------
# OCR (Yuan et al., ECCV 2020, Fig. 3): object-contextual representations
# --------------------------------------------------------------------------------------------
class OCRHead(nn.Module):
    """3x3 conv to ``channels`` → object region representations from the soft regions →
    pixel-region relation → object-contextual representation → dropout 0.1, 1x1 classes
    (mmseg's ``OCRHead``, ``scale = 1``)."""

    def __init__(self, in_ch: int, num_classes: int, channels: int, key_channels: int) -> None:
        super().__init__()
        self.reduce = ConvBNReLU(in_ch, channels, 3)
        self.gather = SpatialGather()
        self.object_attention = ObjectAttention(channels, key_channels)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(channels, num_classes, 1))

    def forward(self, x: torch.Tensor, region_logits: torch.Tensor) -> torch.Tensor:
        features = self.reduce(x)  # pixel representations x_i
        regions = self.gather(features, region_logits)  # f_k, one per soft object region
        return self.classifier(self.object_attention(features, regions))  # z_i -> classes


@register_model("ocrnet", family="attention", paper="Yuan et al., ECCV 2020", year=2020,
                output="dict", test_kwargs={"width": 4, "channels": 8, "key_channels": 4},
                full_params=55_491_672)
class OCRNet(_ContextModel):
    """OCR: dilated ResNet → soft object regions (``FCNHead`` on ``c4``) → OCR head on ``c5``.

    Fig. 3 of the paper: (1) a coarse segmentation — the auxiliary head, supervised with
    weight 0.4 — gives ``K`` soft object regions; (2) each region's representation is the
    average of the pixel features weighted by the region; (3) each pixel relates to every
    region (a softmax over the ``K`` regions) and receives the weighted region
    representations: its object-contextual representation, concatenated with its own.

    Args:
        in_channels, num_classes: image channels and ``K``.
        width: the backbone's base width (16; 64 full). channels: the OCR head's width
            (32; 512 full). key_channels: the relation's width (16; 256 full).
        full: paper sizes (ResNet-101). ``aux`` does not apply: the soft regions are the
            auxiliary head, always present.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 channels: int | None = None, key_channels: int | None = None,
                 full: bool = False) -> None:
        super().__init__("OCRNet", in_channels, num_classes, True, full,
                         {"width": width, "channels": channels, "key_channels": key_channels})

    def build_head(self, in_ch: int, num_classes: int, sizes: ContextSizes) -> nn.Module:
        return OCRHead(in_ch, num_classes, sizes.channels, sizes.key_channels)

    def decode(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        regions = self.aux_classifier(features["c4"])  # soft object regions (coarse classes)
        out = self.classifier(features["c5"], regions)  # object-contextual representations
        return {"out": out, "aux": regions}

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"object regions": [N, h, w, h, w]}``: pixel ``i`` reads pixel ``j`` with weight
        ``sum_k w_ik m_kj`` (relation to region ``k`` times ``j``'s share of that region)."""
        features = self.backbone(x)
        region_logits = resize_to(self.aux_classifier(features["c4"]), features["c5"])
        pixels = self.classifier.reduce(features["c5"])
        relation = self.classifier.object_attention.relation(
            pixels, self.classifier.gather(pixels, region_logits))  # [N, HW, K]
        weights = relation @ soft_object_regions(region_logits)  # [N, HW, HW]
        return {"object regions": _dense(weights, pixels)}


__all__ = ["CCNet", "ContextSizes", "DANet", "DANetHead", "DilatedFCN", "HeadsOnFeatures", "OCNet",
           "OCRHead", "OCRNet", "ObjectContextHead", "RCCAHead", "SIZES", "backbone_features"]
