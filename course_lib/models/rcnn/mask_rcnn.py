"""Mask R-CNN put together (He et al., "Mask R-CNN", ICCV 2017, Fig. 1), and PANet.

Fig. 1 of the paper, read left to right, is :meth:`MaskRCNN.forward`:

1. the image batch: normalised, resized (shorter side 800, longer <= 1333), zero-padded to a
   common size divisible by 32 (:func:`prepare_batch`);
2. the *backbone*: ResNet stages ``c2..c5`` and the feature pyramid ``P2..P5`` (+ ``P6`` by
   max-pooling P5, for the largest anchors) — FPN, Lin et al. 2017; with PANet, the
   bottom-up path ``N2..N5`` on top;
3. the *RPN* proposes RoIs (:mod:`.rpn`);
4. *RoIAlign* cuts every RoI out of its pyramid level (:mod:`.roi_heads`);
5. the *heads*: class + box (Faster R-CNN) and, in parallel, the 28x28 *mask* per class;
6. training: the sum of five losses (RPN objectness + RPN box, class + box + mask);
   inference: boxes and masks scaled back to each input image, each 28x28 mask resized
   into its box and pasted into the image (:func:`paste_masks`).

Inputs and outputs follow torchvision's detection models: ``forward(images, targets)`` with
``images`` a list of ``[C, H, W]`` float tensors in [0, 1] (or one ``[N, C, H, W]`` batch) and,
in training, ``targets`` a list of dicts ``{"boxes": [M, 4] XYXY float, "labels": [M] int64
(1..K-1, 0 is the background), "masks": [M, H, W] 0/1}``; training returns the dict of
losses, eval a list of ``{"boxes", "labels", "scores", "masks" [D, 1, H, W] probabilities}``.

Built in torchvision's configuration (``full=True``: ResNet-50-FPN with frozen BatchNorm, 256
pyramid channels, 91 classes) it has exactly the 44,401,393 parameters of
``maskrcnn_resnet50_fpn`` and, with torchvision's weights loaded through
:func:`load_torchvision_state_dict`, gives the same detections (tested to 1e-4).

Deviations from the paper and torchvision, stated once:

- ``full=False`` (the course default) is small: ResNet-tiny width 16, pyramid 32, box head
  128, mask head 4 x 32 channels, anchors 8..128 px for small images, fewer RoIs; no resizing
  of the input (``min_size=None``: the course feeds images at the size it wants) and
  trainable BatchNorm (a from-scratch backbone; the paper freezes the BatchNorm of its
  ImageNet-pre-trained one, as ``full=True`` does);
- the RoI pooling scale of each level is ``1 / stride`` (see :class:`MultiScaleRoIPool`);
- the box predictor is initialised as in Detectron (see :class:`BoxPredictor`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from .. import register_model
from ..backbones import FEATURE_KEYS, build_backbone
from ..contract import SizeTable
from ..multiscale import FeaturePyramid
from .boxes import AnchorGenerator
from .panet import BottomUpPath
from .roi_heads import (
    ROI_OPS,
    BoxHead,
    BoxPredictor,
    MaskHead,
    MaskPredictor,
    MultiScaleRoIPool,
    RoIHeads,
    paste_masks,
)
from .rpn import RegionProposalNetwork, RPNHead

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class MaskRCNNSizes:
    """Every size of a Mask R-CNN (the paper's values in ``MASK_RCNN_SIZES.paper``)."""

    backbone: str  # a ResNet of course_lib.models.backbones
    width: int  # the backbone's base width (64 in ResNet-50)
    norm: str  # "bn" (trainable BatchNorm) or "frozen_bn" (the paper: frozen statistics)
    pyramid_channels: int  # FPN width (256)
    anchor_sizes: tuple[int, ...]  # one anchor size per level P2..P6 (32..512 px)
    rpn_pre_nms: tuple[int, int]  # (training, testing) best anchors per level before NMS
    rpn_post_nms: tuple[int, int]  # (training, testing) proposals per image after NMS
    rpn_batch: int  # anchors sampled per image for the RPN loss (256)
    roi_batch: int  # RoIs sampled per image for the heads' losses (512)
    representation: int  # width of the box head's two fc layers (1024)
    mask_channels: int  # width of the mask head's convolutions (256)
    mask_convs: int  # number of 3x3 convolutions in the mask head (4)
    detections: int  # detections kept per image (100)
    min_size: int | None  # shorter image side after resizing (800); None: no resizing
    max_size: int | None  # longer side at most (1333)


MASK_RCNN_SIZES = SizeTable(
    small=MaskRCNNSizes(backbone="resnet_tiny", width=16, norm="bn", pyramid_channels=32,
                        anchor_sizes=(8, 16, 32, 64, 128), rpn_pre_nms=(600, 300),
                        rpn_post_nms=(300, 100), rpn_batch=256, roi_batch=64,
                        representation=128, mask_channels=32, mask_convs=4, detections=50,
                        min_size=None, max_size=None),
    paper=MaskRCNNSizes(backbone="resnet50", width=64, norm="frozen_bn", pyramid_channels=256,
                        anchor_sizes=(32, 64, 128, 256, 512), rpn_pre_nms=(2000, 1000),
                        rpn_post_nms=(2000, 1000), rpn_batch=256, roi_batch=512,
                        representation=1024, mask_channels=256, mask_convs=4, detections=100,
                        min_size=800, max_size=1333),
)
NORMS = ("bn", "frozen_bn")


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` by ``torchvision.ops.FrozenBatchNorm2d`` (fixed statistics
    and affine terms, stored as buffers: what the paper does with its pre-trained ResNet)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


# --------------------------------------------------------------------------------------------
# The image batch in, the detections out (torchvision's GeneralizedRCNNTransform)
# --------------------------------------------------------------------------------------------
def resize_scale(height: int, width: int, min_size: int, max_size: float) -> float:
    """The factor that brings the shorter side to ``min_size`` unless the longer one would
    then exceed ``max_size``."""
    return min(float(min_size) / min(height, width), float(max_size) / max(height, width))


def resize_boxes(boxes: torch.Tensor, old: Sequence[int], new: Sequence[int]) -> torch.Tensor:
    """XYXY boxes of an ``old`` (H, W) image in the pixels of the ``new`` size."""
    ratio_h, ratio_w = (torch.tensor(n, dtype=torch.float32, device=boxes.device)
                        / torch.tensor(o, dtype=torch.float32, device=boxes.device)
                        for n, o in zip(new, old, strict=True))
    x0, y0, x1, y1 = boxes.unbind(1)
    return torch.stack((x0 * ratio_w, y0 * ratio_h, x1 * ratio_w, y1 * ratio_h), dim=1)


def prepare_batch(images: Sequence[torch.Tensor], targets: Sequence[dict] | None,
                  mean: torch.Tensor, std: torch.Tensor, min_size: int | None,
                  max_size: int | None, size_divisible: int = 32,
                  ) -> tuple[torch.Tensor, list[tuple[int, int]], list[dict] | None]:
    """Normalise, resize (targets too), zero-pad into one ``[N, C, H', W']`` batch.

    Returns the batch, each image's size after resizing (before padding) and the resized
    targets (new dicts: the caller's are not changed).
    """
    resized, sizes, new_targets = [], [], [] if targets is not None else None
    for i, image in enumerate(images):
        image = (image - mean[:, None, None]) / std[:, None, None]
        h, w = image.shape[-2:]
        target = dict(targets[i]) if targets is not None else None
        if min_size is not None:
            scale = resize_scale(h, w, min_size, math.inf if max_size is None else max_size)
            image = F.interpolate(image[None], scale_factor=scale, mode="bilinear",
                                  recompute_scale_factor=True, align_corners=False)[0]
            if target is not None:
                target["boxes"] = resize_boxes(target["boxes"], (h, w), image.shape[-2:])
                if "masks" in target:
                    masks = target["masks"][:, None].float()
                    target["masks"] = F.interpolate(masks, scale_factor=scale,
                                                    recompute_scale_factor=True)[:, 0].byte()
        resized.append(image)
        sizes.append((int(image.shape[-2]), int(image.shape[-1])))
        if new_targets is not None:
            new_targets.append(target)
    height = int(math.ceil(max(s[0] for s in sizes) / size_divisible) * size_divisible)
    width = int(math.ceil(max(s[1] for s in sizes) / size_divisible) * size_divisible)
    batch = resized[0].new_zeros((len(resized), resized[0].shape[0], height, width))
    for i, image in enumerate(resized):
        batch[i, :, : image.shape[1], : image.shape[2]].copy_(image)
    return batch, sizes, new_targets


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
@register_model("mask_rcnn", family="rcnn", paper="He et al., ICCV 2017", year=2017,
                output="detections", full_params=44_401_393,
                test_kwargs={"width": 4, "pyramid_channels": 8, "representation": 16,
                             "mask_channels": 8})
class MaskRCNN(nn.Module):
    """Mask R-CNN with a ResNet-FPN backbone (He et al. 2017, Fig. 1 and Fig. 4 right).

    Args:
        in_channels: image channels; num_classes: ``K`` *including* the background (class 0;
            91 for COCO, as torchvision). width: the backbone's base width. full: the
            paper's sizes (:data:`MASK_RCNN_SIZES`); every other size argument (see
            :class:`MaskRCNNSizes`) overrides one size of the chosen row.
        bottom_up: PANet's bottom-up path augmentation (N2..N5, :class:`BottomUpPath`).
        adaptive_pooling: PANet's adaptive feature pooling (each RoI from every level).
        roi_op: ``"align"`` (RoIAlign, the paper) or ``"pool"`` (Fast R-CNN's RoIPool).
        box_score_thresh, box_nms_thresh: the detection filter (0.05, 0.5).
        image_mean, image_std: per-channel normalisation (ImageNet's for 3 channels).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 91,
        width: int | None = None,
        full: bool = False,
        backbone: str | None = None,
        norm: str | None = None,
        pyramid_channels: int | None = None,
        anchor_sizes: tuple[int, ...] | None = None,
        rpn_pre_nms: tuple[int, int] | None = None,
        rpn_post_nms: tuple[int, int] | None = None,
        rpn_batch: int | None = None,
        roi_batch: int | None = None,
        representation: int | None = None,
        mask_channels: int | None = None,
        mask_convs: int | None = None,
        detections: int | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        bottom_up: bool = False,
        adaptive_pooling: bool = False,
        roi_op: str = "align",
        box_score_thresh: float = 0.05,
        box_nms_thresh: float = 0.5,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if in_channels < 1 or num_classes < 2:
            raise ValueError(f"{name}: needs in_channels >= 1 and num_classes >= 2 (the "
                             f"background is class 0), got in_channels={in_channels}, "
                             f"num_classes={num_classes}")
        sizes = MASK_RCNN_SIZES.resolve(
            name, full, backbone=backbone, width=width, norm=norm,
            pyramid_channels=pyramid_channels, anchor_sizes=anchor_sizes,
            rpn_pre_nms=rpn_pre_nms, rpn_post_nms=rpn_post_nms, rpn_batch=rpn_batch,
            roi_batch=roi_batch, representation=representation, mask_channels=mask_channels,
            mask_convs=mask_convs, detections=detections, min_size=min_size,
            max_size=max_size)
        if sizes.norm not in NORMS:
            raise ValueError(f"{name}: norm must be one of {NORMS}, got {sizes.norm!r}")
        if not sizes.backbone.startswith("resnet"):
            raise ValueError(f"{name}: the backbone must be a ResNet, got {sizes.backbone!r}")
        if len(sizes.anchor_sizes) != len(FEATURE_KEYS) + 1:
            raise ValueError(f"{name}: one anchor size per level P2..P6 (5), got "
                             f"{sizes.anchor_sizes}")
        if roi_op not in ROI_OPS:
            raise ValueError(f"{name}: roi_op must be one of {ROI_OPS}, got {roi_op!r}")
        mean = image_mean or (IMAGENET_MEAN if in_channels == 3 else (0.449,) * in_channels)
        std = image_std or (IMAGENET_STD if in_channels == 3 else (0.226,) * in_channels)
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(f"{name}: image_mean and image_std need {in_channels} values, "
                             f"got {len(mean)} and {len(std)}")
        self.in_channels, self.num_classes, self.sizes = in_channels, num_classes, sizes
        self.register_buffer("image_mean", torch.tensor(mean, dtype=torch.float32), False)
        self.register_buffer("image_std", torch.tensor(std, dtype=torch.float32), False)

        # backbone: ResNet c2..c5 → FPN P2..P5 (→ PANet N2..N5); P6 = max-pool(P5)
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width)
        if sizes.norm == "frozen_bn":
            freeze_batchnorm(self.backbone)
        channels = sizes.pyramid_channels
        self.pyramid = FeaturePyramid([self.backbone.channels[k] for k in FEATURE_KEYS],
                                      channels)
        self.bottom_up = BottomUpPath(channels, len(FEATURE_KEYS)) if bottom_up else None
        strides = [self.backbone.strides[k] for k in FEATURE_KEYS]

        # RPN: three aspect ratios, one size per level (FPN Sec. 4.1)
        anchors = AnchorGenerator([(s,) for s in sizes.anchor_sizes],
                                  [(0.5, 1.0, 2.0)] * len(sizes.anchor_sizes))
        self.rpn = RegionProposalNetwork(
            anchors, RPNHead(channels, anchors.num_anchors_per_location()[0]),
            pre_nms_top_n=sizes.rpn_pre_nms, post_nms_top_n=sizes.rpn_post_nms,
            batch_size_per_image=sizes.rpn_batch)

        # RoI heads: 7x7 RoIAlign → 2 fc → class + box; 14x14 RoIAlign → 4 conv → 28x28 masks
        levels = len(strides) if adaptive_pooling else 1
        self.roi_heads = RoIHeads(
            MultiScaleRoIPool(strides, 7, op=roi_op),
            BoxHead(channels * 7 * 7, sizes.representation, levels),
            BoxPredictor(sizes.representation, num_classes),
            MultiScaleRoIPool(strides, 14, op=roi_op),
            MaskHead(channels, [sizes.mask_channels] * sizes.mask_convs, levels),
            MaskPredictor(sizes.mask_channels, sizes.mask_channels, num_classes),
            adaptive_pooling=adaptive_pooling, batch_size_per_image=sizes.roi_batch,
            score_thresh=box_score_thresh, nms_thresh=box_nms_thresh,
            detections_per_img=sizes.detections)

    def features(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """The pyramid the heads read: ``[P2, P3, P4, P5, P6]`` (or ``[N2, .., N5, N6]``)."""
        pyramid = list(self.pyramid(self.backbone(batch)).values())  # C2..C5 → P2..P5
        if self.bottom_up is not None:
            pyramid = self.bottom_up(pyramid)  # PANet: P2..P5 → N2..N5
        return pyramid + [F.max_pool2d(pyramid[-1], 1, 2, 0)]  # P6 for the largest anchors

    def forward(self, images: Sequence[torch.Tensor] | torch.Tensor,
                targets: Sequence[Mapping[str, torch.Tensor]] | None = None,
                ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        images = self._check_images(images)
        if self.training:
            self._check_targets(images, targets)
            return self._run(images, targets)["losses"]
        return self._run(images)["detections"]

    @torch.no_grad()
    def explain(self, images: Sequence[torch.Tensor] | torch.Tensor) -> dict:
        """Eval-mode detections plus what led to them (for the widget and the notebook):
        ``"detections"`` (as ``forward``), ``"proposals"`` (the RPN's, per image, in the input
        image's pixels), ``"sources"`` (per detection, the index of the proposal it was refined
        from), ``"masks28"`` (each detection's ``M x M`` mask probabilities before
        pasting, ``[D, 1, M, M]`` per image) and ``"levels"`` (the pyramid level, 0 = P2, each
        detection's mask was pooled from)."""
        if self.training:
            raise RuntimeError(f"{type(self).__name__}.explain needs eval mode (call .eval())")
        return self._run(self._check_images(images))

    def _run(self, images: list[torch.Tensor],
             targets: Sequence[Mapping[str, torch.Tensor]] | None = None) -> dict:
        original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        sizes = self.sizes
        batch, image_sizes, targets = prepare_batch(
            images, None if targets is None else [dict(t) for t in targets], self.image_mean,
            self.image_std, sizes.min_size, sizes.max_size)  # 1. normalise, resize, pad
        pyramid = self.features(batch)  # 2. backbone + FPN (+ PANet)
        proposals, rpn_losses = self.rpn(batch.shape[-2:], image_sizes, pyramid,
                                         targets)  # 3. RPN
        detections, head_losses = self.roi_heads(pyramid[:-1], proposals, image_sizes,
                                                 targets)  # 4.-5. RoIAlign, heads
        if self.training:  # 6. the five losses (summed by the training loop)
            return {"losses": {**head_losses, **rpn_losses}}
        return self._inference_result(detections, proposals, image_sizes, original_sizes)

    def _inference_result(self, detections: list[dict], proposals: list[torch.Tensor],
                          image_sizes: list[tuple[int, int]],
                          original_sizes: list[tuple[int, int]]) -> dict:
        """Eval mode's output: detections back at each input image's size (boxes rescaled,
        28x28 masks pasted), with the proposals, their sources, the 28x28 masks and the
        pyramid level of each detection for the explorers."""
        levels = self.roi_heads.mask_pooler.levels([d["boxes"] for d in detections])
        result: dict = {"detections": detections, "proposals": [], "sources": [],
                        "masks28": [],
                        "levels": list(levels.split([len(d["boxes"]) for d in detections]))}
        for d, props, resized, original in zip(detections, proposals, image_sizes,
                                               original_sizes, strict=True):
            result["sources"].append(d.pop("proposal"))
            result["masks28"].append(d["masks"])
            result["proposals"].append(resize_boxes(props, resized, original))
            d["boxes"] = resize_boxes(d["boxes"], resized, original)  # 6. back to the input
            d["masks"] = paste_masks(d["masks"], d["boxes"], *original)
        return result

    # -- input checks ---------------------------------------------------------------------
    def _check_images(self, images: Sequence[torch.Tensor] | torch.Tensor
                      ) -> list[torch.Tensor]:
        name = type(self).__name__
        if isinstance(images, torch.Tensor):
            if images.dim() != 4:
                raise ValueError(f"{name}: expected a list of [C, H, W] images or one "
                                 f"[N, C, H, W] batch, got a tensor of shape "
                                 f"{tuple(images.shape)}")
            images = list(images.unbind(0))
        images = list(images)
        if not images:
            raise ValueError(f"{name}: got an empty list of images")
        for i, im in enumerate(images):
            if not isinstance(im, torch.Tensor) or im.dim() != 3 or \
                    im.shape[0] != self.in_channels:
                shape = tuple(im.shape) if isinstance(im, torch.Tensor) else type(im).__name__
                raise ValueError(f"{name}: image {i} must be [{self.in_channels}, H, W], "
                                 f"got {shape}")
            if not im.is_floating_point():
                raise ValueError(f"{name}: image {i} must be float in [0, 1], got {im.dtype}")
        return images

    def _check_targets(self, images: list[torch.Tensor],
                       targets: Sequence[Mapping[str, torch.Tensor]] | None) -> None:
        name = type(self).__name__
        if targets is None or len(targets) != len(images):
            given = "None" if targets is None else f"{len(targets)} targets"
            raise ValueError(f"{name}: training needs one target dict per image "
                             f"({len(images)}), got {given}")
        for i, (im, t) in enumerate(zip(images, targets, strict=True)):
            missing = [k for k in ("boxes", "labels", "masks") if k not in t]
            if missing:
                raise ValueError(f"{name}: target {i} lacks {missing}; it needs boxes [M, 4], "
                                 f"labels [M] and masks [M, H, W]")
            boxes, labels, masks = t["boxes"], t["labels"], t["masks"]
            m = len(labels)
            if not boxes.is_floating_point() or tuple(boxes.shape) != (m, 4):
                raise ValueError(f"{name}: target {i}: boxes must be float [{m}, 4], got "
                                 f"{boxes.dtype} {tuple(boxes.shape)}")
            if labels.dtype != torch.int64:
                raise ValueError(f"{name}: target {i}: labels must be int64, got {labels.dtype}")
            if m and (int(labels.min()) < 1 or int(labels.max()) >= self.num_classes):
                raise ValueError(f"{name}: target {i}: labels must lie in 1..{self.num_classes - 1}"
                                 f" (0 is the background), got {labels.tolist()}")
            if tuple(masks.shape) != (m, *im.shape[-2:]):
                raise ValueError(f"{name}: target {i}: masks must be [{m}, {im.shape[-2]}, "
                                 f"{im.shape[-1]}], got {tuple(masks.shape)}")
            flat = (boxes[:, 2:] <= boxes[:, :2]).any(1)
            if bool(flat.any()):
                bad = torch.where(flat)[0].tolist()
                raise ValueError(f"{name}: target {i}: boxes {bad} have no positive width and "
                                 f"height: {boxes[bad].tolist()}")


@register_model("panet", family="rcnn", paper="Liu et al., CVPR 2018", year=2018,
                output="detections",
                test_kwargs={"width": 4, "pyramid_channels": 8, "representation": 16,
                             "mask_channels": 8},
                full_params=88_250_353)
class PANet(MaskRCNN):
    """PANet (Liu et al. 2018, Fig. 1): Mask R-CNN + bottom-up path augmentation (b) +
    adaptive feature pooling (c). Its fully-connected fusion of the mask branch (e) is
    not built. With both options off it *is* :class:`MaskRCNN` (same parameters, outputs)."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 91,
        width: int | None = None,
        full: bool = False,
        backbone: str | None = None,
        norm: str | None = None,
        pyramid_channels: int | None = None,
        anchor_sizes: tuple[int, ...] | None = None,
        rpn_pre_nms: tuple[int, int] | None = None,
        rpn_post_nms: tuple[int, int] | None = None,
        rpn_batch: int | None = None,
        roi_batch: int | None = None,
        representation: int | None = None,
        mask_channels: int | None = None,
        mask_convs: int | None = None,
        detections: int | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        bottom_up: bool = True,
        adaptive_pooling: bool = True,
        roi_op: str = "align",
        box_score_thresh: float = 0.05,
        box_nms_thresh: float = 0.5,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(in_channels, num_classes, width, full, backbone, norm,
                         pyramid_channels, anchor_sizes, rpn_pre_nms, rpn_post_nms, rpn_batch,
                         roi_batch, representation, mask_channels, mask_convs, detections,
                         min_size, max_size, bottom_up, adaptive_pooling, roi_op,
                         box_score_thresh, box_nms_thresh, image_mean, image_std)


# --------------------------------------------------------------------------------------------
# torchvision's weights
# --------------------------------------------------------------------------------------------
#: torchvision ``maskrcnn_resnet50_fpn`` state-dict key → ours (regular expressions, in order).
TORCHVISION_KEY_MAP: tuple[tuple[str, str], ...] = (
    (r"^backbone\.body\.", "backbone."),
    (r"^backbone\.fpn\.inner_blocks\.(\d+)\.0\.", r"pyramid.lateral.\1."),
    (r"^backbone\.fpn\.layer_blocks\.(\d+)\.0\.", r"pyramid.smooth.\1."),
    (r"^rpn\.head\.conv\.0\.0\.", "rpn.head.conv."),
    (r"^rpn\.head\.cls_logits\.", "rpn.head.objectness."),
    (r"^rpn\.head\.bbox_pred\.", "rpn.head.deltas."),
    (r"^roi_heads\.mask_predictor\.conv5_mask\.", "roi_heads.mask_predictor.deconv."),
    (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", "roi_heads.mask_predictor.logits."),
)


def torchvision_key(key: str) -> str:
    """Our name for a key of torchvision's Mask R-CNN state dict (unchanged if no rule fits)."""
    for pattern, replacement in TORCHVISION_KEY_MAP:
        key = re.sub(pattern, replacement, key)
    return key


def load_torchvision_state_dict(model: MaskRCNN, state_dict: Mapping[str, torch.Tensor]
                                ) -> None:
    """Load a state dict of ``torchvision.models.detection.maskrcnn_resnet50_fpn`` (e.g. its
    COCO weights) into ``model``, built with ``full=True`` (strict: every key must map)."""
    model.load_state_dict({torchvision_key(k): v for k, v in state_dict.items()}, strict=True)


__all__ = ["MaskRCNN", "PANet", "MaskRCNNSizes", "MASK_RCNN_SIZES", "TORCHVISION_KEY_MAP",
           "freeze_batchnorm", "load_torchvision_state_dict", "prepare_batch", "resize_boxes",
           "torchvision_key"]
