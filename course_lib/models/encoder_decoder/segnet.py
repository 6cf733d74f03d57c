"""SegNet and DeconvNet: a VGG encoder whose max-pools remember where each maximum was, and a
mirrored decoder that puts every value back there (SegNet Fig. 2-3; DeconvNet Fig. 2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import register_model
from ..backbones import VGG_DEPTHS
from ..blocks import ConvBNReLU, check_channels, check_input
from ..contract import SizeTable


@dataclass(frozen=True)
class VGGEncoderSizes:
    """SegNet's and DeconvNet's sizes (DeconvNet alone has the fc layers)."""

    width: int  # stage widths width x (1, 2, 4, 8, 8)
    depths: tuple[int, ...]  # convolutions per encoder stage (VGG16: 2, 2, 3, 3, 3)
    fc_channels: int | None = None  # DeconvNet's fc6/fc7; None: 16 x width
    fc_kernel: int = 3  # DeconvNet's fc6 / deconv-fc6 kernel



SEGNET_SIZES = SizeTable(small=VGGEncoderSizes(16, VGG_DEPTHS["vgg16"]),
                         paper=VGGEncoderSizes(64, VGG_DEPTHS["vgg16"]))
SEGNET_AUX_STAGE = 3  # SegNet(aux=True): the decoder stage whose output (1/8 size) is supervised
DECONVNET_SIZES = SizeTable(small=VGGEncoderSizes(16, VGG_DEPTHS["vgg16"], None, 3),
                            paper=VGGEncoderSizes(64, VGG_DEPTHS["vgg16"], 4096, 7))


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


@register_model("segnet", family="encoder_decoder",
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
        aux: deep supervision (not in the paper): a 1x1 classifier on the decoder's map at 1/8
            resolution; ``forward`` then returns ``{"out": logits, "aux": aux_logits}`` (the
            aux logits at 1/8 size) in training and eval mode, and :func:`~course_lib.train.fit`
            adds ``aux_weight`` x their loss (Lee et al., "Deeply-Supervised Nets", AISTATS
            2015; PSPNet's auxiliary loss). Needs at least 4 stages.

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
        aux: bool = False,
    ) -> None:
        super().__init__()
        check_channels("SegNet", in_channels, num_classes)
        sizes = SEGNET_SIZES.resolve("SegNet", full, width=width, depths=depths)
        depths = _check_depths("SegNet", sizes.depths)
        if aux and len(depths) <= SEGNET_AUX_STAGE:
            raise ValueError(f"SegNet: aux supervises the decoder at 1/8 resolution and needs "
                             f"at least {SEGNET_AUX_STAGE + 1} stages, got depths {depths}")
        widths = _stage_widths(sizes.width, len(depths))
        self.in_channels = in_channels
        self.encoder = _vgg_encoder(in_channels, widths, depths)
        self.pool, self.unpool = IndexPool(), IndexUnpool()
        self.decoder = _mirrored_decoder(widths, depths, ConvBNReLU)
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)
        # decoder stage k outputs widths[k - 1] channels (_mirrored_decoder)
        self.aux_head = (nn.Conv2d(widths[SEGNET_AUX_STAGE - 1], num_classes, 1) if aux
                         else None)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Size]]]:
        """Encoder: the bottom map and what the decoder keeps — (indices, size) per stage."""
        check_input("SegNet", x, self.in_channels)
        return _encode_with_indices(self.encoder, self.pool, x)

    def decode(self, x: torch.Tensor, kept: list[tuple[torch.Tensor, torch.Size]]
               ) -> torch.Tensor | dict[str, torch.Tensor]:
        aux = None
        for k in reversed(range(len(self.decoder))):
            indices, size = kept[k]
            x = self.decoder[k](self.unpool(x, indices, size))  # unpool at the argmax, densify
            if k == SEGNET_AUX_STAGE and self.aux_head is not None:  # 1/8 resolution
                aux = self.aux_head(x)
        logits = self.classifier(x)
        return logits if aux is None else {"out": logits, "aux": aux}

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        bottom, kept = self.encode(x)
        return self.decode(bottom, kept)


# --------------------------------------------------------------------------------------------
# DeconvNet (Noh et al. 2015, Fig. 2)
# --------------------------------------------------------------------------------------------
@register_model("deconvnet", family="encoder_decoder", paper="Noh, Hong & Han, ICCV 2015",
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


__all__ = ["IndexPool", "IndexUnpool", "DeconvBNReLU", "SegNet", "DeconvNet"]
