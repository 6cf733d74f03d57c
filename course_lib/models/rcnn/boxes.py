"""Boxes: the anchor grid, the box coder, IoU matching and balanced sampling.

Four small pieces that Faster R-CNN (Ren et al., NeurIPS 2015, Sec. 3.1) uses twice — once
in the region proposal network (anchors → proposals) and once in the box head
(proposals → detections):

- :class:`AnchorGenerator`: at every position of every feature level, ``len(sizes) x
  len(aspect_ratios)`` reference boxes centred on the position (Fig. 3 of the paper, "k
  anchor boxes"). With FPN (Lin et al. 2017, Sec. 4.1) each level gets one size (32² on P2
  up to 512² on P6) and three aspect ratios.
- :class:`BoxCoder`: a box relative to a reference box as ``(dx, dy, dw, dh)`` (Eq. 2 of
  the paper; R-CNN, Girshick et al. 2014, Appendix C): centre offsets in units of the
  reference's size, log size ratios. The network regresses these deltas, never pixels.
- :class:`Matcher`: assigns each anchor (or proposal) to the ground-truth box it overlaps
  most, as foreground above ``high`` IoU, background below ``low``, ignored between.
- :func:`sample_balanced`: picks a fixed number of anchors/proposals per image with at
  most a given fraction of foreground (the rest background), so the loss is not drowned by
  easy negatives.

IoU itself is ``torchvision.ops.box_iou`` (a well-kept op). Everything here computes the
same numbers as torchvision's ``detection/_utils.py`` and ``anchor_utils.py`` (the oracle
test of :mod:`course_lib.models.rcnn` compares whole detections).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

#: Largest ``dw``/``dh`` before ``exp``: a box can grow at most 1000/16 times (as Detectron).
BBOX_XFORM_CLIP = math.log(1000.0 / 16)
BELOW_LOW_THRESHOLD = -1  # Matcher: background
BETWEEN_THRESHOLDS = -2  # Matcher: ignored (neither foreground nor background)


class AnchorGenerator(nn.Module):
    """Reference boxes on every feature level (Faster R-CNN Fig. 3; FPN Sec. 4.1).

    ``sizes[l]`` and ``aspect_ratios[l]`` give level ``l``'s anchors: for a size ``s`` and a
    ratio ``r = h / w`` the anchor is ``w = s / sqrt(r)``, ``h = s * sqrt(r)`` (area ``s²``),
    centred on the top-left corner of each feature cell in image pixels, rounded to whole
    pixels. ``forward`` returns one ``[sum_l H_l W_l A_l, 4]`` tensor (XYXY), ordered level
    by level, position by position (row-major), anchor by anchor — the order in which the
    RPN head's outputs are flattened.
    """

    def __init__(self, sizes: Sequence[Sequence[int]],
                 aspect_ratios: Sequence[Sequence[float]]) -> None:
        super().__init__()
        if len(sizes) != len(aspect_ratios) or not sizes:
            raise ValueError(f"one tuple of sizes and one of aspect ratios per level, got "
                             f"{len(sizes)} and {len(aspect_ratios)}")
        self.sizes = tuple(tuple(s) for s in sizes)
        self.aspect_ratios = tuple(tuple(r) for r in aspect_ratios)
        self.cell_anchors = [self.cell(s, r) for s, r in zip(self.sizes, self.aspect_ratios,
                                                              strict=True)]

    @staticmethod
    def cell(sizes: Sequence[int], aspect_ratios: Sequence[float]) -> torch.Tensor:
        """The ``A = len(sizes) * len(aspect_ratios)`` anchors around (0, 0), ``[A, 4]``."""
        scales = torch.as_tensor(sizes, dtype=torch.float32)
        ratios = torch.as_tensor(aspect_ratios, dtype=torch.float32)
        h_ratios = torch.sqrt(ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()

    def num_anchors_per_location(self) -> list[int]:
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios, strict=True)]

    def forward(self, image_size: Sequence[int], feature_sizes: Sequence[Sequence[int]],
                device: torch.device | None = None) -> torch.Tensor:
        """All anchors of one (padded) image of ``image_size`` with the given feature sizes."""
        if len(feature_sizes) != len(self.cell_anchors):
            raise ValueError(f"{len(self.cell_anchors)} anchor levels but "
                             f"{len(feature_sizes)} feature maps")
        anchors = []
        for (gh, gw), base in zip(feature_sizes, self.cell_anchors, strict=True):
            stride_h, stride_w = image_size[0] // gh, image_size[1] // gw  # integer strides
            shifts_x = torch.arange(0, gw, dtype=torch.int32, device=device) * stride_w
            shifts_y = torch.arange(0, gh, dtype=torch.int32, device=device) * stride_h
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            # every position x every anchor shape
            anchors.append((shifts.view(-1, 1, 4) + base.to(device).view(1, -1, 4)).reshape(-1, 4))
        return torch.cat(anchors)


class BoxCoder:
    """Boxes ↔ deltas relative to reference boxes (Faster R-CNN Eq. 2, with weights).

    ``t_x = w_x (x - x_a) / w_a``, ``t_y = w_y (y - y_a) / h_a``, ``t_w = w_w log(w / w_a)``,
    ``t_h = w_h log(h / h_a)`` with ``(x, y)`` box centres. The weights scale the targets
    to unit-ish variance: ``(1, 1, 1, 1)`` in the RPN, ``(10, 10, 5, 5)`` in the box head.
    """

    def __init__(self, weights: tuple[float, float, float, float],
                 clip: float = BBOX_XFORM_CLIP) -> None:
        self.weights = weights
        self.clip = clip

    def encode(self, boxes: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """Deltas ``[N, 4]`` that turn ``references[i]`` into ``boxes[i]`` (both XYXY)."""
        wx, wy, ww, wh = self.weights
        ref_w = references[:, 2] - references[:, 0]
        ref_h = references[:, 3] - references[:, 1]
        ref_x = references[:, 0] + 0.5 * ref_w
        ref_y = references[:, 1] + 0.5 * ref_h
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        x = boxes[:, 0] + 0.5 * w
        y = boxes[:, 1] + 0.5 * h
        return torch.stack((wx * (x - ref_x) / ref_w, wy * (y - ref_y) / ref_h,
                            ww * torch.log(w / ref_w), wh * torch.log(h / ref_h)), dim=1)

    def decode(self, deltas: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """Boxes from deltas: ``deltas [N, 4K]`` (K boxes per reference) → ``[N, K, 4]``."""
        references = references.to(deltas.dtype)
        wx, wy, ww, wh = self.weights
        widths = references[:, 2] - references[:, 0]
        heights = references[:, 3] - references[:, 1]
        ctr_x = references[:, 0] + 0.5 * widths
        ctr_y = references[:, 1] + 0.5 * heights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = torch.clamp(deltas[:, 2::4] / ww, max=self.clip)  # no exp overflow
        dh = torch.clamp(deltas[:, 3::4] / wh, max=self.clip)
        x = dx * widths[:, None] + ctr_x[:, None]
        y = dy * heights[:, None] + ctr_y[:, None]
        half_w = 0.5 * (torch.exp(dw) * widths[:, None])
        half_h = 0.5 * (torch.exp(dh) * heights[:, None])
        return torch.stack((x - half_w, y - half_h, x + half_w, y + half_h), dim=2)


class Matcher:
    """Each column (anchor/proposal) of an IoU matrix ``[G, P]`` gets a ground-truth index.

    ``>= high``: the best ground truth's index (foreground); ``< low``:
    :data:`BELOW_LOW_THRESHOLD` (background); in between: :data:`BETWEEN_THRESHOLDS`
    (ignored). ``allow_low_quality_matches`` (the RPN's rule, Faster R-CNN Sec. 3.1.2): the
    anchor(s) with the highest IoU for each ground truth are foreground whatever their IoU,
    so that no object is left without an anchor.
    """

    def __init__(self, high: float, low: float, allow_low_quality_matches: bool = False) -> None:
        if low > high:
            raise ValueError(f"Matcher needs low <= high, got low={low}, high={high}")
        self.high, self.low = high, low
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, iou: torch.Tensor) -> torch.Tensor:
        if iou.numel() == 0:
            raise ValueError(f"Matcher needs at least one ground truth and one box, got an "
                             f"IoU matrix of shape {tuple(iou.shape)}")
        best_iou, matches = iou.max(dim=0)  # best ground truth of every column
        best_any = matches.clone()
        matches[best_iou < self.low] = BELOW_LOW_THRESHOLD
        matches[(best_iou >= self.low) & (best_iou < self.high)] = BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            best_per_gt = iou.max(dim=1).values  # each ground truth's best IoU (ties: all)
            columns = torch.where(iou == best_per_gt[:, None])[1]
            matches[columns] = best_any[columns]
        return matches


def sample_balanced(labels: Sequence[torch.Tensor], batch_size_per_image: int,
                    positive_fraction: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Random foreground/background samples per image (Faster R-CNN Sec. 3.1.3).

    ``labels[i]``: ``>= 1`` foreground, ``0`` background, ``-1`` ignored. Takes up to
    ``positive_fraction * batch_size_per_image`` foreground entries and fills the batch with
    background. Returns two lists of boolean masks (foreground, background) per image.
    """
    positives, negatives = [], []
    for lab in labels:
        pos = torch.where(lab >= 1)[0]
        neg = torch.where(lab == 0)[0]
        num_pos = min(int(batch_size_per_image * positive_fraction), pos.numel())
        num_neg = min(batch_size_per_image - num_pos, neg.numel())
        pos = pos[torch.randperm(pos.numel(), device=pos.device)[:num_pos]]
        neg = neg[torch.randperm(neg.numel(), device=neg.device)[:num_neg]]
        pos_mask = torch.zeros_like(lab, dtype=torch.bool)
        neg_mask = torch.zeros_like(lab, dtype=torch.bool)
        pos_mask[pos] = True
        neg_mask[neg] = True
        positives.append(pos_mask)
        negatives.append(neg_mask)
    return positives, negatives


__all__ = ["AnchorGenerator", "BoxCoder", "Matcher", "sample_balanced", "BBOX_XFORM_CLIP",
           "BELOW_LOW_THRESHOLD", "BETWEEN_THRESHOLDS"]
