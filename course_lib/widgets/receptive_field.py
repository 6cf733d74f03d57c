"""Receptive fields (notebook 11): plain and dilated convolution stacks, depth by depth."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from torch import nn

from course_lib import viz
from course_lib.receptive_field import (
    effective_receptive_field,
    module_receptive_field,
    receptive_field_stats,
)
from course_lib.widgets.base import Explorer

__all__ = ["ReceptiveFieldExplorer"]


class ReceptiveFieldExplorer(Explorer):
    """Effective receptive fields of several convolution stacks, side by side, by depth.

    ``stacks`` maps a name to an ``nn.Sequential`` whose children are layers (e.g.
    :func:`course_lib.receptive_field.conv_stack`); the slider picks the depth ``k`` and every
    stack is cut to ``stack[:k]``. Each column shows the ERF of the centre output pixel
    (:func:`~course_lib.receptive_field.effective_receptive_field`) with the theoretical
    receptive field drawn as a square, and below it the ERF along the centre row, where
    dilation's holes ("gridding") show as gaps. The table gives the theoretical RF, the
    measured extent, the share of holes and the side holding 90% of the gradient.
    """

    def __init__(self, stacks: Any, input_size: int = 49, samples: int = 4,
                 depth: int | None = None, seed: int = 0) -> None:
        from collections.abc import Mapping

        if not isinstance(stacks, Mapping) or not stacks:
            raise ValueError("stacks must be a non-empty mapping of name -> nn.Sequential")
        for name, stack in stacks.items():
            if not isinstance(stack, nn.Sequential) or len(stack) == 0:
                raise ValueError(f"stack {name!r} must be a non-empty nn.Sequential")
        if input_size < 3 or samples < 1:
            raise ValueError(f"input_size must be >= 3 and samples >= 1, got {input_size}, "
                             f"{samples}")
        self.stacks = dict(stacks)
        self.input_size = int(input_size)
        self.samples = int(samples)
        self.seed = seed
        self.max_depth = max(len(s) for s in self.stacks.values())
        self._cache: dict[tuple[str, int], torch.Tensor] = {}
        self.depth = W.IntSlider(value=self.max_depth if depth is None else depth, min=1,
                                 max=self.max_depth, description="depth",
                                 continuous_update=False)
        self.scale = W.ToggleButtons(options=["linear", "log"], value="linear",
                                     description="colour")
        self.picture = W.Image(format="png")
        self.table = W.HTML()
        self.widget = W.VBox([W.HBox([self.depth, self.scale]), self.picture, self.table])
        self.depth.observe(self._update, names="value")
        self.scale.observe(self._update, names="value")
        self._update()

    def _layers(self, name: str, depth: int | None = None) -> nn.Sequential:
        k = self.depth.value if depth is None else int(depth)
        return self.stacks[name][: min(k, len(self.stacks[name]))]

    def erf(self, name: str, depth: int | None = None) -> torch.Tensor:
        """The ERF map [H, W] of stack ``name`` cut to ``depth`` layers (cached)."""
        layers = self._layers(name, depth)
        key = (name, len(layers))
        if key not in self._cache:
            self._cache[key] = effective_receptive_field(layers, self.input_size,
                                                         samples=self.samples, seed=self.seed)
        return self._cache[key]

    def theoretical(self, name: str, depth: int | None = None) -> int:
        """The formula's receptive field of the stack's first ``depth`` layers."""
        return module_receptive_field(self._layers(name, depth))

    def stats(self, depth: int | None = None) -> dict[str, dict[str, float]]:
        """Per stack: ``theory`` (formula), ``extent``, ``holes``, ``mass_side`` (measured)."""
        return {name: {"theory": self.theoretical(name, depth),
                       **receptive_field_stats(self.erf(name, depth))}
                for name in self.stacks}

    def table_html(self) -> str:
        """The current depth's numbers as an HTML table."""
        head = ("<tr><th style='text-align:left'>stack</th><th>theoretical RF</th>"
                "<th>measured extent</th><th>holes</th><th>90% of the gradient within</th></tr>")
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{s['theory']}</td><td>{s['extent']}</td>"
            f"<td>{s['holes']:.0%}</td><td>{s['mass_side']} px</td></tr>"
            for name, s in self.stats().items())
        return f"<div><b>depth {self.depth.value}</b></div><table>{head}{rows}</table>"

    def figure(self) -> Any:
        """ERF maps (top) and their centre rows (bottom), one column per stack."""
        from matplotlib.colors import LogNorm
        from matplotlib.patches import Rectangle

        names = list(self.stacks)
        fig = viz.CourseFigure(figsize=(2.9 * len(names) + 0.6, 5.4), layout="constrained")
        axes = fig.subplots(2, len(names), squeeze=False, height_ratios=[2.2, 1])
        all_stats = self.stats()
        for j, name in enumerate(names):
            erf = self.erf(name).numpy()
            erf = erf / erf.max()
            rf = self.theoretical(name)
            stats = all_stats[name]
            norm = LogNorm(vmin=1e-4, vmax=1.0) if self.scale.value == "log" else None
            shown = np.clip(erf, 1e-4, None) if norm is not None else erf
            ax = axes[0, j]
            im = ax.imshow(shown, cmap="magma", norm=norm, interpolation="nearest")
            centre = (erf.shape[0] // 2, erf.shape[1] // 2)
            ax.add_patch(Rectangle((centre[1] - rf / 2, centre[0] - rf / 2), rf, rf,
                                   fill=False, edgecolor="cyan", linewidth=1.2,
                                   linestyle="--"))
            ax.set_title(f"{name}\nRF {rf}, holes {stats['holes']:.0%}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            row = erf[centre[0]]
            axes[1, j].bar(np.arange(len(row)) - centre[1], row, width=0.9, color="tab:purple")
            axes[1, j].set_xlim(-(self.input_size // 2) - 0.5, self.input_size // 2 + 0.5)
            axes[1, j].set_xlabel("offset from the centre (px)")
            if j == 0:
                axes[1, j].set_ylabel("|gradient| (centre row)")
        fig.colorbar(im, ax=axes[0, -1], shrink=0.8, label="relative |gradient|")
        # two lines: with two stacks the figure is ~6 inches wide, one line was cut at both ends
        fig.suptitle(f"effective receptive field of the centre output pixel, depth "
                     f"{self.depth.value}\n(dashed: theoretical RF)", fontsize=10)
        return fig

    def _update(self, change: Any = None) -> None:
        self.picture.value = self.to_png()
        self.table.value = self.table_html()
