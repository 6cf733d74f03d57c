"""Checking a prediction and a target before they are counted: shapes, dtypes, label ranges,
with errors that name what was given and what was expected."""

from __future__ import annotations

import torch
from torch import Tensor


def as_labels(pred: Tensor, target: Tensor, num_classes: int) -> tuple[Tensor, Tensor, bool]:
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
        nans = torch.isnan(pred)
        if bool(nans.any()):  # argmax would call a NaN the largest value: a silent score
            raise ValueError(
                f"logits hold {int(nans.sum())} NaN value(s) (of {pred.numel()}); a diverged "
                "model cannot be scored (check the learning rate and the loss)"
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
    if target.numel() == 0:
        raise ValueError(
            f"pred and target hold no pixels: target shape {tuple(target.shape)} "
            f"(pred shape {tuple(pred.shape)}); nothing to score"
        )
    return pred, target, from_logits


def check_pred_range(pred: Tensor, num_classes: int) -> None:
    lo, hi = (int(v) for v in torch.aminmax(pred))
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"pred contains labels outside [0, {num_classes}): found min {lo}, max {hi}"
        )


def bad_target_error(labels: list[int], num_classes: int, ignore_index: int | None) -> ValueError:
    shown = labels[:10]
    more = f" (and {len(labels) - 10} more)" if len(labels) > 10 else ""
    neg = [v for v in shown if v < 0]
    kind = "negative label(s)" if neg and len(neg) == len(shown) else "label(s)"
    return ValueError(
        f"target contains {kind} {shown}{more} outside [0, {num_classes}) that are not "
        f"ignore_index={ignore_index}"
    )
