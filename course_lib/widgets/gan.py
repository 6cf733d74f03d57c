"""Explorer of notebook 04: walk the straight line between two latent codes with a slider."""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import torch
from torch import nn

from course_lib import viz
from course_lib.runtime import evaluating
from course_lib.widgets.base import Explorer

__all__ = ["LatentInterpolationExplorer"]


class LatentInterpolationExplorer(Explorer):
    """The generator's image at ``z = (1 - t) z0 + t z1`` for the ``t`` of a slider: the
    walk in latent space of DCGAN (Radford et al. 2016, Fig. 4), one image at a time.

    Args:
        generator: maps a batch of latent codes ``[N, D]`` to images ``[N, C, H, W]`` in
            ``[-1, 1]`` (run in eval mode without gradients; its modes are restored).
        z0, z1: the two end points, latent codes ``[D]``.
        step: the slider's step in ``t``.
    """

    def __init__(self, generator: nn.Module, z0: torch.Tensor, z1: torch.Tensor,
                 step: float = 0.05, t: float = 0.5) -> None:
        if z0.dim() != 1 or z0.shape != z1.shape:
            raise ValueError(f"z0 and z1 must be latent codes [D] of one size, got "
                             f"{tuple(z0.shape)} and {tuple(z1.shape)}")
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t must be in [0, 1], got {t}")
        self.generator, self.z0, self.z1 = generator, z0, z1
        self.t = W.FloatSlider(value=t, min=0.0, max=1.0, step=step, description="t",
                               continuous_update=False)
        self.picture = W.Image(format="png", width=160)
        self.widget = W.VBox([self.t, self.picture])
        self.t.observe(self._update, names="value")
        self._update()

    def image(self, t: float | None = None) -> torch.Tensor:
        """G((1 - t) z0 + t z1) as a picture ``[H, W, C]`` in [0, 1] (``t``: the slider's)."""
        t = self.t.value if t is None else t
        with evaluating(self.generator):
            out = self.generator(((1 - t) * self.z0 + t * self.z1)[None])
        return ((out + 1) / 2).clamp(0, 1)[0].permute(1, 2, 0)

    def _update(self, *_: Any) -> None:
        self.picture.value = self.to_png()

    def figure(self) -> Any:
        fig = viz.CourseFigure(figsize=(2, 2), layout="constrained")
        ax = fig.subplots()
        ax.imshow(self.image().numpy())
        ax.axis("off")
        return fig
