"""Active-contour energies as training losses: supervised (Chen et al.) and unsupervised
(Mumford–Shah, Kim & Ye).

* **Chen, Williams, Chen, Zheng & Wang**, "Learning Active Contour Models for Medical Image
  Segmentation" (CVPR 2019), eq. 4-6: with u the predicted foreground probability and v the
  mask, ``Length = Σ sqrt(|∂x u|² + |∂y u|² + ε)`` and
  ``Region = |Σ u (v − c₁)²| + |Σ (1 − u)(v − c₂)²|`` with c₁ = 1, c₂ = 0 (the mask's two
  values), ``loss = Length + λ·Region`` (:func:`active_contour_loss`).
* **Kim & Ye**, "Mumford–Shah Loss Functional for Image Segmentation With Deep Learning"
  (IEEE TIP 2019), eq. 8: the softmax outputs y_k are the characteristic functions of the
  Chan–Vese/Mumford–Shah piecewise-constant model — no mask at all::

      L = Σ_k Σ_x |I(x) − c_k|² y_k(x) + λ Σ_k Σ_x |∇y_k(x)|,   c_k = Σ I y_k / Σ y_k

  (:func:`mumford_shah_loss`). Gur et al. (2019) build their unsupervised microvessel loss
  on the same morphological-ACWE energy.

Deviations: both losses are *means* over pixels (the papers sum), so λ does not depend on
the image size; the length term of Chen et al. uses the same forward differences for both
axes on the common ``(H−1)×(W−1)`` grid.
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib.config import IGNORE_INDEX

CHEN_LAMBDA = 1.0  # λ of Chen et al. (their code: lambdaP = 1)
CHEN_EPS = 1e-8  # ε under the square root of the length term (their code)


def _check_logits(name: str, logits: Tensor) -> None:
    if logits.dim() != 4 or logits.shape[1] < 2:
        raise ValueError(f"{name}: logits must be [N, K, H, W] with K >= 2, got "
                         f"{tuple(logits.shape)}")


def forward_differences(u: Tensor) -> tuple[Tensor, Tensor]:
    """(∂y u, ∂x u) by forward differences on the ``(H−1) × (W−1)`` grid where both exist."""
    dy = u[..., 1:, :-1] - u[..., :-1, :-1]
    dx = u[..., :-1, 1:] - u[..., :-1, :-1]
    return dy, dx


def contour_length(u: Tensor, eps: float = CHEN_EPS) -> Tensor:
    """Mean of sqrt(|∂x u|² + |∂y u|² + ε) over pixels (and maps): the length term."""
    dy, dx = forward_differences(u)
    return torch.sqrt(dx**2 + dy**2 + eps).mean()


def active_contour_loss(logits: Tensor, target: Tensor, weight: float = CHEN_LAMBDA,
                        eps: float = CHEN_EPS, ignore_index: int | None = IGNORE_INDEX
                        ) -> Tensor:
    """Chen et al.'s active-contour loss: ``Length + λ·Region`` (means over pixels).

    For K classes each class's softmax map u_k is a one-vs-rest level set against the
    one-hot mask v_k; the terms are summed over the classes (K = 2: foreground and
    background both count, as a two-phase Chan–Vese does). Ignored pixels drop out of the
    region term (the length term sees the whole prediction).

    Args:
        logits: ``[N, K, H, W]``. target: labels ``[N, H, W]``.
        weight: λ, the region term's weight. eps: ε of the length term.
    """
    _check_logits("active_contour_loss", logits)
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"active_contour_loss: target must be [N, H, W] = "
                         f"{(logits.shape[0], *logits.shape[2:])}, got {tuple(target.shape)}")
    k = logits.shape[1]
    valid = (target != ignore_index if ignore_index is not None
             else torch.ones_like(target, dtype=torch.bool))
    labels = torch.where(valid, target, 0)
    if bool((labels < 0).any()) or bool((labels >= k).any()):
        raise ValueError(f"active_contour_loss: labels must lie in 0..{k - 1} (or be "
                         f"ignore_index={ignore_index}), got {sorted(labels.unique().tolist())}")
    u = logits.softmax(1)
    v = torch.nn.functional.one_hot(labels, k).permute(0, 3, 1, 2).to(u.dtype)
    length = contour_length(u, eps) * k  # a mean over pixels, summed over the K maps
    mask = valid[:, None].to(u.dtype)
    region_in = (u * (v - 1) ** 2 * mask).sum() / mask.sum().clamp_min(1)  # c₁ = 1
    region_out = ((1 - u) * v**2 * mask).sum() / mask.sum().clamp_min(1)  # c₂ = 0
    return length + weight * (region_in.abs() + region_out.abs())


def class_means(image: Tensor, probs: Tensor, eta: float = 1e-8) -> Tensor:
    """c_k ``[N, K, C]``: each class's mean colour, weighted by its soft map ``probs``."""
    weights = probs.flatten(2)  # [N, K, P]
    return weights @ image.flatten(2).transpose(1, 2) / (weights.sum(-1, keepdim=True) + eta)


def mumford_shah_loss(logits: Tensor, image: Tensor, weight: float = 1e-3) -> Tensor:
    """Kim & Ye's Mumford–Shah loss (no labels): the piecewise-constant fit of ``image`` by
    the soft classes of ``logits`` plus λ times their total variation (means over pixels).

    Args:
        logits: ``[N, K, H, W]``, K >= 2 segments. image: ``[N, C, H, W]``, same H, W.
        weight: λ of the total-variation (length) term.
    """
    _check_logits("mumford_shah_loss", logits)
    if image.dim() != 4 or image.shape[0] != logits.shape[0] or image.shape[2:] != logits.shape[2:]:
        raise ValueError(f"mumford_shah_loss: image must be [N, C, H, W] with N, H, W of the "
                         f"logits {tuple(logits.shape)}, got {tuple(image.shape)}")
    probs = logits.softmax(1)
    means = class_means(image, probs)  # [N, K, C]
    misfit = ((image[:, None] - means[..., None, None]) ** 2).sum(2)  # [N, K, H, W]
    fit = (misfit * probs).sum(1).mean()
    dy = (probs[..., 1:, :] - probs[..., :-1, :]).abs().sum((1, 2, 3))
    dx = (probs[..., :, 1:] - probs[..., :, :-1]).abs().sum((1, 2, 3))
    pixels = logits.shape[-1] * logits.shape[-2]
    return fit + weight * ((dy + dx) / pixels).mean()


__all__ = ["CHEN_EPS", "CHEN_LAMBDA", "active_contour_loss", "class_means", "contour_length",
           "forward_differences", "mumford_shah_loss"]
