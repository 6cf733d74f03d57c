"""Learning-rate schedules of ``fit``: the poly schedule of DeepLab, PSPNet and torchvision."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LRScheduler


class PolyLR(LRScheduler):
    """Poly learning-rate schedule ``base_lr * (1 - it / total_iters) ** power``, per step.

    Written in closed form so that a resumed run may change ``total_iters`` (to train
    longer) and still get a well-defined learning rate.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, total_iters: int, power: float = 0.9,
        last_epoch: int = -1,
    ) -> None:
        if total_iters < 1:
            raise ValueError(f"PolyLR: total_iters must be >= 1, got {total_iters}")
        self.total_iters = int(total_iters)
        self.power = float(power)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # noqa: D102 (documented in the class)
        progress = min(max(self.last_epoch, 0), self.total_iters) / self.total_iters
        factor = (1.0 - progress) ** self.power
        return [base * factor for base in self.base_lrs]


def make_scheduler(
    scheduler: str | LRScheduler | None, optimizer: torch.optim.Optimizer, total_steps: int
) -> LRScheduler | None:
    if scheduler is None or scheduler == "constant":
        return None
    if scheduler == "poly":
        return PolyLR(optimizer, total_steps)
    if isinstance(scheduler, LRScheduler):
        return scheduler
    raise ValueError(
        f"unknown scheduler {scheduler!r}; use 'poly', 'constant', None or an LRScheduler"
    )
