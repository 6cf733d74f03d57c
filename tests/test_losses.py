"""Tests for course_lib.losses: gradients, special cases, ignore handling, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib import losses as L


def _batch(shape: tuple[int, ...] = (2, 3, 4, 5), seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=g, dtype=dtype)
    target = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=g)
    target[torch.rand(target.shape, generator=g) < 0.2] = 255
    return logits, target


@pytest.mark.parametrize(
    "loss",
    [
        L.DiceLoss(),
        L.DiceLoss(square_denominator=True, smooth=0.5),
        L.FocalLoss(gamma=2.0),
        L.FocalLoss(gamma=1.5, alpha=[0.2, 0.3, 0.5]),
    ],
    ids=["dice", "dice-vnet", "focal", "focal-alpha"],
)
def test_gradcheck(loss: torch.nn.Module) -> None:
    logits, target = _batch((2, 3, 3, 3), dtype=torch.float64)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,))


def test_focal_gamma0_is_cross_entropy() -> None:
    logits, target = _batch()
    ce = F.cross_entropy(logits, target, ignore_index=255)
    assert torch.allclose(L.FocalLoss(gamma=0.0)(logits, target), ce, atol=1e-6)
    assert torch.allclose(L.cross_entropy(logits, target), ce)
    assert torch.allclose(L.build_loss("ce")(logits, target), ce)


def test_focal_downweights_easy_pixels() -> None:
    logits, target = _batch()
    assert L.FocalLoss(gamma=2.0)(logits, target) < L.FocalLoss(gamma=0.0)(logits, target)
    # reduction="none" gives a map with zeros on ignored pixels
    per_pixel = L.FocalLoss(reduction="none")(logits, target)
    assert per_pixel.shape == target.shape and (per_pixel[target == 255] == 0).all()


def test_dice_perfect_prediction_is_zero() -> None:
    _, target = _batch()
    logits = 30.0 * F.one_hot(target.clamp(max=2), 3).movedim(-1, 1).float()
    for loss in (L.DiceLoss(), L.DiceLoss(square_denominator=True), L.DiceLoss(smooth=0.0)):
        assert loss(logits, target).item() == pytest.approx(0.0, abs=1e-5)
    # and a uniform prediction is clearly worse
    assert L.DiceLoss()(torch.zeros_like(logits), target) > 0.3


def test_dice_hand_value() -> None:
    # One image, two classes, two pixels, target [0, 1]; logits 0 -> p = 1/2 everywhere.
    # Per class: intersection 1/2, sum p = 1, sum g = 1 -> dice = (1 + s) / (2 + s).
    logits = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    assert L.DiceLoss(smooth=0.0)(logits, target).item() == pytest.approx(0.5)
    assert L.DiceLoss(smooth=1.0)(logits, target).item() == pytest.approx(1 - 2 / 3)
    # V-Net denominator: sum p^2 = 1/2, sum g^2 = 1 -> dice = 1 / 1.5
    assert L.DiceLoss(smooth=0.0, square_denominator=True)(logits, target).item() == (
        pytest.approx(1 - 2 / 3)
    )


@pytest.mark.parametrize("name", ["ce", "dice", "focal", "ce+dice"])
def test_ignored_pixels_get_zero_gradient(name: str) -> None:
    logits, target = _batch()
    logits.requires_grad_(True)
    L.build_loss(name)(logits, target).backward()
    grad = logits.grad.movedim(1, -1)  # [N, H, W, K]
    assert (grad[target == 255] == 0).all()
    assert grad[target != 255].abs().sum() > 0


@pytest.mark.parametrize("name", ["ce", "dice", "focal", "ce+dice"])
def test_volumes_and_all_ignored(name: str) -> None:
    loss = L.build_loss(name)
    logits, target = _batch((2, 3, 2, 4, 4))  # [N, K, D, H, W]
    value = loss(logits, target)
    assert value.dim() == 0 and torch.isfinite(value)
    logits.requires_grad_(True)
    out = loss(logits, torch.full_like(target, 255))
    assert torch.isfinite(out) and out.item() == pytest.approx(0.0)
    out.backward()  # still part of the graph


def test_cross_entropy_weight_and_aux() -> None:
    logits, target = _batch()
    w = torch.tensor([1.0, 2.0, 0.5])
    assert torch.allclose(
        L.cross_entropy(logits, target, weight=w),
        F.cross_entropy(logits, target, weight=w, ignore_index=255),
    )
    aux = logits.flip(1)
    both = L.cross_entropy({"out": logits, "aux": aux}, target, aux_weight=0.5)
    expected = F.cross_entropy(logits, target, ignore_index=255) + 0.5 * F.cross_entropy(
        aux, target, ignore_index=255
    )
    assert torch.allclose(both, expected)


def test_model_loss_adds_the_aux_head_once_with_aux_weight() -> None:
    logits, target = _batch()
    coarse_aux = torch.randn(logits.shape[0], logits.shape[1], 4, 4)  # a coarser head
    out = {"out": logits, "aux": coarse_aux}
    resized = F.interpolate(coarse_aux, size=target.shape[1:], mode="bilinear",
                            align_corners=False)
    expected = F.cross_entropy(logits, target, ignore_index=255) + L.AUX_WEIGHT * (
        F.cross_entropy(resized, target, ignore_index=255))
    assert L.AUX_WEIGHT == 0.4  # PSPNet's weight
    torch.testing.assert_close(L.model_loss(out, target), expected)
    torch.testing.assert_close(L.cross_entropy(out, target), expected)  # the same function
    torch.testing.assert_close(L.CrossEntropyLoss()(out, target), expected)
    torch.testing.assert_close(L.model_loss(out, target, aux_weight=0.0),
                               F.cross_entropy(logits, target, ignore_index=255))
    torch.testing.assert_close(L.model_loss(logits, target), L.cross_entropy(logits, target))
    with pytest.raises(ValueError, match="spatial size"):
        L.model_loss({"out": logits[..., :4]}, target)
    with pytest.raises(ValueError, match="must have key 'out'"):
        L.model_loss({"aux": logits}, target)
    assert L.split_output(out) == (logits, coarse_aux)
    assert L.split_output(logits) == (logits, None)


def test_build_loss() -> None:
    assert isinstance(L.build_loss("focal", gamma=1.0), L.FocalLoss)
    assert L.build_loss("focal", gamma=1.0).gamma == 1.0
    assert isinstance(L.build_loss("CE+Dice", dice_weight=0.5), L.CEDiceLoss)
    logits, target = _batch()
    combo = L.build_loss("ce+dice")(logits, target)
    assert torch.allclose(combo, L.cross_entropy(logits, target) + L.DiceLoss()(logits, target))
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*ce, dice, focal, ce\\+dice"):
        L.build_loss("hinge")
    with pytest.raises(ValueError, match="bad arguments"):
        L.build_loss("dice", gamma=2.0)


@pytest.mark.parametrize("name", ["ce", "dice", "focal"])
def test_errors(name: str) -> None:
    loss = L.build_loss(name)
    logits, target = _batch()
    with pytest.raises(ValueError, match="does not match"):
        loss(logits, target[:, :3])
    with pytest.raises(ValueError, match="int64 class indices.*float32"):
        loss(logits, target.float())
    bad = target.clone()
    bad[0, 0, 0] = 3
    with pytest.raises(ValueError, match=r"\[3\] outside \[0, 3\)"):
        loss(logits, bad)
    bad[0, 0, 0] = -1
    with pytest.raises(ValueError, match=r"\[-1\]"):
        loss(logits, bad)
    with pytest.raises(ValueError, match="logits must be"):
        loss(logits[0], target[0])


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="gamma"):
        L.FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="alpha has 2 weights"):
        L.FocalLoss(alpha=[0.5, 0.5])(*_batch())
    with pytest.raises(ValueError, match="smooth"):
        L.DiceLoss(smooth=-1.0)
    with pytest.raises(ValueError, match=r"weight must have shape \[3\]"):
        L.cross_entropy(*_batch(), weight=torch.ones(4))


@pytest.mark.parametrize("name", ["ce", "dice", "focal"])
def test_ignore_index_255_refused_when_255_is_a_class(name: str) -> None:
    logits, target = _batch((1, 256, 2, 3))
    with pytest.raises(ValueError, match=r"num_classes=256.*ignore_index=255"):
        L.build_loss(name)(logits, target)
    assert torch.isfinite(L.build_loss(name, ignore_index=None)(logits, target.clamp_max(255)))


# ------------------------------------------------------------------ the rare-class recipe
def test_balanced_loss_is_median_frequency_ce_plus_dice_by_hand() -> None:
    # shares: class 0 6/10, class 1 3/10, class 2 1/10 (255 left out): median 3/10
    mask = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 255]])
    loss = L.balanced_loss([mask], num_classes=3)
    assert loss.ce.weight.tolist() == pytest.approx([0.5, 1.0, 3.0])  # median / share, power 1
    logits = torch.randn(2, 3, 4, 5)
    target = torch.randint(0, 3, (2, 4, 5))
    target[0, 0, 0] = 255
    expected = F.cross_entropy(logits, target, weight=torch.tensor([0.5, 1.0, 3.0]),
                               ignore_index=255) + L.DiceLoss()(logits, target)
    assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)
    half = L.balanced_loss(mask, num_classes=3, power=0.5, dice_weight=0.0)  # a tensor works too
    assert half.ce.weight.tolist() == pytest.approx([0.5**0.5, 1.0, 3.0**0.5])
    assert half(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target, weight=half.ce.weight, ignore_index=255).item(), rel=1e-5)


def test_balanced_loss_pulls_harder_on_a_rare_class_than_plain_ce() -> None:
    """One pixel of a rare class among 99 of a common one, all predicted alike: plain CE moves
    each pixel's logits equally, the balanced loss the rare pixel's far more."""
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[0, 0, 0] = 1
    plain_ratio, balanced_ratio = [], []
    for loss_fn, ratios in ((L.CrossEntropyLoss(), plain_ratio),
                            (L.balanced_loss(target, num_classes=2), balanced_ratio)):
        logits = torch.zeros(1, 2, 10, 10, requires_grad=True)
        loss_fn(logits, target).backward()
        grad = logits.grad.norm(dim=1)[0]
        ratios.append((grad[0, 0] / grad[5, 5]).item())
    assert plain_ratio[0] == pytest.approx(1.0)
    assert balanced_ratio[0] > 20
