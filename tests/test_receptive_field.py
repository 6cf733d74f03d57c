"""Receptive fields (course_lib/receptive_field.py; notebooks 01 and 11): the output-size and
RF formulas against Conv2d and gradients, the dilated RF formula, the gradient-based effective
receptive field of single convolutions and stacks, its statistics, and the explorer widget."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from course_lib import receptive_field as rf_tools
from course_lib.models import build_model
from course_lib.receptive_field import (
    conv_output_size,
    conv_stack,
    dilated_receptive_field,
    effective_receptive_field,
    main_path,
    receptive_field,
    receptive_field_stats,
)


@pytest.mark.parametrize(
    "size,k,s,p,d", [(32, 5, 1, 0, 1), (28, 2, 2, 0, 1), (45, 3, 2, 1, 1), (17, 3, 1, 2, 2),
                     (64, 7, 2, 3, 1), (10, 4, 3, 0, 1)],
)
def test_conv_output_size_matches_conv2d(size: int, k: int, s: int, p: int, d: int) -> None:
    conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    out = conv(torch.zeros(1, 1, size, size)).shape[-1]
    assert conv_output_size(size, k, s, p, d) == out


def test_conv_output_size_too_small_raises() -> None:
    with pytest.raises(ValueError, match="too small"):
        conv_output_size(3, 5)


def test_receptive_field_matches_gradient_support() -> None:
    layers = [(3, 1), (2, 2), (3, 1), (2, 2), (5, 1)]
    net = nn.Sequential(*[nn.Conv2d(1, 1, k, stride=s) for k, s in layers])
    for m in net:
        nn.init.constant_(m.weight, 1.0)
    x = torch.ones(1, 1, 64, 64, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[-2] // 2, y.shape[-1] // 2].backward()
    rows = (x.grad[0, 0] != 0).any(1).sum().item()
    assert receptive_field(layers) == rows == 1 + 2 + 1 + 4 + 2 + 16


def test_the_old_homes_still_export_the_same_functions() -> None:
    """Notebook 01 uses basics.conv_output_size / receptive_field, notebook 11 imports the ERF
    tools from deeplab: both are this module's functions, not copies."""
    from course_lib.models import basics, deeplab

    assert basics.conv_output_size is rf_tools.conv_output_size
    assert basics.receptive_field is rf_tools.receptive_field
    for name in ("dilated_receptive_field", "conv_stack", "effective_receptive_field",
                 "receptive_field_stats"):
        assert getattr(deeplab, name) is getattr(rf_tools, name)


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
    model = build_model("deeplabv3", width=4, channels=8, output_stride=16, aux=False).train()
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


def test_main_path_leaves_out_the_shortcuts() -> None:
    net = nn.Sequential(OrderedDict(conv1=nn.Conv2d(1, 1, 3, stride=2), pool=nn.MaxPool2d(2),
                                    downsample=nn.Conv2d(1, 1, 1, stride=4),
                                    conv2=nn.Conv2d(1, 1, 3, dilation=2)))
    assert main_path(net) == [(3, 2, 1), (2, 2, 1), (3, 1, 2)]
    assert main_path(net, skip=()) == [(3, 2, 1), (2, 2, 1), (1, 4, 1), (3, 1, 2)]
    with pytest.raises(ValueError, match="sequence of name parts"):
        main_path(net, skip="downsample")
    resnet = build_model("deeplabv3", width=4, output_stride=8).backbone
    path = main_path(resnet)
    assert len(path) < len(main_path(resnet, skip=()))  # the 1x1 shortcuts are off the path
    assert max(d for _, _, d in path) == 4  # output stride 8: c5 dilated by 4
