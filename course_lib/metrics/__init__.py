"""Segmentation metrics, all read off one confusion matrix.

Every score of the survey's metric section (pixel accuracy, mean pixel accuracy, IoU, mIoU,
frequency-weighted IoU, precision, recall, F1, Dice) is a ratio of three counts per class,
and all three sit in a single ``K x K`` **confusion matrix** ``cm`` whose row is the target
class and whose column is the predicted class:

* ``TP_c = cm[c, c]`` — pixels of class ``c`` predicted as ``c``;
* ``FN_c = cm[c, :].sum() - TP_c`` — pixels of class ``c`` predicted as something else;
* ``FP_c = cm[:, c].sum() - TP_c`` — pixels predicted as ``c`` that belong to another class.

The matrix is built in one call, ``torch.bincount(K * target + pred)``, exactly as
torchvision's reference trainer does, and summed over the batches of a whole validation set
(:class:`ConfusionMatrix`). Pixels whose target equals ``ignore_index`` (255, "void" in VOC)
are dropped before counting.

Conventions (the same as ``torchmetrics`` with ``average="macro"``):

* A class **absent from both prediction and target** (``TP + FP + FN == 0``) has no score:
  its per-class IoU, precision, recall, F1 and Dice are ``NaN``, and every mean
  (mIoU, mean pixel accuracy, mean F1, mean Dice) skips it (``nanmean``). Otherwise a
  class that does not occur in a small batch would count as a perfect 1 or a failed 0.
* A class **present in the target but never predicted** has ``TP = 0``, so IoU = 0, recall = 0,
  F1 = Dice = 0, and it pulls the means down — missing a class is an error. Its precision is
  ``0 / 0``; we report **0** (torchmetrics' ``zero_division=0``), not NaN.
* Symmetrically a class **predicted but absent from the target** gets IoU = precision = 0 and
  recall ``0 / 0`` reported as 0. So mean pixel accuracy (the mean of the per-class recalls) also
  counts such a class as 0; the original FCN code's ``nanmean(diag / rows)`` skips it instead.
* On one pooled matrix, per-class F1 and Dice are the same number, ``2TP / (2TP + FP + FN)``.
  They differ from IoU by the monotone map ``Dice = 2 IoU / (1 + IoU)``.

Micro versus per-image averaging: :func:`mean_iou` of the pooled matrix weighs every *pixel*
of the data set equally (the VOC / Cityscapes protocol). :func:`per_image_miou` first computes
each image's mIoU (over the classes present in that image) and then averages over images, so
every *image* weighs the same: a small object missed in one image costs that image a whole
class worth of IoU, while in the pooled score it costs only its few pixels. The two numbers
answer different questions; papers report the pooled one.

:func:`boundary_f_score` (Csurka et al., BMVC 2013) scores only the contours, with a tolerance
in pixels, because region metrics barely notice a blurred boundary.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.config import IGNORE_INDEX

__all__ = [
    "ConfusionMatrix",
    "boundary_f_score",
    "confusion_matrix",
    "dice_per_class",
    "frequency_weighted_iou",
    "instance_iou",
    "iou_by_object_size",
    "iou_per_class",
    "mean_iou",
    "mean_pixel_accuracy",
    "pair_confusion",
    "per_image_miou",
    "pixel_accuracy",
    "precision_recall_f1",
    "segmentation_metrics",
]

# Largest label value we let torch.bincount allocate rows for (labels above it take the
# slower masked path, so a stray huge value cannot ask for gigabytes of bins).
_MAX_FAST_LABEL = 4095


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


def _as_labels(pred: Tensor, target: Tensor, num_classes: int) -> tuple[Tensor, Tensor, bool]:
    """Check shapes and dtypes; return (pred labels, target, pred_is_from_argmax)."""
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise ValueError(
            f"pred and target must be torch tensors, got {type(pred).__name__} and "
            f"{type(target).__name__}"
        )
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if pred.device != target.device:
        raise ValueError(f"pred is on {pred.device} but target is on {target.device}")
    if target.is_floating_point() or target.is_complex():
        raise ValueError(
            f"target must hold integer class labels, got dtype {target.dtype}; "
            "convert masks with .long() (do not pass probabilities as the target)"
        )
    if target.dtype == torch.bool:
        target = target.long()
    from_logits = False
    if pred.dim() == target.dim() + 1:
        if not pred.is_floating_point():
            raise ValueError(
                f"pred with one more dimension than target must be float logits/scores "
                f"[N, K, ...], got dtype {pred.dtype} and shape {tuple(pred.shape)}"
            )
        if pred.shape[1] != num_classes:
            raise ValueError(
                f"logits have {pred.shape[1]} channels (dim 1) but num_classes={num_classes}"
            )
        if pred.shape[:1] + pred.shape[2:] != target.shape:
            raise ValueError(
                f"logits shape {tuple(pred.shape)} does not match target shape "
                f"{tuple(target.shape)} (expected logits [N, K, ...] with target [N, ...])"
            )
        pred = pred.argmax(dim=1)
        from_logits = True
    elif pred.dim() == target.dim():
        if pred.shape != target.shape:
            raise ValueError(
                f"pred shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}"
            )
        if pred.is_floating_point() or pred.is_complex():
            raise ValueError(
                f"pred has the target's shape {tuple(pred.shape)} but dtype {pred.dtype}: pass "
                "integer labels, or logits with a class dimension [N, K, ...]"
            )
        if pred.dtype == torch.bool:
            pred = pred.long()
    else:
        raise ValueError(
            f"pred shape {tuple(pred.shape)} does not fit target shape {tuple(target.shape)}: "
            "pred must be labels of the same shape or logits [N, K, ...] for target [N, ...]"
        )
    return pred, target, from_logits


def _check_pred_range(pred: Tensor, num_classes: int) -> None:
    lo, hi = (int(v) for v in torch.aminmax(pred))
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"pred contains labels outside [0, {num_classes}): found min {lo}, max {hi}"
        )


def _bad_target_error(labels: list[int], num_classes: int, ignore_index: int | None) -> ValueError:
    shown = labels[:10]
    more = f" (and {len(labels) - 10} more)" if len(labels) > 10 else ""
    neg = [v for v in shown if v < 0]
    kind = "negative label(s)" if neg and len(neg) == len(shown) else "label(s)"
    return ValueError(
        f"target contains {kind} {shown}{more} outside [0, {num_classes}) that are not "
        f"ignore_index={ignore_index}"
    )


def _general_counts(
    idx: Tensor, target: Tensor, num_classes: int, ignore_index: int | None
) -> Tensor:
    """Masked path: any ignore index, any label range. Returns bincount [K*K]."""
    kk = num_classes * num_classes
    valid = target != ignore_index if ignore_index is not None else None
    bad = (target < 0) | (target >= num_classes)
    if valid is not None:
        bad &= valid
    if bool(bad.any()):
        found = torch.unique(target[bad]).tolist()
        raise _bad_target_error(found, num_classes, ignore_index)
    if valid is not None:
        idx = idx.masked_fill(~valid, kk)  # ignored pixels go to one extra bin, dropped below
    return torch.bincount(idx, minlength=kk + 1)[:kk]


def _confusion_counts(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    ignore_index: int | None,
    buffer: Tensor | None = None,
) -> Tensor:
    """``pred`` (valid labels) and ``target`` of one shape -> int64 [K, K].

    Fast path (target labels in ``[0, K)`` plus an ``ignore_index >= K``): one fused
    ``pred + K * target`` into a reusable int64 buffer and one ``bincount`` with a row per
    label value up to the largest found; the ignore row is dropped afterwards, so no boolean
    mask or compaction of the inputs is ever built. Anything else takes the masked path.
    """
    k = num_classes
    n = target.numel()
    if n == 0:
        return torch.zeros(k, k, dtype=torch.int64, device=target.device)
    if pred.dtype != torch.int64:
        pred = pred.long()
    if target.dtype != torch.int64:
        target = target.long()
    flat_p, flat_t = pred.reshape(-1), target.reshape(-1)
    if buffer is not None and buffer.numel() >= n and buffer.device == flat_t.device:
        idx = torch.add(flat_p, flat_t, alpha=k, out=buffer[:n])
    else:
        idx = torch.add(flat_p, flat_t, alpha=k)

    lo, hi = (int(v) for v in torch.aminmax(flat_t))
    ignore_outside = ignore_index is None or ignore_index >= k or ignore_index < 0
    if lo >= 0 and hi < k and ignore_outside:
        # Every label is a class: nothing to ignore, nothing invalid.
        return torch.bincount(idx, minlength=k * k).view(k, k)
    if (
        lo >= 0
        and ignore_index is not None
        and k <= ignore_index <= _MAX_FAST_LABEL
        and hi <= ignore_index
    ):
        rows = hi + 1
        counts = torch.bincount(idx, minlength=rows * k).view(rows, k)
        extra = counts[k:].sum(dim=1)
        if hi == ignore_index:
            extra[ignore_index - k] = 0  # the ignore row is allowed
        if bool(extra.any()):
            found = (torch.nonzero(extra).flatten() + k).tolist()
            raise _bad_target_error(found, k, ignore_index)
        return counts[:k]
    return _general_counts(idx, flat_t, k, ignore_index).view(k, k)


# --------------------------------------------------------------------------------------
# Building the matrix
# --------------------------------------------------------------------------------------


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> Tensor:
    """Confusion matrix ``cm[t, p]`` = number of pixels of target class t predicted as p.

    Args:
        pred: integer labels with the target's shape (e.g. ``[N, H, W]``), or float logits /
            probabilities ``[N, K, ...]`` (arg-maxed over dim 1).
        target: integer labels ``[N, ...]``; pixels equal to ``ignore_index`` are dropped.
        num_classes: K.
        ignore_index: label to skip (``None``: skip nothing).

    Returns:
        int64 tensor ``[K, K]`` on the inputs' device; rows = target, columns = prediction.

    Raises:
        ValueError: shapes that do not match, a float target, a label ``>= K`` that is not
            ``ignore_index`` or a negative label (the message lists the labels found).
    """
    pred, target, from_logits = _as_labels(pred, target, num_classes)
    if not from_logits:
        _check_pred_range(pred, num_classes)
    return _confusion_counts(pred, target, num_classes, ignore_index)


class ConfusionMatrix:
    """A confusion matrix summed over batches: ``update`` per batch, ``compute`` at the end.

    The matrix lives on the device of the inputs (it moves there on the first ``update``), so
    validation on a GPU never copies predictions to the CPU.

    Example::

        cm = ConfusionMatrix(num_classes=12)
        for images, masks in loader:
            cm.update(model(images), masks)     # logits or labels
        scores = cm.compute()                   # dict of segmentation_metrics
    """

    def __init__(self, num_classes: int, ignore_index: int | None = IGNORE_INDEX) -> None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self._buffer: Tensor | None = None  # reused for K * target + pred (no new allocation)

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> Tensor:
        """Add one batch; returns this batch's own ``[K, K]`` matrix."""
        pred, target, from_logits = _as_labels(pred, target, self.num_classes)
        if not from_logits:
            _check_pred_range(pred, self.num_classes)
        n = target.numel()
        if self._buffer is None or self._buffer.numel() < n or self._buffer.device != target.device:
            self._buffer = torch.empty(n, dtype=torch.int64, device=target.device)
        batch = _confusion_counts(pred, target, self.num_classes, self.ignore_index, self._buffer)
        if self.matrix.device != batch.device:
            self.matrix = self.matrix.to(batch.device)
        self.matrix += batch
        return batch

    def compute(self) -> dict[str, Any]:
        """All metrics of the accumulated matrix (see :func:`segmentation_metrics`)."""
        return segmentation_metrics(self.matrix)

    def reset(self) -> None:
        """Zero the counts (keeps the device); also frees the scratch buffer."""
        self.matrix = torch.zeros_like(self.matrix)
        self._buffer = None

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={int(self.matrix.sum())}, device={self.matrix.device})"
        )


# --------------------------------------------------------------------------------------
# Metrics of a matrix
# --------------------------------------------------------------------------------------


def _counts(cm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(TP, target count, predicted count) per class, float64, for a [..., K, K] matrix."""
    if not isinstance(cm, Tensor) or cm.dim() < 2 or cm.shape[-1] != cm.shape[-2]:
        shape = tuple(cm.shape) if isinstance(cm, Tensor) else type(cm).__name__
        raise ValueError(f"expected a square confusion matrix [..., K, K], got {shape}")
    cm = cm.to(torch.float64)
    tp = torch.diagonal(cm, dim1=-2, dim2=-1)
    return tp, cm.sum(dim=-1), cm.sum(dim=-2)


def _ratio(num: Tensor, den: Tensor, present: Tensor) -> Tensor:
    """num / den; 0 where den == 0 but the class is present; NaN where it is absent."""
    safe = torch.where(den > 0, den, torch.ones_like(den))
    out = torch.where(den > 0, num / safe, torch.zeros_like(num))
    return out.masked_fill(~present, math.nan)


def _present(gt: Tensor, pr: Tensor) -> Tensor:
    return (gt + pr) > 0


def _float(x: Tensor) -> float:
    return float(x.item())


def pixel_accuracy(cm: Tensor) -> float:
    """Fraction of (non-ignored) pixels labelled correctly: ``trace(cm) / sum(cm)``."""
    tp, gt, _ = _counts(cm)
    total = gt.sum()
    return _float(tp.sum() / total) if total > 0 else math.nan


def mean_pixel_accuracy(cm: Tensor) -> float:
    """Mean over present classes of the per-class accuracy (= recall) ``TP / (TP + FN)``."""
    _, recall, _ = precision_recall_f1(cm)
    return _float(torch.nanmean(recall))


def iou_per_class(cm: Tensor) -> Tensor:
    """Jaccard index ``TP / (TP + FP + FN)`` per class; NaN for classes absent from both."""
    tp, gt, pr = _counts(cm)
    return _ratio(tp, gt + pr - tp, _present(gt, pr))


def mean_iou(cm: Tensor) -> float:
    """mIoU: mean of :func:`iou_per_class` over the classes present (NaN entries skipped)."""
    return _float(torch.nanmean(iou_per_class(cm)))


def frequency_weighted_iou(cm: Tensor) -> float:
    """FWIoU: per-class IoU weighted by the class's share of target pixels."""
    tp, gt, pr = _counts(cm)
    total = gt.sum()
    if total == 0:
        return math.nan
    iou = _ratio(tp, gt + pr - tp, _present(gt, pr))
    seen = gt > 0
    return _float((gt[seen] / total * iou[seen]).sum())


def precision_recall_f1(cm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class precision ``TP/(TP+FP)``, recall ``TP/(TP+FN)`` and F1 (see module doc)."""
    tp, gt, pr = _counts(cm)
    present = _present(gt, pr)
    precision = _ratio(tp, pr, present)
    recall = _ratio(tp, gt, present)
    f1 = _ratio(2 * tp, gt + pr, present)  # = 2PR / (P + R), without the 0/0 cases
    return precision, recall, f1


def dice_per_class(cm: Tensor) -> Tensor:
    """Dice / Sørensen coefficient ``2TP / (2TP + FP + FN)`` per class (equals F1 here)."""
    tp, gt, pr = _counts(cm)
    return _ratio(2 * tp, gt + pr, _present(gt, pr))


def segmentation_metrics(cm: Tensor) -> dict[str, Any]:
    """Every metric of one confusion matrix.

    Returns a dict: ``"pixel_accuracy"``, ``"mean_pixel_accuracy"``, ``"miou"``, ``"fwiou"``,
    ``"mean_f1"``, ``"mean_dice"`` as Python floats; ``"iou"``, ``"precision"``, ``"recall"``,
    ``"f1"``, ``"dice"`` as float64 CPU tensors ``[K]`` (NaN for classes absent from both
    prediction and target).
    """
    cm = cm.detach().cpu()
    precision, recall, f1 = precision_recall_f1(cm)
    iou = iou_per_class(cm)
    dice = dice_per_class(cm)
    return {
        "pixel_accuracy": pixel_accuracy(cm),
        "mean_pixel_accuracy": _float(torch.nanmean(recall)),
        "iou": iou,
        "miou": _float(torch.nanmean(iou)),
        "fwiou": frequency_weighted_iou(cm),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "dice": dice,
        "mean_f1": _float(torch.nanmean(f1)),
        "mean_dice": _float(torch.nanmean(dice)),
    }


def per_image_miou(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> float:
    """Mean over images of each image's own mIoU (classes absent from an image are skipped).

    Compare with ``mean_iou(confusion_matrix(pred, target, K))``, the pooled ("micro") score:
    see the module docstring. Images whose pixels are all ignored are skipped. All images'
    matrices come from one ``bincount`` (image ``i`` offsets its bins by ``i * K * K``).
    """
    pred, target, from_logits = _as_labels(pred, target, num_classes)
    if target.dim() < 1 or target.shape[0] == 0:
        raise ValueError(f"expected a batch [N, ...] with N >= 1, got shape {tuple(target.shape)}")
    if not from_logits:
        _check_pred_range(pred, num_classes)
    k, n = num_classes, target.shape[0]
    t = target.reshape(n, -1).long()
    idx = torch.add(pred.reshape(n, -1).long(), t, alpha=k)
    idx += torch.arange(n, device=t.device).unsqueeze(1) * (k * k)
    valid = t != ignore_index if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    bad = ((t < 0) | (t >= k)) & valid
    if bool(bad.any()):
        raise _bad_target_error(torch.unique(t[bad]).tolist(), k, ignore_index)
    idx = idx.masked_fill(~valid, n * k * k)
    counts = torch.bincount(idx.reshape(-1), minlength=n * k * k + 1)[: n * k * k]
    ious = iou_per_class(counts.view(n, k, k))  # [N, K]
    per_image = torch.nanmean(ious, dim=1)  # NaN for a fully ignored image
    return _float(torch.nanmean(per_image))


def pair_confusion(cm: Tensor, pair: tuple[int, int]) -> dict[str, float]:
    """How a model labels the pixels of two look-alike classes (e.g. car vs boat).

    From the confusion matrix ``cm`` (rows = target), over all target pixels of either class:
    ``right`` (given its own class), ``swapped`` (given the other member of the pair),
    ``missed`` (given any third class), and ``pair_accuracy`` = right / (right + swapped),
    which asks only "once found, is it named right?" (0.5 = the pair is a coin toss; NaN when
    the model never predicts either member on those pixels).
    """
    k = cm.shape[0]
    if cm.dim() != 2 or cm.shape[1] != k:
        raise ValueError(f"cm must be a square [K, K] matrix, got shape {tuple(cm.shape)}")
    a, b = (int(c) for c in pair)
    if a == b or not (0 <= a < k and 0 <= b < k):
        raise ValueError(f"pair must be two different classes in 0..{k - 1}, got {pair}")
    cm = cm.double()
    total = cm[a].sum() + cm[b].sum()
    right, swapped = cm[a, a] + cm[b, b], cm[a, b] + cm[b, a]
    found = right + swapped
    share = (lambda x: float("nan")) if total == 0 else (lambda x: float(x / total))
    return {
        "right": share(right),
        "swapped": share(swapped),
        "missed": share(total - found),
        "pair_accuracy": float(right / found) if found > 0 else float("nan"),
        "pixels": int(total),
    }


# --------------------------------------------------------------------------------------
# Boundary F-score
# --------------------------------------------------------------------------------------


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
    pred, target, from_logits = _as_labels(pred, target, num_classes)
    if target.dim() == 2:
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    if target.dim() != 3:
        raise ValueError(
            f"boundary_f_score needs 2D label maps [N, H, W] or [H, W], got {tuple(target.shape)}"
        )
    if not from_logits:
        _check_pred_range(pred, num_classes)
    # Same label checks as the confusion matrix (raises on labels >= K or negative).
    _confusion_counts(pred, target, num_classes, ignore_index)
    pred, target = pred.long(), target.long()
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target).bool()

    t_edge = _label_edges(target)  # a change to the ignore label is a boundary too
    p_edge = _label_edges(pred)
    t_oh = _one_hot_where(t_edge & valid, target, num_classes)  # [N, K, H, W]
    p_all = _one_hot_where(p_edge, pred, num_classes)
    p_oh = p_all * valid.unsqueeze(1)  # predicted edges on ignored pixels are not scored...
    win = 2 * tolerance + 1
    t_near = F.max_pool2d(t_oh, win, stride=1, padding=tolerance)
    p_near = F.max_pool2d(p_all, win, stride=1, padding=tolerance)  # ...but can match

    dims = (0, 2, 3)
    n_pred, n_true = p_oh.sum(dims).double(), t_oh.sum(dims).double()
    hit_pred = (p_oh * t_near).sum(dims).double()  # predicted edges near a true edge
    hit_true = (t_oh * p_near).sum(dims).double()  # true edges near a predicted edge
    present = (n_pred + n_true) > 0
    precision = _ratio(hit_pred, n_pred, present)
    recall = _ratio(hit_true, n_true, present)
    f = _ratio(2 * precision * recall, precision + recall, present)
    return _float(torch.nanmean(f))


# --------------------------------------------------------------------------------------
# Per-object scores and object size (notebook 09: the scale range of FPN)
# --------------------------------------------------------------------------------------


def instance_iou(
    pred: Tensor,
    target: Tensor,
    instance_ids: Tensor,
    expand: float = 0.5,
    ignore_index: int | None = IGNORE_INDEX,
) -> dict[str, Tensor]:
    """How well a *semantic* prediction segments each ground-truth object, one IoU per object.

    Pooled IoU weighs pixels, so a few large objects drown the small ones. Here every object
    (``instance_ids`` = 1..M per image, 0 = no object) is scored on its own, against the
    prediction of *its* class ``c`` (read from ``target`` at its pixels):

    * TP: its pixels predicted ``c``; FN: its pixels predicted otherwise;
    * FP: pixels predicted ``c`` whose target is another class (not ``c``, not ignored) inside a
      window around the object: its bounding box grown by ``expand`` times the box's larger
      side on every side (at least 2 px) — a blob that spills over the object counts against it,
      a correct neighbour of the same class does not;
    * ``IoU = TP / (TP + FN + FP)``, ``recall = TP / (TP + FN)``.

    Args:
        pred: predicted labels [N, H, W] (or logits [N, K, H, W], argmax taken).
        target: semantic labels [N, H, W]; instance_ids: int [N, H, W], 0 = background.
        expand: window growth (fraction of the box's larger side, per side).
        ignore_index: target label that is never counted as a false positive.

    Returns:
        1-D tensors over all objects of the batch (image-major order): ``"iou"``, ``"recall"``
        (float64), ``"area"`` (pixels), ``"label"`` (class) and ``"image"`` (batch index).
    """
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor) or not isinstance(
            instance_ids, Tensor):
        raise ValueError("pred, target and instance_ids must be torch tensors")
    if pred.dim() == 4:
        if pred.shape[0] != target.shape[0] or pred.shape[2:] != target.shape[1:]:
            raise ValueError(f"logits {tuple(pred.shape)} do not match target "
                             f"{tuple(target.shape)}")
        pred = pred.argmax(1)
    if target.dim() != 3 or pred.shape != target.shape or instance_ids.shape != target.shape:
        raise ValueError(
            f"expected pred, target and instance_ids of one shape [N, H, W], got "
            f"{tuple(pred.shape)}, {tuple(target.shape)} and {tuple(instance_ids.shape)}"
        )
    if instance_ids.is_floating_point() or target.is_floating_point():
        raise ValueError("target and instance_ids must hold integers")
    if expand < 0:
        raise ValueError(f"expand must be >= 0, got {expand}")
    inst = instance_ids.long()
    if bool((inst < 0).any()):
        raise ValueError("instance_ids must be >= 0 (0 = no object)")
    n, h, w = target.shape
    empty = torch.zeros(0, dtype=torch.float64)
    m = int(inst.max()) if inst.numel() else 0
    if m == 0:
        return {"iou": empty, "recall": empty.clone(), "area": torch.zeros(0, dtype=torch.long),
                "label": torch.zeros(0, dtype=torch.long),
                "image": torch.zeros(0, dtype=torch.long)}
    ids = torch.arange(1, m + 1, device=inst.device)
    masks = inst[:, None] == ids[None, :, None, None]  # [N, M, H, W]
    present = masks.flatten(2).any(2)  # [N, M]
    image, _ = present.nonzero(as_tuple=True)
    masks = masks[present]  # [T, H, W], one per object
    tgt = target.long()[image]
    label = torch.where(masks, tgt, torch.full_like(tgt, -1)).flatten(1).amax(1)  # [T]
    # bounding boxes (inclusive rows/cols) and the grown window
    rows, cols = masks.any(2), masks.any(1)  # [T, H], [T, W]
    r = torch.arange(h, device=inst.device)
    c = torch.arange(w, device=inst.device)
    big = max(h, w)
    y0 = torch.where(rows, r, big).amin(1)
    y1 = torch.where(rows, r, -1).amax(1)
    x0 = torch.where(cols, c, big).amin(1)
    x1 = torch.where(cols, c, -1).amax(1)
    grow = (expand * torch.maximum(y1 - y0 + 1, x1 - x0 + 1).double()).ceil().long().clamp(min=2)
    in_rows = (r[None] >= (y0 - grow)[:, None]) & (r[None] <= (y1 + grow)[:, None])
    in_cols = (c[None] >= (x0 - grow)[:, None]) & (c[None] <= (x1 + grow)[:, None])
    window = in_rows[:, :, None] & in_cols[:, None, :]  # [T, H, W]
    said_c = pred.long()[image] == label[:, None, None]
    other = tgt != label[:, None, None]
    if ignore_index is not None:
        other &= tgt != ignore_index
    tp = (masks & said_c).flatten(1).sum(1)
    area = masks.flatten(1).sum(1)
    fp = (said_c & other & window).flatten(1).sum(1)
    return {
        "iou": tp.double() / (area + fp).double(),
        "recall": tp.double() / area.double(),
        "area": area,
        "label": label,
        "image": image,
    }


def iou_by_object_size(
    pred: Tensor,
    target: Tensor,
    instance_ids: Tensor,
    bounds: tuple[float, ...] = (0.008, 0.03),
    names: tuple[str, ...] = ("small", "medium", "large"),
    classes: tuple[int, ...] | None = None,
    expand: float = 0.5,
    ignore_index: int | None = IGNORE_INDEX,
) -> dict[str, dict[str, float]]:
    """Mean per-object IoU (:func:`instance_iou`) in object-size buckets.

    An object's size is its area as a fraction of the image area (COCO buckets by area in
    pixels; a fraction keeps the buckets the same at every image size): bucket ``i`` holds
    the objects with ``bounds[i-1] <= area / (H * W) < bounds[i]``. Default: small < 0.8 %,
    medium 0.8-3 %, large >= 3 % of the image. ``classes`` keeps only those object classes.

    Returns ``{name: {"iou", "recall", "objects"}}`` (means over the bucket's objects; NaN for
    an empty bucket), plus ``"all"`` over every kept object.
    """
    if len(names) != len(bounds) + 1:
        raise ValueError(f"need one name per bucket: {len(bounds) + 1} buckets, got {names}")
    if list(bounds) != sorted(bounds) or any(b <= 0 for b in bounds):
        raise ValueError(f"bounds must be positive and increasing, got {bounds}")
    result = instance_iou(pred, target, instance_ids, expand=expand, ignore_index=ignore_index)
    fraction = result["area"].double() / float(target.shape[-2] * target.shape[-1])
    keep = torch.ones_like(fraction, dtype=torch.bool)
    if classes is not None:
        keep = torch.isin(result["label"], torch.as_tensor(classes, device=keep.device))
    bucket = torch.bucketize(fraction, torch.tensor(bounds, dtype=torch.float64,
                                                    device=fraction.device), right=True)

    def summary(sel: Tensor) -> dict[str, float]:
        count = int(sel.sum())
        if count == 0:
            return {"iou": float("nan"), "recall": float("nan"), "objects": 0}
        return {"iou": float(result["iou"][sel].mean()),
                "recall": float(result["recall"][sel].mean()), "objects": count}

    out = {name: summary(keep & (bucket == i)) for i, name in enumerate(names)}
    out["all"] = summary(keep)
    return out


def __getattr__(name: str) -> Any:
    # Notebook 18 still calls metrics.benchmark_vs_torchmetrics, which moved to bench (a
    # benchmark, and library modules import nothing from bench): looked up only when asked.
    if name == "benchmark_vs_torchmetrics":
        from course_lib.bench import benchmark_vs_torchmetrics

        return benchmark_vs_torchmetrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
