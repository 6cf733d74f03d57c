"""course_lib.data.stacking.stack_dataset: pairs and dicts of the shapes world stacked as the
notebooks did by hand; varying fields and empty data refused clearly."""

from __future__ import annotations

import pytest
import torch

from course_lib.data import ShapesWorld
from course_lib.data.stacking import stack_dataset


def test_pairs_are_stacked_in_order():
    data = ShapesWorld(5, image_size=24, split="val")
    images, masks = stack_dataset(data)
    assert images.shape == (5, 3, 24, 24) and masks.shape == (5, 24, 24)
    for i in range(5):
        assert torch.equal(images[i], data[i][0]) and torch.equal(masks[i], data[i][1])


def test_dict_items_give_the_named_fields():
    data = ShapesWorld(4, image_size=24, split="val", target="all")
    images, masks, ids = stack_dataset(data, keys=("image", "mask", "instance_ids"))
    assert ids.shape == (4, 24, 24)
    assert torch.equal(masks[3], data[3]["mask"]) and torch.equal(ids[2], data[2]["instance_ids"])
    assert torch.equal(images, stack_dataset(data)[0])


def test_fields_that_cannot_be_stacked_are_refused():
    data = [{"image": torch.zeros(3, 4, 4), "masks": torch.zeros(n, 4, 4)} for n in (1, 2)]
    with pytest.raises(ValueError, match=r"'masks' of item 1 has shape \(2, 4, 4\)"):
        stack_dataset(data, keys=("masks",))
    with pytest.raises(ValueError, match="item 0 has no 'mask'"):
        stack_dataset(data)
    with pytest.raises(ValueError, match="empty"):
        stack_dataset([])
    with pytest.raises(ValueError, match="tuples or dicts"):
        stack_dataset([torch.zeros(2)])
