"""One optimizer update with mixed-precision loss scaling: the four lines every loop shares."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["optimizer_step"]


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler, scheduler: LRScheduler | None = None) -> None:
    """Clear the gradients, back-propagate ``loss`` and update the weights (then the schedule).

    On CUDA the scaler (``config.grad_scaler``) multiplies the loss before ``backward`` so
    float16 gradients do not underflow, un-scales them in ``step`` and skips a step whose
    gradients hold inf/NaN; elsewhere it is disabled and this is a plain
    ``backward(); step()``.
    """
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    if scheduler is not None:
        scheduler.step()
