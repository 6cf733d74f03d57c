"""V-Net Dice, generalised Dice and U-Net's border weight map."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.losses import (
    DiceLoss,
    GeneralisedDiceLoss,
    build_loss,
    unet_weight_map,
    vnet_dice_loss,
)


def test_vnet_dice_is_square_denominator_dice() -> None:
    loss = vnet_dice_loss(smooth=0.0)
    assert isinstance(loss, DiceLoss) and loss.square_denominator
    logits = torch.randn(2, 3, 5, 6)
    target = torch.randint(0, 3, (2, 5, 6))
    p = logits.softmax(1)
    g = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float()
    dims = (0, 2, 3)
    dice = 2 * (p * g).sum(dims) / ((p * p).sum(dims) + (g * g).sum(dims))
    torch.testing.assert_close(loss(logits, target), 1 - dice.mean())
    assert isinstance(build_loss("vnet_dice"), DiceLoss)


def test_generalised_dice_by_hand() -> None:
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0, 0], target[0, 0, 1], target[0, 0, 2] = 0, 1, 2  # all classes present
    p = logits.softmax(1)
    g = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float()
    dims = (0, 2, 3)
    w = 1 / g.sum(dims) ** 2
    expected = 1 - 2 * (w * (p * g).sum(dims)).sum() / (w * (p + g).sum(dims)).sum()
    got = GeneralisedDiceLoss(smooth=0.0)(logits, target)
    torch.testing.assert_close(got, expected)
    # a perfect prediction gives ~0; ignored pixels do not count
    perfect = 50 * (g * 2 - 1)
    assert GeneralisedDiceLoss()(perfect, target) < 1e-6
    ignored = target.clone()
    ignored[1] = 255
    part = GeneralisedDiceLoss(smooth=0.0)(logits[:1], target[:1])
    torch.testing.assert_close(GeneralisedDiceLoss(smooth=0.0)(logits, ignored), part)
    assert isinstance(build_loss("generalised_dice"), GeneralisedDiceLoss)


def test_generalised_dice_weights_rare_class() -> None:
    """Missing a 1-pixel class costs the generalised Dice far more than that pixel's share
    (1/64): the weights 1/(sum g)^2 make the classes count equally."""
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 0, 0] = 1
    good = torch.stack([torch.full((8, 8), 5.0), torch.full((8, 8), -5.0)])[None]
    bad = good.clone()
    good[0, :, 0, 0] = torch.tensor([-5.0, 5.0])  # rare pixel right
    assert GeneralisedDiceLoss()(good, target) < 0.01
    assert GeneralisedDiceLoss()(bad, target) > 0.4  # rare pixel wrong: about half lost


def test_generalised_dice_gradcheck_and_absent_class() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 2, (2, 3, 4))  # class 2 absent: finite weight, finite loss
    target[0, 0, 0] = 255
    loss_fn = GeneralisedDiceLoss(smooth=1e-5)
    assert torch.isfinite(loss_fn(logits, target))
    assert torch.autograd.gradcheck(lambda z: loss_fn(z, target), (logits,))
    grad = torch.autograd.grad(loss_fn(logits, target), logits)[0]
    assert torch.equal(grad[0, :, 0, 0], torch.zeros(3, dtype=torch.float64))  # ignored


def test_unet_weight_map_two_cells_by_hand() -> None:
    ids = torch.zeros(5, 12, dtype=torch.long)
    ids[:, 0:2] = 1  # cell 1: columns 0-1
    ids[:, 8:11] = 2  # cell 2: columns 8-10
    w = unet_weight_map(ids, w0=10, sigma=5)
    assert w.shape == (5, 12) and w.dtype == torch.float32

    def expected(d1: float, d2: float) -> float:
        return 1 + 10 * math.exp(-((d1 + d2) ** 2) / (2 * 25))

    # column 4: 3 px from cell 1 (column 1), 4 px from cell 2 (column 8)
    assert w[2, 4].item() == pytest.approx(expected(3, 4), rel=1e-5)
    # column 2: next to cell 1, 6 px from cell 2
    assert w[0, 2].item() == pytest.approx(expected(1, 6), rel=1e-5)
    # column 11: 1 px from cell 2, 10 px from cell 1
    assert w[4, 11].item() == pytest.approx(expected(1, 10), rel=1e-5)
    # inside the cells: only w_c
    assert torch.all(w[ids > 0] == 1)
    # class weights and batches
    wc = unet_weight_map(ids, class_weights=(0.5, 2.0))
    assert wc[0, 0].item() == 2.0 and wc[2, 4].item() == pytest.approx(expected(3, 4) - 0.5)
    balanced = unet_weight_map(ids, class_weights="balanced", w0=0)
    assert balanced[0, 0].item() == pytest.approx(60 / (2 * 25))
    batch = unet_weight_map(torch.stack([ids, ids.flip(-1)]))
    torch.testing.assert_close(batch[1], w.flip(-1))


def test_unet_weight_map_one_cell_and_errors() -> None:
    ids = torch.zeros(6, 6, dtype=torch.long)
    ids[2:4, 2:4] = 3
    assert torch.equal(unet_weight_map(ids), torch.ones(6, 6))  # no gap between two cells
    with pytest.raises(ValueError, match="integer"):
        unet_weight_map(ids.float())
    with pytest.raises(ValueError, match="class_weights"):
        unet_weight_map(ids, class_weights="equal")
    with pytest.raises(ValueError, match="sigma"):
        unet_weight_map(ids, sigma=0)
