"""Oracle steps that look at the ground truth, so that a classic method's score is an upper
bound: which side of a two-way split is the object, which clusters are foreground."""

from __future__ import annotations

import torch

from .pixels import as_tensor


def best_polarity(mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mask`` or its complement, whichever agrees with the bool ``target`` on more pixels.

    An *oracle* step (it looks at the ground truth): a threshold or a 2-cluster split
    separates the image in two but cannot say which side is the object. Giving the classic
    method the better side per image makes its score an upper bound.
    """
    mask, target = as_tensor(mask, "mask").bool(), as_tensor(target, "target").bool()
    if mask.shape != target.shape:
        raise ValueError(f"mask {tuple(mask.shape)} and target {tuple(target.shape)} differ")
    agree = (mask == target).sum()
    return mask if 2 * int(agree) >= target.numel() else ~mask


def majority_foreground(labels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Foreground mask from a label map: a cluster/region is foreground when most of its
    pixels are foreground in the bool ``target`` (an *oracle* assignment, per image).

    Clusters and regions carry no class; this maps them to the task's labels as well as
    any assignment can on that image, so the score is an upper bound for the method.
    """
    labels, target = as_tensor(labels, "labels").long(), as_tensor(target, "target").bool()
    if labels.shape != target.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and target {tuple(target.shape)} differ")
    if int(labels.min()) < 0:
        raise ValueError("labels must be >= 0")
    k = int(labels.max()) + 1
    counts = torch.bincount(labels.flatten() * 2 + target.flatten().long(), minlength=2 * k)
    counts = counts.view(k, 2)
    return (counts[:, 1] > counts[:, 0])[labels]
