"""Hung et al.'s confidence map, image by image (notebook 14): what the discriminator trusts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from course_lib import viz
from course_lib.config import IGNORE_INDEX
from course_lib.widgets.base import Explorer, class_legend

__all__ = ["ConfidenceExplorer"]


class ConfidenceExplorer(Explorer):
    """Look at a fully convolutional discriminator's confidence map next to the errors it
    should find (Hung et al. 2018, :mod:`course_lib.models.adversarial`).

    ``images`` [N, C, H, W] in [0, 1], ``targets`` [N, H, W], the segmentor's ``predictions``
    [N, H, W] (labels) and the discriminator's ``confidence`` [N, H, W] in [0, 1]
    (``FCDiscriminator.confidence`` of the softmax). Two sliders pick the image and the
    threshold ``T_semi``; the picture shows the image, the ground truth, the prediction, its
    errors, the confidence map, and the pixels the self-taught loss would train on (trusted:
    ``confidence > T_semi``) coloured by whether the prediction is right there.
    :meth:`trusted_scores` gives, for the image or the whole set, the share of pixels trusted
    and the prediction's accuracy on the trusted and on the other pixels.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, predictions: torch.Tensor,
                 confidence: torch.Tensor, *, threshold: float = 0.2,
                 class_names: Sequence[str] | None = None,
                 palette: str | np.ndarray | Sequence | None = None,
                 num_classes: int | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        if targets.dim() != 3:
            raise ValueError(f"targets must be [N, H, W], got shape {tuple(targets.shape)}")
        n, h, w = targets.shape
        if images.dim() != 4 or images.shape[0] != n or images.shape[-2:] != (h, w):
            raise ValueError(f"images must be [N, C, H, W] matching targets {(n, h, w)}, got "
                             f"{tuple(images.shape)}")
        for name, value in (("predictions", predictions), ("confidence", confidence)):
            if tuple(value.shape) != (n, h, w):
                raise ValueError(f"{name} must be [N, H, W] = {(n, h, w)}, got "
                                 f"{tuple(value.shape)}")
        if confidence.numel() and (confidence.min() < 0 or confidence.max() > 1):
            raise ValueError("confidence must lie in [0, 1] (the sigmoid of the discriminator)")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        self.images = images.detach().cpu()
        self.targets = targets.detach().cpu().long()
        self.predictions = predictions.detach().cpu().long()
        self.confidence = confidence.detach().cpu().float()
        self.ignore_index = ignore_index
        valid = self.targets != ignore_index
        seen = torch.cat([self.predictions.flatten(), self.targets[valid]])
        self.num_classes = int(num_classes or int(seen.max()) + 1)
        self.class_names = list(class_names) if class_names is not None else None
        self.palette = viz.get_palette(palette, self.num_classes)

        self.index = W.IntSlider(value=0, min=0, max=n - 1, description="image",
                                 continuous_update=False)
        self.threshold = W.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01,
                                       description="T_semi", continuous_update=False)
        self.picture = W.Image(format="png")
        self.label = W.HTML()
        self.widget = W.VBox([W.HBox([self.index, self.threshold]), self.label, self.picture])
        for control in (self.index, self.threshold):
            control.observe(self._update, names="value")
        self._update()

    def trusted(self, index: int | None = None, threshold: float | None = None) -> torch.Tensor:
        """The pixels the self-taught loss trains on: ``confidence > threshold`` ([H, W], or
        [N, H, W] for ``index=-1``, the whole set)."""
        t = self.threshold.value if threshold is None else float(threshold)
        i = self.index.value if index is None else int(index)
        return self.confidence > t if i == -1 else self.confidence[i] > t

    def trusted_scores(self, index: int | None = None, threshold: float | None = None
                       ) -> dict[str, float]:
        """Share of (valid) pixels trusted, and the prediction's accuracy on the trusted and on
        the untrusted ones (NaN when a group is empty). ``index=-1``: the whole set."""
        i = self.index.value if index is None else int(index)
        sel = slice(None) if i == -1 else i
        trusted = self.trusted(i, threshold)
        valid = self.targets[sel] != self.ignore_index
        right = self.predictions[sel] == self.targets[sel]

        def accuracy(where: torch.Tensor) -> float:
            count = int(where.sum())
            return float(right[where].float().mean()) if count else float("nan")

        return {"trusted": float(trusted[valid].float().mean()) if valid.any() else float("nan"),
                "accuracy_trusted": accuracy(trusted & valid),
                "accuracy_untrusted": accuracy(~trusted & valid)}

    def figure(self) -> Any:
        """Image, ground truth, prediction, its errors, the confidence map, the trusted pixels."""
        i, t = self.index.value, self.threshold.value
        target, pred = self.targets[i], self.predictions[i]
        valid = (target != self.ignore_index).numpy()
        wrong = ((pred != target).numpy() & valid)
        trusted = self.trusted().numpy()
        s = self.trusted_scores()
        rgb = viz.to_numpy_image(self.images[i])
        fig = viz.CourseFigure(figsize=(15.5, 3.0), layout="constrained")
        axes = fig.subplots(1, 6)
        axes[0].imshow(rgb)
        axes[0].set_title(f"image {i}")
        axes[1].imshow(viz.colorize(target, self.palette, self.ignore_index),
                       interpolation="nearest")
        axes[1].set_title("ground truth")
        axes[2].imshow(viz.colorize(pred, self.palette, self.ignore_index),
                       interpolation="nearest")
        axes[2].set_title("prediction")
        axes[3].imshow(viz.error_map(rgb, wrong, valid), interpolation="nearest")
        axes[3].set_title("prediction errors")
        axes[3].set_xlabel(f"{int(wrong.sum())} wrong pixels", fontsize=8)
        # colours span the whole set's range: a young discriminator's map varies little
        low, high = float(self.confidence.min()), float(self.confidence.max())
        im = axes[4].imshow(self.confidence[i].numpy(), cmap="magma", vmin=low,
                            vmax=max(high, low + 1e-6))
        fig.colorbar(im, ax=axes[4], shrink=0.8, label="sigmoid D")
        if trusted.any() and not trusted.all():
            axes[4].contour(trusted.astype(float), levels=[0.5], colors="cyan", linewidths=0.8)
        axes[4].set_title("confidence map")
        axes[4].set_xlabel(f"cyan: T_semi = {t:.2f}", fontsize=8)
        # trusted and right: green; trusted and wrong: red (what the self-taught loss
        # would learn wrongly); untrusted: the faded image
        shown = 0.35 * rgb + 0.55
        shown[trusted & ~wrong] = (0.1, 0.7, 0.2)
        shown[trusted & wrong] = (0.9, 0.1, 0.1)
        axes[5].imshow(shown, interpolation="nearest")
        axes[5].set_title("trusted: right / wrong")
        axes[5].set_xlabel(f"{s['trusted']:.0%} trusted; accuracy there "
                           f"{s['accuracy_trusted']:.2f}", fontsize=8)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        class_legend(fig, [target, pred], self.num_classes, self.palette, self.class_names)
        return fig

    def _update(self, change: Any = None) -> None:
        s, whole = self.trusted_scores(), self.trusted_scores(index=-1)
        self.label.value = (
            f"<b>image {self.index.value}</b>, T_semi = {self.threshold.value:.2f}: "
            f"{s['trusted']:.1%} of its pixels trusted, accuracy {s['accuracy_trusted']:.3f} on "
            f"them vs {s['accuracy_untrusted']:.3f} on the rest | whole set: "
            f"{whole['trusted']:.1%} trusted, accuracy {whole['accuracy_trusted']:.3f} vs "
            f"{whole['accuracy_untrusted']:.3f}"
        )
        self.picture.value = self.to_png()
