"""The region proposal network (Ren et al., "Faster R-CNN", NeurIPS 2015, Sec. 3.1, Fig. 3).

A small network slides over every feature level: a 3x3 convolution, then two sibling 1x1
convolutions that give, for each of the ``A`` anchors of each position, an *objectness*
logit ("is there an object in this anchor?") and four *deltas* that move the anchor onto
the object. The best-scoring decoded anchors, after clipping to the image and non-maximum
suppression, are the *proposals* (regions of interest) that the box and mask heads refine.

Training (Sec. 3.1.2): anchors with IoU >= 0.7 with a ground-truth box (or the best anchor
of each object) are positive, IoU < 0.3 negative, the rest ignored; 256 anchors per image,
at most half positive; loss = binary cross-entropy on objectness + smooth-L1 on the deltas
of the positives (beta 1/9, summed, divided by the number of sampled anchors).

The proposal selection follows torchvision (``detection/rpn.py``): the top ``pre_nms_top_n``
anchors *per level* by objectness, decoded, clipped, tiny boxes removed, NMS at 0.7 within
each level (``torchvision.ops.batched_nms``), the best ``post_nms_top_n`` kept per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes

from .boxes import (
    BELOW_LOW_THRESHOLD,
    BETWEEN_THRESHOLDS,
    AnchorGenerator,
    BoxCoder,
    Matcher,
    sample_balanced,
)


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then 1x1 convs to ``A`` objectness logits and ``4A`` deltas per
    position; shared by every pyramid level (FPN Sec. 4.1: "the heads share parameters")."""

    def __init__(self, channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, num_anchors, 1)
        self.deltas = nn.Conv2d(channels, num_anchors * 4, 1)
        for layer in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: Sequence[torch.Tensor]
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        hidden = [F.relu(self.conv(f)) for f in features]
        return [self.objectness(h) for h in hidden], [self.deltas(h) for h in hidden]


def flatten_levels(objectness: Sequence[torch.Tensor], deltas: Sequence[torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level maps ``[N, A, H, W]`` / ``[N, 4A, H, W]`` → ``[N * sum(HWA), 1]`` and
    ``[N * sum(HWA), 4]``, in the anchors' order (level, row, column, anchor)."""
    flat_obj, flat_deltas = [], []
    for obj, dlt in zip(objectness, deltas, strict=True):
        n, a, h, w = obj.shape
        flat_obj.append(obj.view(n, a, 1, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 1))
        flat_deltas.append(dlt.view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
    return torch.cat(flat_obj, 1).flatten(0, -2), torch.cat(flat_deltas, 1).reshape(-1, 4)


class RegionProposalNetwork(nn.Module):
    """Anchors + RPN head → proposals per image (and, in training, the two RPN losses)."""

    def __init__(
        self,
        anchor_generator: AnchorGenerator,
        head: RPNHead,
        pre_nms_top_n: tuple[int, int] = (2000, 1000),  # (training, testing), per level
        post_nms_top_n: tuple[int, int] = (2000, 1000),  # (training, testing), per image
        nms_thresh: float = 0.7,
        fg_iou_thresh: float = 0.7,
        bg_iou_thresh: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        min_size: float = 1e-3,
    ) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.pre_nms_top_n, self.post_nms_top_n = pre_nms_top_n, post_nms_top_n
        self.nms_thresh = nms_thresh
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.min_size = min_size

    def forward(self, padded_size: Sequence[int], image_sizes: Sequence[tuple[int, int]],
                features: Sequence[torch.Tensor],
                targets: Sequence[dict[str, torch.Tensor]] | None = None,
                ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Proposals ``[P_i, 4]`` per image (in the resized image's pixels) and the losses."""
        objectness, deltas = self.head(features)  # per level: A logits, 4A deltas per cell
        anchors = self.anchor_generator(padded_size, [f.shape[-2:] for f in features],
                                        features[0].device)
        num_images = len(image_sizes)
        per_level = [o[0].numel() for o in objectness]  # anchors per level and image
        objectness, deltas = flatten_levels(objectness, deltas)
        # decode every anchor of every image (no gradient flows into proposals: Sec. 3.2)
        proposals = self.box_coder.decode(deltas.detach(), anchors.repeat(num_images, 1))
        proposals = proposals.view(num_images, -1, 4)
        boxes = self.select_proposals(proposals, objectness.detach(), image_sizes, per_level)
        losses: dict[str, torch.Tensor] = {}
        if self.training:
            if targets is None:
                raise ValueError("the RPN needs targets in training mode")
            labels, matched_boxes = self.assign_targets(anchors, targets)
            wanted = [self.box_coder.encode(m, anchors) for m in matched_boxes]
            losses = self.loss(objectness, deltas, labels, wanted)
        return boxes, losses

    def select_proposals(self, proposals: torch.Tensor, objectness: torch.Tensor,
                         image_sizes: Sequence[tuple[int, int]], per_level: Sequence[int]
                         ) -> list[torch.Tensor]:
        """Top-n per level → clip → drop tiny → NMS per level → top-n per image."""
        num_images = proposals.shape[0]
        objectness = objectness.reshape(num_images, -1)
        phase = 0 if self.training else 1
        levels = torch.cat([torch.full((n,), i, dtype=torch.int64, device=proposals.device)
                            for i, n in enumerate(per_level)])
        top, offset = [], 0
        for scores in objectness.split(list(per_level), dim=1):  # the best anchors of each level
            k = min(self.pre_nms_top_n[phase], scores.shape[1])
            top.append(scores.topk(k, dim=1).indices + offset)
            offset += scores.shape[1]
        top_idx = torch.cat(top, dim=1)
        rows = torch.arange(num_images, device=proposals.device)[:, None]
        scores = torch.sigmoid(objectness[rows, top_idx])
        boxes, levels = proposals[rows, top_idx], levels[top_idx]
        result = []
        for b, s, lvl, size in zip(boxes, scores, levels, image_sizes, strict=True):
            b = clip_boxes_to_image(b, size)
            keep = remove_small_boxes(b, self.min_size)
            b, s, lvl = b[keep], s[keep], lvl[keep]
            keep = batched_nms(b, s, lvl, self.nms_thresh)[: self.post_nms_top_n[phase]]
            result.append(b[keep])
        return result

    def assign_targets(self, anchors: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]]
                       ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image: anchor labels (1 object, 0 background, -1 ignored) and matched boxes."""
        labels, matched = [], []
        for t in targets:
            gt = t["boxes"]
            if gt.numel() == 0:  # an image without objects: every anchor is background
                labels.append(torch.zeros(len(anchors), device=anchors.device))
                matched.append(torch.zeros_like(anchors, dtype=torch.float32))
                continue
            idx = self.matcher(box_iou(gt, anchors))
            matched.append(gt[idx.clamp(min=0)])
            lab = (idx >= 0).to(torch.float32)
            lab[idx == BELOW_LOW_THRESHOLD] = 0.0
            lab[idx == BETWEEN_THRESHOLDS] = -1.0
            labels.append(lab)
        return labels, matched

    def loss(self, objectness: torch.Tensor, deltas: torch.Tensor,
             labels: list[torch.Tensor], wanted: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Objectness BCE over the sampled anchors + smooth-L1 over the positive ones."""
        pos, neg = sample_balanced(labels, self.batch_size_per_image, self.positive_fraction)
        pos = torch.where(torch.cat(pos))[0]
        sampled = torch.cat([pos, torch.where(torch.cat(neg))[0]])
        labels_all, wanted_all = torch.cat(labels), torch.cat(wanted)
        box_loss = F.smooth_l1_loss(deltas[pos], wanted_all[pos], beta=1 / 9,
                                    reduction="sum") / sampled.numel()
        objectness_loss = F.binary_cross_entropy_with_logits(objectness.flatten()[sampled],
                                                             labels_all[sampled])
        return {"loss_objectness": objectness_loss, "loss_rpn_box_reg": box_loss}


__all__ = ["RPNHead", "RegionProposalNetwork", "flatten_levels"]
