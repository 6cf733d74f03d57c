"""Mask R-CNN and PANet of course_lib.models.rcnn: the detection contract, training, PANet."""

from __future__ import annotations

import pytest
import torch

from course_lib.data.instances import TouchingWorld
from course_lib.metrics.average_precision import coco_average_precision
from course_lib.models import build_model, get_spec, list_models
from course_lib.models.rcnn import (
    BottomUpPath,
    MaskRCNN,
    PANet,
    mask_round_trip,
    round_trip_iou,
)
from course_lib.models.rcnn.training import detect, train_detector

TINY = get_spec("mask_rcnn").test_kwargs
LOSSES = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}


def _batch(n: int = 2, size: int = 64, seed: int = 0) -> tuple[list, list]:
    world = TouchingWorld(n, image_size=size, seed=seed)
    samples = [world[i] for i in range(n)]
    return [s[0] for s in samples], [{k: s[1][k] for k in ("boxes", "labels", "masks")}
                                     for s in samples]


def _tiny(name: str = "mask_rcnn", **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, **{**get_spec(name).test_kwargs, "num_classes": 3, **kw})


def test_registered_as_detection_models() -> None:
    assert {"mask_rcnn", "panet"} <= set(list_models("rcnn"))
    for name in ("mask_rcnn", "panet"):
        spec = get_spec(name)
        assert spec.output == "detections" and spec.family == "rcnn"
    assert "He" in get_spec("mask_rcnn").paper and "Liu" in get_spec("panet").paper


@pytest.mark.parametrize("name", ["mask_rcnn", "panet"])
def test_training_returns_the_five_losses_and_reaches_every_parameter(name: str) -> None:
    model = _tiny(name).train()
    images, targets = _batch()
    images = [im.clone().requires_grad_(True) for im in images]
    losses = model(images, targets)
    assert set(losses) == LOSSES
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    assert all(im.grad is not None and torch.isfinite(im.grad).all() for im in images)


@pytest.mark.parametrize("in_channels", [1, 4])
def test_eval_output_contract_and_other_channel_counts(in_channels: int) -> None:
    model = _tiny(in_channels=in_channels).eval()
    images = [torch.rand(in_channels, 48, 64), torch.rand(in_channels, 45, 45)]  # odd size
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for d, im in zip(out, images, strict=True):
        assert set(d) == {"boxes", "labels", "scores", "masks"}
        n = len(d["boxes"])
        assert d["boxes"].shape == (n, 4) and d["scores"].shape == (n,)
        assert d["labels"].dtype == torch.int64 and d["masks"].shape == (n, 1, *im.shape[-2:])
        assert bool(((d["labels"] >= 1) & (d["labels"] < 3)).all())
        assert bool((d["boxes"][:, 2:] <= torch.tensor(im.shape[-2:]).flip(0)).all())
    with torch.no_grad():  # a [N, C, H, W] batch is a list of images too
        batch = model(torch.rand(2, in_channels, 32, 48))
    assert len(batch) == 2


def test_eval_is_deterministic() -> None:
    model = _tiny().eval()
    images, _ = _batch()
    with torch.no_grad():
        a, b = model(images), model(images)
    for x, y in zip(a, b, strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)


def test_an_image_without_objects_trains() -> None:
    model = _tiny().train()
    images, targets = _batch()
    targets[1] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
                  "masks": torch.zeros(0, 64, 64, dtype=torch.uint8)}
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        MaskRCNN(num_classes=1)
    with pytest.raises(ValueError, match="roi_op"):
        MaskRCNN(roi_op="warp")
    with pytest.raises(ValueError, match="width must be positive"):
        MaskRCNN(width=0)
    model = _tiny()
    images, targets = _batch()
    with pytest.raises(ValueError, match=r"image 0 must be \[3, H, W\]"):
        model.eval()([torch.rand(1, 32, 32)])
    model.train()
    with pytest.raises(ValueError, match="one target dict per image"):
        model(images)
    bad = [dict(targets[0], labels=targets[0]["labels"] + 5), targets[1]]
    with pytest.raises(ValueError, match=r"labels must lie in 1..2"):
        model(images, bad)
    bad = [dict(targets[0], masks=targets[0]["masks"][:, :10]), targets[1]]
    with pytest.raises(ValueError, match="masks must be"):
        model(images, bad)
    flat = targets[0]["boxes"].clone()
    flat[0, 2] = flat[0, 0]
    with pytest.raises(ValueError, match="no positive width"):
        model(images, [dict(targets[0], boxes=flat), targets[1]])


def test_sizes_come_from_one_table_and_explicit_values_win() -> None:
    with torch.device("meta"):
        paper = MaskRCNN(full=True)
        narrow = MaskRCNN(full=True, width=32, pyramid_channels=64)
    assert paper.sizes.min_size == 800 and paper.sizes.backbone == "resnet50"
    assert paper.pyramid.lateral[0].out_channels == 256
    assert narrow.sizes.width == 32 and narrow.pyramid.lateral[0].out_channels == 64
    assert narrow.sizes.representation == 1024  # the rest of the paper's row


def test_overfits_one_batch() -> None:
    """A few dozen steps on two images: the masks of those images are found (mask AP50)."""
    images, targets = _batch(2, 64, seed=3)
    model = _tiny(width=8, pyramid_channels=16, representation=64, mask_channels=16)
    data = list(zip(images, targets, strict=True))
    history = train_detector(model, data, steps=120, batch_size=2, lr=3e-3, optimizer="adamw",
                             warmup=10, progress=False, seed=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    ap = coco_average_precision(detect(model, images), targets)
    assert ap["AP50"] > 0.5, ap


def test_panet_bottom_up_path_shapes() -> None:
    path = BottomUpPath(8, 4)
    pyramid = [torch.rand(2, 8, s, s) for s in (16, 8, 4, 2)]
    out = path(pyramid)
    assert [o.shape for o in out] == [p.shape for p in pyramid]
    assert out[0] is pyramid[0]  # N2 = P2
    with pytest.raises(ValueError, match="expects 4 levels"):
        path(pyramid[:3])


def test_panet_degrades_to_fpn_when_switched_off() -> None:
    plain = _tiny("mask_rcnn").eval()
    off = _tiny("panet", bottom_up=False, adaptive_pooling=False).eval()
    on = _tiny("panet").eval()
    assert set(off.state_dict()) == set(plain.state_dict())
    assert isinstance(on.bottom_up, BottomUpPath) and len(on.roi_heads.box_head.fc6) == 4
    assert len(on.roi_heads.mask_head[0]) == 4  # the mask head's first conv, once per level
    off.load_state_dict(plain.state_dict())
    images, _ = _batch()
    with torch.no_grad():
        a, b = plain(images), off(images)
        pa, pb = plain.features(torch.rand(1, 3, 64, 64)), on.features(torch.rand(1, 3, 64, 64))
    for x, y in zip(a, b, strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert [p.shape for p in pa] == [p.shape for p in pb]  # N2..N6 shaped like P2..P6
    assert isinstance(off, PANet) and off.bottom_up is None


def test_explain_gives_proposals_and_28x28_masks() -> None:
    model = _tiny().eval()
    images, _ = _batch(1)
    info = model.explain(images)
    d = info["detections"][0]
    assert info["masks28"][0].shape == (len(d["boxes"]), 1, 28, 28)
    assert info["proposals"][0].shape[1] == 4 and len(info["levels"][0]) == len(d["boxes"])
    with pytest.raises(RuntimeError, match="eval mode"):
        model.train().explain(images)


def test_roialign_keeps_masks_better_than_roipool() -> None:
    world = TouchingWorld(4, image_size=96, seed=0)
    ious = {}
    for op, snap in (("align", False), ("align", True), ("pool", False)):
        inter = union = 0.0
        for i in range(len(world)):
            masks, boxes = world[i][1]["masks"].bool(), world[i][1]["boxes"]
            back = mask_round_trip(masks, boxes, 16, op, snap=snap) >= 0.5
            inter += float((back & masks).sum())
            union += float((back | masks).sum())
        ious[(op, snap)] = inter / union
    assert ious[("align", False)] > ious[("pool", False)] + 0.05, ious
    assert ious[("align", False)] > ious[("align", True)], ious  # the rounding is what hurts


def test_round_trip_iou_pools_the_objects_of_every_image() -> None:
    world = TouchingWorld(3, image_size=96, seed=2)
    targets = [world[i][1] for i in range(len(world))]
    for op, snap in (("align", False), ("pool", False), ("align", True)):
        inter = union = 0  # the oracle: counts summed over all objects, then one ratio
        for t in targets:
            masks = t["masks"].bool()
            back = mask_round_trip(masks, t["boxes"], 8, op, snap=snap) >= 0.5
            inter += int((back & masks).sum())
            union += int((back | masks).sum())
        assert round_trip_iou(targets, 8, op, snap=snap) == pytest.approx(inter / union, abs=1e-12)
    square = torch.zeros(1, 32, 32, dtype=torch.bool)
    square[0, 8:24, 8:24] = True
    boxes = torch.tensor([[8.0, 8.0, 24.0, 24.0]])
    with pytest.raises(ValueError, match="at least one target"):
        round_trip_iou([], 16)
    with pytest.raises(ValueError, match="needs 'masks' and 'boxes'"):
        round_trip_iou([{"masks": square}], 16)
    with pytest.raises(ValueError, match="no mask pixels"):
        round_trip_iou([{"masks": square & False, "boxes": boxes}], 16)


def test_step_time_benchmark_against_torchvision_runs() -> None:
    from course_lib.bench_torchvision import mask_rcnn_step_ratio

    out = mask_rcnn_step_ratio(size=64, batch=1, repeats=1, backbone="resnet18", device="cpu")
    assert out["ours_ms"] > 0 and out["torchvision_ms"] > 0
    assert out["ratio"] == pytest.approx(out["ours_ms"] / out["torchvision_ms"])
