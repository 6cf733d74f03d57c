"""Shared blocks (models/blocks.py): conv-norm-ReLU, double conv, separable conv, resize."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def test_blocks_shapes_norms_and_errors() -> None:
    from course_lib.models.blocks import (
        ConvBNReLU,
        DepthwiseSeparableConv,
        DoubleConv,
        make_norm,
        resize_to,
    )

    x = torch.rand(2, 8, 45, 45)
    assert ConvBNReLU(8, 16, stride=2)(x).shape == (2, 16, 23, 23)  # stride 2 rounds up
    assert ConvBNReLU(8, 16, dilation=3)(x).shape == (2, 16, 45, 45)  # "same" padding
    assert ConvBNReLU(8, 4, norm=None)[0].bias is not None
    assert ConvBNReLU(8, 4)[0].bias is None  # the norm's shift replaces the bias
    assert isinstance(ConvBNReLU(8, 6, norm="gn")[1], nn.GroupNorm)
    assert make_norm("gn", 6).num_groups == 2 and isinstance(make_norm(None, 4), nn.Identity)
    assert DoubleConv(8, 16, mid_ch=4)(x).shape == (2, 16, 45, 45)
    sep, full = DepthwiseSeparableConv(8, 16), ConvBNReLU(8, 16)
    assert sep(x).shape == full(x).shape
    count = sum(p.numel() for p in sep.parameters()), sum(p.numel() for p in full.parameters())
    assert count[0] < count[1] / 2
    with pytest.raises(ValueError, match="valid norms"):
        ConvBNReLU(8, 8, norm="ln")
    with pytest.raises(ValueError, match="in_ch=0"):
        ConvBNReLU(0, 8)

    assert resize_to(x, x) is x  # no-op when the size matches
    assert resize_to(x, (10, 12)).shape == (2, 8, 10, 12)
    assert resize_to(x, torch.zeros(1, 1, 7, 9)).shape == (2, 8, 7, 9)
    assert resize_to(torch.rand(1, 2, 4, 4, 4), (8, 8, 8)).shape == (1, 2, 8, 8, 8)  # trilinear
    assert torch.equal(resize_to(torch.ones(1, 1, 3, 3), (6, 6)), torch.ones(1, 1, 6, 6))
    with pytest.raises(ValueError, match="dims"):
        resize_to(x, (10, 10, 10))
