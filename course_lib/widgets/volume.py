"""3D volumes slice by slice (notebook 08): the image, its ground truth and a prediction."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from course_lib import viz
from course_lib.config import IGNORE_INDEX
from course_lib.widgets.base import Explorer, class_legend

__all__ = ["SliceViewer"]


def _volume_labels(x: Any, shape: tuple[int, ...], name: str) -> torch.Tensor | None:
    if x is None:
        return None
    t = torch.as_tensor(x)
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must be a [D,H,W] label volume of shape {shape} like the "
                         f"image, got {tuple(t.shape)}")
    if t.is_floating_point():
        raise ValueError(f"{name} must hold integer class labels, got dtype {t.dtype}")
    return t.long().cpu()


class SliceViewer(Explorer):
    """Browse a 3D volume slice by slice, with its ground truth and a prediction.

    Args:
        volume: ``[D,H,W]`` or ``[C,D,H,W]`` (the first channel is shown), any dtype.
        mask: optional ground-truth labels ``[D,H,W]``.
        prediction: optional predicted labels ``[D,H,W]`` (or logits ``[K,D,H,W]``, then
            ``argmax`` over K).
        class_names, palette: for the legend and colours (default: VOC colours).
        axis: the starting viewing axis, 0 (axial, along D), 1 or 2.
        alpha: opacity of the label overlays.

    Controls: ``slider`` (slice index), ``axis`` (dropdown) and ``overlay`` (the foreground
    labels, class > 0, over the image; or all labels alone). The first slice shown is the
    one with the most ground-truth foreground (label > 0), so a tiny lesion is in view from
    the start. :meth:`slice_stats`
    gives the per-slice numbers the label shows: foreground voxels of the ground truth and
    the prediction, and their Dice on that slice.
    """

    AXES = ("axial (D)", "coronal (H)", "sagittal (W)")

    def __init__(self, volume: Any, mask: Any = None, prediction: Any = None,
                 class_names: Sequence[str] | None = None,
                 palette: str | np.ndarray | Sequence | None = None,
                 axis: int = 0, alpha: float = 0.5) -> None:
        vol = torch.as_tensor(volume).detach().cpu()
        if vol.dim() == 4:
            vol = vol[0]
        if vol.dim() != 3 or min(vol.shape) < 1:
            raise ValueError(f"volume must be [D,H,W] or [C,D,H,W], got {tuple(vol.shape)}")
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        pred = prediction
        if pred is not None:
            p = torch.as_tensor(pred).detach()
            if p.is_floating_point() and p.dim() == 4:
                pred = p.argmax(0)
        self.volume = vol.float()
        lo, hi = float(self.volume.min()), float(self.volume.max())
        self.volume = (self.volume - lo) / max(hi - lo, 1e-8)  # [0, 1] for display
        shape = tuple(vol.shape)
        self.mask = _volume_labels(mask, shape, "mask")
        self.prediction = _volume_labels(pred, shape, "prediction")
        seen = [int(t.max()) for t in (self.mask, self.prediction) if t is not None]
        num_classes = max([len(class_names or ()), *(s + 1 for s in seen), 2])
        self.class_names = list(class_names) if class_names is not None else None
        self.palette = viz.get_palette(palette, num_classes)
        self.alpha = alpha

        self.axis = W.Dropdown(options=[(n, i) for i, n in enumerate(self.AXES)], value=axis,
                               description="axis")
        self.slider = W.IntSlider(value=0, min=0, max=shape[axis] - 1, description="slice",
                                  continuous_update=False)
        self.overlay = W.ToggleButton(value=True, description="overlay",
                                      tooltip="draw the labels over the image")
        self.label = W.HTML()
        self.picture = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.axis, self.slider, self.overlay]), self.label,
                              self.picture])
        self.slider.value = self.best_slice(axis)
        self.axis.observe(self._on_axis, names="value")
        self.slider.observe(self._update, names="value")
        self.overlay.observe(self._update, names="value")
        self._update()

    def best_slice(self, axis: int) -> int:
        """The slice along ``axis`` with the most ground-truth foreground (else the middle)."""
        if self.mask is None or not bool((self.mask > 0).any()):
            return self.volume.shape[axis] // 2
        dims = tuple(d for d in range(3) if d != axis)
        return int((self.mask > 0).sum(dims).argmax())

    def _take(self, t: torch.Tensor, index: int | None = None) -> torch.Tensor:
        i = self.slider.value if index is None else int(index)
        return t.select(self.axis.value, i)

    def slice_stats(self, index: int | None = None) -> dict[str, float]:
        """Foreground voxels of mask / prediction on a slice and their Dice (NaN if both are
        empty or a volume is missing)."""
        out: dict[str, float] = {}
        g = self._take(self.mask, index) > 0 if self.mask is not None else None
        p = self._take(self.prediction, index) > 0 if self.prediction is not None else None
        if g is not None:
            out["mask_voxels"] = int(g.sum())
        if p is not None:
            out["prediction_voxels"] = int(p.sum())
        dice = float("nan")
        if g is not None and p is not None and int(g.sum() + p.sum()):
            dice = 2.0 * int((g & p).sum()) / int(g.sum() + p.sum())
        out["dice"] = dice
        return out

    def figure(self) -> Any:
        """The current slice: image, ground truth and prediction panels."""
        image = self._take(self.volume).numpy()
        panels: list[tuple[str, np.ndarray]] = [("image", image)]
        for name, t in (("ground truth", self.mask), ("prediction", self.prediction)):
            if t is None:
                continue
            labels = self._take(t)
            if self.overlay.value:  # foreground only: class 0 leaves the image as it is
                shown = labels.masked_fill(labels == 0, IGNORE_INDEX)
                panels.append((name, viz.overlay(image, shown, self.palette, self.alpha)))
            else:
                panels.append((name, viz.colorize(labels, self.palette)))
        fig = viz.CourseFigure(figsize=(2.8 * len(panels) + 1.4, 3.1), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)).ravel()
        for ax, (name, picture) in zip(axes, panels, strict=True):
            ax.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(name)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0].set_xlabel(f"{self.AXES[self.axis.value]} slice {self.slider.value}")
        shown = [self._take(t) for t in (self.mask, self.prediction) if t is not None]
        class_legend(fig, shown, len(self.palette), self.palette, self.class_names)
        return fig

    def _label_html(self) -> str:
        stats = self.slice_stats()
        parts = [f"<b>{html.escape(self.AXES[self.axis.value])} slice {self.slider.value}"
                 f" / {self.slider.max}</b>"]
        if "mask_voxels" in stats:
            parts.append(f"ground-truth foreground {stats['mask_voxels']} px")
        if "prediction_voxels" in stats:
            parts.append(f"predicted foreground {stats['prediction_voxels']} px")
        if not math.isnan(stats["dice"]):
            parts.append(f"slice Dice {stats['dice']:.3f}")
        return " · ".join(parts)

    def _on_axis(self, change: Any = None) -> None:
        axis = self.axis.value
        with self.slider.hold_trait_notifications():
            self.slider.max = self.volume.shape[axis] - 1
            self.slider.value = self.best_slice(axis)
        self._update()

    def _update(self, change: Any = None) -> None:
        self.label.value = self._label_html()
        self.picture.value = self.to_png()
