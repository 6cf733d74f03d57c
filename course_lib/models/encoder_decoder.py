"""General encoder-decoders: DeconvNet, SegNet, LinkNet and HRNet (survey: 编码器-解码器模型).

An encoder shrinks the image into a small, semantic map; a decoder grows it back. The four
networks here differ in *what the decoder keeps from the encoder* — the lesson of the
notebook that uses them (:func:`decoder_memory_bytes` measures it):

- **DeconvNet** (Noh, Hong & Han, ICCV 2015, Fig. 2): a VGG16 encoder whose max-pools
  remember *where* each maximum was ("switch variables"); a mirrored decoder of
  *unpooling* (put each value back at its argmax, zeros elsewhere) and *deconvolution*
  (transposed convolution + batch-norm + ReLU) densifies the sparse map again.
- **SegNet** (Badrinarayanan, Kendall & Cipolla, TPAMI 2017, Fig. 2-3): the same idea kept
  lean: the decoder keeps only the pooling *indices* (2 bits per 2x2 window in the paper)
  and follows each unpooling with ordinary 3x3 convolutions; no fully connected layers.
- **LinkNet** (Chaurasia & Culurciello, VCIP 2017, Fig. 1-3): a ResNet-18 encoder; each
  decoder block is 1x1 conv to in/4 → full-convolution (transposed 3x3, stride 2) → 1x1
  conv, and its output is *added* to the encoder feature of the same size (the "link").
- **HRNet** (Sun et al., CVPR 2019; Wang et al., TPAMI 2020, Fig. 2-4): no decoder at all
  — a high-resolution stream is kept from start to end; lower-resolution streams are
  added one per stage, and *exchange units* repeatedly fuse every stream into every other
  (upsample by 1x1 conv + bilinear, downsample by strided 3x3 convs). The segmentation
  head (HRNetV2) upsamples all streams to the highest resolution, concatenates them and
  applies 1x1 → 1x1 convolutions.

Deviations from the papers (stated once, here):

- small default widths (``width=16``; VGG/ResNet stages ``width x (1, 2, 4, 8, 8)``) trained
  from scratch; ``full=True`` builds the paper sizes (width 64, VGG16 / ResNet-18 depths,
  DeconvNet's 4096-wide fc6/fc7; HRNetV1-W18-small's stem 64 and streams 16/32/64/128);
- "same" padding and ``ceil_mode`` pooling everywhere, so every input size works: unpooling
  is told the pre-pool size (``MaxUnpool2d(output_size=...)``), LinkNet's transposed
  convolutions double exactly and the result is cropped to the skip's size;
- DeconvNet's fc6 is a "same" k x k convolution (7x7 with ``full``; 3x3 small) and its
  deconv-fc6 a "same" transposed one, instead of the paper's valid 7x7 on a 7x7 pool5 map;
- LinkNet: ResNet's layer1 keeps the resolution (the paper's first encoder block halves
  it), so the final block has one x2 full-convolution (not two) and ends in a 1x1 conv.
  Its decoder widths (in/4 inside each block, 32 in the final block) are floored at
  ``min_decoder_channels=16``: at the course's small widths the paper's ratios leave 2-4
  channels between the encoder and the 12 classes, and such a LinkNet barely learns (width
  8 on the shapes world: mIoU 0.10 after 8 epochs; 0.32 after 4 with the floor); the paper's
  sizes are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..runtime import evaluating
from . import register_model
from .backbones import VGG_DEPTHS, BasicBlock, Bottleneck, build_backbone
from .blocks import ConvBNReLU, check_channels, check_input, resize_to
from .contract import SizeTable
from .heads import crop_to


@dataclass(frozen=True)
class VGGEncoderSizes:
    """SegNet's and DeconvNet's sizes (DeconvNet alone has the fc layers)."""

    width: int  # stage widths width x (1, 2, 4, 8, 8)
    depths: tuple[int, ...]  # convolutions per encoder stage (VGG16: 2, 2, 3, 3, 3)
    fc_channels: int | None = None  # DeconvNet's fc6/fc7; None: 16 x width
    fc_kernel: int = 3  # DeconvNet's fc6 / deconv-fc6 kernel


@dataclass(frozen=True)
class LinkNetSizes:
    backbone: str
    width: int


@dataclass(frozen=True)
class HRNetSizes:
    width: int  # the high-resolution stream; the others double it (the "W" of HRNet-W18)
    stem_channels: int
    stage1_channels: int  # stage 1's bottleneck width (x4 at its output)


SEGNET_SIZES = SizeTable(small=VGGEncoderSizes(16, VGG_DEPTHS["vgg16"]),
                         paper=VGGEncoderSizes(64, VGG_DEPTHS["vgg16"]))
DECONVNET_SIZES = SizeTable(small=VGGEncoderSizes(16, VGG_DEPTHS["vgg16"], None, 3),
                            paper=VGGEncoderSizes(64, VGG_DEPTHS["vgg16"], 4096, 7))
LINKNET_SIZES = SizeTable(small=LinkNetSizes("resnet18", 16), paper=LinkNetSizes("resnet18", 64))
# HRNetV1-W18-small (the official seg_hrnet_w18_small_v1: streams 16/32/64/128)
HRNET_SIZES = SizeTable(small=HRNetSizes(8, 16, 8), paper=HRNetSizes(16, 64, 32))


# --------------------------------------------------------------------------------------------
# Pooling that remembers where the maxima were, and its mirror (SegNet Fig. 3)
# --------------------------------------------------------------------------------------------
class IndexPool(nn.Module):
    """2x2 max-pool (stride 2, rounding up) returning ``(pooled, indices, pre-pool size)``.

    ``indices`` are flat positions in the pre-pool ``H x W`` map (PyTorch's convention), the
    "pooling indices" / "switches" that the decoder uses to unpool.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True, return_indices=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
        pooled, indices = self.pool(x)
        return pooled, indices, x.shape[-2:]


class IndexUnpool(nn.Module):
    """Max-unpooling: each value goes back to its argmax position, zeros elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.unpool = nn.MaxUnpool2d(2, stride=2)

    def forward(self, x: torch.Tensor, indices: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return self.unpool(x, indices, output_size=list(size))


def _vgg_stage(in_ch: int, out_ch: int, depth: int, norm: str | None) -> nn.Sequential:
    return nn.Sequential(*[ConvBNReLU(in_ch if i == 0 else out_ch, out_ch, norm=norm)
                           for i in range(depth)])


class DeconvBNReLU(nn.Sequential):
    """DeconvNet's "deconvolution" layer: 3x3 transposed convolution (stride 1) + BN + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.ConvTranspose2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


def _stage_widths(width: int, n: int) -> list[int]:
    if n < 1 or n > 5:
        raise ValueError(f"need 1 to 5 encoder stages, got {n}")
    return [width * m for m in (1, 2, 4, 8, 8)[:n]]


def _check_depths(name: str, depths: Sequence[int]) -> tuple[int, ...]:
    depths = tuple(int(d) for d in depths)
    if not 1 <= len(depths) <= 5 or min(depths) < 1:
        raise ValueError(f"{name}: depths must be 1 to 5 stage depths >= 1, got {depths!r}")
    return depths


def _vgg_encoder(in_channels: int, widths: Sequence[int], depths: Sequence[int]) -> nn.ModuleList:
    """The VGG-style encoder of SegNet and DeconvNet: stage k has ``depths[k]`` 3x3 convs."""
    ins = [in_channels, *widths[:-1]]
    return nn.ModuleList(_vgg_stage(i, ch, d, "bn")
                         for i, ch, d in zip(ins, widths, depths, strict=True))


def _mirrored_decoder(widths: Sequence[int], depths: Sequence[int],
                      block: type[nn.Module]) -> nn.ModuleList:
    """Decoder stage k mirrors encoder stage k with ``block`` layers (3x3 convolutions in
    SegNet, deconvolutions in DeconvNet): ch_k → ch_{k-1}; the first stage ends at widths[0]."""
    outs = [widths[0], *widths[:-1]]
    return nn.ModuleList(
        nn.Sequential(*[block(ch, ch) for _ in range(d - 1)], block(ch, out))
        for d, ch, out in zip(depths, widths, outs, strict=True)
    )


# --------------------------------------------------------------------------------------------
# SegNet (Badrinarayanan et al. 2017, Fig. 2)
# --------------------------------------------------------------------------------------------
def _encode_with_indices(
    stages: nn.ModuleList, pool: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Size]]]:
    """SegNet / DeconvNet encoder: each stage's convs, then a max-pool that keeps its indices."""
    kept = []
    for stage in stages:
        x, indices, size = pool(stage(x))
        kept.append((indices, size))
    return x, kept


@register_model("segnet", family="encoder-decoder",
                paper="Badrinarayanan, Kendall & Cipolla, TPAMI 2017", year=2017,
                test_kwargs={"width": 4, "depths": (1, 1, 1)}, full_params=29_472_844)
class SegNet(nn.Module):
    """SegNet: VGG16 encoder (13 convs) + mirrored decoder that unpools with the encoder's
    pooling indices, then convolves (Fig. 2).

    ::

        x ─ [conv x d1 ─ pool]─ ... ─[conv x d5 ─ pool] ─ bottom
                        │ indices          │ indices
        out ◄ 1x1 ◄ [conv x d1 ◄ unpool] ◄ ... ◄ [conv x d5 ◄ unpool]

    Args:
        in_channels, num_classes: image channels, classes K (logits [N, K, H, W]).
        width: base width (stages ``width x (1, 2, 4, 8, 8)``; 16, 64 with ``full``).
        full: the paper's sizes (width 64, VGG16 depths).
        depths: convolutions per encoder stage (VGG16: (2, 2, 3, 3, 3)); the decoder mirrors it.

    Deviation: the last decoder convolution is followed by a 1x1 classifier (the paper's
    last decoder conv outputs K channels directly, then softmax).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        depths: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        check_channels("SegNet", in_channels, num_classes)
        sizes = SEGNET_SIZES.resolve("SegNet", full, width=width, depths=depths)
        depths = _check_depths("SegNet", sizes.depths)
        widths = _stage_widths(sizes.width, len(depths))
        self.in_channels = in_channels
        self.encoder = _vgg_encoder(in_channels, widths, depths)
        self.pool, self.unpool = IndexPool(), IndexUnpool()
        self.decoder = _mirrored_decoder(widths, depths, ConvBNReLU)
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Size]]]:
        """Encoder: the bottom map and what the decoder keeps — (indices, size) per stage."""
        check_input("SegNet", x, self.in_channels)
        return _encode_with_indices(self.encoder, self.pool, x)

    def decode(self, x: torch.Tensor, kept: list[tuple[torch.Tensor, torch.Size]]) -> torch.Tensor:
        for stage, (indices, size) in zip(reversed(self.decoder), reversed(kept), strict=True):
            x = stage(self.unpool(x, indices, size))  # unpool at the argmax, then densify
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bottom, kept = self.encode(x)
        return self.decode(bottom, kept)


# --------------------------------------------------------------------------------------------
# DeconvNet (Noh et al. 2015, Fig. 2)
# --------------------------------------------------------------------------------------------
@register_model("deconvnet", family="encoder-decoder", paper="Noh, Hong & Han, ICCV 2015",
                year=2015, test_kwargs={"width": 4, "depths": (1, 1, 1), "fc_channels": 16},
                full_params=251_788_364)
class DeconvNet(nn.Module):
    """DeconvNet: VGG16 convolution network + fc6/fc7, mirrored by a deconvolution network.

    ::

        x ─ [conv x d ─ pool]x5 ─ fc6 (k x k) ─ fc7 (1x1) ─ deconv-fc6 (k x k)
                     │ switches                                   │
        out ◄ 1x1 ◄ [deconv x d ◄ unpool]x5 ◄─────────────────────┘

    Every convolution and deconvolution is followed by batch-norm and ReLU (the paper adds
    BN to every layer to make the deep decoder trainable).

    Args:
        in_channels, num_classes, width, full, depths: as :class:`SegNet` (paper: 64,
            (2, 2, 3, 3, 3)).
        fc_channels: width of fc6/fc7 (4096 in the paper; ``16 * width`` by default).
        fc_kernel: fc6 / deconv-fc6 kernel (7 in the paper; 3 by default).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        depths: Sequence[int] | None = None,
        fc_channels: int | None = None,
        fc_kernel: int | None = None,
    ) -> None:
        super().__init__()
        check_channels("DeconvNet", in_channels, num_classes)
        sizes = DECONVNET_SIZES.resolve("DeconvNet", full, width=width, depths=depths,
                                        fc_channels=fc_channels, fc_kernel=fc_kernel)
        depths = _check_depths("DeconvNet", sizes.depths)
        fc_channels = 16 * sizes.width if sizes.fc_channels is None else sizes.fc_channels
        k = sizes.fc_kernel
        widths = _stage_widths(sizes.width, len(depths))
        self.in_channels = in_channels
        self.encoder = _vgg_encoder(in_channels, widths, depths)
        self.pool, self.unpool = IndexPool(), IndexUnpool()
        self.fc = nn.Sequential(  # fc6, fc7 (convolutionalised) and deconv-fc6
            ConvBNReLU(widths[-1], fc_channels, kernel_size=k),
            ConvBNReLU(fc_channels, fc_channels, kernel_size=1),
            DeconvBNReLU(fc_channels, widths[-1], kernel_size=k),
        )
        self.decoder = _mirrored_decoder(widths, depths, DeconvBNReLU)
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Size]]]:
        """Convolution network: the fc7 map and the pooling switches of every stage."""
        check_input("DeconvNet", x, self.in_channels)
        x, kept = _encode_with_indices(self.encoder, self.pool, x)
        return self.fc(x), kept

    def decode(self, x: torch.Tensor, kept: list[tuple[torch.Tensor, torch.Size]]) -> torch.Tensor:
        for stage, (indices, size) in zip(reversed(self.decoder), reversed(kept), strict=True):
            x = stage(self.unpool(x, indices, size))  # unpooling, then deconvolution
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bottom, kept = self.encode(x)
        return self.decode(bottom, kept)


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


@register_model("linknet", family="encoder-decoder",
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
        backbone: a ResNet name of :mod:`course_lib.models.backbones` (resnet18, the paper's).
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
        if not sizes.backbone.startswith("resnet"):
            raise ValueError(f"LinkNet needs a ResNet backbone, got {sizes.backbone!r}")
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


# --------------------------------------------------------------------------------------------
# HRNet (Sun et al. 2019; Wang et al. 2020): parallel streams and exchange units
# --------------------------------------------------------------------------------------------
class ExchangeUnit(nn.Module):
    """Multi-resolution fusion (Wang et al. 2020, Fig. 3): output stream i is the sum over
    all input streams j of

    - j == i: the stream itself;
    - j > i (lower resolution): 1x1 conv + BN to ``C_i``, then bilinear upsampling;
    - j < i (higher resolution): ``i - j`` strided 3x3 convs + BN (ReLU between them);

    followed by a ReLU.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        n = len(channels)
        self.paths = nn.ModuleList()
        for i in range(n):
            row = nn.ModuleList()
            for j in range(n):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:
                    row.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False),
                                             nn.BatchNorm2d(channels[i])))
                else:
                    steps: list[nn.Module] = []
                    for s in range(i - j):
                        last = s == i - j - 1
                        out = channels[i] if last else channels[j]
                        steps += [nn.Conv2d(channels[j], out, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(out)]
                        if not last:
                            steps.append(nn.ReLU(inplace=True))
                    row.append(nn.Sequential(*steps))
            self.paths.append(row)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for i, row in enumerate(self.paths):
            total = None
            for j, (path, x) in enumerate(zip(row, xs, strict=True)):
                y = path(x)
                if j > i:
                    y = resize_to(y, xs[i])  # upsample the lower resolution to stream i
                total = y if total is None else total + y
            outs.append(self.relu(total))
        return outs


class HRModule(nn.Module):
    """One high-resolution module: ``blocks`` basic residual blocks on every stream, then an
    exchange unit (the repeated multi-scale fusion)."""

    def __init__(self, channels: Sequence[int], blocks: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, c) for _ in range(blocks)]) for c in channels
        )
        self.fuse = ExchangeUnit(channels) if len(channels) > 1 else None

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        return xs if self.fuse is None else self.fuse(xs)


class Transition(nn.Module):
    """Between stages: adapt existing streams' channels (3x3 conv) and start a new stream at
    half the resolution from the lowest one (strided 3x3 conv)."""

    def __init__(self, prev: Sequence[int], channels: Sequence[int]) -> None:
        super().__init__()
        self.adapt = nn.ModuleList(  # zip stops at the existing streams
            ConvBNReLU(p, c) if p != c else nn.Identity()
            for p, c in zip(prev, channels, strict=False)
        )
        self.new = ConvBNReLU(prev[-1], channels[-1], stride=2)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [m(x) for m, x in zip(self.adapt, xs, strict=True)] + [self.new(xs[-1])]


@register_model("hrnet", family="encoder-decoder", paper="Wang et al., TPAMI 2020 (HRNetV2)",
                year=2019, test_kwargs={"width": 4, "stem_channels": 8, "stage1_channels": 4,
                                        "blocks": 1}, full_params=1_538_892)
class HRNet(nn.Module):
    """HRNet for segmentation (HRNetV2 head on HRNetV1-W18-small by default).

    ::

        stem (two 3x3/2 convs, /4) ─ stage 1 (bottlenecks, one stream)
          ─ transition ─ stage 2: 2 streams (/4, /8)           ─ exchange
          ─ transition ─ stage 3: 3 streams (/4, /8, /16)       ─ exchange
          ─ transition ─ stage 4: 4 streams (/4, /8, /16, /32)  ─ exchange
          ─ head: upsample all to /4, concat, 1x1 conv-BN-ReLU, 1x1 conv → K, upsample x4

    Args:
        in_channels, num_classes: image channels, classes K.
        width: the high-resolution stream's channels (8; 16 full); the four streams have
            ``width x (1, 2, 4, 8)``. The official ``seg_hrnet_w18_small_v1`` config uses
            16/32/64/128 (the "W18" of the name is the family, not these widths); 18 is W18's
            proper width.
        full: HRNetV1-W18-small (stem 64, stage 1: one bottleneck of 32, widths
            16/32/64/128, one module per stage, 2 blocks per stream), about 1.5 M parameters.
        widths: the four stream widths, for streams that do not double (replaces ``width``).
        stem_channels: stem width (16; 64 full). stage1_channels: bottleneck width of stage 1
            (8; 32 full, output x4). stage1_blocks: bottlenecks in stage 1 (1). blocks: basic
            blocks per stream in each module (2). modules: modules per stage 2-4 (1, 1, 1).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        widths: Sequence[int] | None = None,
        stem_channels: int | None = None,
        stage1_channels: int | None = None,
        stage1_blocks: int = 1,
        blocks: int = 2,
        modules: Sequence[int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        check_channels("HRNet", in_channels, num_classes)
        if width is not None and widths is not None:
            raise ValueError(f"HRNet: give width or widths, not both (got width={width}, "
                             f"widths={tuple(widths)})")
        sizes = HRNET_SIZES.resolve("HRNet", full, width=width, stem_channels=stem_channels,
                                    stage1_channels=stage1_channels)
        widths = tuple(sizes.width * m for m in (1, 2, 4, 8)) if widths is None else tuple(widths)
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"HRNet needs 4 stream widths >= 1, got {widths!r}")
        if len(modules) != 3 or min(modules) < 1 or blocks < 1 or stage1_blocks < 1:
            raise ValueError(
                f"HRNet: modules must be 3 counts >= 1 and blocks >= 1, got {modules!r}, {blocks}"
            )
        stem, s1 = sizes.stem_channels, sizes.stage1_channels
        self.in_channels = in_channels
        self.stem = nn.Sequential(ConvBNReLU(in_channels, stem, stride=2),
                                  ConvBNReLU(stem, stem, stride=2))
        layers, prev = [], stem
        for _ in range(stage1_blocks):
            layers.append(Bottleneck(prev, s1))
            prev = s1 * Bottleneck.expansion
        self.stage1 = nn.Sequential(*layers)
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        streams = [prev]
        for k, n_modules in zip((2, 3, 4), modules, strict=True):
            channels = list(widths[:k])
            self.transitions.append(Transition(streams, channels))
            self.stages.append(nn.Sequential(*[HRModule(channels, blocks)
                                               for _ in range(n_modules)]))
            streams = channels
        total = sum(widths)
        self.head = nn.Sequential(  # HRNetV2 representation head
            ConvBNReLU(total, total, kernel_size=1),
            nn.Conv2d(total, num_classes, 1),
        )

    def streams(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four parallel streams at the end of stage 4: ``[/4, /8, /16, /32]`` maps (the
        first is the high-resolution stream, kept from the stem to the head)."""
        check_input("HRNet", x, self.in_channels)
        xs = [self.stage1(self.stem(x))]  # one stream at /4
        for transition, stage in zip(self.transitions, self.stages, strict=True):
            xs = stage(transition(xs))  # add a lower-resolution stream, then modules
        return xs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = self.streams(x)
        high = xs[0]
        features = torch.cat([high] + [resize_to(y, high) for y in xs[1:]], dim=1)
        return resize_to(self.head(features), x)  # 1x1 → 1x1, bilinear to the input size


# --------------------------------------------------------------------------------------------
# What the decoder keeps from the encoder
# --------------------------------------------------------------------------------------------
def decoder_memory_bytes(model: nn.Module, x: torch.Tensor) -> dict[str, object]:
    """Bytes the decoder of ``model`` keeps from its encoder for the input ``x``.

    Works for models with an ``encode(x) -> (bottom, kept)`` method (SegNet, DeconvNet,
    LinkNet, U-Net). Returns a dict:

    - ``"kind"``: ``"indices"`` (pooling switches) or ``"features"`` (skip feature maps);
    - ``"kept_bytes"``: bytes of the kept tensors as PyTorch stores them (indices are int64);
    - ``"compact_bytes"``: the paper's storage — 2 bits per pooling window for indices
      (SegNet Sec. 3), the feature bytes themselves for features;
    - ``"feature_bytes"``: what keeping the pre-pool / skip *features* (in ``x``'s dtype)
      would cost instead — the comparison SegNet's paper makes with U-Net/FCN;
    - ``"tensors"``: ``[(shape, bytes), ...]`` per kept tensor.
    """
    if not hasattr(model, "encode"):
        raise ValueError(
            f"{type(model).__name__} has no encode() method; decoder_memory_bytes supports "
            "SegNet, DeconvNet, LinkNet and U-Net"
        )
    with evaluating(model):  # batch-norm in eval mode: a batch of 1 works at any size
        _, kept = model.encode(x)
    tensors = []
    kind = "features"
    kept_bytes = compact = feature_bytes = 0
    item = x.element_size()
    for entry in kept:
        if isinstance(entry, tuple):  # (indices, pre-pool size)
            kind = "indices"
            indices, size = entry
            n, c = indices.shape[:2]
            kept_bytes += indices.numel() * indices.element_size()
            compact += (indices.numel() * 2 + 7) // 8  # 2 bits select one of 4 positions
            feature_bytes += n * c * int(torch.Size(size).numel()) * item
            tensors.append((tuple(indices.shape), indices.numel() * indices.element_size()))
        else:
            nbytes = entry.numel() * entry.element_size()
            kept_bytes += nbytes
            compact += nbytes
            feature_bytes += nbytes
            tensors.append((tuple(entry.shape), nbytes))
    return {"kind": kind, "kept_bytes": kept_bytes, "compact_bytes": compact,
            "feature_bytes": feature_bytes, "tensors": tensors}


__all__ = [
    "IndexPool",
    "IndexUnpool",
    "DeconvBNReLU",
    "SegNet",
    "DeconvNet",
    "LinkNetDecoderBlock",
    "LinkNet",
    "ExchangeUnit",
    "HRModule",
    "Transition",
    "HRNet",
    "decoder_memory_bytes",
]
