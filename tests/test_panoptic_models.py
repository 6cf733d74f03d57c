"""Panoptic-DeepLab: its targets, grouping and merge on crafted cases, its outputs, and that
it learns a batch (centres and offsets good enough for a perfect PQ on it)."""

from __future__ import annotations

import pytest
import torch

from course_lib.data.instances import TouchingWorld
from course_lib.metrics.panoptic import panoptic_quality
from course_lib.models import build_model
from course_lib.models.panoptic import (
    PanopticDeepLab,
    components_panoptic,
    find_centers,
    group_pixels,
    merge_semantic_and_instance,
    panoptic_from_instances,
    panoptic_prediction,
    panoptic_targets,
    train_panoptic,
)

THINGS = (1, 2)


def two_touching_squares() -> tuple[torch.Tensor, torch.Tensor]:
    """A 10 x 12 map: background 0, two touching squares of class 1 (ids 1, 2), a class-2
    square (id 5) elsewhere."""
    semantic = torch.zeros(1, 10, 12, dtype=torch.long)
    ids = torch.zeros(1, 10, 12, dtype=torch.long)
    semantic[0, 2:6, 1:5] = 1
    ids[0, 2:6, 1:5] = 1
    semantic[0, 2:6, 5:9] = 1
    ids[0, 2:6, 5:9] = 2
    semantic[0, 7:10, 9:12] = 2
    ids[0, 7:10, 9:12] = 5
    return semantic, ids


def test_targets_point_every_thing_pixel_at_its_centre_of_mass() -> None:
    semantic, ids = two_touching_squares()
    t = panoptic_targets(semantic, ids, THINGS, sigma=1.0)
    assert t["center"].shape == (1, 1, 10, 12) and t["offset"].shape == (1, 2, 10, 12)
    # the first square covers rows 2..5, cols 1..4: centre (3.5, 2.5), rounded to (4, 3)
    assert torch.allclose(t["offset"][0, :, 2, 1], torch.tensor([2.0, 2.0]))
    assert torch.allclose(t["offset"][0, :, 5, 8], torch.tensor([-1.0, -1.0]))
    assert torch.allclose(t["offset"][0, :, 9, 11], torch.tensor([-1.0, -1.0]))
    assert (t["offset"][0][:, ~t["thing"][0]] == 0).all() and t["thing"].sum() == 41
    # each pixel plus its offset lands on its instance's centre
    ys, xs = torch.meshgrid(torch.arange(10.0), torch.arange(12.0), indexing="ij")
    landed_y = (ys + t["offset"][0, 0])[ids[0] == 2]
    assert torch.allclose(landed_y, torch.full_like(landed_y, 4.0))
    # the heat-map: a Gaussian of peak 1 at each (integer) centre, max where they meet
    assert t["center"][0, 0, 8, 10] == pytest.approx(1.0)
    assert t["center"][0, 0, 3, 2] == pytest.approx(torch.exp(torch.tensor(-1.0)).item())
    assert t["center"].max() <= 1.0


def test_targets_of_a_batch_stay_in_their_image() -> None:
    semantic, ids = two_touching_squares()
    empty = torch.zeros_like(semantic)
    t = panoptic_targets(torch.cat([semantic, empty]), torch.cat([ids, empty]), THINGS)
    assert t["center"][1].max() == 0 and t["offset"][1].abs().max() == 0


def test_grouping_splits_touching_objects_that_components_merge() -> None:
    semantic, ids = two_touching_squares()
    truth = panoptic_from_instances(semantic, ids, THINGS)
    t = panoptic_targets(semantic, ids, THINGS, sigma=1.0)
    centers = find_centers(t["center"][0], threshold=0.5, nms_kernel=3)
    assert len(centers) == 3
    instance = group_pixels(centers, t["offset"][0], t["thing"][0])
    panoptic = merge_semantic_and_instance(semantic[0], instance, THINGS)
    result = panoptic_quality(panoptic[None], truth, 3, THINGS)
    assert result["all"]["pq"] == 1.0
    baseline = panoptic_quality(components_panoptic(semantic, THINGS), truth, 3, THINGS)
    assert baseline["things"]["pq"] < 1.0  # the two touching squares are one component
    assert baseline["per_class"]["rq"][1] == 0.0 and baseline["per_class"]["pq"][2] == 1.0


def test_grouping_follows_the_offsets_not_the_distance() -> None:
    thing = torch.ones(1, 4, dtype=torch.bool)
    centers = torch.tensor([[0, 0], [0, 3]])
    offset = torch.zeros(2, 1, 4)
    offset[1, 0, 0] = 3.0  # pixel (0, 0) says: my centre is 3 to the right
    instance = group_pixels(centers, offset, thing)
    assert instance.tolist() == [[2, 1, 2, 2]]


def test_merge_votes_the_class_and_drops_small_stuff() -> None:
    semantic = torch.tensor([[0, 0, 0, 3], [1, 1, 2, 3]])
    instance = torch.tensor([[0, 0, 0, 0], [4, 4, 4, 0]])
    panoptic = merge_semantic_and_instance(semantic, instance, things=(1, 2), stuff_area=3)
    assert panoptic.tolist() == [[0, 0, 0, 255000], [1004, 1004, 1004, 255000]]


def test_find_centers_keeps_local_maxima_above_threshold() -> None:
    heat = torch.zeros(9, 9)
    heat[2, 2], heat[2, 3], heat[7, 7], heat[5, 0] = 0.9, 0.8, 0.6, 0.05
    centers = find_centers(heat, threshold=0.1, nms_kernel=3)
    assert centers.tolist() == [[2, 2], [7, 7]]


def test_outputs_and_their_shapes() -> None:
    torch.manual_seed(0)
    model = build_model("panoptic_deeplab", num_classes=3, width=4, semantic_channels=16,
                        instance_channels=8, head_channels=8).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 48, 64))
    assert out["out"].shape == (2, 3, 48, 64)
    assert out["center"].shape == (2, 1, 48, 64) and out["offset"].shape == (2, 2, 48, 64)
    panoptic = panoptic_prediction(out, THINGS)
    assert panoptic.shape == (2, 48, 64) and panoptic.dtype == torch.long
    with pytest.raises(ValueError, match="expected input"):
        model(torch.rand(2, 1, 48, 64))


def test_overfits_a_batch_of_touching_objects() -> None:
    torch.manual_seed(0)
    world = TouchingWorld(4, image_size=48, seed=3)
    images = torch.stack([world[i][0] for i in range(4)])
    semantic = torch.stack([world[i][1]["semantic"] for i in range(4)])
    ids = torch.stack([world[i][1]["instance_ids"] for i in range(4)])
    model = PanopticDeepLab(num_classes=3, width=8, semantic_channels=32,
                            instance_channels=32, head_channels=16)
    history = train_panoptic(model, images, semantic, ids, THINGS, steps=300, batch_size=4,
                             sigma=3.0, weights={"offset": 0.1}, progress=False, seed=0)
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    with torch.no_grad():
        out = model.eval()(images)
    result = panoptic_quality(panoptic_prediction(out, THINGS, nms_kernel=3),
                              panoptic_from_instances(semantic, ids, THINGS), 3, THINGS)
    assert result["things"]["pq"] > 0.5, result
