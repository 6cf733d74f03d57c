"""Predictions over a data set: :class:`PredictionBrowser` (one model or a choice of models,
per-class IoU) and
:class:`ModelComparer` (several models side by side, notebook 05), and the helpers they share
with :class:`~course_lib.widgets.crf.CRFIterationViewer`: a sample's labels and scores."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from torch import nn

from course_lib import viz
from course_lib.config import IGNORE_INDEX
from course_lib.losses import split_output
from course_lib.runtime import evaluating, model_device
from course_lib.widgets.base import Explorer, class_legend

__all__ = ["ModelComparer", "PredictionBrowser", "dataset_names_and_palette", "predict_labels",
           "sample_scores", "split_sample"]


def dataset_names_and_palette(dataset: Any, num_classes: int,
                               class_names: Sequence[str] | None,
                               palette: str | np.ndarray | Sequence | None
                               ) -> tuple[list[str], np.ndarray]:
    """Check a browsable data set; class names and palette from the arguments, else from
    the data set's attributes, else generic ones."""
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    names = list(class_names if class_names is not None
                 else getattr(dataset, "class_names", None)
                 or [str(k) for k in range(num_classes)])
    if palette is None:
        palette = getattr(dataset, "palette", None)
    return names, viz.get_palette(palette, num_classes)


def predict_labels(model: nn.Module, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One image's predicted labels [H, W] (eval mode, no grad, scores resized to ``size``)."""
    with evaluating(model):
        out, _ = split_output(model(image[None].to(model_device(model))))
    if out.dim() == 3:  # already labels [1, H, W]
        return out[0].long().cpu()
    if out.shape[-2:] != tuple(size):
        out = torch.nn.functional.interpolate(out.float(), size=size, mode="bilinear",
                                              align_corners=False)
    return out.argmax(1)[0].cpu()


def sample_scores(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                   ignore_index: int) -> dict[str, Any]:
    """One image's per-class IoU (float64, NaN for classes absent from target and
    prediction), its mIoU over the classes present, and its pixel accuracy."""
    from course_lib import metrics

    cm = metrics.confusion_matrix(pred[None], target[None], num_classes,
                                  ignore_index=ignore_index)
    iou = torch.as_tensor(metrics.iou_per_class(cm), dtype=torch.float64)
    present = ~torch.isnan(iou)
    total = cm.sum().item()
    return {
        "iou": iou,
        "miou": float(iou[present].mean()) if present.any() else float("nan"),
        "pixel_accuracy": float(cm.diag().sum().item() / total) if total else float("nan"),
    }


def split_sample(sample: Any) -> tuple[torch.Tensor, torch.Tensor]:
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


def _state_toggle(name: str, value: bool, tooltip: str) -> W.ToggleButton:
    """A toggle button whose state reads at a glance: a ticked box, "on" and a coloured
    button when on; an empty box, "off" and a plain button when off (a plain ToggleButton
    only changes its shade slightly, which students could not see)."""
    button = W.ToggleButton(value=value, tooltip=tooltip, layout=W.Layout(width="auto"))

    def show_state(change: Any = None) -> None:
        on = button.value
        button.description = f"{name}: {'on' if on else 'off'}"
        button.icon = "check-square-o" if on else "square-o"
        button.button_style = "info" if on else ""

    show_state()
    button.observe(show_state, names="value")
    return button


def _named_models(model: nn.Module | Mapping[str, nn.Module]) -> dict[str, nn.Module]:
    """``{name: model}`` from one model (named "model") or a dict of them, checked."""
    models = dict(model) if isinstance(model, Mapping) else {"model": model}
    if not models:
        raise ValueError("no model to browse: the dict of models is empty")
    for name, net in models.items():
        if not isinstance(net, nn.Module):
            raise TypeError(f"model {name!r} is a {type(net).__name__}, not an nn.Module")
    return models


class PredictionBrowser(Explorer):
    """Browse a model's predictions over a data set, with the sample's per-class IoU.

    A slider picks the sample; toggle buttons switch the overlay (masks drawn over the
    image) and the ground-truth / prediction / error-map panels (each button says "on" or
    "off", with a ticked or empty box, and is coloured while on); a table lists the IoU of
    every class present in the sample (from :mod:`course_lib.metrics`).

    ``model`` is one model or a ``{name: model}`` dict: with several, buttons above choose
    the one shown (``chosen`` first), and a model predicts a sample only when it is shown.
    """

    PANELS = ("ground truth", "prediction", "error map")

    def __init__(self, model: nn.Module | Mapping[str, nn.Module], dataset: Any,
                 num_classes: int, class_names: Sequence[str] | None = None,
                 palette: str | np.ndarray | Sequence | None = None,
                 ignore_index: int = IGNORE_INDEX, chosen: str | None = None) -> None:
        self.models = _named_models(model)
        if chosen is not None and chosen not in self.models:
            raise ValueError(f"chosen={chosen!r} is none of the models {list(self.models)}")
        self.chooser = W.ToggleButtons(options=list(self.models),
                                       value=chosen or next(iter(self.models)),
                                       description="model")
        self.dataset = dataset
        self.num_classes = num_classes
        self.class_names, self.palette = dataset_names_and_palette(
            dataset, num_classes, class_names, palette)
        self.ignore_index = ignore_index
        self._samples: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # read once
        self._predictions: dict[tuple[str, int], torch.Tensor] = {}  # per model and sample

        self.index = W.IntSlider(value=0, min=0, max=len(dataset) - 1, description="sample",
                                 continuous_update=False)
        self.overlay = _state_toggle("overlay", False, "draw the masks over the image")
        self.toggles = {name: _state_toggle(name, True, f"show the {name} panel")
                        for name in self.PANELS}
        self.picture = W.Image(format="png")
        self.table = W.HTML()
        controls = W.HBox([self.index, self.overlay, *self.toggles.values()],
                          layout=W.Layout(flex_flow="row wrap"))
        choice = [self.chooser] if len(self.models) > 1 else []
        self.widget = W.VBox([*choice, controls, self.picture, self.table])
        for control in (self.chooser, self.index, self.overlay, *self.toggles.values()):
            control.observe(self._update, names="value")
        self._update()

    @property
    def model(self) -> nn.Module:
        """The model shown (the chosen one, when there are several)."""
        return self.models[self.chooser.value]

    def sample(self, index: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(image [C,H,W], target [H,W], prediction [H,W])`` of a sample, predicted by the
        model shown (cached per model)."""
        i = self.index.value if index is None else int(index)
        if i not in self._samples:
            self._samples[i] = split_sample(self.dataset[i])
        image, target = self._samples[i]
        key = (self.chooser.value, i)
        if key not in self._predictions:
            self._predictions[key] = predict_labels(self.model, image, tuple(target.shape[-2:]))
        return image, target, self._predictions[key]

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
        if len(self.models) > 1:
            fig.suptitle(self.chooser.value)
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
