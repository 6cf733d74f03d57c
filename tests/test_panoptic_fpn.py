"""Panoptic FPN (course_lib.models.panoptic.fpn): the merge heuristics on hand-computed cases,
the joint loss, the output contract, and one tiny training run.

The registry's model matrix (tests/test_model_matrix.py) checks the detection contract,
gradients, fingerprints and the full-size parameter count; here what is Panoptic FPN's own.
"""

from __future__ import annotations

import pytest
import torch

from course_lib.config import IGNORE_INDEX
from course_lib.data.instances import TouchingWorld
from course_lib.models.multiscale import SemanticFPNHead
from course_lib.models.panoptic import (
    PanopticFPN,
    merge_instances_and_stuff,
    panoptic_fpn_prediction,
)
from course_lib.models.rcnn import MaskRCNN

VOID = IGNORE_INDEX * 1000


def row(*values: int) -> torch.Tensor:
    """A 1 x W map (the merge works on any [H, W]; one row keeps the cases readable)."""
    return torch.tensor([values], dtype=torch.long)


def masks(*rows: tuple[int, ...]) -> torch.Tensor:
    return torch.tensor([[r] for r in rows], dtype=torch.bool)  # [D, 1, W]


def merge(scores, labels, instance_masks, stuff, **kw) -> list[int]:
    out = merge_instances_and_stuff(torch.tensor(scores), torch.tensor(labels), instance_masks,
                                    stuff, **kw)
    return out[0].tolist()


# ------------------------------------------------------------------ the merge, by hand
def test_overlap_rule_score_threshold_and_void() -> None:
    # A (0.9, class 1) takes pixels 0-1. B (0.8, class 2): 1 of its 3 pixels taken (1/3 <= 0.5)
    # -> kept on its free pixels 2-3. C (0.7): 2 of 3 taken (> 0.5) -> dropped. D (0.3) is
    # below the score threshold. Pixel 4: stuff class 0; pixel 5: "other" (void) -> void.
    got = merge([0.9, 0.8, 0.7, 0.3], [1, 2, 1, 2],
                masks((1, 1, 0, 0, 0, 0), (0, 1, 1, 1, 0, 0), (1, 1, 1, 0, 0, 0),
                      (0, 0, 0, 0, 1, 1)),
                row(0, 0, 0, 0, 0, IGNORE_INDEX), stuff_area=1)
    assert got == [1001, 1001, 2002, 2002, 0, VOID]


def test_score_order_not_list_order_and_exactly_half_is_kept() -> None:
    # listed low score first: Y (0.95) is taken first and numbered 1; X then lies exactly half
    # (2 of 4) on Y's pixels: not more than 0.5, so it keeps its two free pixels.
    got = merge([0.6, 0.95], [1, 2], masks((1, 1, 1, 1, 0, 0), (0, 0, 1, 1, 1, 1)),
                row(0, 0, 0, 0, 0, 0), stuff_area=1)
    assert got == [1002, 1002, 2001, 2001, 2001, 2001]
    # a stricter overlap threshold drops X: its pixels fall back to the stuff (area 2 >= 1)
    got = merge([0.6, 0.95], [1, 2], masks((1, 1, 1, 1, 0, 0), (0, 0, 1, 1, 1, 1)),
                row(0, 0, 0, 0, 0, 0), stuff_area=1, overlap_threshold=0.4)
    assert got == [0, 0, 2001, 2001, 2001, 2001]


def test_stuff_area_counts_free_pixels_only() -> None:
    stuff = row(0, 0, 0, 3, 3, IGNORE_INDEX, 0)
    # no instance: class 0 has 4 pixels (>= 3, kept), class 3 has 2 (< 3, void)
    got = merge([], [], torch.zeros(0, 1, 7, dtype=torch.bool), stuff, stuff_area=3)
    assert got == [0, 0, 0, VOID, VOID, VOID, 0]
    # an instance on pixels 0-1 leaves class 0 two free pixels: below the limit, void now
    got = merge([0.9], [1], masks((1, 1, 0, 0, 0, 0, 0)), stuff, stuff_area=3)
    assert got == [1001, 1001, VOID, VOID, VOID, VOID, VOID]


def test_probabilities_are_binarised_and_empty_masks_skipped() -> None:
    probs = torch.tensor([[[0.9, 0.6, 0.4, 0.0]], [[0.0, 0.0, 0.0, 0.0]]])
    got = merge([0.8, 0.99], [2, 1], probs, row(0, 0, 0, 0), stuff_area=1)
    assert got == [2001, 2001, 0, 0]


def test_merge_refuses_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match=r"\[D, H, W\]"):
        merge_instances_and_stuff(torch.ones(1), torch.ones(1, dtype=torch.long),
                                  torch.ones(1, 3, 3, dtype=torch.bool), torch.zeros(4, 4).long())
    with pytest.raises(ValueError, match="one score and label per mask"):
        merge_instances_and_stuff(torch.ones(2), torch.ones(1, dtype=torch.long),
                                  torch.ones(1, 3, 3, dtype=torch.bool), torch.zeros(3, 3).long())


# ------------------------------------------------------------------ the model
def tiny(**kw) -> PanopticFPN:
    torch.manual_seed(0)
    return PanopticFPN(num_classes=4, width=4, pyramid_channels=8, representation=16,
                       mask_channels=8, semantic_channels=8, **kw)


def touching(n: int = 2, size: int = 48) -> tuple[list[torch.Tensor], list[dict]]:
    world = TouchingWorld(n, image_size=size, seed=0, split="train")
    items = [world[i] for i in range(n)]
    return [x for x, _ in items], [t for _, t in items]


def test_full_is_torchvision_mask_rcnn_plus_the_paper_semantic_head() -> None:
    with torch.device("meta"):
        model, rcnn = PanopticFPN(full=True), MaskRCNN(full=True)
        head = SemanticFPNHead(256, 128, 2, (4, 8, 16, 32))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(rcnn) == 44_401_393  # torchvision's maskrcnn_resnet50_fpn
    assert count(model) == count(rcnn) + count(head) == 46_025_459


def test_semantic_labels_map_stuff_in_order_and_things_to_other() -> None:
    model = tiny(stuff_classes=(0, 3))
    labels = torch.tensor([0, 1, 2, 3, IGNORE_INDEX])
    assert model.to_semantic[labels].tolist() == [0, 2, 2, 1, IGNORE_INDEX]
    assert model.semantic_head.classifier.out_channels == 3


def test_joint_loss_is_weighted_and_needs_its_targets() -> None:
    images, targets = touching()
    model = tiny().train()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                           "loss_rpn_box_reg", "loss_semantic"}
    torch.manual_seed(1)
    half = model(images, targets)["loss_semantic"]
    model.semantic_weight, model.instance_weight = 1.0, 0.0
    torch.manual_seed(1)
    full = model(images, targets)
    assert torch.allclose(full["loss_semantic"], 2 * half)  # λs scales the semantic loss
    assert all(float(v.detach()) == 0 for k, v in full.items() if k != "loss_semantic")  # λi = 0
    # with one stuff class the semantic target follows from the instance masks
    no_semantic = [{k: v for k, v in t.items() if k != "semantic"} for t in targets]
    torch.manual_seed(1)
    assert torch.allclose(model(images, no_semantic)["loss_semantic"], full["loss_semantic"])
    with pytest.raises(ValueError, match="lacks 'semantic'"):
        tiny(stuff_classes=(0, 3)).train()(images, no_semantic)
    with pytest.raises(ValueError, match="thing classes"):
        tiny(stuff_classes=(0, 2)).train()(images, targets)  # squares (2) are things here
    bad = [{**t, "semantic": t["semantic"][:-1]} for t in targets]
    with pytest.raises(ValueError, match="'semantic' must be integer class ids"):
        model(images, bad)


def test_constructor_refuses_bad_stuff_classes() -> None:
    for stuff in ((1,), (0, 0), (0, 9), (0, 1, 2, 3)):
        with pytest.raises(ValueError, match="stuff_classes"):
            tiny(stuff_classes=stuff)


def test_eval_output_and_panoptic_ids_at_an_odd_size() -> None:
    model = tiny().eval()
    with torch.no_grad():
        out = model([torch.rand(3, 45, 37), torch.rand(3, 45, 37)])
    assert tuple(out[0]["semantic"].shape) == (2, 45, 37)
    panoptic = panoptic_fpn_prediction(out, (0,), score_threshold=0.0, stuff_area=1)
    assert tuple(panoptic.shape) == (2, 45, 37)
    classes = set((panoptic // 1000).unique().tolist())
    assert classes <= {0, 1, 2, 3, IGNORE_INDEX}
    with pytest.raises(ValueError, match="stuff classes"):
        panoptic_fpn_prediction(out, (0, 3))


def test_overfits_two_images() -> None:
    """A few Adam steps on two touching-world images: the joint loss halves and the semantic
    branch separates things from stuff on them."""
    images, targets = touching(2, 32)
    model = tiny()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss = sum(model.train()(images, targets).values())
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    with torch.no_grad():
        out = model.eval()(images)
    for d, t in zip(out, targets, strict=True):
        accuracy = (d["semantic"].argmax(0) == model.to_semantic[t["semantic"]]).float().mean()
        assert accuracy > 0.9
