"""Notebook 04's GAN pictures: loss curves, samples after each epoch, two models' samples
side by side, and the quality number against the discriminator's or critic's own numbers."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .figures import CourseFigure, running_mean

RUNNING_MEAN_STEPS = 20  # the loss curves' smoothing: GAN losses jump from step to step


def _new_figure(figsize: tuple[float, float]) -> CourseFigure:
    return CourseFigure(figsize=figsize, layout="constrained")


def _to_picture(image: torch.Tensor) -> np.ndarray:
    return ((image + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()  # [-1, 1] CHW -> [0, 1] HWC


def plot_gan_history(history, title: str, wasserstein: bool = False) -> Figure:
    """Running means of the per-step losses and of D's outputs on real and fake batches
    (probabilities for a GAN, critic scores for a WGAN)."""
    fig = _new_figure((11, 3.3))
    ax_loss, ax_d = fig.subplots(1, 2)
    ax_loss.plot(running_mean(history.d_loss, RUNNING_MEAN_STEPS),
                 label="critic loss" if wasserstein else "D loss")
    ax_loss.plot(running_mean(history.g_loss, RUNNING_MEAN_STEPS), label="G loss")
    ax_loss.set(xlabel="step", ylabel="loss (running mean)", title=f"{title}: losses")
    ax_d.plot(running_mean(history.d_real, RUNNING_MEAN_STEPS), label="D(x), real")
    ax_d.plot(running_mean(history.d_fake, RUNNING_MEAN_STEPS), label="D(G(z)), fake")
    if not wasserstein:
        ax_d.axhline(0.5, color="gray", ls="--")
    ax_d.set(xlabel="step", ylabel="critic score" if wasserstein else "probability 'real'",
             title=f"{title}: the {'critic' if wasserstein else 'discriminator'}'s view")
    for ax in (ax_loss, ax_d):
        ax.legend(fontsize=8)
    return fig


def plot_samples_per_epoch(history, title: str, rows: int = 4, columns: int = 16) -> Figure:
    """The generator's output on the same fixed noise at ``rows`` epochs (first to last)."""
    last = len(history.samples) - 1
    epochs = sorted({round(i) for i in torch.linspace(0, last, rows).tolist()})
    n = min(columns, history.samples[0].shape[0])
    fig = _new_figure((0.8 * n, 0.9 * len(epochs) + 0.4))
    axes = fig.subplots(len(epochs), n, squeeze=False)
    for r, e in enumerate(epochs):
        for c in range(n):
            axes[r, c].imshow(_to_picture(history.samples[e][c]))
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(f"epoch {e + 1}", fontsize=8)
    fig.suptitle(title)
    return fig


def plot_samples_side_by_side(samples: dict[str, torch.Tensor], real: torch.Tensor,
                              n: int = 24, columns: int = 6) -> Figure:
    """Real images and each model's samples (all in [-1, 1]), one grid per source."""
    sources = {"real crops": real, **samples}
    rows = -(-n // columns)
    cell = 0.5  # inches per image
    fig = _new_figure((len(sources) * (columns * cell + 0.3), rows * cell + 0.5))
    panels = fig.subfigures(1, len(sources))
    for panel, (name, images) in zip(panels, sources.items(), strict=True):
        axes = panel.subplots(rows, columns, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < min(n, len(images)):
                ax.imshow(_to_picture(images[i]))
        panel.suptitle(name)
    return fig


def plot_quality_vs_estimate(histories: dict[str, object], quality_name: str) -> Figure:
    """Per epoch: the quality number of each model (left) and, per model, the quality number
    against what the model itself reports (right panels): the critic's Wasserstein estimate
    ``D(x) - D(G(z))`` for a WGAN, the discriminator loss for a GAN."""
    fig = _new_figure((4 * (1 + len(histories)), 3.4))
    axes = fig.subplots(1, 1 + len(histories))
    for name, h in histories.items():
        axes[0].plot(range(1, len(h.quality) + 1), h.quality, "-o", markersize=3, label=name)
    axes[0].set(xlabel="epoch", ylabel=f"{quality_name} (lower is better)",
                title="sample quality over training")
    axes[0].legend(fontsize=8)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax, (name, h) in zip(axes[1:], histories.items(), strict=True):
        wasserstein = "wgan" in name.lower()
        own = h.epoch_gap if wasserstein else h.epoch_d_loss
        points = ax.scatter(own, h.quality, c=range(1, len(own) + 1), cmap="viridis")
        ax.plot(own, h.quality, color="gray", lw=0.5)
        ax.set(xlabel="critic's Wasserstein estimate" if wasserstein else "discriminator loss",
               ylabel=quality_name, title=f"{name}: its own number vs quality")
        fig.colorbar(points, ax=ax, label="epoch")
    return fig


__all__ = ["plot_gan_history", "plot_samples_per_epoch", "plot_samples_side_by_side",
           "plot_quality_vs_estimate"]
