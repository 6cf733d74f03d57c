"""Class balance of a data set: the share of labelled pixels per class and the number of
objects per image (notebook 17 compares the shapes world with the real samples), and the
class weights of a balanced loss (:func:`median_frequency_weights`, notebooks 05-11), and
U-Net's pixel weights between touching cells (:func:`unet_weight_map`, notebook 08)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from course_lib.config import IGNORE_INDEX

__all__ = ["mask_of", "median_frequency_weights", "pixel_shares", "unet_weight_map"]


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


def unet_weight_map(
    instance_ids: torch.Tensor,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: Sequence[float] | str | None = None,
) -> torch.Tensor:
    """U-Net's pixel weight map (Ronneberger et al. 2015, Eq. 2) from instance ids.

    ::

        w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

    ``d1``, ``d2``: Euclidean distances from pixel ``x`` to the nearest and second-nearest
    cell (instance). The border term is applied to background pixels only (those between
    cells, as in the paper's Fig. 3d); with fewer than two cells it is zero.

    Args:
        instance_ids: int [H, W] or [N, H, W]; 0 = background, 1..M = cells.
        w0, sigma: the paper's 10 and 5 pixels.
        class_weights: ``w_c``. ``None``: 1 everywhere; ``(w_background, w_cell)``; or
            ``"balanced"``: inverse class frequency per image, ``HW / (2 * count)``.

    Returns float32 [H, W] (or [N, H, W]). Distances use ``scipy.ndimage``'s exact Euclidean
    distance transform, once per cell (no per-pixel Python loop).
    """
    if not isinstance(instance_ids, torch.Tensor) or instance_ids.is_floating_point():
        raise ValueError("instance_ids must be an integer tensor [H, W] or [N, H, W]")
    if instance_ids.dim() == 3:
        return torch.stack([unet_weight_map(m, w0, sigma, class_weights) for m in instance_ids])
    if instance_ids.dim() != 2:
        raise ValueError(
            f"instance_ids must be [H, W] or [N, H, W], got {tuple(instance_ids.shape)}"
        )
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    ids = instance_ids.cpu()
    cell = ids > 0
    if class_weights is None:
        wc = torch.ones(ids.shape)
    elif isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"class_weights must be None, (bg, cell) or 'balanced', "
                             f"got {class_weights!r}")
        counts = torch.stack([(~cell).sum(), cell.sum()]).float().clamp_min(1)
        wc = (ids.numel() / (2 * counts))[cell.long()]
    else:
        if len(class_weights) != 2:
            raise ValueError(f"class_weights needs 2 values (background, cell), "
                             f"got {class_weights!r}")
        wc = torch.as_tensor(class_weights, dtype=torch.float32)[cell.long()]
    labels = torch.unique(ids[cell])
    if labels.numel() < 2:
        return wc.float().to(instance_ids.device)
    # distance of every pixel to each cell: [M, H, W]
    dist = torch.stack([
        torch.from_numpy(ndimage.distance_transform_edt((ids != m).numpy())) for m in labels.tolist()
    ]).float()
    d12 = dist.topk(2, dim=0, largest=False).values  # nearest and second-nearest cell
    border = w0 * torch.exp(-(d12[0] + d12[1]) ** 2 / (2 * sigma**2))
    return (wc + border * (~cell)).float().to(instance_ids.device)
