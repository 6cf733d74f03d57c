"""Receptive fields (notebook 11): the dilated RF formula, the gradient-based effective
receptive field of single convolutions and stacks, its statistics, and the explorer widget."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.models.deeplab import (
    DeepLabV3,
    conv_stack,
    dilated_receptive_field,
    effective_receptive_field,
    receptive_field_stats,
)


def _single_conv(rate: int) -> nn.Conv2d:
    conv = nn.Conv2d(1, 1, 3, padding=rate, dilation=rate, bias=False)
    nn.init.constant_(conv.weight, 1.0)
    return conv


def test_formula_matches_hand_computed_cases() -> None:
    assert dilated_receptive_field([(3, 1, 1)]) == 3
    assert dilated_receptive_field([(3, 1, 2)]) == 5
    assert dilated_receptive_field([(3, 1, 1)] * 3) == 7
    assert dilated_receptive_field([(3, 1, r) for r in (1, 2, 4)]) == 15
    assert dilated_receptive_field([(3, 1, r) for r in (1, 2, 4, 8)]) == 31  # 2^(n+1) - 1
    # a stride multiplies what every later layer adds: 1 + 2 + 2*2 + 2*2*2
    assert dilated_receptive_field([(3, 2, 1), (3, 1, 1), (3, 1, 2)]) == 1 + 2 + 4 + 8
    with pytest.raises(ValueError, match="kernel_size, stride, dilation"):
        dilated_receptive_field([(3, 1)])
    with pytest.raises(ValueError, match="kernel_size, stride, dilation"):
        dilated_receptive_field([(3, 1, 0)])


def test_single_3x3_conv_has_a_3x3_support() -> None:
    erf = effective_receptive_field(_single_conv(1), 11, samples=2)
    assert erf.shape == (11, 11)
    support = erf > 0
    assert support.sum() == 9
    assert support[4:7, 4:7].all()
    assert receptive_field_stats(erf)["extent"] == 3
    assert receptive_field_stats(erf)["holes"] == 0.0


def test_rate_two_spans_five_with_holes() -> None:
    erf = effective_receptive_field(_single_conv(2), 11, samples=2)
    support = erf > 0
    expected = torch.zeros(11, 11, dtype=torch.bool)
    expected[3:8:2, 3:8:2] = True  # taps at offsets -2, 0, +2 in each direction
    assert torch.equal(support, expected)
    stats = receptive_field_stats(erf)
    assert stats["extent"] == 5
    assert stats["holes"] == pytest.approx(1 - 9 / 25)


@pytest.mark.parametrize(
    ("rates", "holes"),
    [((1, 1, 1), 0.0), ((2, 2, 2), 1 - 49 / 169), ((1, 2, 3), 0.0), ((1, 2, 4), 0.0)],
)
def test_stack_support_equals_formula_and_gridding(rates: tuple, holes: float) -> None:
    stack = conv_stack(rates, channels=4)
    erf = effective_receptive_field(stack, 41, samples=4)
    stats = receptive_field_stats(erf)
    assert stats["extent"] == dilated_receptive_field([(3, 1, r) for r in rates])
    assert stats["holes"] == pytest.approx(holes, abs=1e-6)


def test_stacks_of_equal_depth_have_equal_parameters() -> None:
    counts = {sum(p.numel() for p in conv_stack(r, channels=6).parameters())
              for r in ((1, 1, 1), (2, 2, 2), (1, 2, 4))}
    assert len(counts) == 1
    assert len(conv_stack((1, 2, 4))[:2]) == 2  # one child per layer


def test_strided_stack_halves_the_output_and_its_rf_matches_the_formula() -> None:
    stack = conv_stack((1, 1, 1), channels=4, strides=(2, 1, 1))
    assert stack(torch.rand(1, 1, 40, 40)).shape[-1] == 20
    erf = effective_receptive_field(stack, 40, samples=2)
    assert receptive_field_stats(erf)["extent"] == dilated_receptive_field(
        [(3, 2, 1), (3, 1, 1), (3, 1, 1)]) == 11


def test_erf_of_a_batchnorm_model_is_local_and_mode_is_restored() -> None:
    torch.manual_seed(0)
    model = DeepLabV3(width=4, channels=8, output_stride=16, aux=False).train()
    x = torch.rand(2, 3, 48, 48)
    erf = effective_receptive_field(model, x)
    assert model.training  # restored
    assert erf.shape == (48, 48) and bool((erf >= 0).all()) and float(erf.sum()) > 0
    # in eval mode image 0's output does not depend on image 1: only image 1's own input moves
    erf0 = effective_receptive_field(model, x[:1])
    erf1 = effective_receptive_field(model, x[1:])
    torch.testing.assert_close(erf, (erf0 + erf1) / 2)


def test_bad_inputs_raise_clear_errors() -> None:
    conv = _single_conv(1)
    with pytest.raises(ValueError, match="outside the output"):
        effective_receptive_field(conv, 9, position=(9, 0))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        effective_receptive_field(conv, torch.rand(1, 9, 9))
    with pytest.raises(ValueError, match="no Conv2d"):
        effective_receptive_field(nn.Sequential(nn.Identity()), 9)
    with pytest.raises(ValueError, match="zero everywhere"):
        receptive_field_stats(torch.zeros(5, 5))
    with pytest.raises(ValueError, match="rates"):
        conv_stack(())


def test_explorer_depth_slider_changes_the_view() -> None:
    pytest.importorskip("ipywidgets")
    from course_lib.widgets import ReceptiveFieldExplorer

    stacks = {"plain": conv_stack((1, 1, 1), channels=4),
              "equal 2": conv_stack((2, 2, 2), channels=4)}
    ex = ReceptiveFieldExplorer(stacks, input_size=21, samples=2, depth=1)
    assert ex.stats()["plain"]["theory"] == 3 and ex.stats()["equal 2"]["theory"] == 5
    first = ex.picture.value
    ex.depth.value = 3
    assert ex.picture.value != first
    stats = ex.stats()
    assert stats["plain"]["extent"] == 7 and stats["equal 2"]["extent"] == 13
    assert stats["equal 2"]["holes"] > 0.5 and stats["plain"]["holes"] == 0.0
    assert "depth 3" in ex.table.value
    assert ex.to_png().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="non-empty"):
        ReceptiveFieldExplorer({})


def test_v3_without_aspp_is_the_same_head_with_one_plain_conv() -> None:
    from course_lib.models.blocks import ConvBNReLU
    from course_lib.models.deeplab import ASPP

    with_aspp = DeepLabV3(width=4, channels=8, aux=False)
    without = DeepLabV3(width=4, channels=8, aux=False, aspp=False)
    assert isinstance(with_aspp.classifier[0], ASPP)
    plain = without.classifier[0]
    assert isinstance(plain, ConvBNReLU) and plain[0].kernel_size == (3, 3)
    assert plain[0].dilation == (1, 1) and plain[0].out_channels == 8
    assert [type(m) for m in list(with_aspp.classifier)[1:]] == [
        type(m) for m in list(without.classifier)[1:]]
    with torch.no_grad():
        assert without.eval()(torch.rand(1, 3, 40, 40))["out"].shape == (1, 12, 40, 40)


@pytest.mark.parametrize("rate", [1, 2, 5, 6, 12])
def test_atrous_conv_shortcut_equals_the_full_dilated_conv(rate: int) -> None:
    """When the rate reaches the map size, AtrousConv2d drops the taps that only see padding:
    the result must be exactly that of the plain dilated convolution (DeepLab v3, Sec. 3.3)."""
    import torch.nn.functional as F

    from course_lib.models.deeplab import AtrousConv2d

    torch.manual_seed(rate)
    for groups in (1, 4):
        conv = AtrousConv2d(4, 8, rate, bias=True, groups=groups)
        for h, w in ((3, 3), (6, 6), (5, 13), (1, 9)):
            x = torch.randn(2, 4, h, w)
            expected = F.conv2d(x, conv.weight, conv.bias, padding=rate, dilation=rate,
                                groups=groups)
            torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)
