"""Explorer of notebook 15: step through a level-set evolution with a slider."""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np
import torch

from course_lib import viz
from course_lib.models.active_contour.levelset import Evolution
from course_lib.widgets.base import Explorer

__all__ = ["LevelSetExplorer"]


class LevelSetExplorer(Explorer):
    """The image with the zero level set at the chosen step, the level set φ itself, and the
    energy along the evolution with the chosen step marked.

    Args:
        image: the segmented image ``[H, W]``, ``[1, H, W]`` or ``[3, H, W]``.
        evolution: what :func:`~course_lib.models.active_contour.chan_vese` (or the
            morphological variant) returned with ``history_every > 0`` for this one image.
        truth: optional bool mask ``[H, W]``, drawn as a dashed contour.
    """

    def __init__(self, image: torch.Tensor, evolution: Evolution,
                 truth: torch.Tensor | None = None, title: str = "Chan–Vese") -> None:
        if evolution.snapshots is None or evolution.energy is None:
            raise ValueError("evolution has no history: run it with history_every > 0")
        if evolution.snapshots.dim() != 3:
            raise ValueError("LevelSetExplorer shows one image: snapshots must be [T, H, W], got "
                             f"{tuple(evolution.snapshots.shape)}")
        self.image = image if image.dim() == 3 else image[None]
        if self.image.shape[-2:] != evolution.snapshots.shape[-2:]:
            raise ValueError(f"image {tuple(image.shape)} and level sets "
                             f"{tuple(evolution.snapshots.shape)} differ in size")
        self.evolution, self.truth, self.title = evolution, truth, title
        steps = evolution.steps
        self.step = W.SelectionSlider(options=steps, value=steps[-1], description="step",
                                      continuous_update=False)
        self.picture = W.Image(format="png")
        self.widget = W.VBox([self.step, self.picture])
        self.step.observe(self._update, names="value")
        self._update()

    def _update(self, *_: Any) -> None:
        self.picture.value = self.to_png()

    def figure(self) -> Any:
        index = self.evolution.steps.index(self.step.value)
        phi = self.evolution.snapshots[index].float()
        fig = viz.CourseFigure(figsize=(10.5, 3.4), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, 3)).ravel()
        picture = viz.to_numpy_image(self.image)
        axes[0].imshow(picture, cmap="gray" if picture.ndim == 2 else None)
        inside = (phi > (0.5 if phi.min() >= 0 else 0)).numpy().astype(float)
        if 0 < inside.mean() < 1:
            axes[0].contour(inside, levels=[0.5], colors="red", linewidths=1.2)
        if self.truth is not None:
            axes[0].contour(self.truth.numpy().astype(float), levels=[0.5], colors="cyan",
                            linewidths=0.8, linestyles="dashed")
        axes[0].set_title(f"{self.title}: contour at step {self.step.value}\n"
                          "(red: φ = 0; cyan dashed: truth)", fontsize=9)
        bound = float(phi.abs().max()) or 1.0
        shown = axes[1].imshow(phi.numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound)
        fig.colorbar(shown, ax=axes[1], fraction=0.046, label="φ (> 0: inside)")
        axes[1].set_title("the level set φ", fontsize=9)
        for ax in axes[:2]:
            ax.set_xticks([])
            ax.set_yticks([])
        energy = self.evolution.energy.float().numpy()
        axes[2].plot(self.evolution.steps, energy, marker=".", label="energy")
        axes[2].axvline(self.step.value, color="red", linestyle=":", label="this step")
        axes[2].set_xlabel("iteration")
        axes[2].set_ylabel("energy")
        axes[2].set_title("the Chan–Vese energy", fontsize=9)
        axes[2].legend(fontsize=8)
        return fig
