"""Panoptic-DeepLab's targets and post-processing (Cheng et al., CVPR 2020, Sec. 3.2-3.3).

Training targets, from a semantic map and instance ids (the shapes world and the touching
world give both):

- **centre heat-map**: a 2D Gaussian (standard deviation ``sigma`` pixels; 8 in the paper at
  1024 x 2048) at the centre of mass of every thing instance, rounded to a pixel (as the
  reference code does: one peak, not a plateau of four), the maximum where two overlap;
- **offsets**: at every pixel of a thing instance, the vector ``(dy, dx)`` from the pixel to
  its instance's centre; zero elsewhere, and only thing pixels count in the loss.

Inference (Fig. 2, right):

1. **centres**: keypoint NMS on the predicted heat-map — a pixel is a centre when it is the
   maximum of its ``nms_kernel`` window (one max-pool) and above ``threshold``; at most
   ``top_k`` kept;
2. **grouping**: every pixel the semantic head calls a thing moves by its predicted offset
   and joins the *nearest* centre (one ``[pixels, centres]`` distance matrix, no loop);
3. **merge**: an instance takes the majority semantic class of its pixels; stuff pixels keep
   their semantic class, one segment per class, dropped to void below ``stuff_area`` pixels.

The result is a map of panoptic ids ``class * label_divisor + instance`` (instance 0 for
stuff), the format :mod:`course_lib.metrics.panoptic` scores.

Also here, the baseline that needs no instance head: the semantic map's thing pixels split
into connected components (:func:`components_panoptic`) — it merges touching objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from course_lib.config import IGNORE_INDEX

LABEL_DIVISOR = 1000


def _is_thing(labels: Tensor, things: Sequence[int]) -> Tensor:
    return torch.isin(labels, torch.as_tensor(list(things), dtype=labels.dtype,
                                              device=labels.device))


def panoptic_targets(semantic: Tensor, instance_ids: Tensor, things: Sequence[int],
                     sigma: float = 8.0) -> dict[str, Tensor]:
    """Centre heat-maps and offsets of a batch (module docstring).

    Args:
        semantic: class labels [N, H, W]; instance_ids: int [N, H, W], 0 = no instance (ids
            need not be consecutive). A pixel is a thing pixel when its id is > 0 and its
            class is in ``things``.
        sigma: the Gaussian's standard deviation in pixels.

    Returns:
        ``{"center": [N, 1, H, W] in [0, 1], "offset": [N, 2, H, W] (dy, dx) in pixels,
        "thing": [N, H, W] bool}`` (the pixels where the offset loss counts).
    """
    if semantic.shape != instance_ids.shape or semantic.dim() != 3:
        raise ValueError(f"semantic and instance_ids must both be [N, H, W], got "
                         f"{tuple(semantic.shape)} and {tuple(instance_ids.shape)}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    n, h, w = semantic.shape
    device = semantic.device
    thing = (instance_ids > 0) & _is_thing(semantic, things)
    # one global id per (image, instance); 0 for every non-thing pixel
    image = torch.arange(n, device=device).view(n, 1, 1).expand(n, h, w)
    keys, index = torch.unique(torch.where(thing, image * (int(instance_ids.max()) + 1)
                                           + instance_ids, -1), return_inverse=True)
    index = index.view(n, h, w) - int(keys[0] == -1) + 1  # 0 = no thing, 1..M
    m = len(keys) - int(keys[0] == -1)
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    flat = index.reshape(-1)
    area = torch.bincount(flat, minlength=m + 1).clamp(min=1).float()
    cy = torch.bincount(flat, weights=ys.expand(n, h, w).reshape(-1), minlength=m + 1) / area
    cx = torch.bincount(flat, weights=xs.expand(n, h, w).reshape(-1), minlength=m + 1) / area
    cy, cx = torch.floor(cy + 0.5), torch.floor(cx + 0.5)  # the centre pixel
    offset = torch.stack([cy[index] - ys, cx[index] - xs], dim=1) * thing[:, None]
    # Gaussians at the centres, each drawn only in its own image; the maximum where they meet
    center = torch.zeros(n, h * w, device=device)
    if m:
        owner = torch.zeros(m + 1, dtype=torch.long, device=device)
        owner[flat] = image.reshape(-1)
        d2 = (ys[None] - cy[1:, None, None]) ** 2 + (xs[None] - cx[1:, None, None]) ** 2
        gauss = torch.exp(-d2 / (2 * sigma**2))  # [M, H, W]
        center.scatter_reduce_(0, owner[1:, None].expand(m, h * w), gauss.view(m, h * w), "amax")
    return {"center": center.view(n, 1, h, w), "offset": offset, "thing": thing}


def find_centers(heatmap: Tensor, threshold: float = 0.1, nms_kernel: int = 7,
                 top_k: int = 200) -> Tensor:
    """Keypoint NMS of one heat-map [H, W] (or [1, H, W]): the ``(y, x)`` [C, 2] of the pixels
    that are the maximum of their window and above ``threshold``, strongest first."""
    heatmap = heatmap.reshape(heatmap.shape[-2:])
    if nms_kernel % 2 == 0 or nms_kernel < 1:
        raise ValueError(f"nms_kernel must be odd and positive, got {nms_kernel}")
    pooled = F.max_pool2d(heatmap[None, None], nms_kernel, stride=1, padding=nms_kernel // 2)[0, 0]
    peak = (heatmap == pooled) & (heatmap > threshold)
    scores = heatmap[peak]
    coords = peak.nonzero()
    order = scores.argsort(descending=True)[:top_k]
    return coords[order]


def group_pixels(centers: Tensor, offset: Tensor, thing: Tensor) -> Tensor:
    """Instance ids [H, W] (0 = none, ``i + 1`` = ``centers[i]``): every thing pixel moved by
    its offset [2, H, W] joins the nearest centre; with no centre, no instance."""
    h, w = thing.shape
    instance = torch.zeros(h, w, dtype=torch.long, device=thing.device)
    if len(centers) == 0 or not thing.any():
        return instance
    ys, xs = thing.nonzero(as_tuple=True)
    moved = torch.stack([ys + offset[0, ys, xs], xs + offset[1, ys, xs]], dim=1)
    nearest = torch.cdist(moved.float(), centers.float()).argmin(dim=1)  # [pixels]
    instance[ys, xs] = nearest + 1
    return instance


def merge_semantic_and_instance(semantic: Tensor, instance: Tensor, things: Sequence[int],
                                label_divisor: int = LABEL_DIVISOR, stuff_area: int = 0,
                                void: int = IGNORE_INDEX) -> Tensor:
    """Panoptic ids [H, W]: each instance gets the majority class of its pixels (a vote over
    ``semantic``), stuff pixels their class with instance 0; a stuff segment smaller than
    ``stuff_area`` pixels becomes void (``void * label_divisor``)."""
    num_classes = int(semantic.max()) + 1
    flat_inst, flat_sem = instance.reshape(-1), semantic.reshape(-1)
    m = int(flat_inst.max())
    votes = torch.bincount(flat_inst * num_classes + flat_sem,
                           minlength=(m + 1) * num_classes).view(m + 1, num_classes)
    is_thing = torch.zeros(num_classes, dtype=torch.bool, device=semantic.device)
    chosen = [t for t in things if t < num_classes]
    is_thing[chosen] = True
    votes[:, ~is_thing] = 0  # an instance's class is a thing class
    majority = votes.argmax(dim=1)
    panoptic = torch.where(instance > 0, majority[instance] * label_divisor + instance,
                           semantic * label_divisor)
    stuff = instance == 0
    area = torch.bincount(flat_sem[stuff.reshape(-1)], minlength=num_classes)
    small = stuff & (area[semantic] < stuff_area)
    # a thing-class pixel the grouping left without an instance is void too
    orphan = stuff & is_thing[semantic]
    return torch.where(small | orphan, torch.full_like(panoptic, void * label_divisor), panoptic)


def panoptic_prediction(outputs: dict[str, Tensor], things: Sequence[int],
                        threshold: float = 0.1, nms_kernel: int = 7, top_k: int = 200,
                        stuff_area: int = 0, label_divisor: int = LABEL_DIVISOR) -> Tensor:
    """Panoptic ids [N, H, W] from Panoptic-DeepLab's outputs ``{"out" [N, K, H, W],
    "center" [N, 1, H, W], "offset" [N, 2, H, W]}`` (a loop over images only)."""
    semantic = outputs["out"].argmax(1)
    results = []
    for sem, heat, off in zip(semantic, outputs["center"], outputs["offset"], strict=True):
        centers = find_centers(heat, threshold, nms_kernel, top_k)
        instance = group_pixels(centers, off, _is_thing(sem, things))
        results.append(merge_semantic_and_instance(sem, instance, things, label_divisor,
                                                   stuff_area))
    return torch.stack(results)


def components_panoptic(semantic: Tensor, things: Sequence[int],
                        label_divisor: int = LABEL_DIVISOR) -> Tensor:
    """The baseline: panoptic ids [N, H, W] from a semantic map [N, H, W] alone, each thing
    class's pixels split into 4-connected components (``scipy.ndimage.label``, a loop over
    images and classes). Touching objects of one class become one segment."""
    panoptic = semantic.long() * label_divisor
    for i, sem in enumerate(semantic.cpu().numpy()):
        offset = 0
        for c in things:
            components, count = ndimage.label(sem == c)
            ids = torch.from_numpy(components.astype(np.int64)).to(panoptic.device)
            panoptic[i] = torch.where(ids > 0, c * label_divisor + ids + offset, panoptic[i])
            offset += count
    return panoptic


def panoptic_from_instances(semantic: Tensor, instance_ids: Tensor, things: Sequence[int],
                            label_divisor: int = LABEL_DIVISOR) -> Tensor:
    """Ground-truth panoptic ids from a semantic map and instance ids (instance 0 on stuff)."""
    thing = (instance_ids > 0) & _is_thing(semantic, things)
    return semantic.long() * label_divisor + instance_ids.long() * thing


__all__ = ["LABEL_DIVISOR", "components_panoptic", "find_centers", "group_pixels",
           "merge_semantic_and_instance", "panoptic_from_instances", "panoptic_prediction",
           "panoptic_targets"]
