"""Backbones: the feature contract, output_stride by dilation, paper parameter counts."""

from __future__ import annotations

import pytest
import torch
import torchvision

from course_lib.models.backbones import BACKBONES, build_backbone


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_full_resnet50_matches_torchvision_without_fc() -> None:
    with torch.device("meta"):  # count without allocating or initialising weights
        ours = build_backbone("resnet50", full=True)
        ref = torchvision.models.resnet50(weights=None)
    expected = n_params(ref) - n_params(ref.fc)
    assert expected == 23_508_032
    assert n_params(ours) == expected


def test_full_vgg16_matches_torchvision_features() -> None:
    with torch.device("meta"):
        ours = build_backbone("vgg16", full=True)
        ref = torchvision.models.vgg16(weights=None).features
    assert n_params(ref) == 14_714_688
    assert n_params(ours) == n_params(ref)


def test_full_resnet18_matches_torchvision_without_fc() -> None:
    with torch.device("meta"):
        ref = torchvision.models.resnet18(weights=None)
        assert n_params(build_backbone("resnet18", full=True)) == n_params(ref) - n_params(ref.fc)


@pytest.mark.parametrize("name", ["vgg_tiny", "vgg16", "resnet_tiny", "resnet50"])
@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_feature_contract_and_output_stride(name: str, output_stride: int) -> None:
    net = build_backbone(name, width=4, output_stride=output_stride).eval()
    h, w = 45, 70  # odd sizes: every stride-2 step rounds up
    with torch.no_grad():
        feats = net(torch.randn(2, 3, h, w))
    assert list(feats) == ["c2", "c3", "c4", "c5"]
    assert net.dilation == 32 // output_stride
    for key, f in feats.items():
        s = net.strides[key]
        assert s == min({"c2": 4, "c3": 8, "c4": 16, "c5": 32}[key], output_stride)
        assert f.shape == (2, net.channels[key], -(-h // s), -(-w // s)), (key, f.shape)


def test_dilation_matches_torchvision_resnet50_layout() -> None:
    """Our OS-8 ResNet-50 has torchvision's dilations and strides in every conv."""
    with torch.device("meta"):
        ours = build_backbone("resnet50", full=True, output_stride=8)
        ref = torchvision.models.resnet50(weights=None,
                                          replace_stride_with_dilation=[False, True, True])
    ours_convs = [(m.stride, m.dilation, m.padding, m.weight.shape) for m in ours.modules()
                  if isinstance(m, torch.nn.Conv2d)]
    ref_convs = [(m.stride, m.dilation, m.padding, m.weight.shape) for m in ref.modules()
                 if isinstance(m, torch.nn.Conv2d)]
    assert sorted(ours_convs, key=str) == sorted(ref_convs, key=str)


@pytest.mark.parametrize("in_channels", [1, 4])
def test_in_channels_and_bad_input(in_channels: int) -> None:
    net = build_backbone("resnet_tiny", in_channels=in_channels, width=4).eval()
    assert net(torch.randn(1, in_channels, 32, 32))["c5"].shape[-1] == 1
    with pytest.raises(ValueError, match="expected input"):
        net(torch.randn(1, in_channels + 1, 32, 32))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="output_stride"):
        build_backbone("vgg_tiny", output_stride=4)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("alexnet")
    assert "resnet101" in BACKBONES
