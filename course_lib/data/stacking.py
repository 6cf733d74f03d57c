"""A whole (small) data set as one batch of tensors: the validation images and masks that a
notebook scores at once (``images, masks = stack_dataset(val_set)``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["stack_dataset"]


def _field(item: Any, key: str | int, index: int) -> torch.Tensor:
    try:
        value = item[key]
    except (KeyError, IndexError) as error:
        have = list(item) if isinstance(item, dict) else f"{len(item)} elements"
        raise ValueError(f"item {index} has no {key!r} (it has {have})") from error
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"item {index}'s {key!r} is a {type(value).__name__}, not a tensor")
    return value


def stack_dataset(
    dataset: Sequence[Any], keys: Sequence[str] = ("image", "mask"),
) -> tuple[torch.Tensor, ...]:
    """Every item of ``dataset`` stacked along a new first dimension, one tensor per field.

    Items are ``(image, mask, ...)`` tuples (every element is stacked, in order) or dicts
    (the fields named by ``keys``, in that order; fields of varying size such as an item's
    instance masks cannot be stacked, leave them out). Returns a tuple, e.g.
    ``images [N, C, H, W], masks [N, H, W]``. Fields whose shapes differ between items raise
    an error naming the item and the field.
    """
    if len(dataset) == 0:
        raise ValueError("stack_dataset: the data set is empty")
    items = [dataset[i] for i in range(len(dataset))]
    if isinstance(items[0], dict):
        fields: Sequence[str | int] = tuple(keys)
        if not fields:
            raise ValueError("stack_dataset: keys is empty; name the dict fields to stack")
    elif isinstance(items[0], (tuple, list)):
        fields = tuple(range(len(items[0])))
    else:
        raise ValueError(f"stack_dataset: items must be tuples or dicts, got "
                         f"{type(items[0]).__name__}")
    stacked = []
    for key in fields:
        values = [_field(item, key, i) for i, item in enumerate(items)]
        odd = next((i for i, v in enumerate(values) if v.shape != values[0].shape), None)
        if odd is not None:
            raise ValueError(f"stack_dataset: field {key!r} of item {odd} has shape "
                             f"{tuple(values[odd].shape)}, item 0's {tuple(values[0].shape)}")
        stacked.append(torch.stack(values))
    return tuple(stacked)
