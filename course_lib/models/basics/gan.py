"""Survey section 2.4, generative adversarial networks (Fig. 6): DCGAN's generator and
discriminator, their class-conditional versions (Mirza & Osindero 2014), the minimax and
Wasserstein losses with WGAN-GP's gradient penalty, and the alternating training loop of
notebook 04."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ... import config
from ...runtime import on_device
from .common import epochs_of, progress_bar, require_positive


def _check_gan_size(owner: str, image_size: int) -> int:
    """Number of stride-2 steps between 4x4 and ``image_size`` (a power of two >= 8)."""
    steps = int(round(math.log2(image_size / 4))) if image_size >= 4 else -1
    if image_size < 8 or 4 * 2**steps != image_size:
        raise ValueError(f"{owner}: image_size must be a power of two >= 8, got {image_size}")
    return steps


def _gan_norm(norm: str | None, channels: int) -> nn.Module:
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "ln":  # layer norm over (C, H, W), as WGAN-GP recommends for the critic
        return nn.GroupNorm(1, channels)
    if norm is None:
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; valid: 'bn', 'ln', None")


class DCGANGenerator(nn.Module):
    """The DCGAN generator (Radford et al., ICLR 2016, Fig. 1): noise ``z`` → image.

    The figure shows ``z`` projected to a small 4x4 stack of feature maps, then fractionally
    strided (transposed) convolutions that double the size and halve the channels, BatchNorm
    and ReLU everywhere except the output, which is ``tanh`` (images in [-1, 1]). No pooling
    and no fully connected hidden layers. The paper's 64x64 generator has 4 upsampling steps
    from 1024 channels; here ``image_size`` and ``width`` set both, small by default.

    With ``num_classes > 0`` it is the conditional generator of Mirza & Osindero (2014,
    Fig. 1): the one-hot class ``y`` is concatenated to ``z``, so ``G(z, y)`` draws class y.
    """

    def __init__(
        self, latent_dim: int = 32, out_channels: int = 3, width: int = 32,
        image_size: int = 32, num_classes: int = 0,
    ) -> None:
        super().__init__()
        require_positive(type(self).__name__, latent_dim=latent_dim,
                          out_channels=out_channels, width=width)
        steps = _check_gan_size(type(self).__name__, image_size)
        self.latent_dim, self.num_classes, self.image_size = latent_dim, num_classes, image_size
        chans = [width * 2**i for i in reversed(range(steps))]  # e.g. 4w, 2w, w
        in_dim = latent_dim + num_classes
        # Project and reshape: z (as a 1x1 map) → 4x4 maps by a 4x4 transposed convolution.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, chans[0], kernel_size=4, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(chans[0]), nn.ReLU(inplace=True),
        ]
        # Fractionally strided convolutions: double the size, halve the channels.
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        # Output layer: to image channels, tanh, no BatchNorm.
        layers += [nn.ConvTranspose2d(chans[-1], out_channels, 4, stride=2, padding=1),
                   nn.Tanh()]
        self.net = nn.Sequential(*layers)
        for m in self.modules():  # the paper's initialisation: N(0, 0.02)
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device=None) -> torch.Tensor:
        """``n`` latent vectors from the prior N(0, I): [n, latent_dim]."""
        return torch.randn(n, self.latent_dim, generator=generator).to(device)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"{type(self).__name__} expects z [N, {self.latent_dim}], "
                             f"got {tuple(z.shape)}")
        if self.num_classes:
            if labels is None:
                raise ValueError(f"{type(self).__name__} is conditional: pass labels [N]")
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """The DCGAN discriminator (Radford et al., ICLR 2016): image → one real/fake logit.

    Mirror of the generator: strided 4x4 convolutions halve the size (no pooling), LeakyReLU
    with slope 0.2, BatchNorm on every layer but the first, and a final 4x4 convolution on
    the 4x4 maps gives one logit (the paper's sigmoid is inside the loss). With
    ``norm="ln"`` or ``None`` it is a WGAN-GP critic (Gulrajani et al. 2017 drop BatchNorm
    because the gradient penalty is per sample).

    With ``num_classes > 0`` it is conditional (Mirza & Osindero 2014): the one-hot class is
    broadcast to ``num_classes`` constant planes and concatenated to the image channels.
    """

    def __init__(
        self, in_channels: int = 3, width: int = 32, image_size: int = 32,
        num_classes: int = 0, norm: str | None = "bn",
    ) -> None:
        super().__init__()
        require_positive(type(self).__name__, in_channels=in_channels, width=width)
        steps = _check_gan_size(type(self).__name__, image_size)
        self.num_classes, self.image_size, self.in_channels = num_classes, image_size, in_channels
        chans = [width * 2**i for i in range(steps)]  # w, 2w, 4w
        # First layer: strided conv + LeakyReLU, no normalisation.
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels + num_classes, chans[0], 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        # Strided convolutions: halve the size, double the channels, norm, LeakyReLU.
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=norm is None),
                       _gan_norm(norm, c_out), nn.LeakyReLU(0.2, inplace=True)]
        # 4x4 maps → one logit.
        layers.append(nn.Conv2d(chans[-1], 1, kernel_size=4, stride=1, padding=0))
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"{type(self).__name__} expects input [N, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}], got {tuple(x.shape)}")
        if self.num_classes:
            if labels is None:
                raise ValueError(f"{type(self).__name__} is conditional: pass labels [N]")
            planes = F.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)
        return self.net(x).flatten()


class ConditionalGenerator(DCGANGenerator):
    """Class-conditional DCGAN generator (Mirza & Osindero 2014): ``G(z, y)``."""

    def __init__(self, num_classes: int = 6, latent_dim: int = 32, out_channels: int = 3,
                 width: int = 32, image_size: int = 32) -> None:
        require_positive("ConditionalGenerator", num_classes=num_classes)
        super().__init__(latent_dim, out_channels, width, image_size, num_classes)


class ConditionalDiscriminator(DCGANDiscriminator):
    """Class-conditional DCGAN discriminator (Mirza & Osindero 2014): ``D(x, y)``."""

    def __init__(self, num_classes: int = 6, in_channels: int = 3, width: int = 32,
                 image_size: int = 32, norm: str | None = "bn") -> None:
        require_positive("ConditionalDiscriminator", num_classes=num_classes)
        super().__init__(in_channels, width, image_size, num_classes, norm)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's side of the minimax game (Goodfellow et al. 2014, Eq. 1):
    ``-[log D(x) + log(1 - D(G(z)))]``, averaged, with ``D = sigmoid(logit)``."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``-log D(G(z))`` (Goodfellow et al. 2014, section 3:
    it has the same fixed point as ``log(1 - D(G(z)))`` but strong gradients early on)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss (Arjovsky et al. 2017): ``E[D(G(z))] - E[D(x)]``."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss: ``-E[D(G(z))]``."""
    return -fake_scores.mean()


def gradient_penalty(
    critic: Callable[..., torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017, Algorithm 1): ``E[(‖∇D(x̂)‖₂ - 1)²]`` at
    ``x̂ = ε x + (1 - ε) x̃`` on random points between real ``x`` and fake ``x̃`` samples.

    ``eps`` [N] (default uniform in [0, 1]) can be given to make the result reproducible.
    The gradient is taken with ``create_graph=True`` so the penalty itself can be trained.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake "
                         f"{tuple(fake.shape)} must have the same shape")
    n = real.shape[0]
    if eps is None:
        eps = torch.rand(n, device=real.device, dtype=real.dtype)
    eps = eps.reshape(n, *([1] * (real.dim() - 1)))
    x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat) if labels is None else critic(x_hat, labels)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@dataclass
class GANHistory:
    """What :func:`train_gan` records: per-step losses, per-epoch samples of a fixed noise."""

    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    d_real: list[float] = field(default_factory=list)  # mean D(x) (probability; score for WGAN)
    d_fake: list[float] = field(default_factory=list)  # mean D(G(z))
    samples: list[torch.Tensor] = field(default_factory=list)  # [n, C, H, W] in [-1, 1]
    steps_per_epoch: int = 0
    # Per epoch: the mean D loss, the mean gap D(x) - D(G(z)) (for a WGAN critic this is its
    # Wasserstein estimate) and ``quality_fn`` of the generator's samples (if given).
    epoch_d_loss: list[float] = field(default_factory=list)
    epoch_gap: list[float] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)


def train_gan(
    generator: DCGANGenerator,
    discriminator: DCGANDiscriminator,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    loss: str = "gan",
    n_critic: int = 1,
    gp_weight: float = 10.0,
    num_samples: int = 16,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    quality_fn: Callable[[torch.Tensor], float] | None = None,
    quality_samples: int = 512,
) -> GANHistory:
    """Alternate discriminator and generator updates (Goodfellow et al. 2014, Algorithm 1).

    ``images`` [N, C, H, W] in [-1, 1]; ``labels`` [N] for conditional models. ``loss`` is
    ``"gan"`` (minimax with the non-saturating generator loss, Adam 2e-4, β₁ = 0.5 as in
    DCGAN) or ``"wgan-gp"`` (critic loss + ``gp_weight`` x gradient penalty, ``n_critic``
    critic steps per generator step; the paper used 5 and Adam β = (0, 0.9)).
    After each epoch the generator's output on a fixed noise (and fixed labels) is stored,
    and ``quality_fn`` (e.g. a Fréchet distance to the real images) of ``quality_samples``
    images drawn from another fixed noise is recorded in ``history.quality``.
    A smoke run (``COURSE_SMOKE=1``) trains one epoch of a couple of steps.
    """
    if loss not in ("gan", "wgan-gp"):
        raise ValueError(f"train_gan: unknown loss {loss!r}; valid: 'gan', 'wgan-gp'")
    conditional = generator.num_classes > 0
    if conditional and labels is None:
        raise ValueError("train_gan: conditional models need labels")
    device = config.get_device() if device is None else torch.device(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    rng = torch.Generator().manual_seed(seed)
    fixed_z = generator.sample_latent(num_samples, generator=rng, device=device)
    fixed_y = None
    if conditional:  # the fixed samples cycle through the classes
        fixed_y = (torch.arange(num_samples) % generator.num_classes).to(device)
    # Its own generator: asking for a quality number leaves the training draws unchanged.
    quality_rng = torch.Generator().manual_seed(seed + 1)
    quality_z = generator.sample_latent(quality_samples, generator=quality_rng, device=device)
    quality_y = None
    if conditional:
        quality_y = (torch.arange(quality_samples) % generator.num_classes).to(device)
    history = GANHistory(steps_per_epoch=max(len(images) // batch_size, 1))

    def batch_labels(idx: torch.Tensor) -> torch.Tensor | None:
        return labels[idx].to(device) if conditional else None

    with on_device(device, generator, discriminator):
        for _ in progress_bar(epochs_of(epochs), progress, f"{loss} epochs"):
            generator.train()
            discriminator.train()
            order = torch.randperm(len(images), generator=rng)
            first = len(history.d_loss)
            for step in config.capped(range(history.steps_per_epoch)):
                idx = order[step * batch_size:(step + 1) * batch_size]
                real, y = images[idx].to(device), batch_labels(idx)
                z = generator.sample_latent(len(idx), generator=rng, device=device)
                # 1. Discriminator step: tell real from fake (the fake is detached: G is fixed).
                fake = generator(z, y)
                real_out, fake_out = discriminator(real, y), discriminator(fake.detach(), y)
                if loss == "gan":
                    d_loss = discriminator_loss(real_out, fake_out)
                else:
                    d_loss = (wasserstein_critic_loss(real_out, fake_out)
                              + gp_weight * gradient_penalty(discriminator, real, fake, y))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                history.d_loss.append(d_loss.item())
                to_prob = torch.sigmoid if loss == "gan" else (lambda t: t)
                history.d_real.append(to_prob(real_out).mean().item())
                history.d_fake.append(to_prob(fake_out).mean().item())
                # 2. Generator step (every n_critic discriminator steps): fool the new D.
                if step % n_critic == 0:
                    fake_out = discriminator(generator(z, y), y)
                    g_loss = (generator_loss(fake_out) if loss == "gan"
                              else wasserstein_generator_loss(fake_out))
                    opt_g.zero_grad(set_to_none=True)
                    g_loss.backward()
                    opt_g.step()
                    history.g_loss.append(g_loss.item())
            done = len(history.d_loss) - first
            history.epoch_d_loss.append(sum(history.d_loss[first:]) / done)
            history.epoch_gap.append(sum(r - f for r, f in zip(
                history.d_real[first:], history.d_fake[first:], strict=True)) / done)
            generator.eval()
            with torch.no_grad():
                history.samples.append(generator(fixed_z, fixed_y).cpu())
                if quality_fn is not None:
                    history.quality.append(float(quality_fn(generator(quality_z, quality_y).cpu())))
        return history


def interpolate_latents(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` latent vectors on the straight line from ``z0`` to ``z1`` [D]: [steps, D]
    (DCGAN's Fig. 4 walks the latent space this way and the images change smoothly)."""
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)[:, None]
    return (1 - t) * z0[None] + t * z1[None]

__all__ = [
    "DCGANGenerator", "DCGANDiscriminator", "ConditionalGenerator", "ConditionalDiscriminator",
    "discriminator_loss", "generator_loss", "wasserstein_critic_loss",
    "wasserstein_generator_loss", "gradient_penalty", "GANHistory", "train_gan",
    "interpolate_latents",
]
