"""Class balance of a data set: the share of labelled pixels per class and the number of
objects per image (notebook 17 compares the shapes world with the real samples), and the
class weights of a balanced loss (:func:`median_frequency_weights`, notebooks 05-11)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from course_lib.config import IGNORE_INDEX

__all__ = ["mask_of", "median_frequency_weights", "pixel_shares"]


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


def median_frequency_weights(
    masks: Iterable[torch.Tensor], num_classes: int, power: float = 0.5,
    min_share: float = 1e-6,
) -> torch.Tensor:
    """Class weights of *median-frequency balancing* (Eigen & Fergus, ICCV 2015; SegNet uses
    it): ``w_c = (median_k f_k / f_c) ** power`` with ``f_c`` the class's share of the labelled
    pixels (:func:`pixel_shares`); float32 ``[K]`` for ``cross_entropy(..., weight=w)``.

    A class as frequent as the median class weighs 1, a rarer one more. ``power=1`` is Eigen &
    Fergus's weight; the course's default 0.5 (its square root, notebook 05's choice) is a
    milder balance: a class 100x rarer than the median weighs 10, not 100. The median is
    taken over the classes present (a class absent from the masks has no frequency, as in
    Eigen & Fergus), as ``torch.median`` takes it: for an even count the lower of the two
    middle shares. Over all ``K`` shares, a world that shows fewer than half of the classes
    (notebook 13's context world shows 6 of 12) would have a median of 0 and every weight 0.
    A class absent from the masks gets the weight of a share of ``min_share``.
    """
    if not power >= 0:
        raise ValueError(f"power must be >= 0, got {power}")
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {min_share}")
    shares = pixel_shares(masks, num_classes)
    median = shares[shares > 0].median()
    return (median / shares.clamp(min=min_share)).pow(power).float()


def objects_per_image(item: Any, classes: Iterable[int] | None = None) -> int:
    """The number of objects in one data set item.

    With instance targets (a sample dict with ``"masks"``, one mask per object, as the shapes
    world's ``target="all"``, COCO and Penn-Fudan give) that is their count; from a semantic
    mask alone (CamVid, VOC classes) it is the number of 8-connected regions of the
    ``classes`` (the thing classes of the data set; every labelled class when ``None``),
    so an estimate: touching objects of one class count once, an object cut in two by an
    occluder twice.
    """
    if isinstance(item, dict) and "masks" in item:
        return int(torch.as_tensor(item["masks"]).shape[0])
    mask = mask_of(item)
    if mask.dim() != 2:
        raise ValueError(f"expected a mask [H, W], got shape {tuple(mask.shape)}")
    labels = mask.numpy()
    present = np.unique(labels[labels != IGNORE_INDEX])
    wanted = present if classes is None else np.intersect1d(present, list(classes))
    eight = np.ones((3, 3), dtype=bool)
    # one labelling per class present (a loop over classes, not pixels)
    return sum(int(ndimage.label(labels == k, structure=eight)[1]) for k in wanted)
