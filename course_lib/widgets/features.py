"""Feature maps (notebooks 01 and 07): every layer's activations for one image."""

from __future__ import annotations

import html
import math
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from torch import nn

from course_lib import viz
from course_lib.runtime import evaluating, model_device
from course_lib.widgets.base import Explorer

__all__ = ["FeatureMapExplorer"]


class FeatureMapExplorer(Explorer):
    """Pick a layer and a channel; see that layer's activations for one image.

    One forward pass with hooks on every leaf module records each 4-D output ``[1,C,H,W]``;
    the dropdown lists those layers, the slider picks a channel. The label gives the
    layer's output shape.
    """

    def __init__(self, model: nn.Module, image: torch.Tensor, max_grid: int = 16) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4):
            raise ValueError("image must be a tensor [C,H,W] or [1,C,H,W]")
        batch = image[None] if image.dim() == 3 else image[:1]
        self.image = batch[0].detach().cpu()
        self.max_grid = max_grid
        self.activations = self._record(model, batch)
        if not self.activations:
            raise ValueError("the model has no layer with a 4-D output [N,C,H,W] to explore")
        self.types = {name: kind for name, (kind, _) in self.activations.items()}
        options = [(f"{name} ({kind})", name) for name, (kind, _) in self.activations.items()]
        self.layer = W.Dropdown(options=options, description="layer",
                                layout=W.Layout(width="380px"))
        self.channel = W.IntSlider(value=0, min=0, max=0, description="channel",
                                   continuous_update=False)
        self.label = W.HTML()
        self.picture = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.layer, self.channel]), self.label, self.picture])
        self.layer.observe(self._on_layer, names="value")
        self.channel.observe(self._on_channel, names="value")
        self._on_layer()

    @staticmethod
    def _record(model: nn.Module, batch: torch.Tensor) -> dict[str, tuple[str, torch.Tensor]]:
        outputs: dict[str, tuple[str, torch.Tensor]] = {}
        handles = []

        def hook_for(name: str):
            def hook(module: nn.Module, args: Any, output: Any) -> None:
                if isinstance(output, torch.Tensor) and output.dim() == 4 and name not in outputs:
                    outputs[name] = (type(module).__name__, output.detach().float().cpu())
            return hook

        for name, module in model.named_modules():
            if name and not any(True for _ in module.children()):
                handles.append(module.register_forward_hook(hook_for(name)))
        try:
            with evaluating(model):
                model(batch.to(model_device(model)).float())
        finally:
            for handle in handles:
                handle.remove()
        return outputs

    @property
    def shape(self) -> tuple[int, ...]:
        """Output shape of the selected layer."""
        return tuple(self.activations[self.layer.value][1].shape)

    def _on_layer(self, change: Any = None) -> None:
        channels = self.shape[1]
        self.channel.max = channels - 1
        if self.channel.value > channels - 1:
            self.channel.value = channels - 1  # triggers _on_channel
        kind = self.types[self.layer.value]
        self.label.value = (
            f"<b>{html.escape(self.layer.value)}</b> ({kind}) → output shape "
            f"<code>{self.shape}</code>"
        )
        self._draw()

    def _on_channel(self, change: Any = None) -> None:
        self._draw()

    def figure(self) -> Any:
        """The current view: input image, the selected channel, and a grid of channels."""
        name = self.layer.value
        act = self.activations[name][1][0]
        c = self.channel.value
        shown = list(range(min(act.shape[0], self.max_grid)))
        if c not in shown:
            shown[-1] = c
        cols = math.ceil(math.sqrt(len(shown)))
        rows = math.ceil(len(shown) / cols)
        fig = viz.CourseFigure(figsize=(11, 3.8), layout="constrained")
        left, right = fig.subfigures(1, 2, width_ratios=[2, 1.3])
        ax_img, ax_ch = left.subplots(1, 2)
        ax_img.imshow(viz.to_numpy_image(self.image))
        ax_img.set_title("input image")
        im = ax_ch.imshow(act[c].numpy(), cmap="viridis")
        left.colorbar(im, ax=ax_ch, shrink=0.8, label="activation")
        ax_ch.set_title(f"channel {c} of {act.shape[0]}")
        for ax in (ax_img, ax_ch):
            ax.set_xticks([])
            ax.set_yticks([])
        grid = np.atleast_1d(right.subplots(rows, cols, squeeze=False)).ravel()
        for ax in grid:
            ax.set_axis_off()
        for ax, k in zip(grid, shown, strict=False):
            ax.imshow(act[k].numpy(), cmap="viridis")
            ax.set_title(f"{k}", fontsize=7, color="red" if k == c else "black",
                         fontweight="bold" if k == c else "normal")
        right.suptitle(f"channels 0..{shown[-1]} (selected in red)", fontsize=9)
        fig.suptitle(f"{name} ({self.types[name]}), output {tuple(self.shape)}")
        return fig

    def _draw(self) -> None:
        self.picture.value = self.to_png()
