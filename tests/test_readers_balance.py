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


# ------------------------------------------------------------------------ objects per image
def test_objects_per_image_counts_instances_or_regions_by_hand() -> None:
    from course_lib.data.balance import objects_per_image

    mask = torch.tensor([[4, 4, 0, 5],
                         [0, 4, 0, 5],
                         [5, 0, 4, 255]])
    # 8-connected regions per class: 4 -> {(0,0),(0,1),(1,1),(2,2)} one region, 5 -> two
    assert objects_per_image((torch.zeros(3, 3, 4), mask), classes=[4, 5]) == 3
    assert objects_per_image((torch.zeros(3, 3, 4), mask), classes=[5]) == 2
    assert objects_per_image((torch.zeros(3, 3, 4), mask)) == 4  # every class, void left out
    assert objects_per_image({"mask": mask, "masks": torch.zeros(7, 3, 4, dtype=torch.bool)}) == 7
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        objects_per_image((None, torch.zeros(2, 3, 4, dtype=torch.long)))


def test_objects_per_image_on_the_shapes_world_agrees_with_its_instances() -> None:
    """Regions of thing classes vs instance masks: equal on most images, and the per-image
    difference is what occlusion (+) and touching same-class objects (-) explain."""
    from course_lib.data import THING_CLASSES
    from course_lib.data.balance import objects_per_image

    ds = ShapesWorld(40, image_size=64, seed=2, target="all")
    same, total_regions, total_instances = 0, 0, 0
    for i in range(len(ds)):
        item = ds[i]
        instances = objects_per_image(item)
        assert instances == int(item["instance_ids"].max())
        regions = objects_per_image((item["image"], item["mask"]), THING_CLASSES)
        same += regions == instances
        total_regions, total_instances = total_regions + regions, total_instances + instances
    assert same >= len(ds) // 2
    assert abs(total_regions - total_instances) <= 0.25 * total_instances


def test_objects_per_image_on_real_samples_when_present() -> None:
    from course_lib.data import CamVid, PennFudanPed, fetch
    from course_lib.data.balance import objects_per_image

    try:
        penn = PennFudanPed(fetch("pennfudan", download=False))
        camvid = CamVid(fetch("camvid", download=False), split="train")
    except (RuntimeError, FileNotFoundError) as err:
        pytest.skip(f"real samples not present: {err}")
    counts = [objects_per_image(penn[i]) for i in range(len(penn))]
    assert min(counts) >= 1 and counts == [int(penn[i]["masks"].shape[0]) for i in range(len(penn))]
    cars = [objects_per_image(camvid[i], classes=[8]) for i in range(len(camvid))]  # 8 = Car
    assert max(cars) >= 1
