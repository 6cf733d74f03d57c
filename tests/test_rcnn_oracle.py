"""Mask R-CNN against torchvision: every part, and the whole model with torchvision's weights."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet50
from torchvision.models.detection import MaskRCNN as TorchvisionMaskRCNN
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchvisionAnchors
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from course_lib.models import get_spec
from course_lib.models.rcnn import (
    AnchorGenerator,
    BoxCoder,
    MaskRCNN,
    Matcher,
    MultiScaleRoIPool,
    load_torchvision_state_dict,
    paste_masks,
    torchvision_key,
)

PAPER_PARAMS = 44_401_393  # torchvision's maskrcnn_resnet50_fpn (frozen BatchNorm), 91 classes


def _random_boxes(n: int, size: int = 200, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size * 0.8
    wh = torch.rand(n, 2, generator=g) * size * 0.5 + 2
    return torch.cat([xy, xy + wh], 1)


def test_parameter_counts_equal_torchvision() -> None:
    with torch.device("meta"):
        ours = MaskRCNN(full=True)
        ours_bn = MaskRCNN(full=True, norm="bn")
        theirs_bn = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ours) == PAPER_PARAMS == get_spec("mask_rcnn").full_params
    # with trainable BatchNorm (torchvision's weights=None, weights_backbone=None build)
    assert count(ours_bn) == count(theirs_bn) == 44_454_513


def test_anchors_equal_torchvision() -> None:
    sizes, ratios = ((32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 3
    ours = AnchorGenerator(sizes, ratios)
    theirs = TorchvisionAnchors(sizes, ratios)
    feats = [torch.zeros(2, 4, 25, 34), torch.zeros(2, 4, 13, 17), torch.zeros(2, 4, 7, 9)]
    images = ImageList(torch.zeros(2, 3, 100, 136), [(100, 136), (90, 120)])
    expected = theirs(images, feats)[0]
    got = ours((100, 136), [f.shape[-2:] for f in feats])
    assert torch.equal(got, expected)


def test_box_coder_and_matcher_equal_torchvision() -> None:
    refs, boxes = _random_boxes(50, seed=1), _random_boxes(50, seed=2)
    for weights in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)):
        ours, theirs = BoxCoder(weights), det_utils.BoxCoder(weights)
        deltas = ours.encode(boxes, refs)
        torch.testing.assert_close(deltas, theirs.encode([boxes], [refs])[0])
        torch.testing.assert_close(ours.decode(deltas, refs)[:, 0], boxes, rtol=1e-5, atol=1e-3)
        many = torch.randn(50, 12)  # 3 classes, class-specific deltas
        torch.testing.assert_close(ours.decode(many, refs), theirs.decode(many, [refs]))
    iou = torch.rand(7, 300)
    iou[2, 5] = iou[4, 9] = 0.99
    for low_quality in (True, False):
        ours_m = Matcher(0.7, 0.3, low_quality)
        theirs_m = det_utils.Matcher(0.7, 0.3, low_quality)
        assert torch.equal(ours_m(iou), theirs_m(iou))


def test_multiscale_roi_align_equals_torchvision() -> None:
    g = torch.Generator().manual_seed(0)
    feats = {k: torch.randn(2, 8, 256 // s, 256 // s, generator=g)
             for k, s in zip("0123", (4, 8, 16, 32), strict=True)}
    boxes = [_random_boxes(30, 256, seed=3), _random_boxes(20, 256, seed=4)]
    theirs = MultiScaleRoIAlign(list("0123"), 7, 2)(feats, boxes, [(256, 256), (256, 256)])
    ours = MultiScaleRoIPool((4, 8, 16, 32), 7, 2)(list(feats.values()), boxes)
    assert torch.equal(ours, theirs)
    levels = MultiScaleRoIPool((4, 8, 16, 32), 7).levels([torch.tensor([[0.0, 0, 224, 224],
                                                                         [0, 0, 112, 112],
                                                                         [0, 0, 20, 20]])])
    assert levels.tolist() == [2, 1, 0]  # FPN Eq. 1: a 224² RoI reads P4, 112² P3, tiny P2


def test_paste_masks_equals_torchvision() -> None:
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(12, 1, 28, 28, generator=g)
    boxes = _random_boxes(12, 90, seed=5) - 3  # some boxes stick out of the image
    assert torch.equal(paste_masks(masks, boxes, 90, 100),
                       paste_masks_in_image(masks, boxes, (90, 100)))


def test_key_map_is_documented_and_complete() -> None:
    with torch.device("meta"):
        theirs = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
        ours = MaskRCNN(full=True, norm="bn")
    mapped = {torchvision_key(k) for k in theirs.state_dict()}
    assert mapped == set(ours.state_dict())
    assert torchvision_key("rpn.head.cls_logits.weight") == "rpn.head.objectness.weight"
    assert torchvision_key("backbone.fpn.inner_blocks.2.0.bias") == "pyramid.lateral.2.bias"


def _calibrated_torchvision(images: list[torch.Tensor], **kw: object) -> TorchvisionMaskRCNN:
    """torchvision's Mask R-CNN (ResNet-50-FPN, frozen BatchNorm, weights=None) whose random
    backbone gets data-dependent BatchNorm statistics, so that its features stay normalised
    and the heads produce scored detections with masks to compare."""
    torch.manual_seed(0)
    model = TorchvisionMaskRCNN(
        _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3), num_classes=91, **kw)

    def calibrate(module: torch.nn.Module, args: tuple) -> None:
        module.running_mean.copy_(args[0].mean((0, 2, 3)))
        module.running_var.copy_(args[0].var((0, 2, 3)))

    hooks = [m.register_forward_pre_hook(calibrate) for m in model.backbone.body.modules()
             if isinstance(m, FrozenBatchNorm2d)]
    model.eval()
    with torch.no_grad():
        model.backbone.body(model.transform(images)[0].tensors)
    for h in hooks:
        h.remove()
    return model


@pytest.mark.slow
def test_same_detections_as_torchvision_with_its_weights() -> None:
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 240, 320, generator=g), torch.rand(3, 200, 260, generator=g)]
    kw = {"min_size": 320, "max_size": 533, "box_score_thresh": 0.0}
    theirs = _calibrated_torchvision(images, **kw)
    ours = MaskRCNN(full=True, **kw).eval()
    load_torchvision_state_dict(ours, theirs.state_dict())
    with torch.no_grad():
        expected, got = theirs(images), ours(images)
    for e, o in zip(expected, got, strict=True):
        assert len(e["boxes"]) == 100  # a full set of detections, not an empty comparison
        assert torch.equal(o["labels"], e["labels"])
        for key in ("boxes", "scores", "masks"):
            torch.testing.assert_close(o[key], e[key], atol=1e-4, rtol=0)


def test_oracle_comparison_can_fail() -> None:
    """A wrong key map (objectness and deltas swapped) must be refused or change the output."""
    with torch.device("meta"):
        ours = MaskRCNN(full=True)
        theirs = TorchvisionMaskRCNN(
            _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3), num_classes=91)
    state = theirs.state_dict()
    broken = dict(state)
    broken["rpn.head.cls_logits.weight"] = state["rpn.head.bbox_pred.weight"]
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_torchvision_state_dict(ours, broken)
