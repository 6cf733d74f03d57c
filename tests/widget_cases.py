"""Small models and data sets shared by the widget tests (tests/test_widgets_*.py)."""

from __future__ import annotations

import base64

import torch
from torch import nn

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
K = 4  # classes of tiny_model and noisy_dataset


def tiny_model() -> nn.Module:
    """A seeded three-convolution model with K output channels at the input's size."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
        nn.Conv2d(6, 10, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv2d(10, K, 1), nn.Upsample(scale_factor=2),
    )


def noisy_dataset(n: int = 3, size: int = 24) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` random (image, mask) pairs with K classes and a void band on top."""
    g = torch.Generator().manual_seed(1)
    items = []
    for i in range(n):
        mask = torch.randint(0, K, (size, size), generator=g)
        mask[: 2 + i] = 255  # some void
        items.append((torch.rand(3, size, size, generator=g), mask))
    return items


def check_bundle(explorer: object) -> None:
    """The explorer shows both the live widget view and a static PNG."""
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the live view
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)  # static fallback


def hand_miou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Per-image mIoU by hand: mean over the classes present in target or prediction."""
    ious = []
    for c in range(num_classes):
        p, t = pred == c, target == c
        union = (p | t).sum().item()
        if union:
            ious.append((p & t).sum().item() / union)
    return sum(ious) / len(ious)
