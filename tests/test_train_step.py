"""train.optimizer_step: the one update every training loop of the course shares."""

from __future__ import annotations

import pytest
import torch

from course_lib import config
from course_lib.train import optimizer_step


def test_one_step_equals_a_plain_sgd_update_and_clears_stale_gradients() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    before = layer.weight.detach().clone()
    layer.weight.grad = torch.full_like(layer.weight, 100.0)  # stale: must not leak in
    x = torch.randn(4, 3)
    loss = layer(x).pow(2).sum()
    (expected_grad,) = torch.autograd.grad(loss, layer.weight, retain_graph=True)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    optimizer_step(loss, optimizer, config.grad_scaler(torch.device("cpu")), schedule)
    torch.testing.assert_close(layer.weight.detach(), before - 0.1 * expected_grad)
    assert optimizer.param_groups[0]["lr"] == 0.05  # the schedule stepped once


def test_without_a_schedule_the_learning_rate_stays() -> None:
    layer = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    optimizer_step(layer(torch.ones(1, 2)).sum(), optimizer,
                   config.grad_scaler(torch.device("cpu")))
    assert optimizer.param_groups[0]["lr"] == 0.1


def _clipped_update(scaler: torch.amp.GradScaler) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step (lr 1) with clip_grad_norm=0.5: the weight change and the unclipped
    gradients (whose norm is far above 0.5)."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    params = list(layer.parameters())
    before = [p.detach().clone() for p in params]
    loss = layer(torch.randn(8, 3) * 10).pow(2).sum()
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    optimizer = torch.optim.SGD(params, lr=1.0)
    optimizer_step(loss, optimizer, scaler, clip_grad_norm=0.5)
    change = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, params, strict=True)])
    return change, torch.cat([g.flatten() for g in grads])


def test_clip_grad_norm_rescales_the_gradients_to_the_limit() -> None:
    change, grad = _clipped_update(config.grad_scaler(torch.device("cpu")))
    assert grad.norm() > 10
    torch.testing.assert_close(change, grad * (0.5 / grad.norm()), rtol=1e-4, atol=1e-6)
    # with a loss scaler (as on CUDA) the limit applies to the un-scaled gradients
    scaled, _ = _clipped_update(torch.amp.GradScaler("cpu", init_scale=1024.0))
    torch.testing.assert_close(scaled, change, rtol=1e-4, atol=1e-6)


def test_clip_grad_norm_must_be_positive() -> None:
    layer = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        optimizer_step(layer(torch.ones(1, 2)).sum(), optimizer,
                       config.grad_scaler(torch.device("cpu")), clip_grad_norm=0.0)
