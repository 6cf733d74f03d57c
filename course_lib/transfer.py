"""Transfer learning with few labels (notebook 19): a network trained on one world, fine-tuned
on another with a handful of labelled images, against the same network from scratch.

The survey lists transfer learning among the answers to scarce labels: start from weights
learned on a large labelled set, replace the classifier, and fine-tune every layer on the few
labels of the new task (as FCN started from ImageNet's VGG, Long et al. 2015). The fair
comparison trains the *same* architecture on the *same* images with the *same* batches and
steps, from random weights (:func:`reinitialised`): only the starting point differs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_lib import compress, train


def gray_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """One grey channel ``[N, 1, H, W]`` repeated as three ``[N, 3, H, W]``, the input of a
    network trained on colour images (the usual way to feed grey images to an RGB encoder)."""
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"expected grey images [N, 1, H, W], got {tuple(images.shape)}")
    return images.expand(-1, 3, -1, -1).contiguous()


def _classifier_name(model: nn.Module) -> str:
    """The name of the last 2D convolution of ``model``: the 1 x 1 classifier of the
    course's single-output segmentation models (U-Net, the baseline, FCN, ...)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d: no classifier to replace")
    return names[-1]


def with_new_classifier(model: nn.Module, num_classes: int, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose classifier (its last convolution) predicts ``num_classes``
    classes, freshly initialised under ``seed``; every other weight is copied."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    model = copy.deepcopy(model)
    name = _classifier_name(model)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    torch.manual_seed(seed)
    setattr(parent, child, nn.Conv2d(old.in_channels, num_classes, old.kernel_size,
                                     old.stride, old.padding, bias=old.bias is not None))
    return model


def reinitialised(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every layer's parameters (and batch-norm statistics) drawn
    afresh under ``seed``: the same architecture, trained from scratch."""
    model = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


def few_label_curve(pretrained: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    val_images: torch.Tensor, val_labels: torch.Tensor, num_classes: int,
                    counts: Sequence[int], steps: int, *, batch_size: int = 4,
                    seed: int = 0) -> dict[str, dict[int, dict[str, float]]]:
    """Fine-tune ``pretrained`` on the first ``n`` labelled images for each ``n`` in
    ``counts``, and train the same architecture from scratch on the same images, batches
    and steps. Returns ``{"pre-trained" | "from scratch": {n: {"miou", "iou_last"}}}`` on the
    validation set (``iou_last``: the IoU of the last class, e.g. the cells)."""
    if max(counts) > len(images):
        raise ValueError(f"counts go up to {max(counts)} images, only {len(images)} given")
    val = DataLoader(TensorDataset(val_images, val_labels), batch_size=32)
    starts = {"pre-trained": pretrained, "from scratch": reinitialised(pretrained, seed)}
    curve: dict[str, dict[int, dict[str, float]]] = {start: {} for start in starts}
    for n in counts:
        for start, weights in starts.items():
            model = with_new_classifier(weights, num_classes, seed)
            compress.distill(model, None, images[:n], labels[:n], steps,
                             batch_size=min(batch_size, n), seed=seed, desc=f"{start}, {n} labels")
            result = train.evaluate(model, val, num_classes)
            curve[start][n] = {"miou": float(result["miou"]),
                               "iou_last": float(result["iou"][num_classes - 1])}
    return curve
