"""Higher-order consistency, measured: how many blobs does a prediction invent?

Luc et al. motivate the adversarial term by what per-pixel losses cannot see: "higher-order
label statistics" — a region's shape, its parts fitting together, no stray blobs of a class
that is not there. Region scores (IoU) barely notice a few misplaced pixels; counting
*connected components* does. :func:`spurious_components` counts, per image, the predicted
connected regions of a class that touch no pixel of that class in the ground truth: the
islands that a shape-aware critic should forbid.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ...config import IGNORE_INDEX


def _as_label_maps(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.dim() == 4:  # logits [N, K, H, W]
        pred = pred.argmax(1)
    if pred.dim() != 3 or pred.shape != target.shape:
        raise ValueError(f"pred (labels [N, H, W] or logits [N, K, H, W]) and target [N, H, W] "
                         f"must match, got {tuple(pred.shape)} and {tuple(target.shape)}")
    return pred.detach().cpu().long(), target.detach().cpu().long()


def spurious_components(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                        classes: list[int] | None = None, connectivity: int = 8,
                        ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Per image, the predicted connected components that touch no ground-truth pixel of their
    class: int64 [N].

    For each class ``c`` of ``classes`` (default: all ``num_classes``) the pixels predicted
    ``c`` are split into connected components (``connectivity`` 8 or 4); a component is
    *spurious* when none of its pixels is ``c`` (or ignored) in ``target``. A perfect
    prediction has 0; so does one that misses whole objects (that is a recall problem,
    counted by IoU): the number counts invented regions only.

    All images and classes are labelled in one call of ``scipy.ndimage.label`` (a structure
    that does not connect different images or classes), no loop over pixels.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    pred, target = _as_label_maps(pred, target)
    classes = list(range(num_classes)) if classes is None else list(classes)
    if any(not 0 <= c < num_classes for c in classes):
        raise ValueError(f"classes must lie in 0..{num_classes - 1}, got {classes}")
    n, h, w = pred.shape
    if n == 0 or not classes:
        return torch.zeros(n, dtype=torch.long)
    cls = torch.tensor(classes).view(1, -1, 1, 1)
    predicted = (pred.unsqueeze(1) == cls).reshape(-1, h, w).numpy()  # [N * C, H, W]
    allowed = ((target.unsqueeze(1) == cls) | (target.unsqueeze(1) == ignore_index))
    allowed = allowed.reshape(-1, h, w).numpy()
    # 3x3x3 structure whose outer planes are empty: neighbours within one (image, class) plane
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    labels, count = ndimage.label(predicted, structure=structure)
    touches = np.zeros(count + 1, dtype=bool)
    touches[labels[allowed]] = True  # a component with a pixel where its class may be
    plane = np.zeros(count + 1, dtype=np.int64)
    plane[labels.ravel()] = np.repeat(np.arange(labels.shape[0]), h * w)
    image = plane[1:] // len(classes)
    spurious = ~touches[1:]
    return torch.from_numpy(np.bincount(image[spurious], minlength=n)).long()


__all__ = ["spurious_components"]
