"""The losses of adversarial segmentation: Luc et al.'s hybrid loss, Hung et al.'s three terms
and SegAN's multi-scale L1.

The minimax game of notebook 04 is reused as it is: the discriminator's loss is
:func:`~course_lib.models.basics.discriminator_loss` (``-[log D(real) + log(1 - D(fake))]``)
and the segmentor's adversarial term is the non-saturating
:func:`~course_lib.models.basics.generator_loss` (``-log D(fake)``); what is new here is
*what* is real and fake (label maps, per image or per pixel) and what is added to them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ...config import IGNORE_INDEX
from ...losses import cross_entropy
from ..basics.gan import discriminator_loss, generator_loss

LUC_TAU = 0.9  # Luc et al.'s "scaling" encoding: the true class keeps at least this much mass
HUNG_LAMBDA_ADV = 0.01  # weight of the adversarial term on labelled images (Hung et al.)
HUNG_LAMBDA_SEMI_ADV = 0.001  # ... on unlabelled images (the authors' code)
HUNG_LAMBDA_SEMI = 0.1  # weight of the self-taught loss
HUNG_THRESHOLD = 0.2  # T_semi: pixels whose confidence exceeds it are trusted
SEGAN_CLIP = 0.05  # the critic's weights are clipped to [-c, c] after each step (authors' code)


# --------------------------------------------------------------------------------------------
# Luc et al. 2016
# --------------------------------------------------------------------------------------------
def scaled_ground_truth(probs: torch.Tensor, mask: torch.Tensor, tau: float = LUC_TAU,
                        ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Luc et al.'s "scaling" encoding of the ground truth (Sec. 3.2).

    A one-hot map has only 0s and 1s, a softmax never does: a discriminator can tell them
    apart from the values alone, without looking at any shape. The scaling encoding moves
    the ground truth towards the prediction ``probs`` [N, K, H, W]: at each pixel the true
    class ``l`` gets ``max(tau, s_l)`` and every other class keeps its predicted share of the
    rest, ``s_c (1 - max(tau, s_l)) / (1 - s_l)``. The map still sums to one, and a
    prediction that is already sure of the right class is left as it is. Ignored pixels
    keep the prediction (nothing to tell apart there). The result carries no gradient.
    """
    if probs.dim() != 4 or mask.shape != (probs.shape[0], *probs.shape[2:]):
        raise ValueError(f"probs [N, K, H, W] and mask [N, H, W] must match, got "
                         f"{tuple(probs.shape)} and {tuple(mask.shape)}")
    if not 0 < tau < 1:
        raise ValueError(f"tau must lie in (0, 1), got {tau}")
    probs = probs.detach()
    valid = mask != ignore_index
    label = torch.where(valid, mask, 0).unsqueeze(1)
    s_true = probs.gather(1, label)  # [N, 1, H, W]
    y_true = s_true.clamp(min=tau)
    rest = probs * (1 - y_true) / (1 - s_true).clamp(min=1e-12)
    scaled = rest.scatter(1, label, y_true)
    return torch.where(valid.unsqueeze(1), scaled, probs)


def luc_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The adversarial network's loss (Luc et al., Eq. 2): ground-truth maps are real (1),
    predicted maps fake (0) — notebook 04's :func:`~course_lib.models.basics.
    discriminator_loss` on one logit per image."""
    return discriminator_loss(real_logits, fake_logits)


def luc_segmentor_loss(logits: torch.Tensor, mask: torch.Tensor, fake_logits: torch.Tensor,
                       adversarial_weight: float) -> torch.Tensor:
    """The hybrid loss of the segmentor (Luc et al., Eq. 3): multi-class cross-entropy plus
    ``λ`` times the adversarial term, in its non-saturating form ``-log a(x, s(x))`` (the
    paper's choice too: "maximise the probability that the adversary is wrong")."""
    return cross_entropy(logits, mask) + adversarial_weight * generator_loss(fake_logits)


# --------------------------------------------------------------------------------------------
# Hung et al. 2018
# --------------------------------------------------------------------------------------------
def _per_pixel(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The discriminator's logits [N, 1, h, w] upsampled bilinearly to ``size``: [N, H, W]."""
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"discriminator logits must be [N, 1, h, w], got {tuple(logits.shape)}")
    return F.interpolate(logits, size=tuple(size), mode="bilinear",
                         align_corners=False).squeeze(1)


def hung_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                            real_valid: torch.Tensor | None = None,
                            fake_valid: torch.Tensor | None = None) -> torch.Tensor:
    """The fully convolutional discriminator's loss (Hung et al., Eq. 1), per pixel.

    ``real_logits`` = D(one-hot ground truth), ``fake_logits`` = D(softmax prediction),
    both [N, 1, h, w]; they are upsampled to the size of the valid masks [N, H, W] (the
    pixels that count: not ``ignore_index`` in the ground truth) and scored by notebook
    04's :func:`~course_lib.models.basics.discriminator_loss` on the valid pixels — a mean
    binary cross-entropy over real pixels plus one over fake pixels. Without masks every
    position of the discriminator's own map counts.
    """
    if real_valid is not None:
        real_logits = _per_pixel(real_logits, real_valid.shape[-2:])[real_valid]
    if fake_valid is not None:
        fake_logits = _per_pixel(fake_logits, fake_valid.shape[-2:])[fake_valid]
    return discriminator_loss(real_logits.flatten(), fake_logits.flatten())


def hung_adversarial_loss(fake_logits: torch.Tensor, valid: torch.Tensor | None = None
                          ) -> torch.Tensor:
    """L_adv (Hung et al., Eq. 3): ``-log D(S(X))`` averaged over the (valid) pixels — the
    segmentor is pushed to make the discriminator take its map for ground truth."""
    if valid is not None:
        fake_logits = _per_pixel(fake_logits, valid.shape[-2:])[valid]
    return generator_loss(fake_logits.flatten())


def confidence_mask(confidence: torch.Tensor, threshold: float = HUNG_THRESHOLD) -> torch.Tensor:
    """The pixels the discriminator trusts: ``confidence > threshold`` (bool, same shape).

    ``confidence`` is the sigmoid of the discriminator at each pixel, in [0, 1]
    (:meth:`~course_lib.models.adversarial.networks.FCDiscriminator.confidence`).
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if confidence.numel() and (confidence.min() < 0 or confidence.max() > 1):
        raise ValueError("confidence must be probabilities in [0, 1] (apply the sigmoid), got "
                         f"values in [{float(confidence.min()):.3g}, "
                         f"{float(confidence.max()):.3g}]")
    return confidence > threshold


def self_taught_targets(logits: torch.Tensor, confidence: torch.Tensor,
                        threshold: float = HUNG_THRESHOLD,
                        ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Hung et al.'s self-taught ground truth Ŷ (Eq. 4): the segmentor's own arg-max where the
    confidence exceeds ``threshold``, ``ignore_index`` elsewhere. int64 [N, H, W]."""
    if logits.dim() != 4 or confidence.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"logits [N, K, H, W] and confidence [N, H, W] must match, got "
                         f"{tuple(logits.shape)} and {tuple(confidence.shape)}")
    trusted = confidence_mask(confidence, threshold)
    return torch.where(trusted, logits.detach().argmax(1), ignore_index)


def semi_supervised_loss(logits: torch.Tensor, confidence: torch.Tensor,
                         threshold: float = HUNG_THRESHOLD) -> torch.Tensor:
    """L_semi (Hung et al., Eq. 4): cross-entropy of the prediction against its own arg-max,
    on the trusted pixels only (mean over them; 0 when none is trusted)."""
    return cross_entropy(logits, self_taught_targets(logits, confidence, threshold))


# --------------------------------------------------------------------------------------------
# SegAN (Xue et al. 2018)
# --------------------------------------------------------------------------------------------
def masked_images(images: torch.Tensor, label_maps: torch.Tensor) -> torch.Tensor:
    """SegAN's critic input ``x ∘ s``: every image channel times every class map.

    ``images`` [N, C, H, W], ``label_maps`` [N, K, H, W] (probabilities or one-hot) →
    [N, K * C, H, W], class-major (the C channels of class 0 first).
    """
    if images.dim() != 4 or label_maps.dim() != 4 or images.shape[0] != label_maps.shape[0] \
            or images.shape[2:] != label_maps.shape[2:]:
        raise ValueError(f"images [N, C, H, W] and label maps [N, K, H, W] must match in N, H, "
                         f"W; got {tuple(images.shape)} and {tuple(label_maps.shape)}")
    return (label_maps.unsqueeze(2) * images.unsqueeze(1)).flatten(1, 2)


def multiscale_l1_loss(features_a: Sequence[torch.Tensor], features_b: Sequence[torch.Tensor]
                       ) -> torch.Tensor:
    """SegAN's multi-scale L1 loss (Xue et al., Eq. 2):
    ``1/L Σ_i mean |f_i(x ∘ S(x)) - f_i(x ∘ y)|`` over the critic's ``L`` scales.

    Each scale's absolute difference is averaged over its own elements, so that a fine map
    with many values and a coarse one with few weigh the same; the masked input itself is
    the first scale (:class:`~course_lib.models.adversarial.networks.SegANCritic`).
    """
    if len(features_a) != len(features_b) or not features_a:
        raise ValueError(f"need the same, non-zero number of scales, got {len(features_a)} "
                         f"and {len(features_b)}")
    for i, (a, b) in enumerate(zip(features_a, features_b, strict=True)):
        if a.shape != b.shape:
            raise ValueError(f"scale {i}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    return torch.stack([(a - b).abs().mean()
                        for a, b in zip(features_a, features_b, strict=True)]).mean()


__all__ = [
    "HUNG_LAMBDA_ADV", "HUNG_LAMBDA_SEMI", "HUNG_LAMBDA_SEMI_ADV", "HUNG_THRESHOLD", "LUC_TAU",
    "SEGAN_CLIP", "confidence_mask", "hung_adversarial_loss", "hung_discriminator_loss",
    "luc_discriminator_loss", "luc_segmentor_loss", "masked_images", "multiscale_l1_loss",
    "scaled_ground_truth", "self_taught_targets", "semi_supervised_loss",
]
