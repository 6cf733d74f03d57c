"""The confusion matrix, in one ``torch.bincount(K * target + pred)``, for one batch
(:func:`confusion_matrix`) or summed over a data set (:class:`ConfusionMatrix`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from course_lib.config import IGNORE_INDEX, check_ignore_index

from .labels import as_labels, bad_target_error, check_pred_range
from .scores import segmentation_metrics

# Largest label value we let torch.bincount allocate rows for (labels above it take the
# slower masked path, so a stray huge value cannot ask for gigabytes of bins).
_MAX_FAST_LABEL = 4095


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
        raise bad_target_error(found, num_classes, ignore_index)
    if valid is not None:
        idx = idx.masked_fill(~valid, kk)  # ignored pixels go to one extra bin, dropped below
    return torch.bincount(idx, minlength=kk + 1)[:kk]


def confusion_counts(
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
            raise bad_target_error(found, k, ignore_index)
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
            ``ignore_index`` or a negative label (the message lists the labels found), NaN
            logits, no pixels at all, or the default ``ignore_index=255`` with ``K > 255``.
    """
    pred, target, from_logits = as_labels(pred, target, num_classes)
    check_ignore_index(num_classes, ignore_index)
    if not from_logits:
        check_pred_range(pred, num_classes)
    return confusion_counts(pred, target, num_classes, ignore_index)


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
        check_ignore_index(num_classes, ignore_index)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self._buffer: Tensor | None = None  # reused for K * target + pred (no new allocation)

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> Tensor:
        """Add one batch; returns this batch's own ``[K, K]`` matrix."""
        pred, target, from_logits = as_labels(pred, target, self.num_classes)
        if not from_logits:
            check_pred_range(pred, self.num_classes)
        n = target.numel()
        if self._buffer is None or self._buffer.numel() < n or self._buffer.device != target.device:
            self._buffer = torch.empty(n, dtype=torch.int64, device=target.device)
        batch = confusion_counts(pred, target, self.num_classes, self.ignore_index, self._buffer)
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
