"""fit(clip_grad_norm=...): the gradient norm of every step is limited; default unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_lib import config
from course_lib.train import fit


def one_step(clip: float | None) -> float:
    """The L2 norm of the weight change of one SGD step (lr 1, no schedule)."""
    config.seed_everything(0)
    model = nn.Conv2d(3, 4, 3, padding=1)
    images = torch.rand(4, 3, 8, 8) * 10
    masks = torch.randint(0, 4, (4, 8, 8))
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    fit(model, DataLoader(TensorDataset(images, masks), batch_size=4),
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0), steps=1, scheduler=None,
        progress=False, device="cpu", clip_grad_norm=clip)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return (after - before).norm().item()


def test_fit_clips_the_gradient_norm_of_every_step() -> None:
    free = one_step(None)
    assert free > 0.1
    assert one_step(0.01) == pytest.approx(0.01, rel=1e-3)  # lr 1: the change is the gradient
    assert one_step(1e6) == pytest.approx(free, rel=1e-6)  # a limit above the norm: no change
    with pytest.raises(ValueError, match="clip_grad_norm"):
        one_step(-1.0)
