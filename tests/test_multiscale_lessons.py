"""Pieces used by notebook 09 (multiscale): per-object IoU by object size, and the FPN
ablations (head on chosen pyramid levels, no top-down path)."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch

from course_lib.metrics import instance_iou, iou_by_object_size
from course_lib.models import build_model
from course_lib.models.multiscale import FPN, FeaturePyramid, SemanticFPNHead


def _scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One 12x12 image: object 1 (class 4, 2x2 at rows/cols 2-3), object 2 (class 4, 3x3 at
    rows/cols 8-10), object 3 (class 5, 1x4 at row 0, cols 6-9); background class 0."""
    target = torch.zeros(1, 12, 12, dtype=torch.long)
    ids = torch.zeros(1, 12, 12, dtype=torch.long)
    target[0, 2:4, 2:4], ids[0, 2:4, 2:4] = 4, 1
    target[0, 8:11, 8:11], ids[0, 8:11, 8:11] = 4, 2
    target[0, 0, 6:10], ids[0, 0, 6:10] = 5, 3
    return target, ids, target.clone()


def test_instance_iou_hand_computed() -> None:
    target, ids, pred = _scene()
    pred[0, 4, 2:4] = 4  # object 1 spills 2 pixels below itself: 2 false positives
    pred[0, 3, 3] = 0  # ... and misses one of its own pixels
    pred[0, 11, 0] = 4  # far from every class-4 object's window: counted for none
    pred[0, 0, 6:8] = 0  # object 3 half found
    out = instance_iou(pred, target, ids)
    torch.testing.assert_close(out["iou"], torch.tensor([3 / 6, 1.0, 2 / 4], dtype=torch.float64))
    torch.testing.assert_close(out["recall"], torch.tensor([3 / 4, 1.0, 0.5], dtype=torch.float64))
    assert out["area"].tolist() == [4, 9, 4]
    assert out["label"].tolist() == [4, 4, 5]
    assert out["image"].tolist() == [0, 0, 0]
    # logits give the same as their argmax
    logits = torch.nn.functional.one_hot(pred, 6).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(instance_iou(logits, target, ids)["iou"], out["iou"])


def test_instance_iou_neighbour_of_same_class_is_not_a_false_positive() -> None:
    target, ids, pred = _scene()
    ids[0, 8:11, 8:11] = 0
    target[0, 5, 2:4] = 4  # a second class-4 object right below object 1 ...
    ids[0, 5, 2:4] = 2
    pred = target.clone()  # ... predicted perfectly: no FP for object 1
    assert instance_iou(pred, target, ids)["iou"][:2].tolist() == [1.0, 1.0]
    pred[0, 4, 2:4] = 4  # the gap between them filled: 2 FP for both
    torch.testing.assert_close(instance_iou(pred, target, ids)["iou"][:2],
                               torch.tensor([4 / 6, 2 / 4], dtype=torch.float64))


def _oracle(pred, target, ids, expand=0.5):
    """Object-by-object loop (the definition, written plainly)."""
    ious = []
    for n in range(target.shape[0]):
        for k in range(1, int(ids[n].max()) + 1):
            m = ids[n] == k
            if not m.any():
                continue
            c = int(target[n][m][0])
            ys, xs = m.nonzero(as_tuple=True)
            y0, y1, x0, x1 = ys.min().item(), ys.max().item(), xs.min().item(), xs.max().item()
            g = max(2, math.ceil(expand * max(y1 - y0 + 1, x1 - x0 + 1)))
            win = torch.zeros_like(m)
            win[max(0, y0 - g):y1 + g + 1, max(0, x0 - g):x1 + g + 1] = True
            tp = (m & (pred[n] == c)).sum().item()
            fp = ((pred[n] == c) & (target[n] != c) & (target[n] != 255) & win).sum().item()
            ious.append(tp / (m.sum().item() + fp))
    return torch.tensor(ious, dtype=torch.float64)


def test_instance_iou_matches_a_plain_loop_on_shapes_world() -> None:
    from course_lib.data.synthetic import ShapesWorld

    data = ShapesWorld(6, image_size=48, split="val", target="all")
    target = torch.stack([data[i]["mask"] for i in range(6)])
    ids = torch.stack([data[i]["instance_ids"] for i in range(6)])
    torch.manual_seed(0)
    pred = torch.where(torch.rand(target.shape) < 0.3, torch.randint(0, 12, target.shape),
                       target)
    pred[:, :2] = 4  # a band of false "disk" pixels at the top
    target[0, :3, :3] = 255  # some void pixels: never a false positive
    expected = _oracle(pred, target, ids)
    assert len(expected) > 10
    torch.testing.assert_close(instance_iou(pred, target, ids)["iou"], expected)
    # the comparison can fail: without the window every class-c pixel would count
    assert not torch.allclose(instance_iou(pred, target, ids, expand=100.0)["iou"], expected)


def test_iou_by_object_size_buckets_and_filters() -> None:
    target, ids, pred = _scene()  # areas 4, 9, 4 pixels of 144
    pred[0, 0, 6:8] = 0  # object 3 (class 5) half found
    out = iou_by_object_size(pred, target, ids, bounds=(5 / 144,), names=("small", "large"))
    assert out["small"] == {"iou": 0.75, "recall": 0.75, "objects": 2}
    assert out["large"] == {"iou": 1.0, "recall": 1.0, "objects": 1}
    assert out["all"]["objects"] == 3
    only4 = iou_by_object_size(pred, target, ids, bounds=(5 / 144,), names=("s", "l"),
                               classes=(4,))
    assert only4["s"]["iou"] == 1.0 and only4["s"]["objects"] == 1
    empty = iou_by_object_size(pred, target, ids, bounds=(0.5,), names=("s", "l"))
    assert empty["l"]["objects"] == 0 and math.isnan(empty["l"]["iou"])


def test_object_metrics_reject_bad_input() -> None:
    target, ids, pred = _scene()
    with pytest.raises(ValueError, match="one name per bucket"):
        iou_by_object_size(pred, target, ids, bounds=(0.1,), names=("a", "b", "c"))
    with pytest.raises(ValueError, match="increasing"):
        iou_by_object_size(pred, target, ids, bounds=(0.2, 0.1))
    with pytest.raises(ValueError, match="one shape"):
        instance_iou(pred[..., :5], target, ids)
    with pytest.raises(ValueError, match=">= 0"):
        instance_iou(pred, target, -ids)
    none = instance_iou(pred, target, torch.zeros_like(ids))
    assert none["iou"].numel() == 0


# --------------------------------------------------------------------------------------
# FPN ablations
# --------------------------------------------------------------------------------------
def _features(channels=(8, 16, 32, 64), size=24):
    sizes = [size, size // 2, size // 4, size // 8]
    return OrderedDict((f"c{i + 2}", torch.randn(1, c, s, s))
                       for i, (c, s) in enumerate(zip(channels, sizes, strict=True)))


def test_top_down_carries_coarse_information_to_the_fine_level() -> None:
    torch.manual_seed(0)
    feats = _features()
    changed = OrderedDict(feats)
    changed["c5"] = torch.randn_like(feats["c5"])
    with_td = FeaturePyramid([8, 16, 32, 64], 16)
    without = FeaturePyramid([8, 16, 32, 64], 16, top_down=False)
    without.load_state_dict(with_td.state_dict())
    assert not torch.allclose(with_td(feats)["c2"], with_td(changed)["c2"])
    torch.testing.assert_close(without(feats)["c2"], without(changed)["c2"])  # C5 unseen
    torch.testing.assert_close(without(feats)["c5"], with_td(feats)["c5"])  # top level: same


def test_fpn_head_on_chosen_levels() -> None:
    head = SemanticFPNHead(16, 8, 5, strides=(4, 8, 16, 32), levels=(3,))
    assert len(head.branches) == 1 and len(head.branches[0]) == 3  # P5: 3 x (conv, x2)
    with pytest.raises(ValueError, match="levels"):
        SemanticFPNHead(16, 8, 5, strides=(4, 8, 16, 32), levels=(4,))
    torch.manual_seed(0)
    coarse = FPN(num_classes=4, width=4, pyramid_channels=16, segmentation_channels=8,
                 levels=("c5",))
    x = torch.rand(2, 3, 45, 61)
    out = coarse(x)
    assert out.shape == (2, 4, 45, 61)
    out.square().mean().backward()
    # the head reads P5 only: the finer laterals get no gradient, the coarsest does
    assert coarse.pyramid.lateral[0].weight.grad is None
    assert coarse.pyramid.lateral[3].weight.grad.abs().sum() > 0
    fine = build_model("fpn", num_classes=4, width=4, levels=["c2"], top_down=False).eval()
    assert fine.levels == ("c2",) and not fine.pyramid.top_down
    with torch.no_grad():
        assert fine(x).shape == (2, 4, 45, 61)
    with pytest.raises(ValueError, match="levels"):
        FPN(levels=("p7",))
    with pytest.raises(ValueError, match="levels"):
        FPN(levels=())


def test_head_logits_are_the_sum_of_the_level_contributions() -> None:
    torch.manual_seed(0)
    model = FPN(num_classes=3, width=4, pyramid_channels=16, segmentation_channels=8).eval()
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        pyramid = list(model.pyramid(model.backbone(x)).values())
        branches = model.head.branch_outputs(pyramid)
        assert len(branches) == 4 and all(b.shape == (1, 8, 10, 10) for b in branches)
        weight, bias = model.head.classifier.weight, model.head.classifier.bias
        parts = [torch.nn.functional.conv2d(b, weight) for b in branches]
        torch.testing.assert_close(sum(parts) + bias.view(1, -1, 1, 1), model.head(pyramid),
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="expects 4 levels"):
        model.head.branch_outputs(pyramid[:3])


def test_head_norm_ablation() -> None:
    bn = FPN(num_classes=3, width=4, pyramid_channels=16, segmentation_channels=8,
             head_norm="bn")
    kinds = torch.nn.BatchNorm2d | torch.nn.GroupNorm
    norms = [m for m in bn.head.modules() if isinstance(m, kinds)]
    assert len(norms) == 7 and all(isinstance(m, torch.nn.BatchNorm2d) for m in norms)
    with pytest.raises(ValueError, match="norm"):
        FPN(head_norm="ln")
    # GroupNorm uses each image's own statistics: an image's output depends on the far side
    # of the map; BatchNorm in eval mode does not (the stride-4 stage alone, no top-down)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64)
    far = x.clone()
    far[..., 48:] = torch.rand(1, 3, 64, 16)  # change only the right quarter of the image
    for norm, leaks in (("gn", True), ("bn", False)):
        model = FPN(num_classes=3, width=4, pyramid_channels=16, segmentation_channels=8,
                    levels=("c2",), top_down=False, head_norm=norm).eval()
        with torch.no_grad():
            a, b = model(x)[..., :16], model(far)[..., :16]  # the left quarter
        assert (not torch.allclose(a, b, atol=1e-6)) == leaks, norm
