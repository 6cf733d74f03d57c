"""The shapes world's scenes: the default scene's layout, context pair, thin structures and
scale range; and the "context" variant (notebook 05), where only far-away context tells car
from boat."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.data import synthetic as sy
from course_lib.data.synthetic import (
    CLASS_NAMES,
    CONTEXT_PAIR,
    VARIANTS,
    ShapesWorld,
)

SIZE = 64


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    ds = ShapesWorld(48, image_size=SIZE, seed=7, target="all", with_depth=True)
    return [ds[i] for i in range(len(ds))]


def test_scene_layout_and_class_coverage(samples):
    seen = set()
    for s in samples:
        mask = s["mask"]
        stuff = mask < 4
        top, bottom = mask[0][stuff[0]], mask[-1][stuff[-1]]
        assert (top == 0).all(), "the top row is sky wherever no object covers it"
        assert (bottom != 0).all(), "the bottom row is ground"
        seen |= set(mask.unique().tolist())
    assert seen == set(range(12)), f"classes never drawn: {set(range(12)) - seen}"


def test_context_pair_car_on_road_boat_on_water():
    ds = ShapesWorld(120, image_size=SIZE, seed=3, target="all")
    good = total = 0
    areas = {10: [], 11: []}
    colours = {10: [], 11: []}
    for i in range(len(ds)):
        s = ds[i]
        mask = s["mask"]
        for m, lab, box in zip(s["masks"], s["labels"].tolist(), s["boxes"], strict=True):
            if lab not in sy.CONTEXT_PAIR:
                continue
            ground = 2 if lab == 10 else 3
            assert (mask == ground).any(), "a car needs a road, a boat needs water"
            x0, y0, x1, y1 = (int(v) for v in box)
            win = mask[max(y1 - 1, 0): y1 + 2, max(x0 - 3, 0): x1 + 4]
            other = 5 - ground
            good += int((win == ground).sum() > (win == other).sum())
            total += 1
            areas[lab].append(int(m.sum()))
            colours[lab].append(s["image"][:, m].mean(dim=1))
    assert total > 50
    assert good / total > 0.9, f"only {good}/{total} vehicles sit on their own ground"
    assert min(len(areas[10]), len(areas[11])) > 20
    mean_area = {k: float(np.mean(v)) for k, v in areas.items()}
    assert abs(mean_area[10] - mean_area[11]) < 0.35 * max(mean_area.values())
    mean_col = {k: torch.stack(v).mean(0) for k, v in colours.items()}
    assert (mean_col[10] - mean_col[11]).abs().max() < 0.12, "same colour distribution"


def _erode(m: torch.Tensor) -> torch.Tensor:
    return -F.max_pool2d(-m.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0


def test_thin_structures_are_thin_and_solids_are_not(samples):
    thin, solid = 0, 0
    for s in samples:
        for m, lab in zip(s["masks"], s["labels"].tolist(), strict=True):
            twice = _erode(_erode(m))
            if lab in sy.THIN_CLASSES:
                assert not twice.any(), f"{sy.CLASS_NAMES[lab]} is thicker than 3 px"
                thin += 1
            elif lab in (4, 5) and m.sum() > 150:  # big disks and squares survive erosion
                assert twice.any()
                solid += 1
    assert thin > 5 and solid > 2


def test_wide_scale_range(samples):
    areas = [int(m.sum()) for s in samples for m, lab in zip(s["masks"], s["labels"], strict=True)
             if int(lab) in (4, 5, 6, 7)]
    assert max(areas) / max(min(areas), 1) > 30


GRASS, ROAD, WATER = 1, 2, 3


CAR, BOAT = CONTEXT_PAIR


@pytest.fixture(scope="module")
def context_samples() -> list[tuple[torch.Tensor, torch.Tensor]]:
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


def test_one_car_on_road_scenes_one_boat_on_river_scenes(context_samples) -> None:
    kinds = {"car": 0, "boat": 0}
    for _, mask in context_samples:
        present = set(torch.unique(mask).tolist())
        assert not {ROAD, WATER} <= present  # one kind of scene
        if ROAD in present:
            assert CAR in present and BOAT not in present
            kinds["car"] += 1
        else:
            assert WATER in present and BOAT in present and CAR not in present
            kinds["boat"] += 1
    assert min(kinds.values()) >= 10  # both scenes are common


def test_the_object_is_far_from_the_band_and_surrounded_by_grass(context_samples) -> None:
    size = context_samples[0][1].shape[-1]
    sides = set()
    for _, mask in context_samples:
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


def test_car_and_boat_look_alike(context_samples) -> None:
    """Same silhouette and colour distribution: mean colour and size do not separate them."""
    stats = {CAR: [], BOAT: []}
    for image, mask in context_samples:
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
