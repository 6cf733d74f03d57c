"""Generative models and adversarial training for segmentation (the survey's section 3.9,
生成模型和对抗训练): Luc et al. 2016, Hung et al. 2018, SegAN (Xue et al. 2018).

A segmentation network is trained against a second network that sees label maps:

* **Luc et al.**, "Semantic Segmentation using Adversarial Networks" (NIPS Workshop 2016):
  an image-conditioned discriminator tells ground-truth label maps from predicted ones, and
  the segmentor minimises cross-entropy plus λ times "fool the discriminator" (the hybrid
  loss) — a loss that can see *higher-order* statistics (shapes, parts, stray blobs) that a
  per-pixel loss cannot (:class:`~.networks.LabelMapDiscriminator`, :func:`~.training.
  train_luc`; measured with :func:`~.consistency.spurious_components`).
* **Hung et al.**, "Adversarial Learning for Semi-Supervised Semantic Segmentation" (BMVC
  2018): a *fully convolutional* discriminator answers per pixel; its confidence map picks
  the pixels of unlabelled images on which the segmentor trusts its own prediction — three
  terms: cross-entropy on labelled images, the adversarial term, and the self-taught loss
  (:class:`~.networks.FCDiscriminator`, :func:`~.training.train_hung`).
* **SegAN**, Xue et al. (Neuroinformatics 2018): a critic reads the image masked by the
  segmentation and the multi-scale L1 loss compares its features at every layer — pixels,
  edges and whole shapes at once (:class:`~.networks.SegANSegmentor`, registered as
  ``"segan"``; :class:`~.networks.SegANCritic`, :func:`~.losses.multiscale_l1_loss`,
  :func:`~.training.train_segan`).

The minimax losses are notebook 04's (:mod:`course_lib.models.basics`), reused. Modules:
:mod:`.networks` (the adversaries and SegAN's segmentor), :mod:`.losses`, :mod:`.training`
(the alternating loops), :mod:`.consistency` (counting invented blobs).
"""

from __future__ import annotations

from . import consistency, losses, networks, training
from .consistency import spurious_components
from .losses import (
    HUNG_LAMBDA_ADV,
    HUNG_LAMBDA_SEMI,
    HUNG_LAMBDA_SEMI_ADV,
    HUNG_THRESHOLD,
    LUC_TAU,
    confidence_mask,
    hung_adversarial_loss,
    hung_discriminator_loss,
    luc_discriminator_loss,
    luc_segmentor_loss,
    masked_images,
    multiscale_l1_loss,
    scaled_ground_truth,
    self_taught_targets,
    semi_supervised_loss,
)
from .networks import (
    FCDiscriminator,
    LabelMapDiscriminator,
    SegANCritic,
    SegANSegmentor,
    one_hot_map,
)
from .training import AdversarialHistory, frozen, train_hung, train_luc, train_segan

__all__ = [
    "AdversarialHistory", "FCDiscriminator", "HUNG_LAMBDA_ADV", "HUNG_LAMBDA_SEMI",
    "HUNG_LAMBDA_SEMI_ADV", "HUNG_THRESHOLD", "LUC_TAU", "LabelMapDiscriminator",
    "SegANCritic", "SegANSegmentor", "confidence_mask", "consistency", "frozen",
    "hung_adversarial_loss", "hung_discriminator_loss", "losses", "luc_discriminator_loss",
    "luc_segmentor_loss", "masked_images", "multiscale_l1_loss", "networks", "one_hot_map",
    "scaled_ground_truth", "self_taught_targets", "semi_supervised_loss",
    "spurious_components", "train_hung", "train_luc", "train_segan", "training",
]
