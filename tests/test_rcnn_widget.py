"""MaskRCNNExplorer: one object's proposal, RoI, 28x28 mask and paste, for a picked detection."""

from __future__ import annotations

import pytest
import torch

from course_lib.data.instances import TouchingWorld
from course_lib.models import build_model, get_spec
from course_lib.widgets.rcnn import MaskRCNNExplorer


@pytest.fixture(scope="module")
def explorer() -> MaskRCNNExplorer:
    torch.manual_seed(0)
    model = build_model("mask_rcnn", **{**get_spec("mask_rcnn").test_kwargs, "num_classes": 3})
    world = TouchingWorld(2, image_size=64, seed=1)
    images = [world[i][0] for i in range(2)]
    targets = [world[i][1] for i in range(2)]
    # an untrained model scores ~1/3 per class: take every detection
    return MaskRCNNExplorer(model, images, targets, world.class_names, score_threshold=0.0)


def test_picking_an_object_changes_the_view(explorer: MaskRCNNExplorer) -> None:
    a = explorer.analysis()
    n = len(a["boxes"])
    assert n >= 2 and explorer.object.max == n - 1
    assert a["masks28"].shape == (n, 28, 28) and a["proposal"].shape == (n, 4)
    assert bool((a["iou"] >= 0).all() & (a["iou"] <= 1).all())
    first = explorer.to_png()
    assert first.startswith(b"\x89PNG")
    explorer.object.value = 1
    assert explorer.to_png() != first
    assert explorer.table_html().count("<tr>") == n + 1
    explorer.index.value = 1
    assert explorer.object.value == 0 and bytes(explorer.picture.value).startswith(b"\x89PNG")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="MaskRCNN"):
        MaskRCNNExplorer(torch.nn.Linear(2, 2), [torch.rand(3, 8, 8)])
    model = build_model("mask_rcnn", **get_spec("mask_rcnn").test_kwargs)
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        MaskRCNNExplorer(model, [torch.rand(3, 8, 8)] * 2, [{}])
