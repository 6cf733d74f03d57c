"""U-Net, UNet++, 3D U-Net, V-Net: crop-and-concat, deep supervision, 3D shapes."""

from __future__ import annotations

import pytest
import torch

from course_lib.models import list_models
from course_lib.models.encoder_decoder import decoder_memory_bytes
from course_lib.models.unet import (
    UNet,
    UNet3D,
    UNetPlusPlus,
    VNet,
    center_crop,
    crop_and_concat,
)


def test_registered() -> None:
    assert {"unet", "unetplusplus", "unet3d", "vnet"} <= set(list_models("unet"))


def test_center_crop_and_concat() -> None:
    x = torch.arange(36.0).view(1, 1, 6, 6)
    assert torch.equal(center_crop(x, (2, 2)), torch.tensor([[[[14.0, 15.0], [20.0, 21.0]]]]))
    skip, up = torch.rand(1, 2, 9, 9), torch.rand(1, 3, 5, 5)  # paper: the skip is larger
    out = crop_and_concat(skip, up)
    assert out.shape == (1, 5, 5, 5)
    assert torch.equal(out[:, :2], skip[:, :, 2:7, 2:7]) and torch.equal(out[:, 2:], up)
    with pytest.raises(ValueError, match="larger"):
        center_crop(x, (7, 6))


@pytest.mark.parametrize("up", ["transpose", "bilinear"])
@pytest.mark.parametrize("size", [(32, 48), (45, 45)])
def test_unet_shapes(up: str, size: tuple[int, int]) -> None:
    model = UNet(num_classes=4, width=4, depth=3, up=up).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, *size)).shape == (2, 4, *size)


def test_unet_paper_channels_and_skip_memory() -> None:
    model = UNet(full=True)
    assert model.down[-1][1][0].out_channels == 1024
    assert UNet(width=4, depth=2, up="bilinear").ups[0].up[1].out_channels == 8
    mem = decoder_memory_bytes(UNet(width=4, depth=2), torch.rand(1, 3, 16, 16))
    assert mem["kind"] == "features"
    assert mem["kept_bytes"] == 4 * (4 * 16 * 16 + 8 * 8 * 8)
    with pytest.raises(ValueError, match="up must be"):
        UNet(up="nearest")


def test_unetplusplus_deep_supervision() -> None:
    torch.manual_seed(0)
    model = UNetPlusPlus(num_classes=3, width=4, depth=3, deep_supervision=True).eval()
    x = torch.rand(2, 3, 24, 40)
    with torch.no_grad():
        out = model(x)
        assert set(out) == {"out", "out1", "out2", "out3"}
        assert all(v.shape == (2, 3, 24, 40) for v in out.values())
        mean = (out["out1"] + out["out2"] + out["out3"]) / 3
        torch.testing.assert_close(out["out"], mean)
        # pruned network at level 2 gives head 2 exactly (it only needs columns <= 2)
        torch.testing.assert_close(model(x, level=2), out["out2"])
    plain = UNetPlusPlus(num_classes=3, width=4, depth=3).eval()
    assert isinstance(plain(x), torch.Tensor) and len(plain.heads) == 1
    with pytest.raises(ValueError, match="deep_supervision"):
        plain(x, level=1)
    with pytest.raises(ValueError, match="level"):
        model(x, level=4)


def test_unetplusplus_nested_node_inputs() -> None:
    model = UNetPlusPlus(width=4, depth=2)
    # X[0][2] sees X[0][0], X[0][1] (4 ch each) and up(X[1][1]) (8 ch)
    assert model.nodes["x0_2"][0][0].in_channels == 4 + 4 + 8


@pytest.mark.parametrize("up", ["transpose", "trilinear"])
def test_unet3d_shapes_and_groupnorm(up: str) -> None:
    model = UNet3D(in_channels=1, num_classes=2, width=4, depth=2, up=up).eval()
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    with torch.no_grad():
        assert model(torch.rand(1, 1, 9, 14, 11)).shape == (1, 2, 9, 14, 11)
    with pytest.raises(ValueError, match="D, H, W"):
        model(torch.rand(1, 1, 8, 8))


def test_vnet_structure_and_size_check() -> None:
    model = VNet(in_channels=1, num_classes=2, width=4, depth=2, convs=(1, 2, 2)).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert any(c.kernel_size == (5, 5, 5) for c in convs)
    assert any(c.stride == (2, 2, 2) for c in convs)  # strided down-convolutions
    assert any(isinstance(m, torch.nn.PReLU) for m in model.modules())
    with torch.no_grad():
        assert model(torch.rand(1, 1, 8, 12, 16)).shape == (1, 2, 8, 12, 16)
    with pytest.raises(ValueError, match=r"\(8, 12, 10\)"):
        model(torch.rand(1, 1, 8, 12, 10))
    full = VNet(full=True)
    assert full.enc[-1].act.num_parameters == 256
    with pytest.raises(ValueError, match="convs"):
        VNet(depth=2, convs=(1, 1))


def test_channel_ladder_doubles_and_the_unets_reject_an_empty_ladder() -> None:
    from course_lib.models.unet import UNet, UNet3D, UNetPlusPlus, channel_ladder

    assert channel_ladder("UNet", 64, 4) == [64, 128, 256, 512, 1024]  # U-Net Fig. 1
    with pytest.raises(ValueError, match="UNet: depth and width must be >= 1"):
        channel_ladder("UNet", 0, 4)
    for cls in (UNet, UNetPlusPlus, UNet3D, VNet):
        with pytest.raises(ValueError, match=f"{cls.__name__}: depth must be positive, got 0"):
            cls(in_channels=1, num_classes=2, depth=0)
        with pytest.raises(ValueError, match=f"{cls.__name__}: width must be positive, got 0"):
            cls(in_channels=1, num_classes=2, width=0, full=True)  # not the paper's width


def test_an_explicit_size_wins_over_full() -> None:
    with torch.device("meta"):
        assert VNet(full=True, width=4).stage0.act.num_parameters == 4  # was overridden to 16
        assert UNet(full=True, width=8).inc[0][0].out_channels == 8
        assert UNet(full=True).inc[0][0].out_channels == 64
