"""Segmentation losses: cross-entropy, soft Dice, focal — and how to pick one by name.

All losses take raw **logits** ``[N, K, H, W]`` (or ``[N, K, D, H, W]`` for volumes) and an
int64 **target** ``[N, H, W]`` (``[N, D, H, W]``) of class indices; target pixels equal to
``ignore_index`` (255) take no part: they add nothing to the loss and get zero gradient.

* Cross-entropy (the default of every survey model): per-pixel ``-log p_target``, averaged.
* Soft Dice (Milletari et al., V-Net 2016): ``1 - mean_c (2 sum p g + s) / (sum p + sum g + s)``
  on softmax probabilities, pooled over the batch; insensitive to how many background pixels
  there are, which is why medical segmentation likes it. V-Net's own denominator is
  ``sum p^2 + sum g^2`` (``square_denominator=True``).
* Focal (Lin et al., RetinaNet 2017): ``-alpha_t (1 - p_t)^gamma log p_t``; the factor
  ``(1 - p_t)^gamma`` silences pixels that are already right, so the rare hard ones dominate.
  ``gamma = 0`` (and no alpha) gives back cross-entropy.

A model may return ``{"out": logits, "aux": logits}``: :func:`model_loss` is the one place
where an auxiliary head's loss is added, with weight :data:`AUX_WEIGHT` (PSPNet's 0.4);
``train.fit``, ``train.evaluate``, ``bench.train_step_time`` and :func:`cross_entropy` of a
dict all go through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.config import IGNORE_INDEX, check_ignore_index
from course_lib.data.balance import unet_weight_map

__all__ = [
    "AUX_WEIGHT",
    "CEDiceLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "LOSSES",
    "balanced_loss",
    "build_loss",
    "cross_entropy",
    "model_loss",
    "pixel_weighted_cross_entropy",
    "split_output",
]

#: Weight of an auxiliary head's loss: PSPNet's 0.4 (Zhao et al. 2017, Sec. 3.4; torchvision's
#: reference trainer uses 0.5).
AUX_WEIGHT = 0.4

LossFn = Callable[[Tensor, Tensor], Tensor]


def _check(logits: Tensor, target: Tensor, ignore_index: int | None) -> tuple[int, bool]:
    """Validate a (logits, target) pair; return (K, any pixel not ignored)."""
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise ValueError(
            f"logits and target must be tensors, got {type(logits).__name__} and "
            f"{type(target).__name__}"
        )
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a float tensor, got dtype {logits.dtype}")
    if logits.dim() not in (4, 5):
        raise ValueError(
            f"logits must be [N, K, H, W] or [N, K, D, H, W], got shape {tuple(logits.shape)}"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(
            f"target must be int64 class indices, got dtype {target.dtype} "
            "(for one-hot or soft targets, take .argmax(1) first)"
        )
    expected = logits.shape[:1] + logits.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape "
            f"{tuple(logits.shape)}: expected target {tuple(expected)}"
        )
    k = logits.shape[1]
    check_ignore_index(k, ignore_index)
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target).bool()
    bad = ((target < 0) | (target >= k)) & valid
    any_bad, any_valid = torch.stack([bad.any(), valid.any()]).tolist()  # one sync
    if any_bad:
        found = torch.unique(target[bad])[:10].tolist()
        raise ValueError(
            f"target holds class index(es) {found} outside [0, {k}) (logits have K={k} "
            f"channels) that are not ignore_index={ignore_index}"
        )
    return k, bool(any_valid)


def _zero(logits: Tensor) -> Tensor:
    """A zero loss that is still connected to the graph (all pixels ignored)."""
    return logits.sum() * 0.0


def cross_entropy(
    logits: Tensor | Mapping[str, Tensor],
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int | None = IGNORE_INDEX,
    aux_weight: float = AUX_WEIGHT,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Pixel-wise cross-entropy with checked inputs (a thin wrapper of ``F.cross_entropy``).

    Args:
        logits: ``[N, K, ...]``, or a model's dict output ``{"out": ..., "aux": ...}``; then
            the loss is ``CE(out) + aux_weight * CE(aux)`` (:func:`model_loss`).
        target: int64 ``[N, ...]``.
        weight: optional per-class weights ``[K]`` (mean is then weighted, as in PyTorch).
        ignore_index: target label that contributes nothing.
        aux_weight: weight of the auxiliary head's loss.
        label_smoothing: passed to ``F.cross_entropy``.

    Returns 0 (with a graph) when every pixel is ignored, where PyTorch would return NaN.
    """
    if isinstance(logits, Mapping):
        def head_loss(head: Tensor, target: Tensor) -> Tensor:
            return cross_entropy(head, target, weight, ignore_index, 0.0, label_smoothing)

        return model_loss(logits, target, head_loss, aux_weight)
    k, any_valid = _check(logits, target, ignore_index)
    if weight is not None and (weight.dim() != 1 or weight.numel() != k):
        raise ValueError(f"weight must have shape [{k}] (one per class), got {tuple(weight.shape)}")
    if not any_valid:
        return _zero(logits)
    if weight is not None:
        weight = weight.to(device=logits.device, dtype=logits.dtype)
    torch_ignore = -100 if ignore_index is None else ignore_index  # torch's "ignore nothing"
    return F.cross_entropy(
        logits, target, weight=weight, ignore_index=torch_ignore, label_smoothing=label_smoothing
    )


def pixel_weighted_cross_entropy(
    logits: Tensor, target: Tensor, pixel_weight: Tensor,
    ignore_index: int | None = IGNORE_INDEX,
) -> Tensor:
    """``sum_x w(x) CE(x) / sum_x w(x)`` over the pixels whose target is not ``ignore_index``
    (U-Net, Ronneberger et al. 2015, Eq. 1, normalised by the total weight so that the scale
    of the loss does not depend on the map's; :func:`unet_weight_map` makes ``w``). ``w = 1``
    gives the plain mean cross-entropy; all weights zero give 0 (with a graph). ``logits``
    ``[N, K, ...]``, ``target`` and ``pixel_weight`` ``[N, ...]`` (``train.fit`` checks the
    map's shape, dtype and values before a step)."""
    _check(logits, target, ignore_index)
    torch_ignore = -100 if ignore_index is None else ignore_index  # torch's "ignore nothing"
    per_pixel = F.cross_entropy(logits, target, ignore_index=torch_ignore, reduction="none")
    weight = pixel_weight.to(per_pixel.dtype) * (target != torch_ignore)
    total = weight.sum()
    if not bool(total > 0):
        return _zero(logits)
    return (per_pixel * weight).sum() / total


def split_output(out: Tensor | Mapping[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """(main logits, auxiliary logits or None) of a model's output: a tensor or a dict with
    ``"out"`` (and optionally ``"aux"``)."""
    if isinstance(out, Mapping):
        if "out" not in out:
            raise ValueError(f"a model returning a dict must have key 'out', got {sorted(out)}")
        return out["out"], out.get("aux")
    if isinstance(out, Tensor):
        return out, None
    raise ValueError(f"model output must be a tensor or a dict with 'out', got {type(out)}")


def model_loss(
    out: Tensor | Mapping[str, Tensor],
    target: Tensor,
    loss_fn: LossFn = cross_entropy,
    aux_weight: float = AUX_WEIGHT,
) -> Tensor:
    """The training loss of a model's output: ``loss_fn(logits, target)``, plus
    ``aux_weight * loss_fn(aux, target)`` when the model also returns an auxiliary head.

    Logits are scored in float32 (under autocast a model may return float16); auxiliary
    logits of another spatial size are resized to the target's (bilinear), as PSPNet's
    deep-supervision head on a coarser feature map needs. Main logits must already have the
    target's size: a mismatch raises a ``ValueError`` naming both shapes.
    """
    logits, aux = split_output(out)
    if logits.shape[2:] != target.shape[1:]:
        raise ValueError(
            f"model output {tuple(logits.shape)} does not match the mask {tuple(target.shape)}: "
            "the logits must have the mask's spatial size"
        )
    loss = loss_fn(logits.float(), target)
    if aux is not None and aux_weight:
        if aux.shape[2:] != target.shape[1:]:
            aux = F.interpolate(aux, size=target.shape[1:], mode="bilinear", align_corners=False)
        loss = loss + aux_weight * loss_fn(aux.float(), target)
    return loss


class CrossEntropyLoss(nn.Module):
    """Module form of :func:`cross_entropy` (what ``build_loss("ce")`` returns)."""

    def __init__(
        self,
        weight: Sequence[float] | Tensor | None = None,
        ignore_index: int | None = IGNORE_INDEX,
        aux_weight: float = AUX_WEIGHT,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.register_buffer(
            "weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        )
        self.ignore_index = ignore_index
        self.aux_weight = aux_weight
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor | Mapping[str, Tensor], target: Tensor) -> Tensor:
        return cross_entropy(
            logits, target, self.weight, self.ignore_index, self.aux_weight, self.label_smoothing
        )


def _valid_one_hot(target: Tensor, k: int, ignore_index: int | None, dtype: torch.dtype):
    """(one-hot [N, K, ...] with zeros at ignored pixels, valid mask [N, 1, ...] as dtype)."""
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target).bool()
    safe = target.masked_fill(~valid, 0)
    one_hot = F.one_hot(safe, k).movedim(-1, 1).to(dtype)
    mask = valid.unsqueeze(1).to(dtype)
    return one_hot * mask, mask


class DiceLoss(nn.Module):
    """Multi-class soft Dice loss on softmax probabilities (Milletari et al., 2016).

    Per class c, with probabilities p and one-hot target g summed over the batch and all
    pixels that are not ignored::

        dice_c = (2 * sum(p * g) + smooth) / (sum(p) + sum(g) + smooth)
        loss   = 1 - mean_c dice_c

    ``square_denominator=True`` uses V-Net's ``sum(p^2) + sum(g^2)``. ``smooth`` keeps classes
    absent from the batch defined (their dice tends to 1 as their probabilities go to 0).
    Ignored pixels are removed from numerator and denominator, so their gradient is zero.
    """

    def __init__(
        self,
        ignore_index: int | None = IGNORE_INDEX,
        smooth: float = 1.0,
        square_denominator: bool = False,
    ) -> None:
        super().__init__()
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        self.ignore_index = ignore_index
        self.smooth = float(smooth)
        self.square_denominator = square_denominator

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        k, _ = _check(logits, target, self.ignore_index)
        one_hot, mask = _valid_one_hot(target, k, self.ignore_index, logits.dtype)
        probs = logits.softmax(dim=1) * mask  # ignored pixels: zero, and zero gradient
        dims = (0, *range(2, logits.dim()))
        intersection = (probs * one_hot).sum(dims)
        if self.square_denominator:
            denominator = (probs * probs).sum(dims) + (one_hot * one_hot).sum(dims)
        else:
            denominator = probs.sum(dims) + one_hot.sum(dims)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth).clamp_min(1e-12)
        return 1 - dice.mean()

    def extra_repr(self) -> str:
        return (
            f"ignore_index={self.ignore_index}, smooth={self.smooth}, "
            f"square_denominator={self.square_denominator}"
        )


class FocalLoss(nn.Module):
    """Multi-class focal loss (Lin et al., 2017): ``-alpha_t (1 - p_t)^gamma log p_t``.

    Args:
        gamma: focusing parameter (>= 0); 0 gives cross-entropy.
        alpha: ``None`` (no weighting), a float (the same factor for every class; the paper's
            0.25 is a binary foreground weight), or ``K`` per-class weights.
        ignore_index: target label that contributes nothing.
        reduction: ``"mean"`` (over non-ignored pixels; plain mean even with alpha),
            ``"sum"`` or ``"none"`` (per-pixel map ``[N, ...]``, 0 at ignored pixels).
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | Tensor | None = None,
        ignore_index: int | None = IGNORE_INDEX,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.gamma = float(gamma)
        self.ignore_index = ignore_index
        self.reduction = reduction
        alpha_t = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)
        if alpha_t is not None and alpha_t.dim() > 1:
            raise ValueError(f"alpha must be a float or a 1-D sequence, got {tuple(alpha_t.shape)}")
        self.register_buffer("alpha", alpha_t)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        k, any_valid = _check(logits, target, self.ignore_index)
        valid = (
            target != self.ignore_index
            if self.ignore_index is not None
            else torch.ones_like(target).bool()
        )
        safe = target.masked_fill(~valid, 0)
        log_pt = logits.log_softmax(dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
        loss = -log_pt
        if self.gamma != 0:
            pt = log_pt.exp()
            loss = loss * (1 - pt).clamp_min(0).pow(self.gamma)
        if self.alpha is not None:
            alpha = self.alpha.to(device=logits.device, dtype=logits.dtype)
            if alpha.dim() == 1:
                if alpha.numel() != k:
                    raise ValueError(f"alpha has {alpha.numel()} weights but logits have K={k}")
                alpha = alpha[safe]
            loss = loss * alpha
        loss = torch.where(valid, loss, torch.zeros_like(loss))
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        if not any_valid:
            return _zero(logits)
        return loss.sum() / valid.sum()

    def extra_repr(self) -> str:
        alpha = None if self.alpha is None else self.alpha.tolist()
        return f"gamma={self.gamma}, alpha={alpha}, ignore_index={self.ignore_index}"


class CEDiceLoss(nn.Module):
    """``ce_weight * CE + dice_weight * Dice``: region overlap plus per-pixel calibration."""

    def __init__(
        self,
        weight: Sequence[float] | Tensor | None = None,
        ignore_index: int | None = IGNORE_INDEX,
        smooth: float = 1.0,
        square_denominator: bool = False,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.ce = CrossEntropyLoss(weight=weight, ignore_index=ignore_index, aux_weight=0.0)
        self.dice = DiceLoss(ignore_index, smooth, square_denominator)
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.ce_weight * self.ce(logits, target) + self.dice_weight * self.dice(
            logits, target
        )


def balanced_loss(
    masks: Iterable[Tensor] | Tensor, num_classes: int, power: float = 1.0,
    dice_weight: float = 1.0, ignore_index: int | None = IGNORE_INDEX,
) -> CEDiceLoss:
    """The course's loss for rare classes (notebook 03): cross-entropy weighted by
    median-frequency balancing plus soft Dice, ``CE(weight=w) + dice_weight * Dice``.

    ``w`` is :func:`course_lib.data.balance.median_frequency_weights` of the training
    ``masks`` with ``power`` 1 — Eigen & Fergus's (ICCV 2015) weight ``median_k f_k / f_c``,
    SegNet's choice — not the milder square root that is that function's default. The Dice
    term (Milletari et al. 2016) scores every class present by its overlap whatever its size;
    CE + Dice is nnU-Net's default loss (Isensee et al., Nature Methods 2021). On the shapes
    world, where an object class holds 0.5-5 % of the pixels, plain CE learns the four stuff
    classes and hardly any object in a CPU budget. Measured (standard profile, 3 seeds): the
    weights are the big lever; the Dice term added little to the objects' IoU (notebook 07
    keeps the weighted CE alone, ``dice_weight=0`` gives it).
    """
    # imported here: importing course_lib.data loads its readers, the losses stay light
    from course_lib.data.balance import median_frequency_weights

    if isinstance(masks, Tensor):
        masks = [masks]
    weight = median_frequency_weights(masks, num_classes, power=power)
    return CEDiceLoss(weight=weight, ignore_index=ignore_index, dice_weight=dice_weight)


LOSSES: dict[str, Callable[..., nn.Module]] = {
    "ce": CrossEntropyLoss,
    "dice": DiceLoss,
    "focal": FocalLoss,
    "ce+dice": CEDiceLoss,
}


def build_loss(name: str, **kwargs: object) -> nn.Module:
    """A loss module by name: ``"ce"``, ``"dice"``, ``"focal"`` or ``"ce+dice"``.

    Keyword arguments go to the class (:class:`CrossEntropyLoss`, :class:`DiceLoss`,
    :class:`FocalLoss`, :class:`CEDiceLoss`), e.g. ``build_loss("focal", gamma=1.0)``.
    """
    key = name.lower().replace(" ", "") if isinstance(name, str) else name
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names are: {', '.join(LOSSES)}")
    try:
        return LOSSES[key](**kwargs)
    except TypeError as err:
        raise ValueError(f"bad arguments for loss {name!r}: {err}") from err


# --------------------------------------------------------------------------------------------
# Medical-segmentation losses (issue 6): V-Net Dice, generalised Dice (U-Net's border
# weights: course_lib.data.balance.unet_weight_map, re-exported here)
# --------------------------------------------------------------------------------------------
def vnet_dice_loss(ignore_index: int | None = IGNORE_INDEX, smooth: float = 1.0) -> DiceLoss:
    """V-Net's Dice loss (Milletari et al. 2016, Eq. 1): denominator ``sum p^2 + sum g^2``.

    The same :class:`DiceLoss`, with ``square_denominator=True`` (not a second copy).
    """
    return DiceLoss(ignore_index=ignore_index, smooth=smooth, square_denominator=True)


class GeneralisedDiceLoss(nn.Module):
    """Generalised Dice loss (Sudre et al., DLMIA 2017, Eq. 2)::

        w_c  = 1 / (sum g_c)^2
        loss = 1 - 2 * sum_c w_c sum(p_c g_c) / sum_c w_c sum(p_c + g_c)

    Sums run over the batch and all non-ignored pixels. The weights make every class count
    about equally, however few pixels it has. A class absent from the target would get an
    infinite weight; as in MONAI, it gets the largest finite weight instead. ``smooth`` is
    added to numerator and denominator.
    """

    def __init__(self, ignore_index: int | None = IGNORE_INDEX, smooth: float = 1e-6) -> None:
        super().__init__()
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        self.ignore_index = ignore_index
        self.smooth = float(smooth)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        k, any_valid = _check(logits, target, self.ignore_index)
        if not any_valid:
            return _zero(logits)
        one_hot, mask = _valid_one_hot(target, k, self.ignore_index, logits.dtype)
        probs = logits.softmax(dim=1) * mask
        dims = (0, *range(2, logits.dim()))
        volume = one_hot.sum(dims)  # pixels per class (no gradient)
        weight = 1.0 / volume.pow(2)
        finite = torch.isfinite(weight)
        weight = torch.where(finite, weight, weight[finite].max() if finite.any() else 1.0)
        intersection = (weight * (probs * one_hot).sum(dims)).sum()
        denominator = (weight * (probs + one_hot).sum(dims)).sum()
        return 1 - (2 * intersection + self.smooth) / (denominator + self.smooth)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, smooth={self.smooth}"


LOSSES["vnet_dice"] = vnet_dice_loss
LOSSES["generalised_dice"] = GeneralisedDiceLoss
__all__ += ["GeneralisedDiceLoss", "unet_weight_map", "vnet_dice_loss"]
