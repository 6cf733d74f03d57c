"""One optimizer update with mixed-precision loss scaling: the four lines every loop shares."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["check_clip_grad_norm", "optimizer_step"]


def check_clip_grad_norm(clip_grad_norm: float | None) -> None:
    """Refuse a gradient-norm limit that is not a positive number (``None``: no clipping)."""
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be > 0 (or None), got {clip_grad_norm}")


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler, scheduler: LRScheduler | None = None,
                   clip_grad_norm: float | None = None) -> None:
    """Clear the gradients, back-propagate ``loss`` and update the weights (then the schedule).

    On CUDA the scaler (``config.grad_scaler``) multiplies the loss before ``backward`` so
    float16 gradients do not underflow, un-scales them in ``step`` and skips a step whose
    gradients hold inf/NaN; elsewhere it is disabled and this is a plain
    ``backward(); step()``.

    ``clip_grad_norm``: when given, the gradients of the optimiser's parameters are rescaled
    so that their global L2 norm is at most this value (``torch.nn.utils.clip_grad_norm_``),
    after un-scaling them (so the limit is in true gradient units also under AMP).
    """
    check_clip_grad_norm(clip_grad_norm)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad_norm is not None:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    if scheduler is not None:
        scheduler.step()
