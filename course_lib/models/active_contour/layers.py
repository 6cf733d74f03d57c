"""A level-set layer unrolled as a recurrent network, on top of an FCN (Le et al. 2018).

**Le, Quach, Luu, Duong & Savvides**, "Reformulating Level Sets as Deep Recurrent Neural
Network Approach to Semantic Segmentation" (IEEE TIP 2018): one gradient step of the
Chan–Vese flow is a recurrent cell whose hidden state is the level set φ; unrolled T times
with shared weights it is an RNN that can be trained by back-propagation through time, and
initialised with an FCN's scores it *refines* them toward the image's regions. Hatamizadeh
et al.'s TDAC (2020) makes the same point end to end: the FCN and the level-set layer are
trained together through automatic differentiation.

:class:`LevelSetLayer` is the recurrent cell (Fig. 3 of Le et al.: the curvature and the
region terms computed from φ_t and the image, φ_{t+1} = φ_t + Δt·δ(φ_t)·force);
:class:`LevelSetFCN` (registered as ``"levelset_fcn"``) puts it on a small FCN.

Deviations: Le et al.'s cell is GRU-like with learned gates, ours the plain Chan–Vese step
with learned weights (μ, λ₁, λ₂ per class, Δt, and a 1x1 convolution choosing the colour
features the regions are fitted in); our FCN is a three-stage FCN-8s-like net of the course's
size, not their VGG-16 FCN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import register_model
from ..blocks import ConvBNReLU, check_channels, check_input, resize_to
from ..contract import SizeTable
from .levelset import EPSILON, curvature, dirac, heaviside

_LE_PAPER = "Le et al., IEEE TIP 2018"


def log_odds(logits: Tensor) -> Tensor:
    """φ_k = logit_k − log Σ_{j≠k} exp(logit_j): class k's one-vs-rest level set, > 0 exactly
    where softmax gives k more than half. For K = 2 it is ±(logit₁ − logit₀)."""
    k = logits.shape[1]
    others = logits[:, None].expand(-1, k, -1, -1, -1)  # [N, K(k), K(j), H, W]
    mask = torch.eye(k, dtype=torch.bool, device=logits.device)[None, :, :, None, None]
    rest = others.masked_fill(mask, float("-inf")).logsumexp(2)
    return logits - rest


def _inverse_softplus(x: float) -> float:
    return math.log(math.expm1(x))


class LevelSetLayer(nn.Module):
    """T unrolled Chan–Vese steps on every class's level set, weights shared over steps.

    ``forward(logits, image)``: φ⁰ = s · :func:`log_odds` (logits), then for t < T::

        c_in, c_out = region means of the features f = conv1x1(image), weighted by H(φ)
        R = −λ1_k |f − c_in|² + λ2_k |f − c_out|²,  divided by max |R| per map
        φ ← φ + Δt · δ(φ) · [ μ_k κ(φ) + R ]

    and the refined φ^T / s are returned as logits ``[N, K, H, W]``. The learned scale s
    brings an FCN's confident scores (|log-odds| of 5 to 10, where δ(φ) is nearly 0) near
    the contour's width ε; the normalised region force is :func:`~.levelset.chan_vese`'s.
    Every weight is positive through a softplus. Differentiable end to end: the tests run
    ``torch.autograd.gradcheck`` on it in double precision.

    Args:
        num_classes: K. image_channels: C of the image. features: channels of f.
        iterations: T, the unrolled steps. eps: width of H and δ.
    """

    def __init__(self, num_classes: int, image_channels: int, features: int = 4,
                 iterations: int = 5, eps: float = EPSILON) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("image_channels", image_channels),
                            ("features", features), ("iterations", iterations)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LevelSetLayer: {name} must be a positive int, got {value!r}")
        self.iterations, self.eps = iterations, eps
        self.features = nn.Conv2d(image_channels, features, kernel_size=1)
        self.raw_mu = nn.Parameter(torch.full((num_classes,), _inverse_softplus(0.2)))
        self.raw_lambda_in = nn.Parameter(torch.full((num_classes,), _inverse_softplus(1.0)))
        self.raw_lambda_out = nn.Parameter(torch.full((num_classes,), _inverse_softplus(1.0)))
        self.raw_dt = nn.Parameter(torch.tensor(_inverse_softplus(1.0)))
        self.raw_scale = nn.Parameter(torch.tensor(_inverse_softplus(0.5)))

    def step(self, phi: Tensor, feats: Tensor) -> Tensor:
        """One recurrent step: φ_t [N, K, H, W] and features [N, F, H, W] → φ_{t+1}."""
        h = heaviside(phi, self.eps)[:, :, None]  # [N, K, 1, H, W]
        f = feats[:, None]  # [N, 1, F, H, W]
        area_in = h.sum((-2, -1), keepdim=True)
        area_out = (1 - h).sum((-2, -1), keepdim=True)
        c_in = (f * h).sum((-2, -1), keepdim=True) / (area_in + 1e-6)
        c_out = (f * (1 - h)).sum((-2, -1), keepdim=True) / (area_out + 1e-6)
        fit_in = ((f - c_in) ** 2).sum(2)  # [N, K, H, W]
        fit_out = ((f - c_out) ** 2).sum(2)
        mu, l_in, l_out = (F.softplus(p)[None, :, None, None]
                           for p in (self.raw_mu, self.raw_lambda_in, self.raw_lambda_out))
        region = -l_in * fit_in + l_out * fit_out
        region = region / region.abs().amax((-2, -1), keepdim=True).clamp_min(1e-6)
        force = mu * curvature(phi) + region
        return phi + F.softplus(self.raw_dt) * dirac(phi, self.eps) * force

    def forward(self, logits: Tensor, image: Tensor, return_steps: bool = False
                ) -> Tensor | list[Tensor]:
        if logits.dim() != 4 or image.dim() != 4 or logits.shape[2:] != image.shape[2:]:
            raise ValueError(f"LevelSetLayer: logits [N, K, H, W] and image [N, C, H, W] of one "
                             f"size expected, got {tuple(logits.shape)} and {tuple(image.shape)}")
        feats = self.features(image)
        scale = F.softplus(self.raw_scale)
        phi = scale * log_odds(logits)
        steps = [phi / scale]
        for _ in range(self.iterations):
            phi = self.step(phi, feats)
            steps.append(phi / scale)
        return steps if return_steps else steps[-1]


@dataclass(frozen=True)
class LevelSetSizes:
    width: int  # channels of the FCN's first stage (doubles per stride-2 stage)
    iterations: int  # unrolled level-set steps


SIZES = SizeTable(small=LevelSetSizes(width=16, iterations=5))


class SmallFCN(nn.Module):
    """Three stages (strides 1, 2, 4) with class scores from each, added coarse to fine after
    upsampling: FCN-8s's skip architecture (Long et al. 2015, Fig. 3) at the course's size."""

    def __init__(self, in_channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(ConvBNReLU(in_channels, width), ConvBNReLU(width, width))
        self.stage2 = nn.Sequential(ConvBNReLU(width, 2 * width, stride=2),
                                    ConvBNReLU(2 * width, 2 * width))
        self.stage3 = nn.Sequential(ConvBNReLU(2 * width, 4 * width, stride=2),
                                    ConvBNReLU(4 * width, 4 * width, dilation=2))
        self.scores = nn.ModuleList(nn.Conv2d(c, num_classes, 1)
                                    for c in (width, 2 * width, 4 * width))

    def forward(self, x: Tensor) -> Tensor:
        f1 = self.stage1(x)
        f2 = self.stage2(f1)
        f3 = self.stage3(f2)
        # scores of the coarsest stage, upsampled and added to the next finer stage's
        out = resize_to(self.scores[2](f3), f2) + self.scores[1](f2)
        return resize_to(out, f1) + self.scores[0](f1)


@register_model("levelset_fcn", family="active_contour", paper=_LE_PAPER, year=2018,
                test_kwargs={"width": 4, "iterations": 2})
class LevelSetFCN(nn.Module):
    """An FCN whose scores a :class:`LevelSetLayer` refines (Le et al. 2018, Fig. 2: the FCN
    initialises the level sets, the recurrent level-set steps evolve them on the image).

    ``forward(x)`` returns the refined logits ``[N, K, H, W]``; ``coarse(x)`` the FCN's own.
    Train the FCN alone (``model.fcn``), then the layer on its output, or everything at
    once (TDAC's end-to-end training).

    Args:
        in_channels: channels of the image. num_classes: K.
        width: channels of the FCN's first stage (16). iterations: unrolled steps T (5).

    ``full=True`` is refused with a clear error: Le et al. refine a VGG-16 FCN-8s; here the
    course's small FCN stands in for it (notebook 05 builds the paper's FCNs).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int | None = None,
                 full: bool = False, iterations: int | None = None) -> None:
        super().__init__()
        check_channels("LevelSetFCN", in_channels, num_classes)
        sizes = SIZES.resolve("LevelSetFCN", full, width=width, iterations=iterations)
        self.in_channels = in_channels
        self.fcn = SmallFCN(in_channels, num_classes, sizes.width)
        self.levelset = LevelSetLayer(num_classes, in_channels, iterations=sizes.iterations)

    def coarse(self, x: Tensor) -> Tensor:
        """The FCN's logits before the level-set layer."""
        check_input("LevelSetFCN", x, self.in_channels)
        return self.fcn(x)

    def forward(self, x: Tensor) -> Tensor:
        # the FCN's scores initialise the level sets; T recurrent steps evolve them on x
        return self.levelset(self.coarse(x), x)


__all__ = ["LevelSetFCN", "LevelSetLayer", "LevelSetSizes", "SmallFCN", "log_odds"]
