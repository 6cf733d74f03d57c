"""The dense shapes world (notebook 19's "more challenging data"): more objects, more occlusion."""

import numpy as np
import pytest
import torch

from course_lib.data import scenes
from course_lib.data.synthetic import ShapesWorld


def _objects_and_occlusion(dense: bool, n: int = 24, size: int = 48) -> tuple[float, float]:
    """Mean visible objects per image and the share of painted object pixels hidden later."""
    counts, hidden = [], []
    for i in range(n):
        areas: list[int] = []
        kwargs = {"things": scenes.DENSE_THINGS, "vehicles": scenes.DENSE_VEHICLES} if dense else {}
        out = scenes.draw_default(np.random.default_rng([i, 3]), size, False,
                                  painted_areas=areas, **kwargs)
        counts.append(len(np.unique(out["inst"])) - 1)
        hidden.append(1 - np.count_nonzero(out["inst"]) / max(sum(areas), 1))
    return float(np.mean(counts)), float(np.mean(hidden))


def test_dense_world_has_more_objects_and_more_occlusion():
    default_objects, default_hidden = _objects_and_occlusion(dense=False)
    dense_objects, dense_hidden = _objects_and_occlusion(dense=True)
    assert dense_objects > 3 * default_objects  # measured: about 25 vs 6 per image
    assert dense_hidden > 3 * default_hidden and dense_hidden > 0.2  # about 0.28 vs 0.05


def test_painted_areas_do_not_change_the_default_scene():
    plain = scenes.draw_default(np.random.default_rng(5), 48, True)
    areas: list[int] = []
    counted = scenes.draw_default(np.random.default_rng(5), 48, True, painted_areas=areas)
    for key in plain:
        np.testing.assert_array_equal(plain[key], counted[key])
    assert len(areas) >= int(plain["inst"].max()) and sum(areas) >= np.count_nonzero(plain["inst"])


def test_dense_variant_is_a_shapes_world_with_instances():
    world = ShapesWorld(3, image_size=48, split="val", seed=1, variant="dense", target="all",
                        with_depth=True)
    assert world.num_classes == ShapesWorld(1, image_size=48).num_classes
    sample = world[0]
    assert sample["image"].shape == (4, 48, 48)
    ids = sample["instance_ids"]
    assert int(ids.max()) == len(sample["labels"]) >= 10  # ids stay 1..M after occlusion
    assert torch.equal(torch.unique(ids[ids > 0]), torch.arange(1, int(ids.max()) + 1))
    again = ShapesWorld(3, image_size=48, split="val", seed=1, variant="dense")[0][0]
    assert torch.equal(again, sample["image"][:3])  # deterministic
    assert not torch.equal(again, ShapesWorld(3, image_size=48, split="val", seed=1)[0][0])


def test_unknown_variant_names_dense():
    with pytest.raises(ValueError, match="dense"):
        ShapesWorld(1, image_size=48, variant="crowded")
