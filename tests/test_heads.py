"""Shared heads (models/heads.py): SimpleSegmentationModel and FCNHead against torchvision's
FCN-ResNet50, the feature pyramid against torchvision's, FCN's crop, the GroupNorm rule."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn
from torchvision.models.segmentation import fcn_resnet50
from torchvision.ops import FeaturePyramidNetwork

from course_lib.models.backbones import build_backbone
from course_lib.models.heads import (
    FCNHead,
    FeaturePyramid,
    SimpleSegmentationModel,
    crop_to,
    group_norm,
)

TORCHVISION_FCN_R50 = 35_322_218  # fcn_resnet50(num_classes=21, aux_loss=True)


def _features(n: int = 2, size: int = 45, channels: tuple[int, ...] = (8, 16, 32, 64)):
    sizes = [size]
    for _ in range(3):
        sizes.append(-(-sizes[-1] // 2))  # stride-2 steps round up
    pairs = zip(channels, sizes, strict=True)
    return OrderedDict((f"c{i + 2}", torch.randn(n, c, s, s)) for i, (c, s) in enumerate(pairs))


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_skeleton_and_fcn_head_are_torchvisions_fcn_resnet50() -> None:
    """Backbone (dilated ResNet-50, output stride 8) + FCNHead on c5 + FCNHead on c4 is
    torchvision's FCN-ResNet50: the same parameters, tensor by tensor."""
    with torch.device("meta"):
        trunk = build_backbone("resnet50", 3, output_stride=8, full=True)
        ours = SimpleSegmentationModel(trunk, FCNHead(2048, 21), FCNHead(1024, 21))
        theirs = fcn_resnet50(weights=None, weights_backbone=None, num_classes=21,
                              aux_loss=True)
    assert _count(theirs) == _count(ours) == TORCHVISION_FCN_R50
    assert [t.shape for t in ours.state_dict().values()] == [
        t.shape for t in theirs.state_dict().values()
    ]


def test_simple_segmentation_model_resizes_out_and_aux_in_train_and_eval() -> None:
    torch.manual_seed(0)
    trunk = build_backbone("resnet_tiny", 3, width=4, output_stride=16)
    model = SimpleSegmentationModel(trunk, nn.Conv2d(trunk.channels["c5"], 3, 1),
                                    FCNHead(trunk.channels["c4"], 3))
    x = torch.rand(2, 3, 37, 30)
    for mode in (True, False):
        out = model.train(mode)(x)
        assert set(out) == {"out", "aux"}
        assert out["out"].shape == out["aux"].shape == (2, 3, 37, 30)
    plain = SimpleSegmentationModel(trunk, nn.Conv2d(trunk.channels["c3"], 3, 1), out_key="c3")
    assert set(plain.eval()(x)) == {"out"}
    assert isinstance(FCNHead(64, 3)[1], nn.Dropout)
    assert FCNHead(64, 3)[0][0].out_channels == 16  # in / 4


def test_crop_to_keeps_the_top_left_and_refuses_to_grow() -> None:
    x = torch.arange(30.0).view(1, 1, 5, 6)
    assert torch.equal(crop_to(x, (3, 4)), x[..., :3, :4])
    assert crop_to(x, torch.zeros(2, 7, 4, 6)).shape == (1, 1, 4, 6)
    with pytest.raises(ValueError, match=r"cannot crop \(5, 6\) to the larger size \(6, 6\)"):
        crop_to(x, (6, 6))


def test_group_norm_never_normalises_a_single_value() -> None:
    """One rule for every GroupNorm of the course (make_norm("gn") included)."""
    from course_lib.models.blocks import make_norm

    assert group_norm(512).num_groups == 32
    assert group_norm(16).num_groups == 8
    assert group_norm(6).num_groups == 2  # 3 channels per group
    assert isinstance(group_norm(1), nn.Identity)
    # make_norm("gn") is the same function with the 3D U-Net reference's setting (8 groups)
    assert make_norm("gn", 64).num_groups == 8 == group_norm(64, max_groups=8).num_groups
    assert make_norm("gn", 4, spatial_dims=3).num_groups == 4  # one channel per group
    assert make_norm("gn", 6).num_groups == 2 and make_norm("gn", 1).num_groups == 1


def test_feature_pyramid_equals_torchvision_with_copied_weights() -> None:
    torch.manual_seed(0)
    ours = FeaturePyramid([8, 16, 32, 64], 24)
    theirs = FeaturePyramidNetwork([8, 16, 32, 64], 24)
    ours_params, their_params = list(ours.parameters()), list(theirs.parameters())
    assert [p.shape for p in ours_params] == [p.shape for p in their_params]
    with torch.no_grad():
        for a, b in zip(ours_params, their_params, strict=True):
            a.copy_(torch.randn_like(a))
            b.copy_(a)
    feats = _features()  # odd sizes 45, 23, 12, 6
    expected, got = theirs(feats), ours(feats)
    assert list(got) == list(expected) == ["c2", "c3", "c4", "c5"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-5)
    # the comparison can fail: an FPN without the top-down addition differs
    with torch.no_grad():
        ours.lateral[-1].weight.zero_()
        ours.lateral[-1].bias.zero_()
    assert not torch.allclose(ours(feats)["c2"], expected["c2"], atol=1e-3)


def test_feature_pyramid_rejects_wrong_number_of_maps() -> None:
    with pytest.raises(ValueError, match="expects 4 maps"):
        FeaturePyramid([8, 16, 32, 64], 16)(OrderedDict(list(_features().items())[:3]))
    with pytest.raises(ValueError, match="channel counts"):
        FeaturePyramid([], 16)
