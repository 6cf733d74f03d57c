"""A dense CRF, iteration by iteration (notebook 06): labelling, confidence and scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from course_lib import viz
from course_lib.config import IGNORE_INDEX
from course_lib.widgets.base import Explorer
from course_lib.widgets.predictions import sample_scores

__all__ = ["CRFIterationViewer"]


class CRFIterationViewer(Explorer):
    """Step through the mean-field iterations of a dense CRF (:mod:`course_lib.models.crf`).

    ``unary`` [N,K,H,W] are a network's scores for ``images`` [N,C,H,W] (in [0, 1]) with
    ``targets`` [N,H,W]. The per-iteration distributions Q come from
    ``crf.dense_crf(..., return_history=True)`` (pass ``history`` to reuse a computed one;
    ``crf_kwargs`` go to ``dense_crf``). Two sliders pick the sample and the iteration t
    (0 = the network alone); the picture shows the labelling after t iterations, its
    confidence (max Q), the pixels changed since iteration 0, and the whole set's mIoU and
    boundary F against t with the sample's own scores marked.
    """

    def __init__(self, unary: torch.Tensor, images: torch.Tensor, targets: torch.Tensor,
                 params: Any = None, *, history: Sequence[torch.Tensor] | None = None,
                 class_names: Sequence[str] | None = None,
                 palette: str | np.ndarray | Sequence | None = None,
                 ignore_index: int = IGNORE_INDEX, **crf_kwargs: Any) -> None:
        from course_lib import metrics
        from course_lib.models import crf

        if unary.dim() != 4:
            raise ValueError(f"unary must be [N, K, H, W], got shape {tuple(unary.shape)}")
        n, k, h, w = unary.shape
        if images.dim() != 4 or images.shape[0] != n or images.shape[-2:] != (h, w):
            raise ValueError(f"images must be [N, C, H, W] matching unary {tuple(unary.shape)}, "
                             f"got {tuple(images.shape)}")
        if tuple(targets.shape) != (n, h, w):
            raise ValueError(f"targets must be [N, H, W] = {(n, h, w)}, got "
                             f"{tuple(targets.shape)}")
        if params is None:
            params = crf.DEEPLAB_CRF.scaled(max(h, w))
        if history is None:
            history = crf.dense_crf(unary, images, params, return_history=True, **crf_kwargs)
        if len(history) < 1 or any(tuple(q.shape) != (n, k, h, w) for q in history):
            raise ValueError(f"history must be a list of Q tensors shaped {(n, k, h, w)}")
        self.num_classes = k
        self.images = images.detach().cpu()
        self.targets = targets.detach().cpu().long()
        self.ignore_index = ignore_index
        self.class_names = list(class_names or [str(c) for c in range(k)])
        self.palette = viz.get_palette(palette, k)
        # keep labels and confidence only (the full history is K times larger)
        self.labels = torch.stack([q.argmax(1).to(torch.uint8 if k < 256 else torch.int64)
                                   for q in history]).cpu()  # [T+1, N, H, W]
        self.confidence = torch.stack([q.max(1).values.half() for q in history]).cpu()
        self.iterations = len(history) - 1
        self.curve = []  # the whole set's scores after 0..T iterations
        for t in range(self.iterations + 1):
            pred = self.labels[t].long()
            cm = metrics.confusion_matrix(pred, self.targets, k, ignore_index=ignore_index)
            self.curve.append({
                "miou": metrics.mean_iou(cm),
                "boundary_f": metrics.boundary_f_score(pred, self.targets, k,
                                                       ignore_index=ignore_index),
            })

        self.index = W.IntSlider(value=0, min=0, max=n - 1, description="sample",
                                 continuous_update=False)
        self.iteration = W.IntSlider(value=self.iterations, min=0, max=self.iterations,
                                     description="iteration", continuous_update=False)
        self.picture = W.Image(format="png")
        self.label = W.HTML()
        self.widget = W.VBox([W.HBox([self.index, self.iteration]), self.label, self.picture])
        for control in (self.index, self.iteration):
            control.observe(self._update, names="value")
        self._update()

    def prediction(self, t: int | None = None, index: int | None = None) -> torch.Tensor:
        """The labelling [H, W] of a sample after ``t`` mean-field iterations."""
        t = self.iteration.value if t is None else int(t)
        i = self.index.value if index is None else int(index)
        if not 0 <= t <= self.iterations:
            raise ValueError(f"iteration must be in 0..{self.iterations}, got {t}")
        return self.labels[t, i].long()

    def scores(self, t: int | None = None, index: int | None = None) -> dict[str, float]:
        """One sample's mIoU and boundary F after ``t`` iterations (and pixels changed
        since iteration 0)."""
        from course_lib import metrics

        i = self.index.value if index is None else int(index)
        pred, target = self.prediction(t, i), self.targets[i]
        return {
            "miou": sample_scores(pred, target, self.num_classes, self.ignore_index)["miou"],
            "boundary_f": metrics.boundary_f_score(pred[None], target[None], self.num_classes,
                                                   ignore_index=self.ignore_index),
            "changed": int((pred != self.labels[0, i].long()).sum()),
        }

    def figure(self) -> Any:
        """Image, target, labelling and confidence after t iterations, and the score curves."""
        t, i = self.iteration.value, self.index.value
        pred, target = self.prediction(), self.targets[i]
        first = self.labels[0, i].long()
        s = self.scores()
        fig = viz.CourseFigure(figsize=(15, 3.1), layout="constrained")
        axes = fig.subplots(1, 6, width_ratios=[1, 1, 1, 1, 1, 1.5])
        rgb = viz.to_numpy_image(self.images[i])
        axes[0].imshow(rgb)
        axes[0].set_title(f"image {i}")
        axes[1].imshow(viz.colorize(target, self.palette, self.ignore_index),
                       interpolation="nearest")
        axes[1].set_title("ground truth")
        axes[2].imshow(viz.colorize(pred, self.palette, self.ignore_index),
                       interpolation="nearest")
        axes[2].set_title("network alone (t = 0)" if t == 0 else f"after {t} iteration(s)")
        axes[2].set_xlabel(f"mIoU {s['miou']:.3f}, boundary F {s['boundary_f']:.3f}",
                           fontsize=8)
        im = axes[3].imshow(self.confidence[t, i].float().numpy(), cmap="magma", vmin=0, vmax=1)
        fig.colorbar(im, ax=axes[3], shrink=0.8)
        axes[3].set_title(f"confidence max Q (t = {t})")
        changed = (pred != first).numpy()
        axes[4].imshow(viz.error_map(rgb, changed, np.ones_like(changed)),
                       interpolation="nearest")
        axes[4].set_title("changed since t = 0")
        axes[4].set_xlabel(f"{s['changed']} pixels (black)", fontsize=8)
        for ax in axes[:5]:
            ax.set_xticks([])
            ax.set_yticks([])
        ax = axes[5]
        its = range(self.iterations + 1)
        ax.plot(its, [c["miou"] for c in self.curve], marker="o", ms=3, label="mIoU (all)")
        ax.plot(its, [c["boundary_f"] for c in self.curve], marker="s", ms=3,
                label="boundary F (all)")
        ax.axvline(t, color="gray", ls="--", lw=1)
        ax.plot([t], [s["miou"]], "o", mfc="none", color="C0", ms=8, label="this sample")
        ax.plot([t], [s["boundary_f"]], "s", mfc="none", color="C1", ms=8)
        ax.set_xlabel("mean-field iteration t")
        ax.set_ylabel("score")
        ax.set_title("scores per iteration")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        return fig

    def _update(self, change: Any = None) -> None:
        t = self.iteration.value
        whole = self.curve[t]
        s = self.scores()
        self.label.value = (
            f"<b>iteration {t}</b> of {self.iterations}: whole set mIoU {whole['miou']:.3f}, "
            f"boundary F {whole['boundary_f']:.3f} | sample {self.index.value}: mIoU "
            f"{s['miou']:.3f}, boundary F {s['boundary_f']:.3f}, {s['changed']} pixels "
            "changed since t = 0"
        )
        self.picture.value = self.to_png()
