"""Explorer of notebook 09: an FPN's pyramid levels and what each says about the prediction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from course_lib import viz
from course_lib.models.multiscale import FPN, level_contributions
from course_lib.widgets.base import Explorer

__all__ = ["FPNLevelExplorer"]


class FPNLevelExplorer(Explorer):
    """The pyramid ``P2..P5`` of one image (mean absolute activation per level, top row) and
    each level's share of the logit of the predicted class (bottom row), from
    :func:`~course_lib.models.multiscale.level_contributions` (Lin et al. 2017, Fig. 3; the
    semantic head of Kirillov et al. 2019, Fig. 3). One slider picks the image, one the level
    to highlight.

    Args:
        model: a trained :class:`~course_lib.models.multiscale.FPN`.
        images: ``[N, C, H, W]``.
        predictions: the model's class maps ``[N, H, W]`` (drawn beside the image).
        palette: colours of the classes (a palette name or an array, as in :func:`viz.colorize`).
    """

    def __init__(self, model: FPN, images: torch.Tensor, predictions: torch.Tensor,
                 palette: str | np.ndarray | Sequence | None = "shapes") -> None:
        if not isinstance(model, FPN):
            raise TypeError(f"FPNLevelExplorer needs an FPN, got {type(model).__name__}")
        if images.dim() != 4 or len(images) == 0:
            raise ValueError(f"images must be a non-empty [N, C, H, W], got {tuple(images.shape)}")
        if predictions.shape != (len(images), *images.shape[-2:]):
            raise ValueError(f"predictions must be [N, H, W] = "
                             f"{(len(images), *images.shape[-2:])}, got {tuple(predictions.shape)}")
        self.model, self.images, self.predictions = model, images, predictions
        self.palette = palette
        self.levels = len(model.pyramid.lateral)
        self.index = W.IntSlider(0, 0, len(images) - 1, description="sample",
                                 continuous_update=False)
        self.level = W.IntSlider(0, 0, self.levels - 1, description="level P2+",
                                 continuous_update=False)
        self.picture = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.index, self.level]), self.picture])
        self.index.observe(self._update, names="value")
        self.level.observe(self._update, names="value")
        self._update()

    def _update(self, *_: Any) -> None:
        self.picture.value = self.to_png()

    def figure(self) -> Any:
        index, level = self.index.value, self.level.value
        pyramid, share = level_contributions(self.model, self.images[index:index + 1])
        share = share[0]
        fig = viz.CourseFigure(figsize=(2.6 * (self.levels + 1), 5.2), layout="constrained")
        axes = fig.subplots(2, self.levels + 1)
        axes[0, 0].imshow(viz.to_numpy_image(self.images[index]))
        axes[0, 0].set_title(f"image {index}")
        axes[1, 0].imshow(viz.colorize(self.predictions[index], self.palette),
                          interpolation="nearest")
        axes[1, 0].set_title("FPN prediction")
        lim = float(share.abs().max())
        for k in range(self.levels):
            # the highlighted level's titles in bold red
            style = {"fontweight": "bold", "color": "red"} if k == level else {}
            axes[0, k + 1].imshow(pyramid[k][0].abs().mean(0).numpy(), cmap="magma",
                                  interpolation="nearest")
            axes[0, k + 1].set_title(f"P{k + 2}: {tuple(pyramid[k].shape[-2:])}, stride "
                                     f"{4 * 2 ** k}", **style)
            shown = axes[1, k + 1].imshow(share[k].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim,
                                          interpolation="nearest")
            axes[1, k + 1].set_title(f"P{k + 2}'s share", **style)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(shown, ax=axes[1].tolist(), fraction=0.02, label="logit contribution")
        fig.suptitle("FPN: pyramid levels (top) and each level's contribution to the predicted "
                     "class (bottom)")
        return fig
