"""Class balance of a data set: the share of labelled pixels per class and the number of
objects per image (notebook 17 compares the shapes world with the real samples)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from course_lib.config import IGNORE_INDEX

__all__ = ["mask_of", "pixel_shares"]


def mask_of(item: Any) -> torch.Tensor:
    """The semantic mask of a data set item: ``item["mask"]`` of a sample dict or the second
    element of an ``(image, mask)`` pair."""
    if isinstance(item, dict):
        if "mask" not in item:
            raise ValueError(f"item has no 'mask' (keys: {', '.join(map(str, item))})")
        return torch.as_tensor(item["mask"])
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return torch.as_tensor(item[1])
    raise ValueError(f"expected a sample dict or an (image, mask) pair, got {type(item).__name__}")


def pixel_shares(masks: Iterable[torch.Tensor], num_classes: int) -> torch.Tensor:
    """Fraction of the labelled (not void) pixels that each class covers, float64 ``[K]``
    summing to 1; pixels of 255 are left out. A value that is neither a class nor 255 raises."""
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for mask in masks:
        flat = torch.as_tensor(mask).reshape(-1).long()
        flat = flat[flat != IGNORE_INDEX]
        if flat.numel() and (flat.min() < 0 or flat.max() >= num_classes):
            bad = torch.unique(flat[(flat < 0) | (flat >= num_classes)])[:10].tolist()
            raise ValueError(f"mask holds label(s) {bad}; expected 0..{num_classes - 1} or "
                             f"{IGNORE_INDEX} (void)")
        counts += torch.bincount(flat, minlength=num_classes).double()
    total = counts.sum()
    if total == 0:
        raise ValueError("no labelled pixels: every mask is empty or void")
    return counts / total
