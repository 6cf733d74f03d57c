"""train.optimizer_step: the one update every training loop of the course shares."""

from __future__ import annotations

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
