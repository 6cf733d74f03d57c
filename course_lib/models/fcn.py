"""Fully convolutional networks: FCN-32s, FCN-16s, FCN-8s and ParseNet's global context.

Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation",
CVPR 2015 (the survey's 全卷积模型): take a classification network (VGG16), turn its
fully connected layers into convolutions (fc6 = 7x7 conv, fc7 = 1x1 conv) so that it outputs
a *map* of class scores at stride 32, and upsample that map back to the image with a
transposed convolution initialised to bilinear interpolation. Fig. 3 of the paper adds
skips: the stride-32 scores are upsampled x2 and added to scores computed from pool4
(FCN-16s), then x2 again and added to scores from pool3 (FCN-8s) — coarse semantics plus
fine appearance. Every line of :class:`FCN.forward` is one arrow of that figure. The paper
stopped there ("diminishing returns" on PASCAL, Sec. 4.2); ``variant="4s"`` fuses one skip
more, from pool2 (stride 4), for images whose objects are a few pixels wide.

Liu, Rabinovich & Berg, "ParseNet: Looking Wider to See Better", ICLR 2016 workshop
(Fig. 1): average-pool a feature map over the whole image, L2-normalise the resulting
vector with a learnable scale, "unpool" it (tile it back to every position) and
concatenate it to the (also L2-normalised) local features — every pixel then sees the
whole scene. :class:`GlobalContext` is that module; :class:`ParseNet` is FCN-32s with it
placed on fc7.

Deviations from the papers (stated once, here):

- the backbone is small by default (``vgg_tiny``: one 3x3 conv per VGG stage, width 16,
  batch-norm) and starts from random weights: notebooks load the shapes world's
  pre-training into ``model.backbone`` (:func:`course_lib.pretrain.load_pretrained`, the
  course's ImageNet); ``full=True`` builds VGG16 with 4096-wide 7x7 fc6 / 1x1 fc7 and
  dropout 0.5 as in the paper (no ImageNet weights are downloaded);
- "same" padding everywhere instead of the paper's 100-pixel padding of conv1_1 plus
  cropping at a computed offset: every stride-2 step rounds up, so a map at stride ``s``
  has ``ceil(H / s)`` rows, upsampled maps are cropped at the top-left to the size of the
  skip (FCN's ``crop`` layer, offset 0), and any input size works;
- the small default fc6 is a 3x3 convolution (7x7 in ``full``), dropout 0.1 (0.5 in ``full``);
- all stages are trained at once ("FCN-8s at once" in the paper's journal version); the
  skip score layers are zero-initialised, as in the paper, so FCN-16s/8s start as FCN-32s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import register_model
from .backbones import build_backbone
from .blocks import check_channels
from .contract import SizeTable
from .heads import crop_to

# skips fused, coarse to fine; "4s" goes one stage further than the paper (pool2)
VARIANTS = {"32s": (), "16s": ("c4",), "8s": ("c4", "c3"), "4s": ("c4", "c3", "c2")}


# --------------------------------------------------------------------------------------------
# Bilinear upsampling as a transposed convolution (paper Sec. 3.3 "Upsampling is backwards
# strided convolution")
# --------------------------------------------------------------------------------------------
def bilinear_kernel(factor: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 2D bilinear-interpolation filter for upsampling by ``factor``: [k, k], k = 2f - f % 2.

    Used as the weight of ``ConvTranspose2d(kernel_size=k, stride=f, padding=f // 2)``, it
    reproduces ``F.interpolate(scale_factor=f, mode="bilinear", align_corners=False)`` away
    from the borders (at the borders the transposed convolution sees zeros where
    ``F.interpolate`` repeats the edge pixel).
    """
    if int(factor) != factor or factor < 1:
        raise ValueError(f"upsampling factor must be a positive integer, got {factor!r}")
    f = int(factor)
    k = 2 * f - f % 2
    centre = f - 1 if f % 2 == 1 else f - 0.5
    t = torch.arange(k, dtype=torch.float64)
    tent = (1 - (t - centre).abs() / f).clamp(min=0)  # 1D "tent": linear interpolation
    return torch.outer(tent, tent).to(dtype)


def bilinear_conv_transpose(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A learnable ``ConvTranspose2d`` (channels → channels, x ``factor``) initialised to bilinear.

    Channel ``c`` is upsampled into channel ``c`` only (the off-diagonal filters start at 0),
    the paper's initialisation of its in-network x2 upsampling layers.
    """
    k = 2 * factor - factor % 2
    up = nn.ConvTranspose2d(channels, channels, k, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.zero_()
        idx = torch.arange(channels)
        up.weight[idx, idx] = bilinear_kernel(factor)
    return up


class FixedBilinearUpsample(nn.Module):
    """Upsampling by a fixed bilinear transposed convolution (FCN's last layer, not learned).

    The paper: "the final layer deconvolutional filters are fixed to bilinear interpolation".
    The filter is a buffer (not a parameter), applied to each channel separately.
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = int(factor)
        self.register_buffer("kernel", bilinear_kernel(self.factor)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(c, 1, -1, -1)
        return F.conv_transpose2d(x, weight, stride=self.factor, padding=self.factor // 2,
                                  groups=c)


# --------------------------------------------------------------------------------------------
# ParseNet's global context (Liu et al. 2016, Fig. 1)
# --------------------------------------------------------------------------------------------
class L2NormScale(nn.Module):
    """L2-normalise each position's feature vector, then multiply by a learnable per-channel
    scale (ParseNet Sec. 3.2; initialised to ``scale_init`` = 10)."""

    def __init__(self, channels: int, scale_init: float = 10.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels,), float(scale_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1, eps=1e-6) * self.scale.view(1, -1, 1, 1)


class GlobalContext(nn.Module):
    """ParseNet context module: [L2Norm(x), Unpool(L2Norm(GlobalAvgPool(x)))] → 2C channels."""

    def __init__(self, channels: int, scale_init: float = 10.0) -> None:
        super().__init__()
        self.norm_local = L2NormScale(channels, scale_init)
        self.norm_global = L2NormScale(channels, scale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = x.mean(dim=(2, 3), keepdim=True)  # global average pool → [N, C, 1, 1]
        context = self.norm_global(context)  # L2 norm + learned scale
        context = context.expand_as(x)  # "unpool": the same vector at every position
        return torch.cat([self.norm_local(x), context], dim=1)  # concatenate


# --------------------------------------------------------------------------------------------
# FCN (Long et al. 2015, Fig. 3)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FCNSizes:
    backbone: str  # a VGG or ResNet name of course_lib.models.backbones
    width: int  # backbone base width
    fc_channels: int | None  # width of fc6/fc7; None: 16 x width
    fc_kernel: int  # fc6's kernel (the paper's 7x7 on pool5)
    dropout: float  # after fc6 and fc7


SIZES = SizeTable(small=FCNSizes("vgg_tiny", 16, None, 3, 0.1),
                  paper=FCNSizes("vgg16", 64, 4096, 7, 0.5))


class FCN(nn.Module):
    """FCN-32s / FCN-16s / FCN-8s on a VGG-style backbone (Long et al., CVPR 2015, Fig. 3).

    Fig. 3 as code (strides for ``output_stride=32``)::

        image ─ backbone ─ pool3 (/8) ── pool4 (/16) ── pool5 (/32) ─ fc6 ─ fc7 ─ score_fr
                              │             │                                       │
                        score_pool3   score_pool4                          (32s: x32 → out)
                              │             └──────(+)─── x2 upsample ◄─────────────┘
                              │                     │   (16s: x16 → out)
                              └───────(+)─── x2 upsample ◄┘
                                       │ (8s: x8 → out; 4s: one more skip, pool2, then x4)

    In-network x2 upsamplings are learnable transposed convolutions initialised to bilinear;
    the last upsampling is a fixed bilinear transposed convolution. With ``output_stride``
    16/8 the backbone is dilated (DeepLab-style) and an upsampling between equal strides
    is skipped.

    Args:
        in_channels: image channels. num_classes: ``K``; output logits [N, K, H, W].
        width: backbone base width (16; 64 with ``full``).
        full: the paper's network (VGG16 without batch-norm, 4096-wide fc layers).
        variant: ``"32s"``, ``"16s"``, ``"8s"`` or ``"4s"`` (default: the class's own —
            ``FCN32s``, ``FCN16s``, ``FCN8s`` differ only by it; ``"8s"`` for ``FCN``);
            ``"4s"`` adds a pool2 skip after pool3's (not in the paper).
        backbone: a VGG or ResNet name of :mod:`course_lib.models.backbones` (vgg_tiny;
            vgg16 with ``full``). fc_channels: width of fc6/fc7 (``16 * width``; 4096
            full). fc_kernel: fc6 kernel (3; 7 full).
        dropout: after fc6 and fc7 (0.1; 0.5 with ``full``).
        output_stride: 32 (the paper), 16 or 8 (dilated backbone).
        global_context: add ParseNet's global context on fc7 (default: the class's own,
            ``True`` for :class:`ParseNet`).
    """

    default_variant = "8s"
    default_global_context = False

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        variant: str | None = None,
        backbone: str | None = None,
        fc_channels: int | None = None,
        fc_kernel: int | None = None,
        dropout: float | None = None,
        output_stride: int = 32,
        global_context: bool | None = None,
    ) -> None:
        super().__init__()
        variant = self.default_variant if variant is None else variant
        if global_context is None:
            global_context = self.default_global_context
        if variant not in VARIANTS:
            raise ValueError(f"FCN variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        check_channels("FCN", in_channels, num_classes)
        sizes = SIZES.resolve(type(self).__name__, full, width=width, backbone=backbone,
                              fc_channels=fc_channels, fc_kernel=fc_kernel, dropout=dropout)
        fc_channels = 16 * sizes.width if sizes.fc_channels is None else sizes.fc_channels
        dropout = sizes.dropout
        self.variant = variant
        self.num_classes = num_classes
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, output_stride,
                                       full=full)
        ch, strides = self.backbone.channels, self.backbone.strides
        norm = not full
        d = self.backbone.dilation  # dilate fc6 so it keeps the stride-32 field of view

        def fc_layer(cin: int, k: int, dil: int) -> list[nn.Module]:
            conv = nn.Conv2d(cin, fc_channels, k, padding=dil * (k - 1) // 2, dilation=dil,
                             bias=not norm)
            bn = [nn.BatchNorm2d(fc_channels)] if norm else []
            return [conv, *bn, nn.ReLU(inplace=True), nn.Dropout2d(dropout)]

        # fc6 (7x7 conv) and fc7 (1x1 conv): the classifier "convolutionalised"
        self.fc = nn.Sequential(*fc_layer(ch["c5"], sizes.fc_kernel, d),
                                *fc_layer(fc_channels, 1, 1))
        self.context = GlobalContext(fc_channels) if global_context else None
        score_in = 2 * fc_channels if global_context else fc_channels
        self.score_fr = nn.Conv2d(score_in, num_classes, 1)
        # skips: 1x1 score layers on pool4 / pool3, zero-initialised (paper Sec. 4.2)
        self.score_pool = nn.ModuleDict()
        self.upscore = nn.ModuleDict()
        coarse = "c5"
        for key in VARIANTS[variant]:
            score = nn.Conv2d(ch[key], num_classes, 1)
            nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)
            self.score_pool[key] = score
            factor = strides[coarse] // strides[key]
            self.upscore[key] = (bilinear_conv_transpose(num_classes, factor) if factor > 1
                                 else nn.Identity())
            coarse = key
        self.final_stride = strides[coarse]
        self.upscore_final = FixedBilinearUpsample(self.final_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)  # pool3 = c3, pool4 = c4, pool5 = c5
        h = self.fc(feats["c5"])  # fc6, fc7
        if self.context is not None:
            h = self.context(h)  # ParseNet: concat global context
        score = self.score_fr(h)  # class scores at stride 32
        for key, score_layer in self.score_pool.items():  # 16s: pool4; 8s: pool4 then pool3
            skip = score_layer(feats[key])  # score_pool4 / score_pool3
            score = crop_to(self.upscore[key](score), skip) + skip  # upsample x2, crop, fuse
        return crop_to(self.upscore_final(score), x)  # fixed bilinear to the input size


_TINY = {"width": 4, "fc_channels": 16}
# output_stride 8 in the tiny test configurations of the stride-32/16 models: the matrix's
# overfit test uses 32-pixel images with 8-pixel-aligned boxes, which a stride-32 (1x1) map
# cannot represent; the dilated backbone keeps the same code path at a 4x4 map.
_FCN_PAPER = "Long, Shelhamer & Darrell, CVPR 2015"


@register_model("fcn32s", family="fcn", paper=_FCN_PAPER, year=2015,
                test_kwargs={**_TINY, "output_stride": 8}, full_params=134_309_708)
class FCN32s(FCN):
    """FCN-32s (Long et al. 2015, Fig. 3 top row): stride-32 scores upsampled x32 at once.

    Arguments as :class:`FCN` (``variant`` defaults to ``"32s"``).
    """

    default_variant = "32s"


@register_model("fcn16s", family="fcn", paper=_FCN_PAPER, year=2015,
                test_kwargs={**_TINY, "output_stride": 8}, full_params=134_318_168)
class FCN16s(FCN):
    """FCN-16s (Fig. 3 middle row): x2-upsampled stride-32 scores + pool4 scores, then x16.

    Arguments as :class:`FCN` (``variant`` defaults to ``"16s"``).
    """

    default_variant = "16s"


@register_model("fcn8s", family="fcn", paper=_FCN_PAPER, year=2015, test_kwargs=_TINY,
                full_params=134_323_556)
class FCN8s(FCN):
    """FCN-8s (Fig. 3 bottom row): + pool4 scores, x2, + pool3 scores, then x8.

    Arguments as :class:`FCN` (``variant`` defaults to ``"8s"``).
    """

    default_variant = "8s"


@register_model("parsenet", family="fcn", paper="Liu, Rabinovich & Berg, ICLR-W 2016",
                year=2016, test_kwargs={**_TINY, "output_stride": 8}, full_params=134_367_052)
class ParseNet(FCN):
    """ParseNet (Liu et al. 2016, Fig. 1): FCN-32s whose fc7 features are concatenated with
    their L2-normalised global average, tiled over the image (:class:`GlobalContext`).

    Arguments as :class:`FCN` (``variant`` defaults to ``"32s"``, ``global_context`` to
    ``True``). Deviation: the paper put the context on a DeepLab-style network and also
    fused pool6; here it sits on the same FCN-32s as above, so the two differ only by the
    context.
    """

    default_variant = "32s"
    default_global_context = True


def transfer_weights(dst: nn.Module, src: nn.Module) -> list[str]:
    """Copy every parameter/buffer of ``src`` whose name and shape ``dst`` shares; return the rest.

    The paper's staged training (Sec. 4.2): FCN-16s starts from FCN-32s's weights, FCN-8s
    from FCN-16s's; the new skip layers (returned here) keep their zero initialisation.
    """
    theirs = src.state_dict()
    ours = dst.state_dict()
    shared = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
    dst.load_state_dict(shared, strict=False)
    return sorted(k for k in ours if k not in shared)


__all__ = [
    "bilinear_kernel",
    "bilinear_conv_transpose",
    "FixedBilinearUpsample",
    "L2NormScale",
    "GlobalContext",
    "FCN",
    "FCN32s",
    "FCN16s",
    "FCN8s",
    "ParseNet",
    "transfer_weights",
]
