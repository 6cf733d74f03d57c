"""DeconvNet, SegNet, LinkNet, HRNet: unpooling, exchange units, sizes, decoder memory."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.models import get_spec, list_models
from course_lib.models.encoder_decoder import (
    DeconvNet,
    ExchangeUnit,
    HRNet,
    IndexPool,
    IndexUnpool,
    LinkNet,
    LinkNetDecoderBlock,
    SegNet,
    decoder_memory_bytes,
)


def test_registered_in_family() -> None:
    assert {"deconvnet", "segnet", "linknet", "hrnet"} <= set(list_models("encoder_decoder"))
    assert "Badrinarayanan" in get_spec("segnet").paper


def test_unpooling_puts_values_back_at_argmax() -> None:
    x = torch.randn(2, 3, 7, 9)  # odd size: ceil-mode pooling
    pooled, indices, size = IndexPool()(x)
    assert pooled.shape == (2, 3, 4, 5)
    up = IndexUnpool()(pooled, indices, size)
    assert up.shape == x.shape
    nonzero = up != 0
    # every pooled value reappears exactly where it came from, zeros elsewhere
    assert torch.equal(up[nonzero], x[nonzero])
    assert int(nonzero.sum()) == pooled.numel()
    # each 2x2 window's maximum is the kept value
    flat = x.flatten(2).gather(2, indices.flatten(2))
    torch.testing.assert_close(flat, pooled.flatten(2))


def test_segnet_decoder_uses_the_indices() -> None:
    """Changing the stored indices changes the output: the decoder really uses them."""
    torch.manual_seed(0)
    model = SegNet(num_classes=3, width=4, depths=(1, 1)).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        bottom, kept = model.encode(x)
        ref = model.decode(bottom, kept)
        shifted = [((idx // 2) * 2, size) for idx, size in kept]  # move to other positions
        other = model.decode(bottom, shifted)
    assert ref.shape == (1, 3, 16, 16)
    assert not torch.allclose(ref, other)


@pytest.mark.parametrize("cls,kwargs", [
    (SegNet, {"width": 4, "depths": (1, 1, 1)}),
    (DeconvNet, {"width": 4, "depths": (1, 1, 1), "fc_channels": 16}),
    (LinkNet, {"width": 8, "backbone": "resnet_tiny"}),
    (LinkNet, {"width": 8, "backbone": "vgg_tiny"}),  # any backbone's c2..c5 maps
    (HRNet, {"widths": (4, 8, 16, 32), "stem_channels": 8, "stage1_channels": 4, "blocks": 1}),
])
@pytest.mark.parametrize("size", [(32, 48), (37, 29)])
def test_shapes_any_size(cls: type, kwargs: dict, size: tuple[int, int]) -> None:
    model = cls(num_classes=5, **kwargs).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, *size)).shape == (2, 5, *size)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="depths"):
        SegNet(depths=(1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="widths"):
        HRNet(widths=(4, 8))
    with pytest.raises(ValueError, match="width or widths, not both"):
        HRNet(width=4, widths=(4, 8, 16, 32))
    with pytest.raises(ValueError, match="kernel_size"):
        LinkNetDecoderBlock(8, 4, kernel_size=5)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        SegNet(width=4, depths=(1,))(torch.rand(1, 1, 8, 8))


def test_segnet_deep_supervision_head_at_one_eighth_is_trained() -> None:
    """aux=True: {"out", "aux"} with the aux logits at 1/8 size, in train and eval mode; the
    auxiliary loss reaches the aux head and, through it, the encoder."""
    from course_lib.losses import model_loss

    torch.manual_seed(0)
    model = SegNet(num_classes=3, width=4, depths=(1,) * 5, aux=True)
    x, y = torch.rand(2, 3, 64, 48), torch.randint(0, 3, (2, 64, 48))
    out = model(x)
    assert out["out"].shape == (2, 3, 64, 48) and out["aux"].shape == (2, 3, 8, 6)
    with torch.no_grad():
        assert model.eval()(x)["aux"].shape == (2, 3, 8, 6)
    model.train()
    model_loss(model(x), y, aux_weight=1.0).backward()
    assert model.aux_head.weight.grad.abs().sum() > 0
    assert model.encoder[0][0][0].weight.grad.abs().sum() > 0  # the first convolution
    model.zero_grad()
    model_loss(model(x), y, aux_weight=0.0).backward()
    assert model.aux_head.weight.grad is None or not model.aux_head.weight.grad.any()
    plain = SegNet(num_classes=3, width=4, depths=(1,) * 5)
    assert isinstance(plain(x), torch.Tensor) and plain.aux_head is None
    with pytest.raises(ValueError, match="at least 4 stages"):
        SegNet(width=4, depths=(1, 1, 1), aux=True)


@pytest.mark.parametrize("k", [3, 4])
def test_linknet_block_doubles_and_reduces(k: int) -> None:
    block = LinkNetDecoderBlock(32, 16, kernel_size=k)
    assert block[0][0].out_channels == 8  # 1x1 to in/4
    assert block(torch.rand(2, 32, 5, 7)).shape == (2, 16, 10, 14)


def test_exchange_unit_sizes_and_fusion() -> None:
    unit = ExchangeUnit([4, 8, 16])
    xs = [torch.rand(1, 4, 15, 15), torch.rand(1, 8, 8, 8), torch.rand(1, 16, 4, 4)]
    outs = unit(xs)
    assert [tuple(o.shape) for o in outs] == [tuple(x.shape) for x in xs]
    # every output depends on every input (repeated fusion)
    xs = [x.requires_grad_(True) for x in xs]
    for i in range(3):
        grads = torch.autograd.grad(unit(xs)[i].sum(), xs)
        assert all(g.abs().sum() > 0 for g in grads), f"stream {i} misses an input"
    # downsampling path i - j strided convolutions: 0 → 2 has two
    assert sum(isinstance(m, torch.nn.Conv2d) for m in unit.paths[2][0]) == 2


def test_hrnet_w18_small_parameter_count() -> None:
    """HRNetV2-W18-Small-v1 (official seg config: streams 16/32/64/128) has about 1.5 M params."""
    n = sum(p.numel() for p in HRNet(num_classes=19, full=True).parameters())
    assert n == 1_540_579  # 19 Cityscapes classes
    assert 1.4e6 < n < 1.6e6
    w18 = sum(p.numel() for p in HRNet(num_classes=19, full=True,
                                       widths=(18, 36, 72, 144)).parameters())
    assert w18 > n


def test_decoder_memory_indices_vs_features() -> None:
    x = torch.rand(1, 3, 32, 32)
    seg = decoder_memory_bytes(SegNet(width=4, depths=(1, 1, 1)), x)
    assert seg["kind"] == "indices"
    # int64 indices at the pooled size: half the bytes of the float32 pre-pool features
    assert seg["kept_bytes"] * 2 == seg["feature_bytes"]
    assert seg["compact_bytes"] * 32 == seg["kept_bytes"]  # 2 bits instead of 64
    link = decoder_memory_bytes(LinkNet(width=8, backbone="resnet_tiny"), x)
    assert link["kind"] == "features" and link["kept_bytes"] == link["feature_bytes"]
    assert link["kept_bytes"] == 4 * (8 * 8 * 8 + 16 * 4 * 4 + 32 * 2 * 2)
    hrnet = HRNet(widths=(4, 8, 16, 32), stem_channels=8, stage1_channels=4)
    streams = decoder_memory_bytes(hrnet, x)
    assert streams["kind"] == "streams"
    # float32 streams at /4, /8, /16, /32 of a 32 px image, widths 4, 8, 16, 32
    assert streams["kept_bytes"] == 4 * (4 * 8 * 8 + 8 * 4 * 4 + 16 * 2 * 2 + 32 * 1 * 1)
    with pytest.raises(ValueError, match="encode"):
        decoder_memory_bytes(nn.Conv2d(3, 2, 1), x)
