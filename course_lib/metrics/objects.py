"""Per-object scores of a semantic prediction, the mean object IoU by object size
(notebook 09: the scale range of FPN), and the share of objects a foreground mask separates
(notebook 08: touching cells)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from course_lib.config import IGNORE_INDEX


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


def objects_separated(foreground: Tensor, instance_ids: Tensor, min_iou: float = 0.5) -> float:
    """Share of the true objects that a foreground mask recovers *as their own region*.

    The predicted foreground ``[N, H, W]`` (bool) is split into 4-connected regions; a true
    object (``instance_ids`` 1..M per image, 0 = none) counts as separated when one region
    overlaps it with IoU > ``min_iou``. Two touching cells predicted as one blob are both
    lost (the blob's IoU with each is at most about 1/2): pixel scores cannot see that error.
    Returns NaN when there is no object.
    """
    if foreground.shape != instance_ids.shape or foreground.dim() != 3:
        raise ValueError(f"foreground and instance_ids must be [N, H, W] of one shape, got "
                         f"{tuple(foreground.shape)} and {tuple(instance_ids.shape)}")
    if foreground.dtype != torch.bool:
        raise ValueError(f"foreground must be a bool mask, got {foreground.dtype}")
    if instance_ids.is_floating_point() or bool((instance_ids < 0).any()):
        raise ValueError("instance_ids must hold integers >= 0 (0 = no object)")
    separated = total = 0
    for fg, ids in zip(foreground.cpu().numpy(), instance_ids.long().cpu().numpy(), strict=True):
        regions, n = ndimage.label(fg)
        m = int(ids.max())
        # joint histogram of (object, region): overlaps, object areas and region areas at once
        counts = np.bincount(ids.ravel() * (n + 1) + regions.ravel(),
                             minlength=(m + 1) * (n + 1)).reshape(m + 1, n + 1)
        overlap = counts[1:, 1:]
        union = counts[1:].sum(1, keepdims=True) + counts[:, 1:].sum(0, keepdims=True) - overlap
        iou = overlap / np.maximum(union, 1)
        present = counts[1:].sum(1) > 0
        separated += int(((iou > min_iou).any(1) & present).sum())
        total += int(present.sum())
    return separated / total if total else float("nan")
