"""Interactive explorers for the notebooks (ipywidgets 8), each with a static fallback.

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

import base64
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

__all__ = ["FeatureMapExplorer", "PredictionBrowser", "TrainingMonitor", "in_notebook_kernel"]


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (a front end that may render widgets is attached)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipywidgets
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class _Explorer:
    """Shared display logic: widget view + static PNG in one mime bundle."""

    widget: W.Widget

    def to_png(self) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(self.to_png()).decode("ascii")
        bundle.setdefault("text/plain", f"<{type(self).__name__}>")
        return bundle

    def show_static(self) -> None:
        """Display the current view as a plain PNG picture (no widget needed)."""
        from IPython.display import Image, display

        display(Image(data=self.to_png(), format="png"))


def _render(fig: Any) -> bytes:
    return viz.figure_to_png(fig, dpi=80)


# --------------------------------------------------------------------------------------
# Feature maps
# --------------------------------------------------------------------------------------
class FeatureMapExplorer(_Explorer):
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
            param = next(model.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
            was_training = model.training
            model.eval()
            with torch.no_grad():
                model(batch.to(device).float())
            model.train(was_training)
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

    def to_png(self) -> bytes:
        return _render(self.figure())

    def _draw(self) -> None:
        self.picture.value = self.to_png()


# --------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------
def _split_sample(sample: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(sample, dict):
        if "image" not in sample or "mask" not in sample:
            raise ValueError(f"a sample dict needs 'image' and 'mask', got keys {list(sample)}")
        image, mask = sample["image"], sample["mask"]
    elif isinstance(sample, tuple | list) and len(sample) >= 2:
        image, mask = sample[0], sample[1]
    else:
        raise ValueError("a dataset item must be (image, mask) or a dict with image and mask")
    image = torch.as_tensor(image)
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    return image.float(), torch.as_tensor(mask).long()


class PredictionBrowser(_Explorer):
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
        if len(dataset) == 0:
            raise ValueError("the dataset is empty")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.model = model
        self.dataset = dataset
        self.num_classes = num_classes
        self.class_names = list(class_names if class_names is not None
                                else getattr(dataset, "class_names", None)
                                or [str(k) for k in range(num_classes)])
        if palette is None:
            palette = getattr(dataset, "palette", None)
        self.palette = viz.get_palette(palette, num_classes)
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
            image, target = _split_sample(self.dataset[i])
            param = next(self.model.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
            was_training = self.model.training
            self.model.eval()
            with torch.no_grad():
                out = self.model(image[None].to(device))
            self.model.train(was_training)
            if isinstance(out, dict):
                out = out["out"]
            if out.shape[-2:] != target.shape[-2:]:
                out = torch.nn.functional.interpolate(out.float(), size=target.shape[-2:],
                                                      mode="bilinear", align_corners=False)
            pred = out.argmax(1)[0].cpu() if out.dim() == 4 else out[0].long().cpu()
            self._cache[i] = (image, target, pred)
        return self._cache[i]

    def iou(self, index: int | None = None) -> dict[str, Any]:
        """Per-class IoU (NaN for classes absent from target and prediction), mIoU, accuracy."""
        from course_lib import metrics

        _, target, pred = self.sample(index)
        cm = metrics.confusion_matrix(pred[None], target[None], self.num_classes,
                                      ignore_index=self.ignore_index)
        iou = metrics.iou_per_class(cm)
        iou = torch.as_tensor(iou, dtype=torch.float64)
        present = ~torch.isnan(iou)
        total = cm.sum().item()
        return {
            "iou": iou,
            "miou": float(iou[present].mean()) if present.any() else float("nan"),
            "pixel_accuracy": float(cm.diag().sum().item() / total) if total else float("nan"),
        }

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
        seen = torch.unique(torch.cat([target[valid], pred.flatten()])).tolist()
        handles = viz._legend_handles(np.array([k for k in seen if k < self.num_classes]),
                                      self.palette, self.class_names)
        if handles:
            fig.legend(handles=handles, loc="outside right upper", fontsize=7, title="classes")
        return fig

    def to_png(self) -> bytes:
        return _render(self.figure())

    def _update(self, change: Any = None) -> None:
        self.picture.value = self.to_png()
        self.table.value = self.iou_html()


# --------------------------------------------------------------------------------------
# Training monitor
# --------------------------------------------------------------------------------------
class TrainingMonitor(_Explorer):
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

    def to_png(self) -> bytes:
        return _render(self.figure())
