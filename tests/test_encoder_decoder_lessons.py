"""Notebook 07's library pieces: LinkNet's decoder-width floor, HRNet's streams, meta sizes."""

from __future__ import annotations

import pytest
import torch

from course_lib.models.encoder_decoder import (
    HRNet,
    LinkNet,
    LinkNetDecoderBlock,
    SegNet,
    decoder_memory_bytes,
)
from course_lib.models.unet import UNet


def _mids(model: LinkNet) -> dict[str, int]:
    return {key: block[0][0].out_channels for key, block in model.decoder.items()}


def test_linknet_decoder_widths_are_floored_at_small_widths() -> None:
    small = LinkNet(width=8, backbone="resnet_tiny")
    # the paper's in/4 would give 2, 4, 8, 16 channels; the floor keeps 16
    assert _mids(small) == {"c2": 16, "c3": 16, "c4": 16, "c5": 16}
    assert small.final[0].out_channels == 16  # c2 / 2 = 4 without the floor
    bare = LinkNet(width=8, backbone="resnet_tiny", min_decoder_channels=1)
    assert _mids(bare) == {"c2": 2, "c3": 4, "c4": 8, "c5": 16}
    assert bare.final[0].out_channels == 4
    with pytest.raises(ValueError, match="min_decoder_channels"):
        LinkNet(min_decoder_channels=0)


def test_linknet_paper_sizes_unchanged_by_the_floor() -> None:
    with torch.device("meta"):
        full = LinkNet(full=True)
    assert _mids(full) == {"c2": 16, "c3": 32, "c4": 64, "c5": 128}  # in/4 of 64..512
    assert full.final[0].out_channels == 32  # the paper's final block width
    block = LinkNetDecoderBlock(32, 16, mid_channels=12)
    assert block[0][0].out_channels == 12
    assert block(torch.rand(1, 32, 3, 5)).shape == (1, 16, 6, 10)


def test_hrnet_streams_resolutions_and_forward_uses_them() -> None:
    torch.manual_seed(0)
    model = HRNet(widths=(4, 8, 16, 32), stem_channels=8, stage1_channels=4, blocks=1).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        streams = model.streams(x)
        out = model(x)
    assert [tuple(s.shape) for s in streams] == [
        (1, 4, 16, 24), (1, 8, 8, 12), (1, 16, 4, 6), (1, 32, 2, 3)]
    # forward = head on the concatenated, upsampled streams, resized to the input
    from course_lib.models.blocks import resize_to
    high = streams[0]
    cat = torch.cat([high] + [resize_to(s, high) for s in streams[1:]], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(out, resize_to(model.head(cat), x))
    with pytest.raises(ValueError):
        model.streams(torch.rand(1, 1, 32, 32))


def test_decoder_memory_at_paper_size_on_meta() -> None:
    """The notebook's 360x480 numbers: SegNet's 2-bit indices vs U-Net's skip features."""
    with torch.device("meta"):
        x = torch.empty(1, 3, 360, 480)
        seg = decoder_memory_bytes(SegNet(num_classes=11, full=True), x)
        unet = decoder_memory_bytes(UNet(num_classes=11, full=True), x)
    # pooled sizes 180x240, 90x120, 45x60, 23x30 (ceil), 12x15 with 64..512 channels
    windows = 64 * 180 * 240 + 128 * 90 * 120 + 256 * 45 * 60 + 512 * 23 * 30 + 512 * 12 * 15
    assert seg["kept_bytes"] == 8 * windows and seg["compact_bytes"] == windows // 4
    skips = 64 * 360 * 480 + 128 * 180 * 240 + 256 * 90 * 120 + 512 * 45 * 60
    assert unet["kind"] == "features" and unet["kept_bytes"] == 4 * skips
    assert unet["kept_bytes"] > 50 * seg["compact_bytes"]
