"""fit with per-pixel weight maps: the loss against a hand computation, one step against a hand
SGD update, the unweighted path unchanged, bad maps refused with a clear error."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import pattern_data
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_lib.losses import DiceLoss
from course_lib.train import fit, pixel_weighted_cross_entropy


def test_weighted_loss_equals_a_hand_computation() -> None:
    # one image of 1x3 pixels, two classes; pixel 2 is ignored (255)
    logits = torch.tensor([[[[2.0, 0.0, 1.0]], [[0.0, 1.0, 3.0]]]])
    target = torch.tensor([[[0, 0, 255]]])
    weight = torch.tensor([[[1.0, 3.0, 100.0]]])
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 1))  # pixel 0: class 0, logits (2, 0)
    ce1 = -math.log(1 / (1 + math.e))  # pixel 1: class 0, logits (0, 1)
    expected = (1 * ce0 + 3 * ce1) / (1 + 3)  # the ignored pixel's weight 100 counts for nothing
    got = pixel_weighted_cross_entropy(logits, target, weight)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    plain = torch.nn.functional.cross_entropy(logits, target, ignore_index=255)
    ones = pixel_weighted_cross_entropy(logits, target, torch.ones_like(weight))
    torch.testing.assert_close(ones, plain)  # w = 1 is the plain mean
    zero = pixel_weighted_cross_entropy(logits.requires_grad_(), target, torch.zeros_like(weight))
    assert zero.item() == 0.0 and zero.requires_grad


def weighted_batches(weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> DataLoader:
    items = [{"image": x[i], "mask": y[i], "weight": weight[i]} for i in range(len(x))]
    return DataLoader(items, batch_size=len(items))


def test_one_weighted_step_equals_a_hand_sgd_update() -> None:
    x, y = pattern_data(2, 8, 3, seed=2)
    weight = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0)) * 5
    torch.manual_seed(0)
    model = nn.Conv2d(3, 3, 3, padding=1)
    reference = nn.Conv2d(3, 3, 3, padding=1)
    reference.load_state_dict(model.state_dict())
    per_pixel = nn.functional.cross_entropy(reference(x), y, reduction="none")
    hand_loss = (per_pixel * weight).sum() / weight.sum()
    grads = torch.autograd.grad(hand_loss, list(reference.parameters()))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    fit(model, weighted_batches(weight, x, y), optimizer=optimizer, steps=1, scheduler=None,
        progress=False, device="cpu")
    for p, q, g in zip(model.parameters(), reference.parameters(), grads, strict=True):
        torch.testing.assert_close(p.detach(), q.detach() - 0.5 * g)


def test_unit_weights_train_like_no_weights() -> None:
    x, y = pattern_data(4, 8, 3, seed=3)
    runs = []
    for loader in (DataLoader(TensorDataset(x, y), batch_size=4),
                   weighted_batches(torch.ones(4, 8, 8), x, y)):
        torch.manual_seed(0)
        model = nn.Conv2d(3, 3, 3, padding=1)
        history = fit(model, loader, steps=3, progress=False, device="cpu")
        runs.append((model.weight.detach(), history.train_loss))
    torch.testing.assert_close(runs[0][0], runs[1][0])
    assert runs[0][1] == pytest.approx(runs[1][1], rel=1e-6)


@pytest.mark.parametrize(("weight", "message"), [
    (torch.ones(2, 8, 7), r"shape \(2, 8, 7\), expected the mask's shape \(2, 8, 8\)"),
    (torch.ones(2, 3, 8, 8), r"shape \(2, 3, 8, 8\), expected the mask's shape"),
    (torch.ones(2, 8, 8, dtype=torch.long), "must be a float tensor, got torch.int64"),
    (-torch.ones(2, 8, 8), "finite and >= 0"),
    (torch.full((2, 8, 8), float("nan")), "finite and >= 0"),
])
def test_bad_weight_maps_raise_before_training(weight: torch.Tensor, message: str) -> None:
    x, y = pattern_data(2, 8, 3, seed=4)
    model = nn.Conv2d(3, 3, 3, padding=1)
    before = model.weight.detach().clone()
    with pytest.raises(ValueError, match=message):
        fit(model, weighted_batches(weight, x, y), steps=1, progress=False, device="cpu")
    assert torch.equal(model.weight.detach(), before)


def test_a_weight_map_with_another_loss_is_refused() -> None:
    x, y = pattern_data(2, 8, 3, seed=5)
    with pytest.raises(ValueError, match="leave loss_fn unset"):
        fit(nn.Conv2d(3, 3, 3, padding=1), weighted_batches(torch.ones(2, 8, 8), x, y),
            loss_fn=DiceLoss(), steps=1, progress=False, device="cpu")
