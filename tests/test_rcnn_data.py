"""Instance data for notebook 10: the touching world, ShapesWorld and Penn-Fudan as detection
targets, the semantic + connected-components baseline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from course_lib.data.instances import (
    TouchingWorld,
    collate,
    mask_boxes,
    resize_instances,
    shapes_instances,
)
from course_lib.models.rcnn.semantic_instances import count_error, instances_from_semantic

REAL = Path(os.environ.get("COURSE_DATA_MIRROR")
            or Path(__file__).resolve().parents[2] / "shared" / "data" / "real")


def _touches(masks: torch.Tensor) -> torch.Tensor:
    """[M, M] whether object i's mask, grown by one pixel, meets object j's."""
    grown = F.max_pool2d(masks[:, None].float(), 3, 1, 1)[:, 0] > 0
    meet = (grown[:, None] & masks[None].bool()).flatten(2).any(2)
    return meet & ~torch.eye(len(masks), dtype=torch.bool)


def test_touching_world_targets_are_consistent() -> None:
    world = TouchingWorld(12, image_size=64, seed=3)
    image, target = world[5]
    again = world[5]
    assert torch.equal(image, again[0]) and torch.equal(target["masks"], again[1]["masks"])
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    for i in range(len(world)):
        image, t = world[i]
        masks = t["masks"].bool()
        m = len(t["labels"])
        assert masks.shape == (m, 64, 64) and m >= 1
        assert bool((masks.sum(0) <= 1).all())  # visible parts never overlap
        assert bool((masks.flatten(1).sum(1) >= 4).all())
        assert set(t["labels"].tolist()) <= {1, 2}
        assert torch.equal(t["boxes"], mask_boxes(masks))
        assert torch.equal(t["instance_ids"] > 0, masks.any(0))
        sem = torch.zeros(64, 64, dtype=torch.long)
        for mk, lab in zip(masks, t["labels"].tolist(), strict=True):
            sem[mk] = lab
        assert torch.equal(t["semantic"], sem)
    other = TouchingWorld(12, image_size=64, seed=4)
    assert not torch.equal(other[5][0], world[5][0])
    image, sem = TouchingWorld(12, image_size=64, seed=3, target="semantic")[5]
    assert torch.equal(image, world[5][0]) and torch.equal(sem, world[5][1]["semantic"])


def test_most_objects_touch_another_of_their_class() -> None:
    world = TouchingWorld(30, image_size=96, seed=0)
    touching = total = 0
    for i in range(len(world)):
        t = world[i][1]
        same = t["labels"][:, None] == t["labels"][None, :]
        touching += int((_touches(t["masks"]) & same).any(1).sum())
        total += len(t["labels"])
    assert touching / total > 0.5, (touching, total)


def test_touching_world_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        TouchingWorld(2, split="dev")
    with pytest.raises(ValueError, match="target"):
        TouchingWorld(2, target="panoptic")
    with pytest.raises(ValueError, match="objects"):
        TouchingWorld(2, objects=(3, 1))
    with pytest.raises(ValueError, match="image_size"):
        TouchingWorld(2, image_size=8)
    with pytest.raises(IndexError):
        TouchingWorld(2, image_size=32)[2]


def test_mask_boxes_cover_the_pixels() -> None:
    masks = torch.zeros(2, 10, 10, dtype=torch.bool)
    masks[0, 3, 4] = True  # one pixel: a 1x1 box, not a zero-width one
    masks[1, 2:5, 1:9] = True
    assert mask_boxes(masks).tolist() == [[4, 3, 5, 4], [1, 2, 9, 5]]
    assert mask_boxes(torch.zeros(0, 4, 4, dtype=torch.bool)).shape == (0, 4)


def test_shapes_world_sample_as_detection_target() -> None:
    from course_lib.data.synthetic import ShapesWorld

    sample = ShapesWorld(3, image_size=64, split="val", target="all")[1]
    image, t = shapes_instances(sample)
    assert image.shape == (3, 64, 64)
    assert torch.equal(t["labels"], sample["labels"] - 3)  # disk (4) → 1 ... boat (11) → 8
    assert bool(((t["labels"] >= 1) & (t["labels"] <= 8)).all())
    assert torch.equal(t["boxes"], mask_boxes(t["masks"]))
    with pytest.raises(ValueError, match="target='all'"):
        shapes_instances({"image": image})


def test_resize_instances_and_collate() -> None:
    masks = torch.zeros(2, 40, 60, dtype=torch.uint8)
    masks[0, 5:30, 10:20] = 1
    masks[1, 38:40, 58:60] = 1  # tiny: vanishes at a quarter of the size
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    small, t = resize_instances(image, masks, torch.tensor([1, 1]), 10)
    assert small.shape == (3, 10, 15) and small.dtype == torch.float32
    assert len(t["labels"]) == len(t["masks"]) == len(t["boxes"]) >= 1
    assert torch.equal(t["boxes"], mask_boxes(t["masks"]))
    images, targets = collate([(small, t), (small, t)])
    assert len(images) == 2 and targets[1] is t


def test_semantic_components_merge_touching_objects() -> None:
    probs = torch.zeros(3, 20, 20)
    probs[0] = 1.0
    probs[:, 2:8, 2:8] = torch.tensor([0.1, 0.9, 0.0])[:, None, None]  # two touching disks
    probs[:, 2:8, 8:12] = torch.tensor([0.2, 0.8, 0.0])[:, None, None]
    probs[:, 14:18, 14:18] = torch.tensor([0.3, 0.0, 0.7])[:, None, None]
    out = instances_from_semantic(probs)
    assert out["labels"].tolist() == [1, 2]  # the touching pair is one component
    assert out["masks"].shape == (2, 1, 20, 20)
    assert out["scores"][0] == pytest.approx((36 * 0.9 + 24 * 0.8) / 60)
    targets = [{"labels": torch.tensor([1, 1, 2])}]
    assert count_error([out], targets) == 1.0
    with pytest.raises(ValueError, match="probabilities"):
        instances_from_semantic(torch.rand(1, 4, 4))


@pytest.mark.real_data
def test_penn_fudan_as_detection_samples() -> None:
    from course_lib.data.formats import PennFudanPed
    from course_lib.models import build_model, get_spec

    root = REAL / "PennFudanPed"
    if not root.exists():
        pytest.skip(f"real sample data not found at {root} (set COURSE_DATA_MIRROR)")
    ds = PennFudanPed(root)
    samples = [resize_instances(ds[i]["image"], ds[i]["masks"], ds[i]["labels"], 96)
               for i in (0, 10)]
    for image, t in samples:
        assert min(image.shape[-2:]) == 96 and set(t["labels"].tolist()) == {1}
        assert torch.equal(t["boxes"], mask_boxes(t["masks"]))
    torch.manual_seed(0)
    model = build_model("mask_rcnn", **{**get_spec("mask_rcnn").test_kwargs, "num_classes": 2})
    losses = model.train()(*collate(samples))
    assert all(torch.isfinite(v) for v in losses.values())
