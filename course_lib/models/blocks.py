"""Building blocks shared by every model family of the course.

Almost every segmentation network in the survey is made of the same few pieces: a
convolution followed by a normalisation and a ReLU, two of those in a row (U-Net's
"double conv"), the cheap depthwise-separable variant (MobileNet, DeepLab v3+), and a
resize of a feature map to the size of another one before adding or concatenating them.
DeepLab's atrous spatial pyramid pooling (ASPP) is here too: DeepLab v3/v3+ and
Panoptic-DeepLab share it.
They live here once so that a student who has read one model can read them all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("bn", "gn", None)


def group_norm(channels: int, max_groups: int = 32, min_per_group: int = 2) -> nn.Module:
    """The course's one GroupNorm rule: as many groups as possible (≤ ``max_groups``, the
    paper's 32) such that each group holds at least ``min_per_group`` channels; identity for
    a single channel. Works for 2D and 3D maps alike.

    With at least two channels per group, the statistics are never taken over one value, even
    for a 1x1 map of a single image (a pooled branch with batch 1).
    """
    groups = next((g for g in (32, 16, 8, 4, 2, 1)
                   if g <= max_groups and channels % g == 0 and channels // g >= min_per_group),
                  None)
    return nn.Identity() if groups is None else nn.GroupNorm(groups, channels)


def make_norm(norm: str | None, channels: int, spatial_dims: int = 2) -> nn.Module:
    """A normalisation layer by name: ``"bn"`` BatchNorm, ``"gn"`` GroupNorm, ``None`` identity.

    ``"gn"`` is :func:`group_norm` with the 3D U-Net reference's setting (wolny/pytorch-3dunet:
    at most 8 groups, down to one channel per group). It does not depend on the batch size,
    so it works with the batch of 1 that volumes force. At the course's tiny widths (4-16
    channels) this is close to instance norm, and it matters: with two channels per group
    (the rule's default) the 3D U-Net of notebook 08 stops finding its < 1 % foreground with
    the Dice loss in ``standard`` (foreground Dice 0.0 for seeds 0, 1, 2; 0.54, 0.24, 0.29
    with this setting, measured when the two rules became one function).
    """
    if norm == "bn":
        return nn.BatchNorm3d(channels) if spatial_dims == 3 else nn.BatchNorm2d(channels)
    if norm == "gn":
        return group_norm(channels, max_groups=8, min_per_group=1)
    if norm is None:
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; valid norms are: 'bn', 'gn', None")


class ConvBNReLU(nn.Sequential):
    """Convolution → normalisation → ReLU, with "same" padding (``dilation * (k - 1) / 2``).

    The convolution has no bias when a normalisation follows (the norm's shift replaces it).
    With ``stride=2`` the output is half the input size (rounded up).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm: str | None = "bn",
        activation: bool = True,
    ) -> None:
        if in_ch < 1 or out_ch < 1:
            raise ValueError(f"channel counts must be >= 1, got in_ch={in_ch}, out_ch={out_ch}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; valid norms are: 'bn', 'gn', None")
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, bias=norm is None),
            make_norm(norm, out_ch),
            nn.ReLU(inplace=True) if activation else nn.Identity(),
        )


class DoubleConv(nn.Sequential):
    """Two 3x3 ConvBNReLU in a row (U-Net's basic unit; the paper used no padding, we pad 1)."""

    def __init__(
        self, in_ch: int, out_ch: int, mid_ch: int | None = None, norm: str | None = "bn"
    ) -> None:
        mid_ch = out_ch if mid_ch is None else mid_ch
        super().__init__(
            ConvBNReLU(in_ch, mid_ch, norm=norm),
            ConvBNReLU(mid_ch, out_ch, norm=norm),
        )


class DepthwiseSeparableConv(nn.Sequential):
    """Depthwise k x k convolution (one filter per channel) then pointwise 1x1 (MobileNet).

    Costs about ``1/out_ch + 1/k²`` of a full convolution's multiply-adds. Both convolutions
    are followed by normalisation and ReLU, as in DeepLab v3+'s separable convolutions.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        norm: str | None = "bn",
    ) -> None:
        super().__init__(
            ConvBNReLU(in_ch, in_ch, kernel_size, stride=stride, dilation=dilation,
                       groups=in_ch, norm=norm),
            ConvBNReLU(in_ch, out_ch, kernel_size=1, norm=norm),
        )


def resize_to(
    x: torch.Tensor, ref_or_size: torch.Tensor | Sequence[int], mode: str = "bilinear"
) -> torch.Tensor:
    """Resize ``x`` [N, C, *spatial] to the spatial size of ``ref_or_size`` (a tensor or a size).

    A no-op when the size already matches. ``mode="bilinear"`` becomes trilinear for 3D input;
    ``align_corners=False`` everywhere (torchvision's convention).
    """
    if isinstance(ref_or_size, torch.Tensor):
        size = tuple(ref_or_size.shape[2:])
    else:
        size = tuple(int(s) for s in ref_or_size)
    if len(size) != x.dim() - 2:
        raise ValueError(
            f"resize_to: target size {size} has {len(size)} dims but x has shape {tuple(x.shape)}"
        )
    if tuple(x.shape[2:]) == size:
        return x
    if mode == "bilinear" and x.dim() == 5:
        mode = "trilinear"
    align = False if mode in ("bilinear", "trilinear", "bicubic") else None
    return F.interpolate(x, size=size, mode=mode, align_corners=align)


def check_channels(name: str, in_channels: int, num_classes: int) -> None:
    """Constructor check shared by every model: at least one input channel and one class."""
    if in_channels < 1 or num_classes < 1:
        raise ValueError(
            f"{name}: in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}"
        )


def check_input(name: str, x: torch.Tensor, in_channels: int, spatial_dims: int = 2) -> None:
    """Forward check: ``x`` is [N, in_channels, H, W] (or [N, C, D, H, W] for 3D models)."""
    if x.dim() != spatial_dims + 2 or x.shape[1] != in_channels:
        axes = "H, W" if spatial_dims == 2 else "D, H, W"
        raise ValueError(f"{name}: expected input [N, {in_channels}, {axes}], got {tuple(x.shape)}")


# Atrous spatial pyramid pooling (DeepLab v2/v3): shared by DeepLab and Panoptic-DeepLab
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


__all__ = [
    "NORMS",
    "group_norm",
    "make_norm",
    "ConvBNReLU",
    "DoubleConv",
    "DepthwiseSeparableConv",
    "resize_to",
    "AtrousConv2d",
    "atrous_conv_bn_relu",
    "ASPPPooling",
    "ASPP",
]
