"""course_lib.data.balance: pixel shares per class against a hand count, void left out,
clear errors."""

from __future__ import annotations

import pytest
import torch

from course_lib.data import ShapesWorld
from course_lib.data.balance import mask_of, pixel_shares


def test_pixel_shares_against_a_hand_count():
    a = torch.tensor([[0, 0, 1], [255, 2, 2]])
    b = torch.tensor([[2, 255, 255]])
    shares = pixel_shares([a, b], num_classes=4)
    assert shares.dtype == torch.float64
    assert shares.tolist() == pytest.approx([2 / 6, 1 / 6, 3 / 6, 0.0])


def test_mask_of_reads_dicts_and_pairs():
    pair = ShapesWorld(1, image_size=16)[0]
    assert torch.equal(mask_of(pair), pair[1])
    item = ShapesWorld(1, image_size=16, target="all")[0]
    assert torch.equal(mask_of(item), item["mask"])
    with pytest.raises(ValueError, match="no 'mask'"):
        mask_of({"image": pair[0]})
    with pytest.raises(ValueError, match="sample dict"):
        mask_of(pair[0])


def test_pixel_shares_rejects_labels_beyond_the_classes_and_all_void():
    with pytest.raises(ValueError, match=r"\[7\].*0\.\.3"):
        pixel_shares([torch.tensor([0, 7, 255])], num_classes=4)
    with pytest.raises(ValueError, match="no labelled pixels"):
        pixel_shares([torch.full((2, 2), 255)], num_classes=4)
