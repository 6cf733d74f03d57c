"""FCN-32s/16s/8s and ParseNet: bilinear transposed convolutions, skips, global context."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.models import build_model, get_spec, list_models
from course_lib.models.fcn import (
    FCN,
    FixedBilinearUpsample,
    GlobalContext,
    bilinear_conv_transpose,
    bilinear_kernel,
    transfer_weights,
)


@pytest.mark.parametrize("factor", [2, 3, 4, 8, 32])
def test_bilinear_conv_transpose_interior_equals_interpolate(factor: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    learnable = bilinear_conv_transpose(3, factor)(x)
    fixed = FixedBilinearUpsample(factor)(x)
    assert learnable.shape == fixed.shape == ref.shape
    m = factor  # the outermost input pixel's half-kernel is where zero padding differs
    inner = (..., slice(m, -m), slice(m, -m))
    torch.testing.assert_close(learnable[inner], ref[inner], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fixed[inner], ref[inner], atol=1e-5, rtol=1e-5)
    # and the border does differ (zeros outside vs edge repeat): the test can fail
    assert not torch.allclose(fixed, ref, atol=1e-3)


def test_bilinear_kernel_values() -> None:
    k = bilinear_kernel(2)
    tent = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(k, torch.outer(tent, tent))
    with pytest.raises(ValueError, match="factor"):
        bilinear_kernel(0)


def test_fcn_models_registered() -> None:
    assert {"fcn32s", "fcn16s", "fcn8s", "parsenet"} <= set(list_models("fcn"))
    assert "Long" in get_spec("fcn8s").paper


@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s", "parsenet"])
@pytest.mark.parametrize("size", [(64, 96), (45, 71)])
def test_output_shape_any_size(name: str, size: tuple[int, int]) -> None:
    model = build_model(name, num_classes=5, width=4, fc_channels=16).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, *size)).shape == (2, 5, *size)


def test_zero_initialised_skips_still_learn() -> None:
    """Skip scores start at zero (FCN-8s starts as a smooth upsampling of stride-32 scores)
    but receive gradient, so the skips learn."""
    torch.manual_seed(0)
    fcn8 = FCN(variant="8s", num_classes=4, width=4, fc_channels=16)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        feats = fcn8.backbone(x)
        for key, layer in fcn8.score_pool.items():
            assert layer(feats[key]).abs().max() == 0, key
    fcn8(x).logsumexp(1).mean().backward()
    for key, layer in fcn8.score_pool.items():
        assert layer.weight.grad.abs().sum() > 0, key


def test_skips_follow_the_papers_figure() -> None:
    fcn8 = FCN(variant="8s", width=4, fc_channels=16)
    assert list(fcn8.score_pool) == ["c4", "c3"] and fcn8.final_stride == 8
    assert FCN(variant="16s", width=4).final_stride == 16
    assert FCN(variant="32s", width=4).final_stride == 32
    assert FCN(variant="32s", width=4, output_stride=8).final_stride == 8
    fcn4 = FCN(variant="4s", width=4, fc_channels=16)
    assert list(fcn4.score_pool) == ["c4", "c3", "c2"] and fcn4.final_stride == 4
    with pytest.raises(ValueError, match="variant"):
        FCN(variant="2s")


def test_fcn4s_starts_as_the_fcn8s_it_is_built_from() -> None:
    """The pool2 skip is zero-initialised and its x2 upsampling bilinear: FCN-4s built from
    FCN-8s's weights labels (nearly) every pixel as FCN-8s does (only the interpolation
    differs), and the new skip learns."""
    torch.manual_seed(0)
    fcn8 = FCN(variant="8s", num_classes=4, width=4, fc_channels=16).eval()
    fcn4 = FCN(variant="4s", num_classes=4, width=4, fc_channels=16).eval()
    new = transfer_weights(fcn4, fcn8)
    assert new == ["score_pool.c2.bias", "score_pool.c2.weight", "upscore.c2.weight"]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out8, out4 = fcn8(x), fcn4(x)
    assert out4.shape == out8.shape == (2, 4, 64, 64)
    assert (out4.argmax(1) == out8.argmax(1)).float().mean() > 0.9
    fcn4.train()(x).logsumexp(1).mean().backward()
    assert fcn4.score_pool["c2"].weight.grad.abs().sum() > 0


def test_full_fcn8s_has_vgg16_layout() -> None:
    with torch.device("meta"):  # count without allocating 134M weights
        model = FCN(variant="8s", num_classes=21, full=True)
    fc6 = model.fc[0]
    assert fc6.kernel_size == (7, 7) and fc6.out_channels == 4096
    n = sum(p.numel() for p in model.parameters())
    # VGG16 features 14,714,688 + fc6 102,764,544 + fc7 16,781,312 + scores (4096+512+256+3)*21
    # + two learnable x2 upsamplings 2 * 21*21*4*4 (the x8 one is a fixed bilinear buffer)
    scores = (4096 + 512 + 256 + 3) * 21
    expected = 14_714_688 + 102_764_544 + 16_781_312 + scores + 2 * 21 * 21 * 16
    assert n == expected


def test_global_context_is_parsenet() -> None:
    torch.manual_seed(0)
    module = GlobalContext(6)
    x = torch.randn(2, 6, 4, 5)
    y = module(x)
    assert y.shape == (2, 12, 4, 5)
    # local half: each position's vector has norm 10 (learnable scale init 10)
    torch.testing.assert_close(y[:, :6].norm(dim=1), torch.full((2, 4, 5), 10.0))
    # context half: the same vector everywhere, = 10 * mean / |mean|
    g = x.mean(dim=(2, 3))
    torch.testing.assert_close(y[:, 6:, 2, 3], 10 * g / g.norm(dim=1, keepdim=True))
    assert torch.equal(y[:, 6:, 0, 0], y[:, 6:, 3, 4])
