"""FPN and PSPNet: the semantic head's stages and configurations, PSPNet's pyramid pooling, its
auxiliary output and its batch-size behaviour (the pyramid itself: tests/test_heads.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.losses import model_loss
from course_lib.models.multiscale import (
    FPN,
    PSPNet,
    PyramidPooling,
    SemanticFPNHead,
    level_contributions,
)


def test_semantic_head_stages_and_stride4_output() -> None:
    head = SemanticFPNHead(16, 8, 5, strides=(4, 8, 16, 32))
    assert [len(b) for b in head.branches] == [1, 1, 2, 3]  # P2: conv only; P5: 3 x (conv, x2)
    assert all(isinstance(stage[1], nn.GroupNorm) for b in head.branches for stage in b)
    pyramid = [torch.randn(2, 16, s, s) for s in (45, 23, 12, 6)]  # strides 4..32 of 180 px
    assert head(pyramid).shape == (2, 5, 45, 45)  # stride 4 of a 180-pixel image
    # dilated backbone (strides 4, 8, 8, 8): every level still ends at stride 4
    head8 = SemanticFPNHead(16, 8, 5, strides=(4, 8, 8, 8))
    assert head8.targets == [[], [0], [0], [0]]
    maps = [torch.randn(1, 16, 12, 12)] + [torch.randn(1, 16, 6, 6) for _ in range(3)]
    assert head8(maps).shape == (1, 5, 12, 12)


def test_fpn_full_config_sizes_and_forward_shapes() -> None:
    with torch.device("meta"):
        full = FPN(num_classes=21, full=True)
    assert full.pyramid.smooth[0].out_channels == 256
    assert full.head.classifier.in_channels == 128
    assert full.head.branches[0][0][1].num_groups == 32  # the paper's GroupNorm(32)
    model = FPN(num_classes=4, width=4, pyramid_channels=16, segmentation_channels=8).eval()
    for size in [(64, 64), (45, 61)]:
        with torch.no_grad():
            assert model(torch.rand(1, 3, *size)).shape == (1, 4, *size)
    dilated = FPN(num_classes=4, width=4, output_stride=8).eval()
    with torch.no_grad():
        assert dilated(torch.rand(1, 3, 40, 40)).shape == (1, 4, 40, 40)


def test_pyramid_pooling_bins_channels_and_batch_one_training() -> None:
    ppm = PyramidPooling(32, bins=(1, 2, 3, 6))
    assert ppm.out_channels == 64  # x concatenated with 4 branches of 32 / 4
    assert [b[0].output_size for b in ppm.branches] == [1, 2, 3, 6]
    ppm.train()
    out = ppm(torch.randn(1, 32, 13, 11))  # batch 1 in training: GroupNorm, not BatchNorm
    assert out.shape == (1, 64, 13, 11)
    assert torch.isfinite(out).all()
    # the 1x1 bin's branch is constant over the image and not dead
    global_branch = out[:, 32:40]
    assert torch.allclose(global_branch, global_branch[..., :1, :1].expand_as(global_branch))
    # the trap the GroupNorm avoids: BatchNorm on the 1x1 bin fails with batch 1 in training
    bn_branch = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(32, 8, 1), nn.BatchNorm2d(8))
    with pytest.raises(ValueError, match="more than 1 value"):
        bn_branch.train()(torch.randn(1, 32, 13, 11))
    with pytest.raises(ValueError, match="bins"):
        PyramidPooling(32, bins=(0, 2))


def test_pspnet_returns_out_and_aux_in_train_and_eval() -> None:
    torch.manual_seed(0)
    model = PSPNet(num_classes=5, width=4, channels=16)
    assert model.backbone.strides["c5"] == 8  # dilated ResNet, output stride 8
    x = torch.rand(2, 3, 45, 37)
    for mode in (True, False):
        model.train(mode)
        with torch.no_grad():
            out = model(x)
        assert set(out) == {"out", "aux"}
        assert out["out"].shape == out["aux"].shape == (2, 5, 45, 37)
    with torch.no_grad():
        assert model.eval()(x[:1])["out"].shape == (1, 5, 45, 37)  # batch 1 in eval
    assert set(PSPNet(num_classes=5, width=4, aux=False).eval()(x)) == {"out"}


def test_pspnet_full_config_and_aux_weight_in_fit_loss() -> None:
    with torch.device("meta"):
        full = PSPNet(num_classes=21, full=True)
    assert full.ppm.branches[0][1].out_channels == 512  # 2048 / 4 per bin
    assert full.classifier[1][0].out_channels == 512  # the 3x3 fuse after the pyramid
    assert full.aux_classifier[0][0].in_channels == 1024  # on c4
    assert full.aux_classifier[0][0].out_channels == 256  # in / 4, torchvision's FCNHead

    torch.manual_seed(0)
    model = PSPNet(num_classes=3, width=4, channels=16).train()
    x, y = torch.rand(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    out = model(x)
    ce = nn.functional.cross_entropy
    expected = ce(out["out"], y) + 0.4 * ce(out["aux"], y)
    torch.testing.assert_close(model_loss(out, y, ce, 0.4), expected)


def test_level_contributions_add_up_to_the_winning_logit() -> None:
    """The shares of P2..P5 plus the classifier's bias are the predicted class's logit."""
    torch.manual_seed(0)
    model = FPN(num_classes=5, width=4, pyramid_channels=8, segmentation_channels=8).train()
    x = torch.rand(2, 3, 40, 48)
    pyramid, share = level_contributions(model, x)
    assert model.training  # mode restored
    assert [p.shape[-2:] for p in pyramid] == [(10, 12), (5, 6), (3, 3), (2, 2)]
    assert share.shape == (2, 4, 10, 12) and not share.requires_grad
    model.eval()
    with torch.no_grad():
        logits = model.head(pyramid)  # stride 4, before the x4 upsample
    winner = logits.argmax(1)
    expected = logits.max(1).values - model.head.classifier.bias[winner]
    torch.testing.assert_close(share.sum(1), expected, rtol=1e-5, atol=1e-5)
    one_level = FPN(num_classes=5, width=4, pyramid_channels=8, segmentation_channels=8,
                    levels=("c2",), top_down=False)
    assert level_contributions(one_level, x)[1].shape == (2, 1, 10, 12)
    with pytest.raises(TypeError, match="needs an FPN"):
        level_contributions(nn.Conv2d(3, 5, 1), x)
