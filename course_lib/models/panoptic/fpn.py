"""Panoptic FPN (Kirillov, Girshick, He, Dollár, "Panoptic Feature Pyramid Networks", CVPR 2019).

Fig. 1 of the paper: *one* ResNet-FPN backbone, two branches on its pyramid —

- the **instance branch** is Mask R-CNN (region proposals, RoIAlign, class + box + mask heads);
- the **semantic branch** (Fig. 3) brings every level P2..P5 to stride 4 by stages of 3x3
  conv + GroupNorm + ReLU + x2 bilinear upsampling, sums the four maps, predicts with a 1x1
  convolution and upsamples x4 to the image. It predicts the *stuff* classes plus one
  **"other"** class for every thing pixel (the things are the instance branch's business).

Training sums the two branches' losses (Sec. 3.3): ``L = λi (L_rpn + L_cls + L_box + L_mask)
+ λs L_semantic``; ``λs = 0.5`` is Detectron2's Panoptic FPN default (``SEM_SEG_HEAD.LOSS_WEIGHT``).

Inference merges the two outputs by the paper's heuristics (Sec. 4, "Inference"), which are
:func:`merge_instances_and_stuff`: instances by decreasing score, low scores dropped, an
instance that lies more than half on pixels already taken dropped (else it keeps only its
free pixels), then the remaining pixels get the semantic branch's stuff class where that
stuff region is large enough; "other" pixels and small stuff are void.

Composition, not utilities: the instance branch *is* the course's Mask R-CNN
(:class:`course_lib.models.rcnn.MaskRCNN`, subclassed: same backbone, pyramid, RPN and RoI
heads, same state-dict keys) and the semantic branch *is* the FPN semantic head of
:class:`course_lib.models.multiscale.SemanticFPNHead` — the paper builds its model from
exactly these two, so the course does too rather than copying them.

Deviations, stated once: the course's small sizes by default (Mask R-CNN's small row, a
32-channel semantic branch; ``full=True`` gives ResNet-50-FPN and 128 channels); the semantic
loss is computed at each image's own (unpadded, un-resized) resolution; ``λi`` weights the
RPN's two losses too (the paper's ``λi`` is on the box, class and mask losses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.config import IGNORE_INDEX

from .. import register_model
from ..blocks import resize_to
from ..contract import SizeTable
from ..multiscale import SemanticFPNHead
from ..rcnn.mask_rcnn import MaskRCNN, prepare_batch
from .grouping import LABEL_DIVISOR

SEMANTIC_WEIGHT = 0.5  # λs (Detectron2's Panoptic FPN configs); λi = 1
SCORE_THRESHOLD = 0.5  # instances below this score are dropped before the merge
OVERLAP_THRESHOLD = 0.5  # an instance more than half on taken pixels is dropped
STUFF_AREA = 4096  # Detectron2's stuff-area limit in pixels (COCO-sized images)


@dataclass(frozen=True)
class PanopticFPNSizes:
    semantic_channels: int  # the semantic branch's width (128 in the paper)


PANOPTIC_FPN_SIZES = SizeTable(small=PanopticFPNSizes(32), paper=PanopticFPNSizes(128))


# --------------------------------------------------------------------------------------------
# The merge (the paper's Sec. 4 heuristics), one image
# --------------------------------------------------------------------------------------------
def merge_instances_and_stuff(scores: Tensor, labels: Tensor, masks: Tensor, stuff: Tensor,
                              score_threshold: float = SCORE_THRESHOLD,
                              overlap_threshold: float = OVERLAP_THRESHOLD,
                              stuff_area: int = STUFF_AREA,
                              label_divisor: int = LABEL_DIVISOR,
                              void: int = IGNORE_INDEX) -> Tensor:
    """Panoptic ids [H, W] (``class * label_divisor + instance``, instance 0 for stuff,
    ``void * label_divisor`` for void) from one image's instances and stuff map.

    Args:
        scores, labels: [D] the instances' confidences and (thing) classes.
        masks: [D, H, W] bool (or probabilities, binarised at 0.5).
        stuff: [H, W] long, the semantic branch's stuff class per pixel, ``void`` where it
            says "other" (a thing pixel).
        score_threshold: instances scoring below it are dropped.
        overlap_threshold: an instance whose mask lies on already-taken pixels for more than
            this fraction of its area is dropped; otherwise it takes its free pixels only.
        stuff_area: a stuff class keeps the free pixels it labels only if they are at least
            this many; else they stay void.

    The instances are taken in order of decreasing score and numbered 1, 2, ... in that order
    (a loop over instances, not pixels).
    """
    if masks.dim() != 3 or stuff.dim() != 2 or masks.shape[1:] != stuff.shape:
        raise ValueError(f"masks must be [D, H, W] and stuff [H, W] of the same size, got "
                         f"{tuple(masks.shape)} and {tuple(stuff.shape)}")
    if not len(scores) == len(labels) == len(masks):
        raise ValueError(f"need one score and label per mask, got {len(scores)} scores, "
                         f"{len(labels)} labels, {len(masks)} masks")
    if not 0 <= overlap_threshold <= 1:
        raise ValueError(f"overlap_threshold must be a fraction in [0, 1], got "
                         f"{overlap_threshold}")
    binary = masks if masks.dtype == torch.bool else masks > 0.5
    panoptic = torch.full(stuff.shape, void * label_divisor, dtype=torch.long,
                          device=stuff.device)
    taken = torch.zeros_like(stuff, dtype=torch.bool)
    number = 0
    for i in scores.argsort(descending=True, stable=True).tolist():  # 1. by confidence
        if scores[i] < score_threshold:  # 2. low scores out
            continue
        area = int(binary[i].sum())
        overlap = int((binary[i] & taken).sum())
        if area == 0 or overlap / area > overlap_threshold:  # 3. mostly hidden: out
            continue
        free = binary[i] & ~taken  # the confident instance keeps the contested pixels
        number += 1
        panoptic[free] = int(labels[i]) * label_divisor + number
        taken |= free
    # 4. stuff on the pixels no instance took; small stuff regions and "other" stay void
    left = stuff.where(~taken & (stuff != void), torch.full_like(stuff, void))
    counts = torch.bincount(left.reshape(-1), minlength=void + 1)
    keep = (left != void) & (counts[left] >= stuff_area)
    return torch.where(keep, left * label_divisor, panoptic)


def panoptic_fpn_prediction(detections: Sequence[Mapping[str, Tensor]],
                            stuff_classes: Sequence[int],
                            score_threshold: float = SCORE_THRESHOLD,
                            overlap_threshold: float = OVERLAP_THRESHOLD,
                            stuff_area: int = STUFF_AREA,
                            label_divisor: int = LABEL_DIVISOR) -> Tensor:
    """Panoptic ids [N, H, W] from :class:`PanopticFPN`'s eval output (one dict per image with
    ``scores``, ``labels``, ``masks`` [D, 1, H, W] and ``semantic`` [S + 1, H, W] logits):
    the semantic argmax mapped to stuff classes ("other" → void), then
    :func:`merge_instances_and_stuff` (images of one size)."""
    lookup = torch.tensor([*stuff_classes, IGNORE_INDEX], dtype=torch.long)
    merged = []
    for d in detections:
        if d["semantic"].shape[0] != len(lookup):
            raise ValueError(f"semantic logits have {d['semantic'].shape[0]} channels, expected "
                             f"{len(lookup)} ({len(stuff_classes)} stuff classes + 'other')")
        stuff = lookup.to(d["semantic"].device)[d["semantic"].argmax(0)]
        merged.append(merge_instances_and_stuff(d["scores"], d["labels"], d["masks"][:, 0],
                                                stuff, score_threshold, overlap_threshold,
                                                stuff_area, label_divisor))
    return torch.stack(merged)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
@register_model("panoptic_fpn", family="panoptic", paper="Kirillov et al., CVPR 2019",
                year=2019, output="detections", full_params=46_025_459,
                test_kwargs={"width": 4, "pyramid_channels": 8, "representation": 16,
                             "mask_channels": 8, "semantic_channels": 8})
class PanopticFPN(MaskRCNN):
    """Panoptic FPN: Mask R-CNN + the FPN semantic branch on the same pyramid (Fig. 1, Fig. 3).

    Labels live in one space of ``num_classes`` classes: ``stuff_classes`` (which must include
    0, the instance branch's background) and the things (every other class, the instance
    branch's labels). The semantic branch predicts ``len(stuff_classes) + 1`` classes: the stuff
    classes in the order given, then "other".

    ``forward`` follows torchvision's detection contract (``output="detections"``). Training:
    ``targets`` as Mask R-CNN's plus ``"semantic"`` [H, W] class ids (``IGNORE_INDEX`` void);
    with a single stuff class it may be left out — it is then the instance masks ("other") on
    that class. Returns the five λi-weighted Mask R-CNN losses and ``loss_semantic`` (λs x
    cross-entropy); their sum is the paper's joint loss. Eval: Mask R-CNN's list of dicts,
    each with ``"semantic"`` [S + 1, H, W] logits at the input's size added;
    :func:`panoptic_fpn_prediction` merges them into panoptic ids.

    Args:
        in_channels, num_classes, width, full, and every size of Mask R-CNN: as
            :class:`~course_lib.models.rcnn.MaskRCNN`. semantic_channels: the semantic
            branch's width (32; 128 full). stuff_classes: the stuff classes (``(0,)``).
        semantic_weight, instance_weight: λs (0.5) and λi (1).
        bottom_up, adaptive_pooling, roi_op, box_score_thresh, box_nms_thresh, image_mean,
            image_std: as Mask R-CNN's.
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
        semantic_channels: int | None = None,
        stuff_classes: tuple[int, ...] = (0,),
        semantic_weight: float = SEMANTIC_WEIGHT,
        instance_weight: float = 1.0,
        bottom_up: bool = False,
        adaptive_pooling: bool = False,
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
        name = type(self).__name__
        stuff = tuple(int(c) for c in stuff_classes)
        if 0 not in stuff or len(set(stuff)) != len(stuff) or not all(
                0 <= c < num_classes for c in stuff) or len(stuff) >= num_classes:
            raise ValueError(f"{name}: stuff_classes must be distinct classes in "
                             f"0..{num_classes - 1}, include 0 (the instance branch's "
                             f"background) and leave at least one thing class, got "
                             f"{stuff_classes!r}")
        if semantic_weight < 0 or instance_weight < 0:
            raise ValueError(f"{name}: semantic_weight and instance_weight must be >= 0, got "
                             f"{semantic_weight} and {instance_weight}")
        sizes = PANOPTIC_FPN_SIZES.resolve(name, full, semantic_channels=semantic_channels)
        self.stuff_classes, self.semantic_sizes = stuff, sizes
        self.semantic_weight, self.instance_weight = semantic_weight, instance_weight
        # class id -> semantic-branch index: stuff in order, every thing class -> "other"
        to_semantic = torch.full((max(num_classes, IGNORE_INDEX + 1),), len(stuff))
        to_semantic[list(stuff)] = torch.arange(len(stuff))
        to_semantic[IGNORE_INDEX] = IGNORE_INDEX
        self.register_buffer("to_semantic", to_semantic, persistent=False)
        strides = [self.backbone.strides[k] for k in ("c2", "c3", "c4", "c5")]
        self.semantic_head = SemanticFPNHead(self.sizes.pyramid_channels,
                                             sizes.semantic_channels, len(stuff) + 1, strides)

    def _check_targets(self, images: list[Tensor],
                       targets: Sequence[Mapping[str, Tensor]] | None) -> None:
        super()._check_targets(images, targets)
        assert targets is not None  # checked above
        for i, t in enumerate(targets):
            stuff = [c for c in t["labels"].tolist() if c in self.stuff_classes]
            if stuff:
                raise ValueError(f"{type(self).__name__}: target {i}: instance labels must be "
                                 f"thing classes, got the stuff classes {stuff} (stuff_classes="
                                 f"{self.stuff_classes})")

    def _run(self, images: list[Tensor],
             targets: Sequence[Mapping[str, Tensor]] | None = None) -> dict:
        original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        sizes = self.sizes
        batch, image_sizes, prepared = prepare_batch(
            images, None if targets is None else [dict(t) for t in targets], self.image_mean,
            self.image_std, sizes.min_size, sizes.max_size)  # normalise, resize, pad
        pyramid = self.features(batch)  # one backbone + FPN: P2..P5 (+ P6) for both branches
        # semantic branch (Fig. 3): levels to stride 4, sum, 1x1 conv, x4 to the padded batch
        semantic = resize_to(self.semantic_head(pyramid[:4]), batch)
        semantic = [self._to_input(logits, resized, original) for logits, resized, original
                    in zip(semantic, image_sizes, original_sizes, strict=True)]
        # instance branch: Mask R-CNN's RPN and RoI heads on the same pyramid
        proposals, rpn_losses = self.rpn(batch.shape[-2:], image_sizes, pyramid, prepared)
        detections, head_losses = self.roi_heads(pyramid[:-1], proposals, image_sizes,
                                                 prepared)
        if self.training:  # the joint loss: λi (instance losses) + λs (semantic loss)
            losses = {k: self.instance_weight * v for k, v in {**head_losses,
                                                              **rpn_losses}.items()}
            losses["loss_semantic"] = self.semantic_weight * self._semantic_loss(
                semantic, targets)
            return {"losses": losses}
        result = self._inference_result(detections, proposals, image_sizes, original_sizes)
        for d, logits in zip(result["detections"], semantic, strict=True):
            d["semantic"] = logits
        return result

    @staticmethod
    def _to_input(logits: Tensor, resized: tuple[int, int], original: tuple[int, int]
                  ) -> Tensor:
        """One image's logits without the padding, at the input image's size."""
        logits = logits[:, : resized[0], : resized[1]]
        if resized != original:
            logits = F.interpolate(logits[None], size=original, mode="bilinear",
                                   align_corners=False)[0]
        return logits

    def _semantic_loss(self, semantic: list[Tensor],
                       targets: Sequence[Mapping[str, Tensor]] | None) -> Tensor:
        assert targets is not None  # checked by forward
        losses = []
        for i, (logits, target) in enumerate(zip(semantic, targets, strict=True)):
            labels = self._semantic_target(i, target, tuple(logits.shape[-2:]))
            losses.append(F.cross_entropy(logits[None].float(), labels[None],
                                          ignore_index=IGNORE_INDEX, reduction="sum"))
            count = int((labels != IGNORE_INDEX).sum())
            losses[-1] = losses[-1] / max(count, 1)
        return torch.stack(losses).mean()

    def _semantic_target(self, i: int, target: Mapping[str, Tensor],
                         size: tuple[int, int]) -> Tensor:
        name = type(self).__name__
        if "semantic" not in target:
            if len(self.stuff_classes) > 1:
                raise ValueError(f"{name}: target {i} lacks 'semantic' [H, W]; it is needed "
                                 f"with more than one stuff class ({self.stuff_classes})")
            things = target["masks"].bool().any(0)  # one stuff class: the rest of the image
            return torch.where(things, len(self.stuff_classes), 0).long()
        labels = target["semantic"]
        if tuple(labels.shape) != size or labels.dtype in (torch.bool,) or \
                labels.is_floating_point():
            raise ValueError(f"{name}: target {i}: 'semantic' must be integer class ids "
                             f"[{size[0]}, {size[1]}], got {labels.dtype} "
                             f"{tuple(labels.shape)}")
        bad = (labels < 0) | ((labels >= self.num_classes) & (labels != IGNORE_INDEX))
        if bool(bad.any()):
            raise ValueError(f"{name}: target {i}: 'semantic' ids must lie in "
                             f"0..{self.num_classes - 1} or be {IGNORE_INDEX} (void), got "
                             f"{labels[bad].unique().tolist()}")
        return self.to_semantic[labels.long()]


__all__ = ["OVERLAP_THRESHOLD", "PANOPTIC_FPN_SIZES", "PanopticFPN", "PanopticFPNSizes",
           "SCORE_THRESHOLD", "SEMANTIC_WEIGHT", "STUFF_AREA", "merge_instances_and_stuff",
           "panoptic_fpn_prediction"]
