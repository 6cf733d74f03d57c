"""Pick a pixel, see where each model's attention looks (notebook 13).

:class:`AttentionExplorer` shows, for one image and one chosen pixel, the attention map of
every model that has ``attention_maps(x) -> {name: [N, h, w, h, w]}`` (DANet, CCNet, OCNet and
OCR in :mod:`course_lib.models.attention`): the weights with which the feature cell under the
pixel reads every other cell, drawn over the image. Sliders pick the image, the row and the
column (a click on a picture is not an event ipywidgets' ``Image`` reports).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from torch import nn

from course_lib import viz
from course_lib.runtime import evaluating, model_device
from course_lib.widgets.base import Explorer

__all__ = ["AttentionExplorer"]


class AttentionExplorer(Explorer):
    """Where does the pixel at (row, col) look? One panel per model and attention map.

    Args:
        models: ``{name: model}``; each model has ``attention_maps(x)`` returning
            ``{map name: [N, h, w, h, w]}`` (query cell, then the map over key cells).
        images: [N, C, H, W] images to choose from.
        masks: optional [N, H, W] labels, used only to report the share of the attention
            that falls on each class (the table under the picture).
        class_names: names of the label values, for that table.
        index, row, col: the initial image and pixel (default: image 0, its centre).
    """

    def __init__(self, models: Mapping[str, nn.Module], images: torch.Tensor,
                 masks: torch.Tensor | None = None, class_names: Any = None,
                 index: int = 0, row: int | None = None, col: int | None = None) -> None:
        if not isinstance(models, Mapping) or not models:
            raise ValueError("models must be a non-empty mapping {name: nn.Module}")
        for name, model in models.items():
            if not callable(getattr(model, "attention_maps", None)):
                raise ValueError(f"models[{name!r}] ({type(model).__name__}) has no "
                                 "attention_maps(x) method to draw")
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or len(images) == 0:
            raise ValueError(f"images must be a non-empty tensor [N, C, H, W], got "
                             f"{getattr(images, 'shape', type(images).__name__)}")
        if masks is not None and tuple(masks.shape) != (images.shape[0], *images.shape[-2:]):
            raise ValueError(f"masks must be [N, H, W] = {(images.shape[0], *images.shape[-2:])},"
                             f" got {tuple(masks.shape)}")
        self.models = dict(models)
        self.images = images.detach().cpu()
        self.masks = None if masks is None else masks.detach().cpu()
        self.class_names = list(class_names) if class_names is not None else None
        height, width = self.images.shape[-2:]
        self._cache: dict[int, dict[str, torch.Tensor]] = {}
        self.index = W.IntSlider(value=index, min=0, max=len(images) - 1, description="image",
                                 continuous_update=False)
        self.row = W.IntSlider(value=height // 2 if row is None else row, min=0,
                               max=height - 1, description="row", continuous_update=False)
        self.col = W.IntSlider(value=width // 2 if col is None else col, min=0,
                               max=width - 1, description="column", continuous_update=False)
        self.picture = W.Image(format="png")
        self.table = W.HTML()
        self.widget = W.VBox([W.HBox([self.index, self.row, self.col]), self.picture,
                              self.table])
        for control in (self.index, self.row, self.col):
            control.observe(self._update, names="value")
        self._update()

    def maps(self, index: int | None = None) -> dict[str, torch.Tensor]:
        """``{"model: map name": [h, w, h, w]}`` for one image (computed once, cached)."""
        i = self.index.value if index is None else int(index)
        if i not in self._cache:
            found = {}
            for name, model in self.models.items():
                with evaluating(model):
                    maps = model.attention_maps(self.images[i: i + 1].to(model_device(model)))
                for label, weights in maps.items():
                    found[f"{name}: {label}"] = weights[0].float().cpu()
            self._cache[i] = found
        return self._cache[i]

    def attention_at(self, row: int | None = None, col: int | None = None,
                     index: int | None = None) -> dict[str, torch.Tensor]:
        """Each map for the pixel (row, col): ``{label: [H, W]}`` at the image size, the
        weight of each feature cell spread evenly over the pixels it covers (sums to 1)."""
        height, width = self.images.shape[-2:]
        r = self.row.value if row is None else int(row)
        c = self.col.value if col is None else int(col)
        if not (0 <= r < height and 0 <= c < width):
            raise ValueError(f"pixel ({r}, {c}) is outside the {height}x{width} image")
        out = {}
        for label, weights in self.maps(index).items():
            h, w = weights.shape[:2]
            cell = weights[r * h // height, c * w // width]  # the feature cell under the pixel
            rows = torch.arange(height) * h // height
            cols = torch.arange(width) * w // width
            spread = cell[rows][:, cols]
            counts = torch.bincount(rows, minlength=h)[:, None] * torch.bincount(cols, minlength=w)
            out[label] = spread / counts[rows][:, cols]
        return out

    def class_shares(self, row: int | None = None, col: int | None = None,
                     index: int | None = None) -> dict[str, dict[str, float]]:
        """Share of each map's attention on the pixels of each class: ``{label: {class: share}}``
        (needs ``masks``)."""
        if self.masks is None:
            raise ValueError("class_shares needs the masks given to the explorer")
        i = self.index.value if index is None else int(index)
        mask = self.masks[i]
        shares = {}
        for label, weights in self.attention_at(row, col, index).items():
            totals = torch.bincount(mask.flatten().clamp(max=255), weights=weights.flatten(),
                                    minlength=256)
            names = self.class_names or [str(k) for k in range(256)]
            shares[label] = {names[k] if k < len(names) else str(k): float(totals[k])
                             for k in torch.nonzero(totals > 1e-3).flatten().tolist()}
        return shares

    def figure(self) -> Any:
        """The image with the chosen pixel, and every attention map for that pixel."""
        maps = self.attention_at()
        rgb = viz.to_numpy_image(self.images[self.index.value])
        grey = rgb.mean(-1)
        n = 1 + len(maps)
        fig = viz.CourseFigure(figsize=(2.8 * n + 0.8, 3.2), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)).ravel()
        axes[0].imshow(rgb)
        axes[0].set_title(f"image {self.index.value}, pixel ({self.row.value}, {self.col.value})",
                          fontsize=9)
        im = None
        for ax, (label, weights) in zip(axes[1:], maps.items(), strict=True):
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
            shown = (weights / weights.max().clamp(min=1e-12)).numpy()
            # opaque where the pixel looks, see-through elsewhere: the scene stays visible
            im = ax.imshow(shown, cmap="inferno", alpha=np.clip(0.2 + shown, 0.0, 0.9), vmin=0,
                           vmax=1)
            ax.set_title(label, fontsize=9)
        for ax in axes:
            ax.plot(self.col.value, self.row.value, marker="+", color="cyan", markersize=14,
                    markeredgewidth=2)
            ax.set_xticks([])
            ax.set_yticks([])
        if im is not None:
            fig.colorbar(im, ax=axes[1:].tolist(), shrink=0.8,
                         label="attention (relative to its maximum)")
        fig.suptitle("where the chosen pixel (cyan +) looks")
        return fig

    def table_html(self) -> str:
        """The share of each map's attention on each class (with masks), else the peaks."""
        if self.masks is None:
            rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{float(w.max()):.3g}</td></tr>"
                           for label, w in self.attention_at().items())
            return ("<table><tr><th style='text-align:left'>map</th><th>largest weight</th>"
                    f"</tr>{rows}</table>")
        shares = self.class_shares()
        names = sorted({k for s in shares.values() for k in s})
        head = "".join(f"<th>{html.escape(k)}</th>" for k in names)
        rows = "".join(
            f"<tr><td>{html.escape(label)}</td>"
            + "".join(f"<td>{s.get(k, 0.0):.0%}</td>" for k in names) + "</tr>"
            for label, s in shares.items())
        return ("<div>share of the attention on each class</div><table><tr>"
                f"<th style='text-align:left'>map</th>{head}</tr>{rows}</table>")

    def _update(self, change: Any = None) -> None:
        self.picture.value = self.to_png()
        self.table.value = self.table_html()
