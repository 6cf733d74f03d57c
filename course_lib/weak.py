"""Weak supervision from boxes: training masks made from bounding boxes, and BoxSup's refinement.

Dai, He and Sun, "BoxSup: Exploiting Bounding Boxes to Supervise Convolutional Networks for
Semantic Segmentation" (ICCV 2015) train a segmentation network from box annotations alone:
start from masks in which each box is filled with its class, train, then re-estimate each
box's mask from the network's own prediction *restricted to the box*, and retrain; a few
rounds move the labels from the boxes towards the objects. Deviation from the paper: BoxSup
picks among MCG region proposals the one that best fits box and network; here a box's new mask
is simply the pixels of the box that the network assigns to the box's class.

Notebook 19 uses the shapes world, whose *stuff* classes (sky, grass, road, water) stay
labelled pixel by pixel and whose *things* are given by boxes only. A box is one row
``(class, x0, y0, x1, y1)`` with ``x1``/``y1`` exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import masks_to_boxes

__all__ = ["object_boxes", "paint_boxes", "box_masks", "refine_box_masks"]


def _check_maps(mask: torch.Tensor, instance_ids: torch.Tensor) -> None:
    if mask.shape != instance_ids.shape or mask.dim() != 3:
        raise ValueError("mask and instance_ids must both be [N, H, W] of one shape, got "
                         f"{tuple(mask.shape)} and {tuple(instance_ids.shape)}")
    if mask.dtype.is_floating_point or instance_ids.dtype.is_floating_point:
        raise ValueError(f"mask and instance_ids must be integer maps, got {mask.dtype} and "
                         f"{instance_ids.dtype}")


def object_boxes(mask: torch.Tensor, instance_ids: torch.Tensor) -> list[torch.Tensor]:
    """Each image's object boxes from its instance ids: a list of int64 ``[M, 5]`` tensors.

    Args:
        mask: semantic labels ``[N, H, W]``.
        instance_ids: ``[N, H, W]``, 0 where no object, ``1..M`` on each object's visible
            pixels (:class:`~course_lib.data.synthetic.ShapesWorld`'s ``"instance_ids"``).

    Rows are ``(class, x0, y0, x1, y1)`` (``x1``, ``y1`` exclusive), the class read from the
    object's pixels, sorted by decreasing box area so that painting them in order leaves
    small boxes on top of the large ones they overlap.
    """
    _check_maps(mask, instance_ids)
    boxes = []
    for labels, ids in zip(mask, instance_ids, strict=True):
        present = torch.unique(ids[ids > 0])
        if len(present) == 0:
            boxes.append(torch.zeros(0, 5, dtype=torch.long))
            continue
        on = ids[None] == present[:, None, None]  # [M, H, W], one map per object
        corners = masks_to_boxes(on).long()  # inclusive (x0, y0, x1, y1)
        corners[:, 2:] += 1  # exclusive ends
        first = on.flatten(1).float().argmax(1)  # one pixel of each object gives its class
        box = torch.cat([labels.flatten()[first].long()[:, None], corners], 1)
        area = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
        boxes.append(box[torch.argsort(area, descending=True, stable=True)])
    return boxes


def paint_boxes(mask: torch.Tensor, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """A copy of ``mask [N, H, W]`` with every box of ``boxes`` (one ``[M, 5]`` per image,
    painted in order) filled with its class."""
    if len(boxes) != len(mask):
        raise ValueError(f"need one box tensor per image: {len(mask)} images, {len(boxes)} "
                         "box tensors")
    out = mask.clone()
    for image, image_boxes in zip(out, boxes, strict=True):
        for c, x0, y0, x1, y1 in image_boxes.tolist():
            image[y0:y1, x0:x1] = c
    return out


def box_masks(mask: torch.Tensor, instance_ids: torch.Tensor) -> torch.Tensor:
    """Box-filled training masks: ``mask`` with each object's bounding box filled with its
    class (the stuff pixels outside every box keep their labels)."""
    return paint_boxes(mask, object_boxes(mask, instance_ids))


def refine_box_masks(logits: torch.Tensor, box_mask: torch.Tensor,
                     boxes: Sequence[torch.Tensor],
                     background_classes: Sequence[int]) -> torch.Tensor:
    """One BoxSup re-estimation step: new training masks from the network's prediction.

    Inside the boxes every pixel first gets the background (stuff) class the network finds
    most likely there; then each box (in order, large to small) gives its class to the pixels
    *of the box* that the network predicts as that class. A box in which no pixel is
    predicted as its class is filled entirely (the fall-back: the box is all we know).
    Pixels outside every box keep their label in ``box_mask``.

    Args:
        logits: the network's output ``[N, K, H, W]`` on the training images.
        box_mask: the box-filled masks ``[N, H, W]`` (:func:`box_masks`).
        boxes: one ``[M, 5]`` tensor of ``(class, x0, y0, x1, y1)`` rows per image.
        background_classes: the classes a box pixel may fall back to when it is not the
            object (the shapes world's stuff classes).
    """
    if logits.dim() != 4 or logits.shape[:1] + logits.shape[2:] != box_mask.shape:
        raise ValueError(f"logits must be [N, K, H, W] matching box_mask {tuple(box_mask.shape)}"
                         f", got {tuple(logits.shape)}")
    if len(boxes) != len(box_mask):
        raise ValueError(f"need one box tensor per image: {len(box_mask)} images, {len(boxes)} "
                         "box tensors")
    background = torch.as_tensor(list(background_classes), dtype=torch.long)
    k = logits.shape[1]
    if len(background) == 0 or int(background.min()) < 0 or int(background.max()) >= k:
        raise ValueError(f"background_classes must be classes of 0..{k - 1}, got "
                         f"{list(background_classes)}")
    predicted = logits.argmax(1)
    best_background = background[logits[:, background].argmax(1)]
    inside = paint_boxes(torch.zeros_like(box_mask, dtype=torch.bool),
                         [b.clone().index_fill_(1, torch.tensor([0]), 1) for b in boxes])
    out = torch.where(inside, best_background, box_mask)
    for image, pred, image_boxes in zip(out, predicted, boxes, strict=True):
        for c, x0, y0, x1, y1 in image_boxes.tolist():
            region = image[y0:y1, x0:x1]
            keep = pred[y0:y1, x0:x1] == c
            if bool(keep.any()):
                region[keep] = c
            else:
                region.fill_(c)
    return out
