"""The shapes world's "context" variant (notebook 05): only far-away context tells car from boat."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.data.synthetic import (
    CLASS_NAMES,
    CONTEXT_PAIR,
    VARIANTS,
    ShapesWorld,
)

GRASS, ROAD, WATER = 1, 2, 3
CAR, BOAT = CONTEXT_PAIR


@pytest.fixture(scope="module")
def samples() -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = ShapesWorld(40, image_size=64, split="train", variant="context")
    return [data[i] for i in range(len(data))]


def test_context_variant_is_registered_with_the_shapes_classes() -> None:
    assert "context" in VARIANTS and VARIANTS[0] == "default"
    data = ShapesWorld(2, image_size=48, variant="context")
    assert data.class_names == CLASS_NAMES and data.num_classes == 12
    image, mask = data[0]
    assert image.shape == (3, 48, 48) and mask.shape == (48, 48)
    again = ShapesWorld(2, image_size=48, variant="context")[0]
    assert torch.equal(image, again[0]) and torch.equal(mask, again[1])  # deterministic
    other = ShapesWorld(2, image_size=48, variant="context", split="val")[0]
    assert not torch.equal(image, other[0])
    with pytest.raises(ValueError, match="with_depth"):
        ShapesWorld(2, variant="context", with_depth=True)


def test_one_car_on_road_scenes_one_boat_on_river_scenes(samples) -> None:
    kinds = {"car": 0, "boat": 0}
    for _, mask in samples:
        present = set(torch.unique(mask).tolist())
        assert not {ROAD, WATER} <= present  # one kind of scene
        if ROAD in present:
            assert CAR in present and BOAT not in present
            kinds["car"] += 1
        else:
            assert WATER in present and BOAT in present and CAR not in present
            kinds["boat"] += 1
    assert min(kinds.values()) >= 10  # both scenes are common


def test_the_object_is_far_from_the_band_and_surrounded_by_grass(samples) -> None:
    size = samples[0][1].shape[-1]
    sides = set()
    for _, mask in samples:
        obj = (mask == CAR) | (mask == BOAT)
        band = (mask == ROAD) | (mask == WATER)
        obj_cols = obj.any(0).nonzero().flatten()
        band_cols = band.any(0).nonzero().flatten()
        gap = torch.cdist(obj_cols[:, None].float(), band_cols[:, None].float()).min()
        assert gap > size / 2  # half the image between the object and the road / river
        sides.add(bool(band_cols[0] == 0))
        # its local surround (3 px around it) is grass only: the same for car and boat
        ring = F.max_pool2d(obj[None, None].float(), 7, stride=1, padding=3)[0, 0].bool() & ~obj
        assert set(torch.unique(mask[ring]).tolist()) == {GRASS}
    assert sides == {True, False}  # the band lies on the left in some images, right in others


def test_car_and_boat_look_alike(samples) -> None:
    """Same silhouette and colour distribution: mean colour and size do not separate them."""
    stats = {CAR: [], BOAT: []}
    for image, mask in samples:
        for c in CONTEXT_PAIR:
            if (mask == c).any():
                stats[c].append((image[:, mask == c].mean().item(), (mask == c).sum().item()))
    car, boat = (torch.tensor(stats[c]) for c in CONTEXT_PAIR)
    for column, tolerance in ((0, 0.15), (1, 0.35)):  # colour, pixel count (relative)
        a, b = car[:, column].mean(), boat[:, column].mean()
        assert abs(a - b) <= tolerance * max(a, b), (column, a, b)


def test_all_targets_work_for_the_context_variant() -> None:
    sample = ShapesWorld(3, image_size=48, variant="context", target="all")[1]
    assert sample["labels"].tolist() in ([CAR], [BOAT])
    assert sample["masks"].shape[0] == 1
    assert torch.equal(sample["masks"][0], (sample["mask"] == sample["labels"][0]))
