"""From a loader's batch to model inputs: ``(image, mask)`` pairs or ``{"image", "mask"}`` dicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


def plain(x: torch.Tensor) -> torch.Tensor:
    """Drop tv_tensors subclasses (Image, Mask) so that every op returns a plain tensor."""
    return x.as_subclass(torch.Tensor) if type(x) is not torch.Tensor else x


def split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, mask) of a batch, as plain tensors."""
    if isinstance(batch, Mapping):
        if "image" not in batch or "mask" not in batch:
            raise ValueError(
                f"a dict batch needs keys 'image' and 'mask', got keys {sorted(batch)}"
            )
        image, mask = batch["image"], batch["mask"]
    elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
        image, mask = batch[0], batch[1]
    else:
        raise ValueError(
            f"a batch must be (image, mask) or a dict with 'image'/'mask', got {type(batch)}"
        )
    return plain(image), plain(mask)


def to_device(
    image: torch.Tensor, mask: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image batch as float on ``device`` (uint8 scaled to [0, 1]) and mask [N, H, W] int64."""
    non_blocking = device.type == "cuda"
    image = image.to(device, non_blocking=non_blocking)
    if not image.is_floating_point():  # uint8 images are scaled to [0, 1]
        image = image.float() / 255.0
    mask = mask.to(device, non_blocking=non_blocking)
    if mask.dim() == image.dim() and mask.shape[1] == 1:  # [N, 1, H, W] → [N, H, W]
        mask = mask[:, 0]
    return image, mask.long()


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (else the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
