"""Running a model: where its weights live, and eval mode for one block of code.

Every part of the course that runs a model outside training (evaluation, prediction,
widgets, benchmarks, probes) goes through :func:`evaluating`, so a model always comes back
in the mode it had, also when the forward pass raises. Every library function that trains or
runs a model on the best device (CUDA, MPS) goes through :func:`on_device`, so the model
comes back on the device it had: a notebook's next cell can call it on CPU tensors.
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


@contextlib.contextmanager
def on_device(device: torch.device | str, *models: nn.Module) -> Iterator[None]:
    """Move ``models`` to ``device`` for a ``with`` block; afterwards each goes back to the
    device it was on, exceptions included.

    ``fit``, ``predict`` and the other training loops work on the GPU when there is one, but
    hand the model back where they found it (as Lightning's ``Trainer`` hands it back on the
    CPU): a model a notebook built on the CPU is on the CPU in the next cell, whatever the
    machine. Parameters keep their identity (``Module.to`` moves them in place), so an
    optimiser made before the block still holds them. An int8 model of ``torch.ao``
    (:func:`course_lib.compress.quantize_int8`) runs on the CPU only: asking for another
    device raises a ``ValueError`` (moved to CUDA, such a model crashes the process).
    """
    if torch.device(device).type != "cpu":
        for model in models:
            if any(type(m).__module__.startswith("torch.ao.nn.quantized")
                   for m in model.modules()):
                raise ValueError(f"{type(model).__name__} holds int8 (torch.ao.nn.quantized) "
                                 f"layers, which run on the CPU only: pass device='cpu', "
                                 f"not {str(device)!r}")
    homes = [model_device(model) for model in models]
    try:
        for model in models:  # inside the try: a failed move puts the moved ones back
            model.to(device)
        yield
    finally:
        for model, home in zip(models, homes, strict=True):
            model.to(home)


__all__ = ["evaluating", "model_device", "on_device"]
