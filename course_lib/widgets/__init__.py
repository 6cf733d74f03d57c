"""Interactive explorers for the notebooks (ipywidgets 8), each with a static fallback.

The shared display logic and helpers live in :mod:`course_lib.widgets.base`.

Every explorer has

- ``.widget``: the ipywidgets box to interact with in JupyterLab;
- ``.show_static()``: displays the current view as a PNG picture;
- ``.to_png()``: the current view's PNG bytes (what the tests compare);

and displays itself with *both* the live widget view and a static ``image/png``, so a
notebook exported to HTML or executed under nbval still carries a picture.
Pictures are rendered to PNG bytes inside an :class:`ipywidgets.Image`, so a change of
the controls changes the ``<img>`` in the page.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from torch import nn

from course_lib import viz
from course_lib.config import IGNORE_INDEX
from course_lib.runtime import evaluating, model_device
from course_lib.widgets.base import (
    Explorer,
    class_legend,
    dataset_names_and_palette,
    in_notebook_kernel,
    predict_labels,
    sample_scores,
    split_sample,
)

__all__ = ["FeatureMapExplorer", "PredictionBrowser", "TrainingMonitor", "in_notebook_kernel"]


# --------------------------------------------------------------------------------------
# Feature maps
# --------------------------------------------------------------------------------------
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


class PredictionBrowser(Explorer):
    """Browse a model's predictions over a data set, with the sample's per-class IoU.

    A slider picks the sample; toggle buttons switch the overlay (masks drawn over the
    image) and the ground-truth / prediction / error-map panels; a table lists the IoU of
    every class present in the sample (from :mod:`course_lib.metrics`).
    """

    PANELS = ("ground truth", "prediction", "error map")

    def __init__(self, model: nn.Module, dataset: Any, num_classes: int,
                 class_names: Sequence[str] | None = None,
                 palette: str | np.ndarray | Sequence | None = None,
                 ignore_index: int = IGNORE_INDEX) -> None:
        self.model = model
        self.dataset = dataset
        self.num_classes = num_classes
        self.class_names, self.palette = dataset_names_and_palette(
            dataset, num_classes, class_names, palette)
        self.ignore_index = ignore_index
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

        self.index = W.IntSlider(value=0, min=0, max=len(dataset) - 1, description="sample",
                                 continuous_update=False)
        self.overlay = W.ToggleButton(value=False, description="overlay",
                                      tooltip="draw the masks over the image")
        self.toggles = {
            name: W.ToggleButton(value=True, description=name, tooltip=f"show the {name}")
            for name in self.PANELS
        }
        self.picture = W.Image(format="png")
        self.table = W.HTML()
        controls = W.HBox([self.index, self.overlay, *self.toggles.values()])
        self.widget = W.VBox([controls, self.picture, self.table])
        for control in (self.index, self.overlay, *self.toggles.values()):
            control.observe(self._update, names="value")
        self._update()

    def sample(self, index: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(image [C,H,W], target [H,W], prediction [H,W])`` of a sample (cached)."""
        i = self.index.value if index is None else int(index)
        if i not in self._cache:
            image, target = split_sample(self.dataset[i])
            pred = predict_labels(self.model, image, tuple(target.shape[-2:]))
            self._cache[i] = (image, target, pred)
        return self._cache[i]

    def iou(self, index: int | None = None) -> dict[str, Any]:
        """Per-class IoU (NaN for classes absent from target and prediction), mIoU, accuracy."""
        _, target, pred = self.sample(index)
        return sample_scores(pred, target, self.num_classes, self.ignore_index)

    def iou_html(self, index: int | None = None) -> str:
        """The sample's per-class IoU as an HTML table."""
        result = self.iou(index)
        rows = []
        for k, value in enumerate(result["iou"].tolist()):
            if math.isnan(value):
                continue
            color = "#" + "".join(f"{int(v):02x}" for v in self.palette[k])
            rows.append(
                f"<tr><td><span style='background:{color};padding:0 8px;"
                f"border:1px solid #444'>&nbsp;</span> {html.escape(self.class_names[k])}</td>"
                f"<td style='text-align:right'>{value:.3f}</td></tr>"
            )
        i = self.index.value if index is None else int(index)
        return (
            f"<div><b>sample {i}</b>: mIoU {result['miou']:.3f}, pixel accuracy "
            f"{result['pixel_accuracy']:.3f}</div><table><tr><th style='text-align:left'>class"
            "</th><th>IoU</th></tr>" + "".join(rows) + "</table>"
        )

    def figure(self) -> Any:
        """The current view as a Figure."""
        image, target, pred = self.sample()
        rgb = viz.to_numpy_image(image)
        shown = [name for name in self.PANELS if self.toggles[name].value]
        fig = viz.CourseFigure(figsize=(2.9 * (len(shown) + 1) + 1.6, 3.2), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(shown) + 1, squeeze=False)).ravel()
        axes[0].imshow(rgb)
        axes[0].set_title(f"image {self.index.value}")
        use_overlay = self.overlay.value

        def paint(mask: torch.Tensor) -> np.ndarray:
            if use_overlay:
                return viz.overlay(rgb, mask, self.palette, 0.55, self.ignore_index)
            return viz.colorize(mask, self.palette, self.ignore_index)

        valid = target != self.ignore_index
        for ax, name in zip(axes[1:], shown, strict=True):
            if name == "ground truth":
                ax.imshow(paint(target), interpolation="nearest")
            elif name == "prediction":
                ax.imshow(paint(pred), interpolation="nearest")
            else:
                wrong = ((pred != target) & valid).numpy()
                ax.imshow(viz.error_map(rgb, wrong, valid.numpy()), interpolation="nearest")
                ax.set_xlabel(f"{wrong.sum()} wrong pixels (black)")
            ax.set_title(name + (" (overlay)" if use_overlay and name != "error map" else ""))
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        class_legend(fig, [target[valid], pred], self.num_classes, self.palette,
                      self.class_names)
        return fig

    def _update(self, change: Any = None) -> None:
        self.picture.value = self.to_png()
        self.table.value = self.iou_html()


# --------------------------------------------------------------------------------------
# Training monitor
# --------------------------------------------------------------------------------------
class TrainingMonitor(Explorer):
    """Live training curves: pass it to ``fit(..., monitor=TrainingMonitor())``.

    In a Jupyter kernel it displays itself on the first ``update`` and redraws the curves
    (widget view + static PNG) after every epoch; elsewhere it prints one line per epoch.
    """

    def __init__(self, title: str | None = None, live: bool | None = None) -> None:
        self.title = title
        self.live = in_notebook_kernel() if live is None else live
        self.history: dict[str, list] = {}
        self.picture = W.Image(format="png")
        self.status = W.HTML("waiting for the first epoch…")
        self.widget = W.VBox([self.status, self.picture])
        self._handle: Any = None
        self._shown = False  # displayed by the notebook itself (cell value)
        self._printed = 0

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        self._shown = True
        return super()._repr_mimebundle_(include=include, exclude=exclude)

    def update(self, history: Any) -> None:
        """Record the latest history (a ``History`` or its ``.as_dict()``) and redraw."""
        self.history = viz._history_dict(history)
        epochs = len(self.history.get("train_loss", []))
        self.status.value = self._summary(epochs - 1) if epochs else "no epoch yet"
        if self.live:
            self.picture.value = self.to_png()
            from IPython.display import display

            if self._handle is not None:
                self._handle.update(self)  # refreshes the static PNG kept in the notebook
            elif not self._shown:
                self._handle = display(self, display_id=True)
        else:
            for i in range(self._printed, epochs):
                print(self._summary(i, plain=True), flush=True)
            self._printed = epochs

    def _summary(self, i: int, plain: bool = False) -> str:
        parts = []
        for key, label in (("train_loss", "train loss"), ("val_loss", "val loss"),
                           ("val_miou", "val mIoU"), ("val_pixel_accuracy", "val PA"),
                           ("lr", "lr")):
            values = self.history.get(key, [])
            if i < len(values) and values[i] is not None:
                fmt = ".2e" if key == "lr" else ".4f"
                parts.append(f"{label} {float(values[i]):{fmt}}")
        epoch_list = self.history.get("epoch", [])
        epoch = epoch_list[i] if i < len(epoch_list) else i + 1
        text = f"epoch {epoch}: " + ", ".join(parts)
        return text if plain else f"<b>{html.escape(text)}</b>"

    def figure(self) -> Any:
        """The curves so far."""
        return viz.plot_history(self.history or {"epoch": []}, title=self.title)


# --------------------------------------------------------------------------------------
# Receptive fields (notebook 11): plain vs dilated stacks, depth by depth
# --------------------------------------------------------------------------------------
__all__ += ["ReceptiveFieldExplorer"]


class ReceptiveFieldExplorer(Explorer):
    """Effective receptive fields of several convolution stacks, side by side, by depth.

    ``stacks`` maps a name to an ``nn.Sequential`` whose children are layers (e.g.
    :func:`course_lib.models.deeplab.conv_stack`); the slider picks the depth ``k`` and every
    stack is cut to ``stack[:k]``. Each column shows the ERF of the centre output pixel
    (:func:`~course_lib.models.deeplab.effective_receptive_field`) with the theoretical
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
        from course_lib.models.deeplab import effective_receptive_field

        layers = self._layers(name, depth)
        key = (name, len(layers))
        if key not in self._cache:
            self._cache[key] = effective_receptive_field(layers, self.input_size,
                                                         samples=self.samples, seed=self.seed)
        return self._cache[key]

    def theoretical(self, name: str, depth: int | None = None) -> int:
        """The formula's receptive field of the stack's first ``depth`` layers."""
        from course_lib.models.deeplab import dilated_receptive_field

        convs = [m for m in self._layers(name, depth).modules() if isinstance(m, nn.Conv2d)]
        return dilated_receptive_field(
            [(m.kernel_size[0], m.stride[0], m.dilation[0]) for m in convs])

    def stats(self, depth: int | None = None) -> dict[str, dict[str, float]]:
        """Per stack: ``theory`` (formula), ``extent``, ``holes``, ``mass_side`` (measured)."""
        from course_lib.models.deeplab import receptive_field_stats

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
        fig.suptitle(f"effective receptive field of the centre output pixel, depth "
                     f"{self.depth.value} (dashed: theoretical RF)")
        return fig

    def _update(self, change: Any = None) -> None:
        self.picture.value = self.to_png()
        self.table.value = self.table_html()


# --------------------------------------------------------------------------------------
# Comparing models (notebook 05: FCN-32s / 16s / 8s side by side)
# --------------------------------------------------------------------------------------
class ModelComparer(Explorer):
    """Several models' predictions on the same sample, side by side, each with its mIoU.

    ``models`` maps a display name to a model (logits ``[N,K,H,W]``, or a dict with "out").
    A slider picks the sample; the picture shows the image, the target and one prediction
    per model, titled with that model's mIoU on this sample (classes present in the target
    or the prediction, as in :class:`PredictionBrowser`); the table repeats the numbers and
    marks the best model.
    """

    def __init__(self, models: dict[str, nn.Module], dataset: Any, num_classes: int,
                 class_names: Sequence[str] | None = None,
                 palette: str | np.ndarray | Sequence | None = None,
                 ignore_index: int = IGNORE_INDEX) -> None:
        if not isinstance(models, dict) or not models:
            raise ValueError("models must be a non-empty dict {name: nn.Module}")
        for name, model in models.items():
            if not isinstance(model, nn.Module):
                raise ValueError(f"models[{name!r}] must be a torch.nn.Module, "
                                 f"got {type(model).__name__}")
        self.models = dict(models)
        self.dataset = dataset
        self.num_classes = num_classes
        self.class_names, self.palette = dataset_names_and_palette(
            dataset, num_classes, class_names, palette)
        self.ignore_index = ignore_index
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]] = {}

        self.index = W.IntSlider(value=0, min=0, max=len(dataset) - 1, description="sample",
                                 continuous_update=False)
        self.picture = W.Image(format="png")
        self.table = W.HTML()
        self.widget = W.VBox([self.index, self.picture, self.table])
        self.index.observe(self._update, names="value")
        self._update()

    def sample(self, index: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``(image [C,H,W], target [H,W], {name: prediction [H,W]})`` of a sample (cached)."""
        i = self.index.value if index is None else int(index)
        if i not in self._cache:
            image, target = split_sample(self.dataset[i])
            size = tuple(target.shape[-2:])
            preds = {name: predict_labels(m, image, size) for name, m in self.models.items()}
            self._cache[i] = (image, target, preds)
        return self._cache[i]

    def scores(self, index: int | None = None) -> dict[str, float]:
        """Each model's mIoU on one sample: ``{name: miou}``."""
        _, target, preds = self.sample(index)
        return {name: sample_scores(pred, target, self.num_classes, self.ignore_index)["miou"]
                for name, pred in preds.items()}

    def scores_html(self, index: int | None = None) -> str:
        """The sample's per-model mIoU as an HTML table (best in bold)."""
        scores = self.scores(index)
        finite = {k: v for k, v in scores.items() if not math.isnan(v)}
        best = max(finite, key=finite.get) if finite else None
        rows = "".join(
            f"<tr><td>{'<b>' if name == best else ''}{html.escape(name)}"
            f"{'</b>' if name == best else ''}</td>"
            f"<td style='text-align:right'>{value:.3f}</td></tr>"
            for name, value in scores.items()
        )
        i = self.index.value if index is None else int(index)
        return (f"<div><b>sample {i}</b>: mIoU of each model on this image</div><table><tr>"
                "<th style='text-align:left'>model</th><th>mIoU</th></tr>" + rows + "</table>")

    def figure(self) -> Any:
        """Image, target and every model's prediction for the selected sample."""
        image, target, preds = self.sample()
        scores = self.scores()
        n = 2 + len(preds)
        fig = viz.CourseFigure(figsize=(2.5 * n + 1.4, 3.0), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)).ravel()
        axes[0].imshow(viz.to_numpy_image(image))
        axes[0].set_title(f"image {self.index.value}")
        axes[1].imshow(viz.colorize(target, self.palette, self.ignore_index),
                       interpolation="nearest")
        axes[1].set_title("ground truth")
        for ax, (name, pred) in zip(axes[2:], preds.items(), strict=True):
            ax.imshow(viz.colorize(pred, self.palette, self.ignore_index),
                      interpolation="nearest")
            ax.set_title(f"{name}\nmIoU {scores[name]:.3f}", fontsize=10)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        valid = target != self.ignore_index
        class_legend(fig, [target[valid], *preds.values()], self.num_classes, self.palette,
                      self.class_names)
        return fig

    def _update(self, change: Any = None) -> None:
        self.picture.value = self.to_png()
        self.table.value = self.scores_html()


# --------------------------------------------------------------------------------------
# Dense CRF, iteration by iteration (notebook 06)
# --------------------------------------------------------------------------------------
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


__all__ += ["ModelComparer", "CRFIterationViewer"]


# --------------------------------------------------------------------------------------
# 3D slices (notebook 08): a volume, its ground truth and a prediction, slice by slice
# --------------------------------------------------------------------------------------
__all__ += ["SliceViewer"]


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
