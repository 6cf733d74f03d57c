"""Running a model: where its weights live, and eval mode for one block of code.

Every part of the course that runs a model outside training (evaluation, prediction,
widgets, benchmarks, probes) goes through :func:`evaluating`, so a model always comes back
in the mode it had, also when the forward pass raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a stateless model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def evaluating(model: nn.Module, no_grad: bool = True) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode (and, by default, turn autograd off) for a ``with`` block.

    Each submodule's own mode is restored afterwards, exceptions included: a model whose
    BatchNorm layers were frozen in eval mode keeps them frozen.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            yield model
    finally:
        for module, training in modes:
            module.training = training


__all__ = ["evaluating", "model_device"]
