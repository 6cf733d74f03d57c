"""Every region score of one confusion matrix (see :mod:`course_lib.metrics` for the
conventions), the per-image mIoU, and how a model labels a pair of look-alike classes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from course_lib.config import IGNORE_INDEX, check_ignore_index

from .labels import as_labels, bad_target_error, check_pred_range


def class_counts(cm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(TP, target count, predicted count) per class, float64, for a [..., K, K] matrix."""
    if not isinstance(cm, Tensor) or cm.dim() < 2 or cm.shape[-1] != cm.shape[-2]:
        shape = tuple(cm.shape) if isinstance(cm, Tensor) else type(cm).__name__
        raise ValueError(f"expected a square confusion matrix [..., K, K], got {shape}")
    cm = cm.to(torch.float64)
    tp = torch.diagonal(cm, dim1=-2, dim2=-1)
    return tp, cm.sum(dim=-1), cm.sum(dim=-2)


def ratio(num: Tensor, den: Tensor, present: Tensor) -> Tensor:
    """num / den; 0 where den == 0 but the class is present; NaN where it is absent."""
    safe = torch.where(den > 0, den, torch.ones_like(den))
    out = torch.where(den > 0, num / safe, torch.zeros_like(num))
    return out.masked_fill(~present, math.nan)


def present_classes(gt: Tensor, pr: Tensor) -> Tensor:
    return (gt + pr) > 0


def as_float(x: Tensor) -> float:
    return float(x.item())


def pixel_accuracy(cm: Tensor) -> float:
    """Fraction of (non-ignored) pixels labelled correctly: ``trace(cm) / sum(cm)``."""
    tp, gt, _ = class_counts(cm)
    total = gt.sum()
    return as_float(tp.sum() / total) if total > 0 else math.nan


def mean_pixel_accuracy(cm: Tensor) -> float:
    """Mean over present classes of the per-class accuracy (= recall) ``TP / (TP + FN)``."""
    _, recall, _ = precision_recall_f1(cm)
    return as_float(torch.nanmean(recall))


def iou_per_class(cm: Tensor) -> Tensor:
    """Jaccard index ``TP / (TP + FP + FN)`` per class; NaN for classes absent from both."""
    tp, gt, pr = class_counts(cm)
    return ratio(tp, gt + pr - tp, present_classes(gt, pr))


def mean_iou(cm: Tensor) -> float:
    """mIoU: mean of :func:`iou_per_class` over the classes present (NaN entries skipped)."""
    return as_float(torch.nanmean(iou_per_class(cm)))


def group_iou(iou: Tensor, groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Mean IoU of each group of classes (NaN entries skipped), e.g. stuff vs things:
    ``group_iou(met["iou"], CLASS_GROUPS)`` gives ``{"stuff": ..., "things": ...}``.

    A model can score a high mIoU on the large regions alone; the mean over the object
    classes says whether it learned the objects (COCO-Stuff and Cityscapes report both).
    """
    if iou.dim() != 1:
        raise ValueError(f"iou must be one value per class [K], got shape {tuple(iou.shape)}")
    scores = {}
    for name, classes in groups.items():
        index = list(classes)
        if not index or min(index) < 0 or max(index) >= iou.numel():
            raise ValueError(f"group {name!r} names classes {index}, expected a non-empty "
                             f"list of labels in [0, {iou.numel()})")
        scores[name] = as_float(torch.nanmean(iou[index]))
    return scores


def frequency_weighted_iou(cm: Tensor) -> float:
    """FWIoU: per-class IoU weighted by the class's share of target pixels."""
    tp, gt, pr = class_counts(cm)
    total = gt.sum()
    if total == 0:
        return math.nan
    iou = ratio(tp, gt + pr - tp, present_classes(gt, pr))
    seen = gt > 0
    return as_float((gt[seen] / total * iou[seen]).sum())


def precision_recall_f1(cm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class precision ``TP/(TP+FP)``, recall ``TP/(TP+FN)`` and F1 (see module doc)."""
    tp, gt, pr = class_counts(cm)
    present = present_classes(gt, pr)
    precision = ratio(tp, pr, present)
    recall = ratio(tp, gt, present)
    f1 = ratio(2 * tp, gt + pr, present)  # = 2PR / (P + R), without the 0/0 cases
    return precision, recall, f1


def dice_per_class(cm: Tensor) -> Tensor:
    """Dice / Sørensen coefficient ``2TP / (2TP + FP + FN)`` per class (equals F1 here)."""
    tp, gt, pr = class_counts(cm)
    return ratio(2 * tp, gt + pr, present_classes(gt, pr))


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
        "mean_pixel_accuracy": as_float(torch.nanmean(recall)),
        "iou": iou,
        "miou": as_float(torch.nanmean(iou)),
        "fwiou": frequency_weighted_iou(cm),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "dice": dice,
        "mean_f1": as_float(torch.nanmean(f1)),
        "mean_dice": as_float(torch.nanmean(dice)),
    }


def per_image_miou(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> float:
    """Mean over images of each image's own mIoU (classes absent from an image are skipped).

    Compare with ``mean_iou(confusion_matrix(pred, target, K))``, the pooled ("micro") score:
    see the module docstring. Images whose pixels are all ignored are skipped. All images'
    matrices come from one ``bincount`` (image ``i`` offsets its bins by ``i * K * K``).
    """
    pred, target, from_logits = as_labels(pred, target, num_classes)
    check_ignore_index(num_classes, ignore_index)
    if target.dim() < 1 or target.shape[0] == 0:
        raise ValueError(f"expected a batch [N, ...] with N >= 1, got shape {tuple(target.shape)}")
    if not from_logits:
        check_pred_range(pred, num_classes)
    k, n = num_classes, target.shape[0]
    t = target.reshape(n, -1).long()
    idx = torch.add(pred.reshape(n, -1).long(), t, alpha=k)
    idx += torch.arange(n, device=t.device).unsqueeze(1) * (k * k)
    valid = t != ignore_index if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    bad = ((t < 0) | (t >= k)) & valid
    if bool(bad.any()):
        raise bad_target_error(torch.unique(t[bad]).tolist(), k, ignore_index)
    idx = idx.masked_fill(~valid, n * k * k)
    counts = torch.bincount(idx.reshape(-1), minlength=n * k * k + 1)[: n * k * k]
    ious = iou_per_class(counts.view(n, k, k))  # [N, K]
    per_image = torch.nanmean(ious, dim=1)  # NaN for a fully ignored image
    return as_float(torch.nanmean(per_image))


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
