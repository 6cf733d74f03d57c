"""What every explorer shares: the widget + static-PNG display, and the prediction helpers.

Every explorer has

- ``.widget``: the ipywidgets box to interact with in JupyterLab;
- ``.show_static()``: displays the current view as a PNG picture;
- ``.to_png()``: the current view's PNG bytes (what the tests compare);

and displays itself with *both* the live widget view and a static ``image/png``, so a
notebook exported to HTML or executed under nbval still carries a picture.
Pictures are rendered to PNG bytes inside an :class:`ipywidgets.Image`, so a change of
the controls changes the ``<img>`` in the page. A new explorer subclasses
:class:`Explorer` and implements ``figure()``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from torch import nn

from course_lib import viz
from course_lib.runtime import evaluating, model_device


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (a front end that may render widgets is attached)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipywidgets
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class Explorer:
    """Shared display logic: widget view + static PNG in one mime bundle."""

    widget: W.Widget

    def figure(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_png(self) -> bytes:
        """The current view as PNG bytes."""
        return render(self.figure())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(self.to_png()).decode("ascii")
        bundle.setdefault("text/plain", f"<{type(self).__name__}>")
        return bundle

    def show_static(self) -> None:
        """Display the current view as a plain PNG picture (no widget needed)."""
        from IPython.display import Image, display

        display(Image(data=self.to_png(), format="png"))


def render(fig: Any) -> bytes:
    return viz.figure_to_png(fig, dpi=80)


# --------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------
def class_legend(fig: Any, label_maps: Sequence[torch.Tensor], num_classes: int,
                  palette: np.ndarray, class_names: Sequence[str] | None) -> None:
    """A legend of the classes that occur in any of ``label_maps`` (labels >= K left out)."""
    seen = torch.unique(torch.cat([m.flatten() for m in label_maps])).tolist()
    handles = viz._legend_handles(np.array([k for k in seen if 0 <= k < num_classes], dtype=int),
                                  palette, class_names)
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=7, title="classes")


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
        out = model(image[None].to(model_device(model)))
    if isinstance(out, dict):
        out = out["out"]
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




__all__ = ["Explorer", "class_legend", "dataset_names_and_palette", "in_notebook_kernel",
           "predict_labels", "render", "sample_scores", "split_sample"]
