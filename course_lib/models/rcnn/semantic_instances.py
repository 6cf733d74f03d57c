"""The baseline instance segmentation that Mask R-CNN is compared with: semantic + components.

A semantic segmentation labels every pixel with a class; to count and separate *objects* the
simplest recipe splits each class's pixels into connected components (4-connected, here by
``scipy.ndimage.label``) and calls each component an object. It works when objects of a class
never touch — and merges them into one when they do, which is what notebook 10 measures
against Mask R-CNN on the touching world.

The output has the detection format of :mod:`course_lib.models.rcnn` (``boxes``, ``labels``,
``scores``, ``masks`` ``[D, 1, H, W]``) so the same AP code scores both; a component's score is
the mean probability of its class over its pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from course_lib.data.instances import mask_boxes


def instances_from_semantic(probs: torch.Tensor, min_pixels: int = 4
                            ) -> dict[str, torch.Tensor]:
    """Connected components of each class of one image's semantic prediction.

    Args:
        probs: class probabilities ``[K, H, W]`` (class 0 = background, never an object).
        min_pixels: smaller components are dropped (specks).

    Returns:
        ``{"boxes" [D, 4], "labels" [D], "scores" [D], "masks" [D, 1, H, W] float 0/1}``.
    """
    if probs.dim() != 3 or probs.shape[0] < 2:
        raise ValueError(f"expected class probabilities [K >= 2, H, W], got {tuple(probs.shape)}")
    labels_map = probs.argmax(0).cpu().numpy()
    masks, labels, scores = [], [], []
    for k in range(1, probs.shape[0]):  # a loop over classes and components, not pixels
        components, count = ndimage.label(labels_map == k)
        for c in range(1, count + 1):
            mask = components == c
            if mask.sum() < min_pixels:
                continue
            masks.append(torch.from_numpy(mask))
            labels.append(k)
            scores.append(float(probs[k].cpu()[torch.from_numpy(mask)].mean()))
    h, w = labels_map.shape
    stacked = torch.stack(masks) if masks else torch.zeros(0, h, w, dtype=torch.bool)
    return {"boxes": mask_boxes(stacked), "labels": torch.tensor(labels, dtype=torch.int64),
            "scores": torch.tensor(scores, dtype=torch.float32),
            "masks": stacked[:, None].float()}


def count_error(predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]],
                score_threshold: float = 0.5) -> float:
    """Mean absolute difference, per image, between the number of predicted objects (score >=
    ``score_threshold``) and the number of ground-truth objects."""
    if len(predictions) != len(targets) or not targets:
        raise ValueError(f"need one prediction per target, got {len(predictions)} and "
                         f"{len(targets)}")
    errors = [abs(int((p["scores"] >= score_threshold).sum()) - len(t["labels"]))
              for p, t in zip(predictions, targets, strict=True)]
    return float(np.mean(errors))


__all__ = ["instances_from_semantic", "count_error"]
