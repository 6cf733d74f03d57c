"""The alternating training loops of Luc et al., Hung et al. and SegAN.

Every step has two halves, as in notebook 04's GAN loop, and each half moves one network:

1. the **segmentor step**: the adversary's weights are frozen (``requires_grad`` off, so
   its gradients stay untouched) and the segmentor minimises its loss — cross-entropy plus
   the adversarial term (and, for Hung et al., the self-taught loss);
2. the **adversary step**: the segmentor's maps are detached (its gradients stay
   untouched) and the discriminator (critic) learns to tell them from the ground truth.

Without an adversary the same loop trains the segmentor by cross-entropy alone, with the
same batches, optimiser and schedule: the fair baseline. Data are tensors in memory; each
step draws a random batch from a generator seeded by ``seed``. A smoke run
(``COURSE_SMOKE=1``) makes :data:`~course_lib.config.SMOKE_STEPS` steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ... import config
from ...config import IGNORE_INDEX
from ...losses import cross_entropy, split_output
from ...pretrain import fine_tune_groups
from ...runtime import on_device
from ..basics.gan import generator_loss
from .losses import (
    HUNG_LAMBDA_ADV,
    HUNG_LAMBDA_SEMI,
    HUNG_LAMBDA_SEMI_ADV,
    HUNG_THRESHOLD,
    SEGAN_CLIP,
    hung_adversarial_loss,
    hung_discriminator_loss,
    luc_discriminator_loss,
    luc_segmentor_loss,
    masked_images,
    multiscale_l1_loss,
    scaled_ground_truth,
    semi_supervised_loss,
)
from .networks import FCDiscriminator, LabelMapDiscriminator, SegANCritic, one_hot_map

LUC_LAMBDA = 0.1  # weight of the adversarial term in the hybrid loss (chosen on validation)
ADVERSARY_LR = 1e-4  # Adam, betas (0.9, 0.99): Hung et al.'s discriminator optimiser
ADVERSARY_BETAS = (0.9, 0.99)


@dataclass
class AdversarialHistory:
    """Per-step record of an adversarial run (empty lists for terms a run does not have)."""

    ce: list[float] = field(default_factory=list)  # supervised cross-entropy
    adversarial: list[float] = field(default_factory=list)  # the segmentor's adversarial term
    semi: list[float] = field(default_factory=list)  # Hung's self-taught loss
    trusted: list[float] = field(default_factory=list)  # share of unlabelled pixels trusted
    adversary_loss: list[float] = field(default_factory=list)
    real_score: list[float] = field(default_factory=list)  # mean D(ground truth)
    fake_score: list[float] = field(default_factory=list)  # mean D(prediction)

    def record_discriminator(self, loss: torch.Tensor, real_logits: torch.Tensor,
                             fake_logits: torch.Tensor) -> None:
        """One discriminator step: its loss and its mean belief in the real and fake maps."""
        self.adversary_loss.append(float(loss.detach()))
        self.real_score.append(float(torch.sigmoid(real_logits.detach()).mean()))
        self.fake_score.append(float(torch.sigmoid(fake_logits.detach()).mean()))


@contextlib.contextmanager
def frozen(module: nn.Module | None) -> Iterator[None]:
    """Turn ``requires_grad`` off for ``module``'s parameters inside the block (restored after):
    a loss back-propagates *through* the module without touching its gradients."""
    if module is None:
        yield
        return
    before = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in before:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in before:
            p.requires_grad_(flag)


def _check_data(images: torch.Tensor, masks: torch.Tensor, name: str) -> None:
    if images.dim() != 4 or masks.dim() != 3 or len(images) != len(masks) \
            or images.shape[2:] != masks.shape[1:]:
        raise ValueError(f"{name}: images [N, C, H, W] and masks [N, H, W] must match, got "
                         f"{tuple(images.shape)} and {tuple(masks.shape)}")
    if len(images) == 0:
        raise ValueError(f"{name}: no training images")


class _Run:
    """What every loop sets up: device, optimisers with a poly schedule, scaler, batches.

    Used as ``with _Run(...) as run:``: the segmentor and the adversary are on ``run.device``
    inside the block and go back to the devices they were on afterwards
    (:func:`course_lib.runtime.on_device`).
    """

    def __init__(self, segmentor: nn.Module, adversary: nn.Module | None, steps: int,
                 lr: float, adversary_lr: float, seed: int,
                 device: torch.device | str | None, encoder_lr_scale: float = 1.0) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.device = config.get_device() if device is None else torch.device(device)
        self.steps = config.cap_steps(steps)
        self.models = [model for model in (segmentor, adversary) if model is not None]
        self.placement = contextlib.ExitStack()
        segmentor.train()
        groups = (fine_tune_groups(segmentor, lr, encoder_lr_scale) if encoder_lr_scale != 1
                  else segmentor.parameters())
        self.opt_s = torch.optim.AdamW(groups, lr=lr, weight_decay=1e-4)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.opt_s, lambda step: (1 - step / self.steps) ** 0.9)
        self.opt_a = None
        if adversary is not None:
            adversary.train()
            self.opt_a = torch.optim.Adam(adversary.parameters(), lr=adversary_lr,
                                          betas=ADVERSARY_BETAS)
        self.scaler = config.grad_scaler(self.device)
        self.rng = torch.Generator().manual_seed(seed)

    def __enter__(self) -> _Run:
        self.placement.enter_context(on_device(self.device, *self.models))
        return self

    def __exit__(self, *exc: object) -> None:
        self.placement.close()

    def batch(self, *tensors: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
        idx = torch.randint(0, len(tensors[0]), (min(batch_size, len(tensors[0])),),
                            generator=self.rng)
        return [t[idx].to(self.device) for t in tensors]

    def step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(f"the loss became {float(loss)}: lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)

    def end_step(self) -> None:
        self.scaler.update()
        self.schedule.step()

    def progress(self, desc: str, enabled: bool):
        from tqdm.auto import tqdm

        return tqdm(range(self.steps), desc=desc, disable=not enabled, leave=False)


def train_luc(segmentor: nn.Module, images: torch.Tensor, masks: torch.Tensor,
              discriminator: LabelMapDiscriminator | None = None, *, steps: int,
              batch_size: int = 16, lr: float = 3e-3, adversarial_weight: float = LUC_LAMBDA,
              tau: float | None = None, adversary_lr: float = ADVERSARY_LR,
              encoder_lr_scale: float = 1.0, seed: int = 0,
              device: torch.device | str | None = None, progress: bool = True
              ) -> AdversarialHistory:
    """Luc et al.'s training: the hybrid loss for the segmentor, the label-map discriminator
    against it (Algorithm: one discriminator step per segmentor step).

    ``tau`` chooses how the ground truth is shown to the discriminator: ``None`` one-hot (the
    paper's "basic" encoding), a number the "scaling" encoding
    (:func:`~course_lib.models.adversarial.losses.scaled_ground_truth`). Without a
    ``discriminator`` the segmentor trains by cross-entropy alone on the same batches.
    """
    _check_data(images, masks, "train_luc")
    with _Run(segmentor, discriminator, steps, lr, adversary_lr, seed, device,
              encoder_lr_scale) as run:
        history = AdversarialHistory()
        num_classes = None
        for _ in run.progress("Luc et al." if discriminator else "cross-entropy", progress):
            x, y = run.batch(images, masks, batch_size=batch_size)
            # 1. Segmentor step: the discriminator is frozen, the hybrid loss flows through it.
            with frozen(discriminator), config.autocast(run.device):
                out = segmentor(x)
                logits = split_output(out)[0].float()
                num_classes = logits.shape[1]
                ce = cross_entropy(out, y)
                probs = logits.softmax(1)
                if discriminator is not None:
                    fake_logits = discriminator(x, probs)
                    loss = luc_segmentor_loss(out, y, fake_logits, adversarial_weight)
                    history.adversarial.append(float(generator_loss(fake_logits.detach())))
                else:
                    loss = ce
            run.step(run.opt_s, loss)
            history.ce.append(float(ce.detach()))
            # 2. Discriminator step: the segmentor's map is detached, only D learns.
            if discriminator is not None:
                fake = probs.detach()
                real = (one_hot_map(y, num_classes) if tau is None
                        else scaled_ground_truth(fake, y, tau))
                with config.autocast(run.device):
                    real_logits, fake_logits = discriminator(x, real), discriminator(x, fake)
                    d_loss = luc_discriminator_loss(real_logits, fake_logits)
                run.step(run.opt_a, d_loss)
                history.record_discriminator(d_loss, real_logits, fake_logits)
            run.end_step()
        return history


def train_hung(segmentor: nn.Module, images: torch.Tensor, masks: torch.Tensor,
               unlabelled: torch.Tensor | None = None,
               discriminator: FCDiscriminator | None = None, *, steps: int,
               batch_size: int = 16, lr: float = 3e-3, adversarial_weight: float = HUNG_LAMBDA_ADV,
               unlabelled_adversarial_weight: float = HUNG_LAMBDA_SEMI_ADV,
               semi_weight: float = HUNG_LAMBDA_SEMI, threshold: float = HUNG_THRESHOLD,
               semi_start: int = 0, adversary_lr: float = ADVERSARY_LR,
               encoder_lr_scale: float = 1.0, seed: int = 0,
               device: torch.device | str | None = None, progress: bool = True
               ) -> AdversarialHistory:
    """Hung et al.'s semi-supervised training (Sec. 3, Eq. 2-5).

    The segmentor minimises, on a labelled batch ``(images, masks)`` and an unlabelled
    batch ``unlabelled``:

    ``L = CE + λ_adv L_adv(labelled) + λ_semi_adv L_adv(unlabelled) + λ_semi L_semi``,

    where ``L_adv = -log D(S(X))`` per pixel and ``L_semi`` is the cross-entropy against the
    segmentor's own arg-max on the unlabelled pixels whose confidence ``sigmoid(D)`` exceeds
    ``threshold`` (from step ``semi_start`` on: the paper starts it after 5,000 of 20,000
    iterations, once the discriminator means something). The discriminator learns one-hot
    ground truth (1) against the predictions of both batches (0), per pixel.

    Without ``unlabelled`` only the labelled terms remain; without ``discriminator`` the
    segmentor trains by cross-entropy alone on the same labelled batches.
    """
    _check_data(images, masks, "train_hung")
    if unlabelled is not None and discriminator is None:
        raise ValueError("train_hung: unlabelled images need a discriminator (its confidence "
                         "map chooses the pixels to learn from)")
    with _Run(segmentor, discriminator, steps, lr, adversary_lr, seed, device,
              encoder_lr_scale) as run:
        history = AdversarialHistory()
        for step in run.progress("Hung et al." if discriminator else "cross-entropy", progress):
            x, y = run.batch(images, masks, batch_size=batch_size)
            valid = y != IGNORE_INDEX
            # 1. Segmentor step (discriminator frozen): CE + adversarial (+ unlabelled terms).
            with frozen(discriminator), config.autocast(run.device):
                out = segmentor(x)
                logits = split_output(out)[0].float()
                ce = cross_entropy(out, y)
                loss = ce
                probs = logits.softmax(1)
                if discriminator is not None:
                    adversarial = hung_adversarial_loss(discriminator(probs), valid)
                    loss = loss + adversarial_weight * adversarial
                if unlabelled is not None:
                    (xu,) = run.batch(unlabelled, batch_size=batch_size)
                    logits_u = split_output(segmentor(xu))[0].float()
                    probs_u = logits_u.softmax(1)
                    everywhere = torch.ones(len(xu), *xu.shape[-2:], dtype=torch.bool,
                                            device=run.device)
                    loss = loss + unlabelled_adversarial_weight * hung_adversarial_loss(
                        discriminator(probs_u), everywhere)
                    confidence = discriminator.confidence(probs_u.detach())
                    history.trusted.append(float((confidence > threshold).float().mean()))
                    if step >= semi_start:
                        semi = semi_supervised_loss(logits_u, confidence, threshold)
                        loss = loss + semi_weight * semi
                        history.semi.append(float(semi.detach()))
            run.step(run.opt_s, loss)
            history.ce.append(float(ce.detach()))
            # 2. Discriminator step (predictions detached): ground truth 1, predictions 0.
            if discriminator is not None:
                history.adversarial.append(float(adversarial.detach()))
                fake, fake_valid = probs.detach(), valid
                if unlabelled is not None:
                    fake = torch.cat([fake, probs_u.detach()])
                    fake_valid = torch.cat([valid, everywhere])
                with config.autocast(run.device):
                    real_logits = discriminator(one_hot_map(y, logits.shape[1]))
                    fake_logits = discriminator(fake)
                    d_loss = hung_discriminator_loss(real_logits, fake_logits, valid, fake_valid)
                run.step(run.opt_a, d_loss)
                history.record_discriminator(d_loss, real_logits, fake_logits)
            run.end_step()
        return history


def train_segan(segmentor: nn.Module, critic: SegANCritic, images: torch.Tensor,
                masks: torch.Tensor, *, steps: int, batch_size: int = 16, lr: float = 3e-3,
                supervised_weight: float = 0.0, clip: float | None = SEGAN_CLIP,
                adversary_lr: float = ADVERSARY_LR, encoder_lr_scale: float = 1.0,
                seed: int = 0,
                device: torch.device | str | None = None, progress: bool = True
                ) -> AdversarialHistory:
    """SegAN's min-max game (Xue et al., Eq. 3): the critic *maximises* the multi-scale L1
    distance between its features of ``x ∘ S(x)`` and of ``x ∘ y``, the segmentor
    *minimises* it (plus ``supervised_weight`` x cross-entropy; the paper: 0, the authors'
    code adds a Dice loss). After each critic step its weights are clipped to
    ``[-clip, clip]`` (the authors' code, as in WGAN), so that the distance stays bounded.
    """
    _check_data(images, masks, "train_segan")
    with _Run(segmentor, critic, steps, lr, adversary_lr, seed, device, encoder_lr_scale) as run:
        history = AdversarialHistory()
        for _ in run.progress("SegAN", progress):
            x, y = run.batch(images, masks, batch_size=batch_size)
            # 1. Segmentor step (critic frozen): close the gap at every scale.
            with frozen(critic), config.autocast(run.device):
                out = segmentor(x)
                logits = split_output(out)[0].float()
                truth = masked_images(x, one_hot_map(y, logits.shape[1]))
                fake = masked_images(x, logits.softmax(1))
                gap = multiscale_l1_loss(critic(fake), critic(truth))
                ce = cross_entropy(out, y)
                loss = gap + supervised_weight * ce if supervised_weight else gap
            run.step(run.opt_s, loss)
            history.ce.append(float(ce.detach()))
            history.adversarial.append(float(gap.detach()))
            # 2. Critic step (segmentation detached): open the gap, then clip the weights.
            with config.autocast(run.device):
                critic_loss = -multiscale_l1_loss(critic(fake.detach()), critic(truth))
            run.step(run.opt_a, critic_loss)
            if clip is not None:
                with torch.no_grad():
                    for p in critic.parameters():
                        p.clamp_(-clip, clip)
            history.adversary_loss.append(float(critic_loss.detach()))
            run.end_step()
        return history


__all__ = ["ADVERSARY_LR", "AdversarialHistory", "LUC_LAMBDA", "frozen", "train_hung",
           "train_luc", "train_segan"]
