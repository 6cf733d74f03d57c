"""The boundary F-score (Csurka et al., BMVC 2013): region metrics barely notice a blurred
boundary, so this one scores only the contours, with a tolerance in pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.config import IGNORE_INDEX, check_ignore_index

from .confusion import confusion_counts
from .labels import as_labels, check_pred_range
from .scores import as_float, ratio


def _label_edges(labels: Tensor) -> Tensor:
    """Pixels whose 3x3 neighbourhood holds another label; labels [N, H, W] -> bool."""
    x = labels.unsqueeze(1).to(torch.float32)  # exact for labels < 2**24
    hi = F.max_pool2d(x, 3, stride=1, padding=1)  # padding is -inf: the image border
    lo = -F.max_pool2d(-x, 3, stride=1, padding=1)  # is not a boundary by itself
    return (hi != lo).squeeze(1)


def _one_hot_where(mask: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """float [N, K, H, W]: 1 at (labels[p], p) for pixels p in mask, else 0."""
    n, h, w = labels.shape
    out = torch.zeros(n, num_classes + 1, h, w, device=labels.device)
    out.scatter_(1, torch.where(mask, labels, num_classes).unsqueeze(1), 1.0)
    return out[:, :num_classes]


def _dilate(binary: Tensor, radius: int) -> Tensor:
    """0/1 maps [N, K, H, W] grown by ``radius`` pixels (Chebyshev distance).

    A depthwise sum over the ``2*radius+1`` square window is > 0 exactly where the window's
    max is 1 (the sums are small integers, exact in float32); on the CPU this runs about 8x
    faster than ``max_pool2d`` with stride 1 (39 ms against 307 ms for 64 maps of 12 x 96 x 96).
    """
    channels, side = binary.shape[1], 2 * radius + 1
    window = binary.new_ones(channels, 1, side, side)
    return (F.conv2d(binary, window, padding=radius, groups=channels) > 0).to(binary.dtype)


def boundary_f_score(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    tolerance: int = 2,
    ignore_index: int | None = IGNORE_INDEX,
) -> float:
    """Boundary F1 (BF) score of Csurka et al. (2013), averaged over classes.

    For each class c, its boundary pixels are the pixels labelled c whose 3x3 neighbourhood
    holds another label (the image border is not a boundary). A predicted boundary pixel is
    correct when a target boundary pixel of the same class lies within ``tolerance`` pixels
    (Chebyshev distance: dilation by a max-pool with a ``2*tolerance+1`` window), and vice
    versa. Per class, precision = matched predicted / all predicted boundary pixels,
    recall = matched target / all target boundary pixels, F = 2PR / (P + R); the counts are
    pooled over the images of the batch. The result is the mean F over the classes with a
    boundary in the prediction or the target (0 for a class on one side only); NaN when
    neither map has any boundary.

    Ignored target pixels: a class's pixel next to one is a target boundary pixel (in VOC the
    void band lies *on* object edges, so its sides are where the true edge is); predicted
    boundary pixels that fall on ignored pixels are not scored (no precision penalty) but
    still match target boundary pixels within the tolerance.

    Args:
        pred: labels ``[N, H, W]`` (or ``[H, W]``) or logits ``[N, K, H, W]``.
        target: labels ``[N, H, W]`` (or ``[H, W]``).
        num_classes: K.
        tolerance: distance in pixels (int >= 0) within which boundaries match.
        ignore_index: target label to skip.
    """
    if not isinstance(tolerance, int) or isinstance(tolerance, bool) or tolerance < 0:
        raise ValueError(f"tolerance must be an int >= 0 (pixels), got {tolerance!r}")
    pred, target, from_logits = as_labels(pred, target, num_classes)
    check_ignore_index(num_classes, ignore_index)
    if target.dim() == 2:
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    if target.dim() != 3:
        raise ValueError(
            f"boundary_f_score needs 2D label maps [N, H, W] or [H, W], got {tuple(target.shape)}"
        )
    if not from_logits:
        check_pred_range(pred, num_classes)
    # Same label checks as the confusion matrix (raises on labels >= K or negative).
    confusion_counts(pred, target, num_classes, ignore_index)
    pred, target = pred.long(), target.long()
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target).bool()

    t_edge = _label_edges(target)  # a change to the ignore label is a boundary too
    p_edge = _label_edges(pred)
    t_oh = _one_hot_where(t_edge & valid, target, num_classes)  # [N, K, H, W]
    p_all = _one_hot_where(p_edge, pred, num_classes)
    p_oh = p_all * valid.unsqueeze(1)  # predicted edges on ignored pixels are not scored...
    t_near = _dilate(t_oh, tolerance)
    p_near = _dilate(p_all, tolerance)  # ...but can match

    dims = (0, 2, 3)
    n_pred, n_true = p_oh.sum(dims).double(), t_oh.sum(dims).double()
    hit_pred = (p_oh * t_near).sum(dims).double()  # predicted edges near a true edge
    hit_true = (t_oh * p_near).sum(dims).double()  # true edges near a predicted edge
    present = (n_pred + n_true) > 0
    precision = ratio(hit_pred, n_pred, present)
    recall = ratio(hit_true, n_true, present)
    f = ratio(2 * precision * recall, precision + recall, present)
    return as_float(torch.nanmean(f))
