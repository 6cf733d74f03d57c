"""RoI pooling and the three heads of Mask R-CNN: class, box and mask (He et al., ICCV 2017).

Each proposal (region of interest, RoI) is cut out of the feature pyramid as a fixed-size
grid — 7x7 for the box head, 14x14 for the mask head — by :class:`MultiScaleRoIPool`:

- the *level* is chosen by the RoI's size (FPN, Lin et al. 2017, Eq. 1):
  ``k = floor(4 + log2(sqrt(w h) / 224))`` clamped to P2..P5 — a 224² RoI reads P4, a
  112² one P3;
- the *pooling* is RoIAlign (Mask R-CNN Sec. 3, Fig. 3: bilinear samples at exact,
  unrounded positions, ``torchvision.ops.roi_align``) or, for comparison, Fast R-CNN's
  RoIPool (coordinates rounded to the feature grid, then max, ``torchvision.ops.roi_pool``).

Then (Mask R-CNN Fig. 4, right: the FPN heads):

- :class:`BoxHead` + :class:`BoxPredictor`: two 1024-d fully-connected layers, then one
  score per class (softmax) and class-specific box deltas;
- :class:`MaskHead` + :class:`MaskPredictor`: four 3x3 convolutions (256), a 2x2
  transposed convolution to 28x28 and one 1x1 convolution to ``K`` masks — a mask *per
  class*, so classes do not compete for pixels (Sec. 3: "decouples mask and class
  prediction"); the mask of the predicted (or ground-truth) class is the one used.

:class:`RoIHeads` holds the training rules (proposals + ground-truth boxes, IoU >= 0.5
foreground, 512 RoIs per image at most 25 % foreground) and the three losses that Mask
R-CNN sums with the RPN's two: cross-entropy on classes, smooth-L1 on the foreground
boxes, per-pixel binary cross-entropy on the foreground masks against the ground-truth
mask cut out of the same RoI (``roi_align`` of the mask, 28x28). At test time: per-class
boxes, score > 0.05, NMS 0.5 per class, the best 100, then the mask head on those boxes.

PANet's *adaptive feature pooling* (Liu et al., CVPR 2018, Sec. 3.2, Fig. 6) is the
``levels > 1`` option of the heads: the RoI is pooled from *every* level, each level goes
through its own first layer (``fc6`` of the box head, the first convolution of the mask
head), and the levels are fused by an element-wise max.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import (
    batched_nms,
    box_area,
    box_iou,
    clip_boxes_to_image,
    remove_small_boxes,
    roi_align,
    roi_pool,
)

from .boxes import BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS, BoxCoder, Matcher, sample_balanced

ROI_OPS = ("align", "pool")


def boxes_to_rois(boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-image boxes → one ``[R, 5]`` tensor ``(image index, x1, y1, x2, y2)``."""
    ids = [torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)]
    return torch.cat([torch.cat(ids), torch.cat(list(boxes))], dim=1)


def pool_rois(feature: torch.Tensor, rois: torch.Tensor, output_size: int, stride: int,
              op: str = "align", sampling_ratio: int = 2) -> torch.Tensor:
    """Pool ``rois`` ``[R, 5]`` (image pixels) from ``feature`` at ``stride``: RoIAlign or
    RoIPool, ``[R, C, output_size, output_size]``."""
    if op == "align":  # bilinear samples at exact positions (aligned=False: torchvision's)
        return roi_align(feature, rois, output_size, spatial_scale=1.0 / stride,
                         sampling_ratio=sampling_ratio, aligned=False)
    if op == "pool":  # coordinates rounded to the feature grid, then max per bin
        return roi_pool(feature, rois, output_size, spatial_scale=1.0 / stride)
    raise ValueError(f"roi_op must be one of {ROI_OPS}, got {op!r}")


class MultiScaleRoIPool(nn.Module):
    """Each RoI pooled from its FPN level (Eq. 1), or from every level (PANet).

    ``strides``: of the pyramid levels it reads (4, 8, 16, 32 for P2..P5). Deviation from
    torchvision: the scale of each level is ``1 / stride`` (torchvision infers it from the
    feature and image sizes, which agrees whenever the image fills most of its padded batch).
    """

    def __init__(self, strides: Sequence[int], output_size: int, sampling_ratio: int = 2,
                 op: str = "align", canonical_scale: int = 224, canonical_level: int = 4) -> None:
        super().__init__()
        if op not in ROI_OPS:
            raise ValueError(f"roi_op must be one of {ROI_OPS}, got {op!r}")
        self.strides = tuple(int(s) for s in strides)
        self.k_min, self.k_max = int(math.log2(self.strides[0])), int(math.log2(self.strides[-1]))
        self.output_size, self.sampling_ratio, self.op = output_size, sampling_ratio, op
        self.canonical_scale, self.canonical_level = canonical_scale, canonical_level

    def levels(self, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """FPN Eq. 1: the level index (0 = finest) of every RoI, ``[R]``."""
        side = torch.sqrt(torch.cat([box_area(b) for b in boxes]))
        k = torch.floor(self.canonical_level + torch.log2(side / self.canonical_scale)
                        + torch.tensor(1e-6, dtype=side.dtype))
        return (k.clamp(self.k_min, self.k_max).to(torch.int64) - self.k_min)

    def forward(self, features: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]
                ) -> torch.Tensor:
        """``[R, C, S, S]``: every RoI pooled from its own level."""
        rois = boxes_to_rois(boxes)
        levels = self.levels(boxes)
        out = features[0].new_zeros((len(rois), features[0].shape[1], self.output_size,
                                     self.output_size))
        for level, (feature, stride) in enumerate(zip(features, self.strides, strict=True)):
            idx = torch.where(levels == level)[0]
            out[idx] = pool_rois(feature, rois[idx], self.output_size, stride, self.op,
                                 self.sampling_ratio).to(out.dtype)
        return out

    def all_levels(self, features: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]
                   ) -> torch.Tensor:
        """``[L, R, C, S, S]``: every RoI pooled from every level (PANet Sec. 3.2)."""
        rois = boxes_to_rois(boxes)
        return torch.stack([pool_rois(f, rois, self.output_size, s, self.op, self.sampling_ratio)
                            for f, s in zip(features, self.strides, strict=True)])


def fuse_levels(layers: nn.ModuleList, pooled: torch.Tensor) -> torch.Tensor:
    """PANet's fusion: level ``l``'s RoI features through ``layers[l]``, element-wise max."""
    return torch.stack([layer(x) for layer, x in zip(layers, pooled, strict=True)]).amax(0)


class BoxHead(nn.Module):
    """Flatten → fc6 → ReLU → fc7 → ReLU (torchvision's ``TwoMLPHead``); ``levels > 1``:
    one fc6 per pyramid level, fused by max (PANet's adaptive feature pooling)."""

    def __init__(self, in_features: int, representation: int, levels: int = 1) -> None:
        super().__init__()
        fc6 = [nn.Linear(in_features, representation) for _ in range(levels)]
        self.fc6 = fc6[0] if levels == 1 else nn.ModuleList(fc6)
        self.fc7 = nn.Linear(representation, representation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.fc6, nn.ModuleList):  # x: [L, R, C, S, S]
            x = fuse_levels(self.fc6, x.flatten(2))
        else:  # x: [R, C, S, S]
            x = self.fc6(x.flatten(1))
        return F.relu(self.fc7(F.relu(x)))


class BoxPredictor(nn.Module):
    """``cls_score``: K class logits; ``bbox_pred``: 4 deltas per class (class-specific).

    Initialised as in Detectron (normal, std 0.01 and 0.001; torchvision keeps PyTorch's
    default), which lets a small model start from near-uniform class scores."""

    def __init__(self, representation: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(representation, num_classes)
        self.bbox_pred = nn.Linear(representation, num_classes * 4)
        for layer, std in ((self.cls_score, 0.01), (self.bbox_pred, 0.001)):
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


def _conv_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, nn.ReLU(inplace=True))


class MaskHead(nn.Sequential):
    """The mask branch's four 3x3 conv + ReLU layers (Fig. 4 right, "x4"); ``levels > 1``:
    the first layer once per pyramid level, fused by max (PANet)."""

    def __init__(self, in_channels: int, channels: Sequence[int], levels: int = 1) -> None:
        layers: list[nn.Module] = []
        prev = in_channels
        for i, ch in enumerate(channels):
            copies = [_conv_relu(prev, ch) for _ in range(levels if i == 0 else 1)]
            layers.append(copies[0] if len(copies) == 1 else nn.ModuleList(copies))
            prev = ch
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, *rest = list(self)
        x = fuse_levels(first, x) if isinstance(first, nn.ModuleList) else first(x)
        for layer in rest:
            x = layer(x)
        return x


class MaskPredictor(nn.Sequential):
    """2x2 transposed conv (14 → 28) + ReLU, then a 1x1 conv to one mask logit per class."""

    def __init__(self, in_channels: int, channels: int, num_classes: int) -> None:
        super().__init__(OrderedDict([
            ("deconv", nn.ConvTranspose2d(in_channels, channels, 2, stride=2)),
            ("relu", nn.ReLU(inplace=True)),
            ("logits", nn.Conv2d(channels, num_classes, 1)),
        ]))
        for layer in (self.deconv, self.logits):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)


class RoIHeads(nn.Module):
    """Proposals → (training) sampled RoIs and three losses / (eval) detections with masks."""

    def __init__(
        self,
        box_pooler: MultiScaleRoIPool,
        box_head: BoxHead,
        box_predictor: BoxPredictor,
        mask_pooler: MultiScaleRoIPool,
        mask_head: MaskHead,
        mask_predictor: MaskPredictor,
        adaptive_pooling: bool = False,
        fg_iou_thresh: float = 0.5,
        bg_iou_thresh: float = 0.5,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
    ) -> None:
        super().__init__()
        self.box_pooler, self.box_head, self.box_predictor = box_pooler, box_head, box_predictor
        self.mask_pooler, self.mask_head = mask_pooler, mask_head
        self.mask_predictor = mask_predictor
        self.adaptive_pooling = adaptive_pooling
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img = detections_per_img

    def pool(self, pooler: MultiScaleRoIPool, features: Sequence[torch.Tensor],
             boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        return pooler.all_levels(features, boxes) if self.adaptive_pooling else pooler(features,
                                                                                         boxes)

    def mask_logits(self, features: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]
                    ) -> torch.Tensor:
        """``[R, K, 28, 28]`` mask logits of the RoIs ``boxes`` (per image)."""
        return self.mask_predictor(self.mask_head(self.pool(self.mask_pooler, features, boxes)))

    def forward(self, features: Sequence[torch.Tensor], proposals: list[torch.Tensor],
                image_sizes: Sequence[tuple[int, int]],
                targets: Sequence[dict[str, torch.Tensor]] | None = None,
                ) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("the RoI heads need targets in training mode")
            proposals, matched, labels, wanted = self.sample_rois(proposals, targets)
        # box branch: pool 7x7, two fc layers, class scores + class-specific deltas
        box_features = self.box_head(self.pool(self.box_pooler, features, proposals))
        class_logits, box_deltas = self.box_predictor(box_features)
        if self.training:
            losses = self.box_losses(class_logits, box_deltas, labels, wanted)
            # mask branch, training: the foreground RoIs, with their ground truth's class
            fg = [torch.where(lab > 0)[0] for lab in labels]
            fg_boxes = [p[i] for p, i in zip(proposals, fg, strict=True)]
            fg_matched = [m[i] for m, i in zip(matched, fg, strict=True)]
            logits = self.mask_logits(features, fg_boxes)
            losses["loss_mask"] = self.mask_loss(logits, fg_boxes, targets, fg_matched)
            return [], losses
        detections = self.detect(class_logits, box_deltas, proposals, image_sizes)
        # mask branch, inference: on the final boxes, the mask of the predicted class
        logits = self.mask_logits(features, [d["boxes"] for d in detections])
        labels_all = torch.cat([d["labels"] for d in detections])
        probs = logits[torch.arange(len(labels_all), device=logits.device), labels_all]
        for d, p in zip(detections, probs.sigmoid()[:, None].split(
                [len(d["boxes"]) for d in detections]), strict=True):
            d["masks"] = p  # [D, 1, 28, 28] probabilities
        return detections, {}

    # -- training ------------------------------------------------------------------------
    def sample_rois(self, proposals: list[torch.Tensor],
                    targets: Sequence[dict[str, torch.Tensor]]
                    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor],
                               list[torch.Tensor]]:
        """Proposals + ground-truth boxes → matched, labelled, sampled RoIs and box targets."""
        rois, matched, labels, wanted = [], [], [], []
        for props, t in zip(proposals, targets, strict=True):
            gt_boxes, gt_labels = t["boxes"].to(props.dtype), t["labels"]
            props = torch.cat([props, gt_boxes])  # the ground truth is a proposal too
            if gt_boxes.numel() == 0:
                idx = torch.zeros(len(props), dtype=torch.int64, device=props.device)
                lab = torch.zeros(len(props), dtype=torch.int64, device=props.device)
                gt_boxes = props.new_zeros((1, 4))
            else:
                match = self.matcher(box_iou(gt_boxes, props))
                idx = match.clamp(min=0)
                lab = gt_labels[idx].to(torch.int64)
                lab[match == BELOW_LOW_THRESHOLD] = 0
                lab[match == BETWEEN_THRESHOLDS] = -1
            rois.append(props)
            matched.append(idx)
            labels.append(lab)
        pos, neg = sample_balanced(labels, self.batch_size_per_image, self.positive_fraction)
        for i, t in enumerate(targets):
            keep = torch.where(pos[i] | neg[i])[0]
            rois[i], matched[i], labels[i] = rois[i][keep], matched[i][keep], labels[i][keep]
            gt_boxes = t["boxes"].to(rois[i].dtype)
            if gt_boxes.numel() == 0:
                gt_boxes = rois[i].new_zeros((1, 4))
            wanted.append(self.box_coder.encode(gt_boxes[matched[i]], rois[i]))
        return rois, matched, labels, wanted

    @staticmethod
    def box_losses(class_logits: torch.Tensor, box_deltas: torch.Tensor,
                   labels: list[torch.Tensor], wanted: list[torch.Tensor]
                   ) -> dict[str, torch.Tensor]:
        """Cross-entropy over the sampled RoIs; smooth-L1 on the deltas of the ground-truth
        class of the foreground RoIs, divided by the number of sampled RoIs."""
        labels_all, wanted_all = torch.cat(labels), torch.cat(wanted)
        fg = torch.where(labels_all > 0)[0]
        deltas = box_deltas.reshape(len(box_deltas), -1, 4)[fg, labels_all[fg]]
        box_loss = F.smooth_l1_loss(deltas, wanted_all[fg], beta=1 / 9, reduction="sum")
        return {"loss_classifier": F.cross_entropy(class_logits, labels_all),
                "loss_box_reg": box_loss / labels_all.numel()}

    @staticmethod
    def mask_loss(logits: torch.Tensor, fg_boxes: list[torch.Tensor],
                  targets: Sequence[dict[str, torch.Tensor]],
                  fg_matched: list[torch.Tensor]) -> torch.Tensor:
        """Per-pixel BCE between the ground-truth class's 28x28 mask and the ground-truth
        mask cut out of the same RoI (``roi_align`` of the binary mask, resampled to 28x28)."""
        size = logits.shape[-1]
        wanted, classes = [], []
        for boxes, t, idx in zip(fg_boxes, targets, fg_matched, strict=True):
            rois = torch.cat([idx[:, None].to(boxes), boxes], dim=1)  # RoI i reads mask idx[i]
            masks = t["masks"][:, None].to(rois)
            wanted.append(roi_align(masks, rois, (size, size), 1.0)[:, 0])
            classes.append(t["labels"][idx])
        wanted_all, classes_all = torch.cat(wanted), torch.cat(classes)
        if wanted_all.numel() == 0:  # no foreground RoI in the batch
            return logits.sum() * 0
        chosen = logits[torch.arange(len(classes_all), device=logits.device), classes_all]
        return F.binary_cross_entropy_with_logits(chosen, wanted_all)

    # -- inference ----------------------------------------------------------------------
    def detect(self, class_logits: torch.Tensor, box_deltas: torch.Tensor,
               proposals: list[torch.Tensor], image_sizes: Sequence[tuple[int, int]]
               ) -> list[dict[str, torch.Tensor]]:
        """Per image: a box per (RoI, class), score > thresh, NMS per class, the best n.

        Each detection also keeps ``"proposal"``: the index of the RoI it was refined from."""
        num_classes = class_logits.shape[-1]
        counts = [len(p) for p in proposals]
        boxes_all = self.box_coder.decode(box_deltas, torch.cat(proposals)).split(counts)
        scores_all = F.softmax(class_logits, -1).split(counts)
        detections = []
        for boxes, scores, size in zip(boxes_all, scores_all, image_sizes, strict=True):
            boxes = clip_boxes_to_image(boxes, size)
            labels = torch.arange(num_classes, device=boxes.device).view(1, -1).expand_as(scores)
            rois = torch.arange(len(boxes), device=boxes.device).view(-1, 1).expand_as(scores)
            # every (RoI, class) pair but the background's is a candidate detection
            boxes, scores = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1)
            labels, rois = labels[:, 1:].reshape(-1), rois[:, 1:].reshape(-1)
            keep = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels, rois = boxes[keep], scores[keep], labels[keep], rois[keep]
            keep = remove_small_boxes(boxes, min_size=1e-2)
            boxes, scores, labels, rois = boxes[keep], scores[keep], labels[keep], rois[keep]
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            detections.append({"boxes": boxes[keep], "labels": labels[keep],
                               "scores": scores[keep], "proposal": rois[keep]})
        return detections


# --------------------------------------------------------------------------------------------
# From 28x28 back to the image
# --------------------------------------------------------------------------------------------
def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int,
                padding: int = 1) -> torch.Tensor:
    """The 28x28 masks ``[D, 1, M, M]`` resized into their boxes in an image ``[D, 1, H, W]``.

    As in Detectron and torchvision: each mask is padded by ``padding`` zero pixels and its
    box grown to match, so that the mask's border can fade out; the box is rounded to whole
    pixels (``int`` of the coordinates, the end inclusive); the mask is resized bilinearly to
    the box and copied into the image (the part outside the image is cut off).
    """
    m = masks.shape[-1]
    masks = F.pad(masks, (padding,) * 4)
    scale = float(m + 2 * padding) / m
    half_w, half_h = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale, (boxes[:, 3] - boxes[:, 1]) * \
        0.5 * scale
    cx, cy = (boxes[:, 2] + boxes[:, 0]) * 0.5, (boxes[:, 3] + boxes[:, 1]) * 0.5
    grown = torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), 1).to(torch.int64)
    out = masks.new_zeros((len(masks), 1, height, width))
    for i, (x0, y0, x1, y1) in enumerate(grown.tolist()):  # a loop over the masks, not pixels
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        resized = F.interpolate(masks[i : i + 1], size=(h, w), mode="bilinear",
                                align_corners=False)[0, 0]
        top, left = max(y0, 0), max(x0, 0)
        bottom, right = min(y1 + 1, height), min(x1 + 1, width)
        if bottom > top and right > left:
            out[i, 0, top:bottom, left:right] = resized[top - y0 : bottom - y0,
                                                        left - x0 : right - x0]
    return out


def mask_round_trip(masks: torch.Tensor, boxes: torch.Tensor, stride: int, op: str = "align",
                    resolution: int = 28, snap: bool = False) -> torch.Tensor:
    """Each mask seen through a stride-``stride`` feature map, pooled from its RoI to
    ``resolution``², and pasted back into the image: ``[M, H, W]`` probabilities.

    The feature map is the mask's own occupancy (the fraction of each ``stride x stride``
    cell it covers) — the best a mask head could know at that stride. What is lost on the
    way back is the pooling's doing: RoIPool rounds the RoI and its bins to the feature grid
    and takes a max; RoIAlign samples bilinearly at the exact positions (Mask R-CNN Sec. 3).
    ``snap=True`` rounds the RoI to the grid first (RoIPool's first rounding) and then
    pools with ``op``: RoIAlign on snapped boxes isolates the misalignment.
    """
    if masks.dim() != 3 or boxes.shape != (len(masks), 4):
        raise ValueError(f"expected masks [M, H, W] and boxes [M, 4], got {tuple(masks.shape)}"
                         f" and {tuple(boxes.shape)}")
    height, width = masks.shape[-2:]
    feature = F.avg_pool2d(masks[:, None].float(), stride, ceil_mode=True)  # [M, 1, h, w]
    read = (boxes / stride).round() * stride if snap else boxes
    rois = torch.cat([torch.arange(len(boxes), dtype=boxes.dtype)[:, None], read.float()], 1)
    pooled = pool_rois(feature, rois, resolution, stride, op)  # RoI i reads mask i
    return paste_masks(pooled, boxes.float(), height, width)[:, 0]


def round_trip_iou(targets: Sequence[dict[str, torch.Tensor]], stride: int, op: str = "align",
                   snap: bool = False) -> float:
    """Mask IoU of the true masks after :func:`mask_round_trip`, pooled over a data set:
    the pixels kept and pasted back (probability >= 0.5) that are inside the true mask,
    divided by those in either, summed over every object of every target before dividing
    (``targets``: dicts with ``"masks"`` ``[M, H, W]`` and ``"boxes"`` ``[M, 4]``)."""
    if not targets:
        raise ValueError("round_trip_iou needs at least one target")
    inter = union = 0.0
    for t in targets:
        if "masks" not in t or "boxes" not in t:
            raise ValueError(f"each target needs 'masks' and 'boxes', got keys {sorted(t)}")
        masks = t["masks"].bool()
        back = mask_round_trip(masks, t["boxes"], stride, op, snap=snap) >= 0.5
        inter += float((back & masks).sum())
        union += float((back | masks).sum())
    if union == 0:
        raise ValueError("round_trip_iou: the targets hold no mask pixels")
    return inter / union


__all__ = ["ROI_OPS", "MultiScaleRoIPool", "BoxHead", "BoxPredictor", "MaskHead", "MaskPredictor",
           "RoIHeads", "boxes_to_rois", "pool_rois", "fuse_levels", "paste_masks",
           "mask_round_trip", "round_trip_iou"]
