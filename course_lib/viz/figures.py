"""The course's figures: segmentation grids, training curves, confusion matrices, instances
and metric tables. Each returns a :class:`CourseFigure` (object-oriented API, no pyplot)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import TABLEAU_COLORS, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from course_lib.config import IGNORE_INDEX

from .colours import (
    ERROR_COLOR,
    as_labels,
    as_numpy,
    colorize,
    error_map,
    get_palette,
    legend_handles,
    to_numpy_image,
)


class CourseFigure(Figure):
    """A Figure that shows itself as PNG in notebooks even when no pyplot backend is active."""

    def _repr_png_(self) -> bytes:
        return figure_to_png(self)


def _new_figure(figsize: tuple[float, float]) -> CourseFigure:
    return CourseFigure(figsize=figsize, layout="constrained")


def figure_to_png(fig: Figure, dpi: int = 90) -> bytes:
    """Render a figure to PNG bytes (what widgets and tests compare)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _batch(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, torch.Tensor | np.ndarray):
        return list(x)
    return list(x)


def plot_segmentation_grid(images: Any, targets: Any, preds: Any = None,
                           class_names: Sequence[str] | None = None,
                           palette: str | np.ndarray | Sequence | None = None,
                           show_error: bool = True, title: str | None = None,
                           max_rows: int = 8, ignore_index: int = IGNORE_INDEX) -> Figure:
    """One row per sample: image | ground truth | prediction | error map.

    ``images`` ``[N,C,H,W]``, ``targets`` and ``preds`` ``[N,H,W]`` (tensors, arrays or lists).
    The error map shows wrong pixels in black over a lightened image (void pixels grey).
    """
    image_list, target_list, pred_list = _batch(images), _batch(targets), _batch(preds)
    if not image_list:
        raise ValueError("plot_segmentation_grid needs at least one image")
    if len(target_list) != len(image_list):
        raise ValueError(f"got {len(image_list)} images but {len(target_list)} targets")
    if pred_list and len(pred_list) != len(image_list):
        raise ValueError(f"got {len(image_list)} images but {len(pred_list)} predictions")
    rows = min(len(image_list), max_rows)
    columns = ["image", "ground truth"]
    if pred_list:
        columns.append("prediction")
        if show_error:
            columns.append("error map")
    target_arrays = [as_labels(t) for t in target_list[:rows]]
    pred_arrays = [as_labels(p) for p in pred_list[:rows]]
    seen = np.unique(np.concatenate([a.ravel() for a in target_arrays + pred_arrays]))
    seen = seen[seen != ignore_index]
    colors = get_palette(palette, int(seen.max()) + 1 if seen.size else 0)

    fig = _new_figure((2.3 * len(columns) + 1.8, 2.3 * rows + 0.4))
    axes = np.atleast_2d(fig.subplots(rows, len(columns), squeeze=False))
    for r in range(rows):
        rgb = to_numpy_image(image_list[r])
        target = target_arrays[r]
        if target.shape != rgb.shape[:2]:
            raise ValueError(f"sample {r}: image {rgb.shape[:2]} and target {target.shape} differ")
        panels = [rgb, colorize(target, colors, ignore_index)]
        if pred_list:
            pred = pred_arrays[r]
            if pred.shape != target.shape:
                raise ValueError(f"sample {r}: prediction {pred.shape} vs target {target.shape}")
            panels.append(colorize(pred, colors, ignore_index))
            if show_error:
                valid = target != ignore_index
                wrong = (pred != target) & valid
                accuracy = 1.0 - wrong.sum() / max(valid.sum(), 1)
                panels.append(error_map(rgb, wrong, valid))
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c])
            if columns[c] == "error map":
                ax.set_xlabel(f"pixel accuracy {accuracy:.1%}")
        axes[r, 0].set_ylabel(f"sample {r}")
    handles = legend_handles(seen, colors, class_names)
    if show_error and pred_list:
        handles.append(Patch(facecolor=ERROR_COLOR / 255.0, label="wrong pixel"))
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="classes")
    if title:
        fig.suptitle(title)
    return fig


def plot_model_predictions(images: Any, targets: Any, preds: Mapping[str, Any],
                           indices: Sequence[int], class_names: Sequence[str] | None = None,
                           palette: str | np.ndarray | Sequence | None = None,
                           row_labels: Sequence[str] | None = None, title: str | None = None,
                           ignore_index: int = IGNORE_INDEX) -> Figure:
    """Several models side by side: one row per sample in ``indices``, columns image | ground
    truth | one prediction per model (``preds``: model name -> ``[N, H, W]``), one legend."""
    image_list, target_list = _batch(images), _batch(targets)
    if len(target_list) != len(image_list):
        raise ValueError(f"got {len(image_list)} images but {len(target_list)} targets")
    for name, pred in preds.items():
        if len(_batch(pred)) != len(image_list):
            raise ValueError(f"model {name!r}: {len(_batch(pred))} predictions for "
                             f"{len(image_list)} images")
    if not indices or not all(0 <= i < len(image_list) for i in indices):
        raise ValueError(f"indices must be non-empty and in [0, {len(image_list)}), got "
                         f"{list(indices)}")
    if row_labels is not None and len(row_labels) != len(indices):
        raise ValueError(f"{len(row_labels)} row labels for {len(indices)} rows")
    columns = ["image", "ground truth", *preds]
    rows = [[as_labels(target_list[i])] + [as_labels(_batch(p)[i]) for p in preds.values()]
            for i in indices]
    seen = np.unique(np.concatenate([m.ravel() for row in rows for m in row]))
    seen = seen[seen != ignore_index]
    colors = get_palette(palette, int(seen.max()) + 1 if seen.size else 0)
    fig = _new_figure((2.3 * len(columns) + 1.8, 2.3 * len(indices) + 0.4))
    axes = fig.subplots(len(indices), len(columns), squeeze=False)
    for r, (i, masks) in enumerate(zip(indices, rows, strict=True)):
        panels = [to_numpy_image(image_list[i])] + [colorize(m, colors, ignore_index)
                                                     for m in masks]
        for c, panel in enumerate(panels):
            axes[r, c].imshow(panel, interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(columns[c], fontsize=9)
        axes[r, 0].set_ylabel(row_labels[r] if row_labels is not None else f"sample {i}")
    handles = legend_handles(seen, colors, class_names)
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="classes")
    if title:
        fig.suptitle(title)
    return fig


def history_dict(history: Any) -> dict[str, list]:
    """A training history (``History``, its ``.as_dict()`` or alike) as lists by name."""
    if isinstance(history, Mapping):
        data = dict(history)
    elif hasattr(history, "as_dict"):
        data = dict(history.as_dict())
    else:
        keys = ("epoch", "train_loss", "val_loss", "val_miou", "val_pixel_accuracy", "lr")
        data = {k: getattr(history, k) for k in keys if hasattr(history, k)}
    if not data:
        raise ValueError("history has none of epoch/train_loss/val_loss/val_miou/lr")
    return {k: list(v) for k, v in data.items() if isinstance(v, list | tuple)}


def _series(data: dict[str, list], key: str) -> tuple[list, list]:
    values = [v for v in data.get(key, []) if v is not None]
    epochs = data.get("epoch") or list(range(1, len(values) + 1))
    if len(epochs) != len(values):  # e.g. validation every k epochs
        epochs = list(range(1, len(values) + 1))
    return list(epochs), [float(v) for v in values]


def plot_history(history: Any, title: str | None = None) -> Figure:
    """Training curves from :class:`course_lib.train.History` (or its ``.as_dict()``).

    Panels: losses (train and validation), validation mIoU and pixel accuracy, learning rate.
    """
    data = history_dict(history)
    fig = _new_figure((12, 3.4))
    ax_loss, ax_metric, ax_lr = fig.subplots(1, 3)
    for key, label, style in (("train_loss", "train", "-o"), ("val_loss", "validation", "-s")):
        x, y = _series(data, key)
        if y:
            ax_loss.plot(x, y, style, label=label, markersize=3)
    ax_loss.set(title="loss", xlabel="epoch", ylabel="loss")
    for key, label in (("val_miou", "val mIoU"), ("val_pixel_accuracy", "val pixel accuracy")):
        x, y = _series(data, key)
        if y:
            ax_metric.plot(x, y, "-o", label=label, markersize=3)
    ax_metric.set(title="validation metrics", xlabel="epoch", ylabel="score", ylim=(0, 1.02))
    x, y = _series(data, "lr")
    if y:
        ax_lr.plot(x, y, "-", color="tab:purple", label="learning rate")
        if min(y) > 0 and max(y) / min(y) > 20:
            ax_lr.set_yscale("log")
    ax_lr.set(title="learning rate", xlabel="epoch", ylabel="lr")
    for ax in (ax_loss, ax_metric, ax_lr):
        # Epochs are whole numbers: no '1.5' ticks on a short run (min_n_ticks=1 keeps a
        # single tick '1' after one epoch instead of falling back to fractional ones).
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes,
                    color="grey")
    if title:
        fig.suptitle(title)
    return fig


def running_mean(values: Sequence[float], window: int) -> np.ndarray:
    """The mean of each ``window`` consecutive values (``len - window + 1`` of them; the
    window shrinks to the length of a short series)."""
    v = torch.tensor([float(x) for x in values], dtype=torch.float32)
    if len(v) == 0:
        raise ValueError("running_mean of an empty series")
    window = max(1, min(int(window), len(v)))
    return torch.nn.functional.avg_pool1d(v[None, None], window, 1)[0, 0].numpy()


def plot_loss_terms(history: Mapping[str, Sequence[float]], title: str, total: str = "loss",
                    window: int | None = None) -> Figure:
    """Per-step loss terms (a detector's, say) as running means on a log scale, the ``total``
    drawn thicker. ``window`` defaults to a fifth of the steps, at most 10."""
    if not history:
        raise ValueError("plot_loss_terms: the history holds no loss term")
    steps = min(len(v) for v in history.values())
    window = max(1, min(10, steps // 5)) if window is None else window
    fig = _new_figure((8, 3.2))
    ax = fig.subplots()
    for name, values in history.items():
        ax.plot(running_mean(values, window), label=name, linewidth=2 if name == total else 1)
    ax.set(xlabel="step", ylabel=f"loss (moving average of {window})", yscale="log", title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_confusion_matrix(cm: Any, class_names: Sequence[str] | None = None,
                          normalize: bool = True, title: str | None = None) -> Figure:
    """Heat map of a confusion matrix (rows = true class, columns = predicted class).

    ``normalize=True`` divides each row by its total (the per-class recall is the diagonal).
    """
    matrix = as_numpy(cm).astype(np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix is square [K, K], got {tuple(matrix.shape)}")
    k = matrix.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{k} classes in the matrix but {len(names)} class names")
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    side = max(4.0, 0.45 * k + 2.5)
    fig = _new_figure((side + 1.2, side))
    ax = fig.subplots()
    vmax = 1.0 if normalize else max(matrix.max(), 1.0)
    im = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(im, ax=ax, label="fraction of the true class" if normalize else "pixels")
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 16:
        for i in range(k):
            for j in range(k):
                value = matrix[i, j]
                text = f"{value:.2f}" if normalize else f"{int(value)}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if value > 0.6 * vmax else "black")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize
                           else "confusion matrix (pixels)"))
    return fig


def plot_instances(image: Any, masks: Any, boxes: Any = None, labels: Any = None,
                   class_names: Sequence[str] | None = None, scores: Any = None,
                   title: str | None = None) -> Figure:
    """An image with each instance's outline (mask contour), box and label.

    ``masks`` ``[M,H,W]`` (bool or probabilities, thresholded at 0.5); ``boxes`` ``[M,4]``
    XYXY; ``labels`` ``[M]`` class indices (named by ``class_names``); ``scores`` ``[M]``.
    """
    rgb = to_numpy_image(image)
    mask_array = as_numpy(masks).astype(np.float32)
    if mask_array.ndim == 2:
        mask_array = mask_array[None]
    if mask_array.ndim != 3 or (len(mask_array) and mask_array.shape[1:] != rgb.shape[:2]):
        raise ValueError(
            f"masks must be [M,H,W] with H,W = {rgb.shape[:2]}, got {tuple(mask_array.shape)}"
        )
    m = len(mask_array)
    box_array = as_numpy(boxes).reshape(-1, 4) if boxes is not None else None
    label_array = as_numpy(labels).reshape(-1) if labels is not None else None
    score_array = as_numpy(scores).reshape(-1) if scores is not None else None
    for name, arr in (("boxes", box_array), ("labels", label_array), ("scores", score_array)):
        if arr is not None and len(arr) != m:
            raise ValueError(f"{m} masks but {len(arr)} {name}")
    fig = _new_figure((7.5, 5.0 * rgb.shape[0] / rgb.shape[1] + 0.8))
    ax = fig.subplots()
    ax.imshow(rgb, interpolation="nearest")
    cycle = np.array([to_rgb(c) for c in TABLEAU_COLORS.values()])
    colors = cycle[np.arange(m) % len(cycle)]
    handles = []
    for i in range(m):
        color = colors[i]
        fill = np.zeros((*rgb.shape[:2], 4), dtype=np.float32)
        inside = mask_array[i] > 0.5
        fill[inside] = (*color, 0.25)
        ax.imshow(fill, interpolation="nearest")
        if inside.any() and not inside.all():
            ax.contour(mask_array[i], levels=[0.5], colors=[color], linewidths=1.6)
        text = f"#{i + 1}"
        if label_array is not None:
            k = int(label_array[i])
            text = class_names[k] if class_names is not None and k < len(class_names) else str(k)
        if score_array is not None:
            text += f" {float(score_array[i]):.2f}"
        if box_array is not None:
            x0, y0, x1, y1 = (float(v) for v in box_array[i])
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color,
                                   linewidth=1.2, linestyle="--"))
            anchor = (x0, y0)
        elif inside.any():
            ys, xs = np.nonzero(inside)
            anchor = (float(xs.min()), float(ys.min()))
        else:
            anchor = None
        if anchor is not None:
            ax.text(anchor[0], anchor[1] - 1, text, color="white", fontsize=8, va="bottom",
                    bbox={"facecolor": color, "alpha": 0.8, "pad": 1, "edgecolor": "none"})
        handles.append(Patch(facecolor=color, label=f"#{i + 1}: {text}"))
    ax.set_xlim(-0.5, rgb.shape[1] - 0.5)
    ax.set_ylim(rgb.shape[0] - 0.5, -0.5)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(title or f"{m} instance(s): outlines, boxes and labels")
    if handles and m <= 20:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  title="instances")
    return fig


def draw_instance_masks(ax: Any, image: Any, masks: Any, scores: Any = None,
                        threshold: float = 0.5, title: str | None = None) -> int:
    """Draw instance masks on an existing axes: the image in grey (so the colours stand out),
    each instance with ``score >= threshold`` filled in its own colour (tab10) and outlined.

    ``masks`` ``[M, H, W]`` or ``[M, 1, H, W]`` (probabilities or bool, thresholded at 0.5, as
    the Mask R-CNN contract returns them); ``scores`` ``[M]`` (all kept if None). The title
    gets ``": N objects"`` appended. Returns N, the number of instances drawn.
    """
    rgb = to_numpy_image(image)
    mask_array = as_numpy(masks).astype(np.float32)
    if mask_array.ndim == 4 and mask_array.shape[1] == 1:
        mask_array = mask_array[:, 0]
    if mask_array.ndim != 3 or (len(mask_array) and mask_array.shape[1:] != rgb.shape[:2]):
        raise ValueError(f"masks must be [M, H, W] or [M, 1, H, W] with H, W = {rgb.shape[:2]}, "
                         f"got {tuple(np.shape(as_numpy(masks)))}")
    keep = np.ones(len(mask_array), dtype=bool)
    if scores is not None:
        score_array = as_numpy(scores).reshape(-1)
        if len(score_array) != len(mask_array):
            raise ValueError(f"{len(mask_array)} masks but {len(score_array)} scores")
        keep = score_array >= threshold
    grey = rgb.mean(-1) if rgb.ndim == 3 else rgb
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1.5)  # dimmed: vmax above the brightest pixel
    colours = colormaps["tab10"](np.arange(int(keep.sum())) % 10)
    for m, c in zip(mask_array[keep], colours, strict=True):
        fill = np.dstack([np.broadcast_to(c[:3], m.shape + (3,)), 0.6 * (m >= 0.5)])
        ax.imshow(fill, interpolation="nearest")
        ax.contour(m, levels=[0.5], colors=[c], linewidths=1)
    n = int(keep.sum())
    ax.set_title(f"{title + ': ' if title else ''}{n} object{'' if n == 1 else 's'}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return n


def plot_metric_table(rows: Mapping[str, Mapping[str, float]] | Sequence[Mapping[str, Any]],
                      metric: str | None = None, title: str | None = None,
                      higher_is_better: bool = True) -> Figure:
    """Horizontal bar chart comparing one metric across methods.

    ``rows`` maps a method name to its metrics (``{"Otsu": {"miou": 0.41}, ...}``) or is a list
    of dicts with a "name" key. ``metric`` defaults to the first numeric key.
    """
    if isinstance(rows, Mapping):
        items = [(str(k), dict(v)) for k, v in rows.items()]
    else:
        items = [(str(r.get("name", i)), dict(r)) for i, r in enumerate(rows)]
    if not items:
        raise ValueError("plot_metric_table needs at least one row")
    if metric is None:
        numeric = [k for k, v in items[0][1].items() if isinstance(v, int | float) and k != "name"]
        if not numeric:
            raise ValueError("no numeric metric in the rows; pass metric=")
        metric = numeric[0]
    missing = [name for name, values in items if metric not in values]
    if missing:
        raise ValueError(f"metric {metric!r} missing for: {', '.join(missing)}")
    names = [name for name, _ in items]
    values = [float(v[metric]) for _, v in items]
    fig = _new_figure((6.5, 0.45 * len(items) + 1.4))
    ax = fig.subplots()
    best = int(np.argmax(values) if higher_is_better else np.argmin(values))
    bar_colors = ["tab:orange" if i == best else "tab:blue" for i in range(len(values))]
    ax.barh(range(len(values)), values, color=bar_colors)
    ax.set_yticks(range(len(values)), names)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    ax.set_xlabel(metric)
    ax.set_title(title or f"{metric} by method (best in orange)")
    ax.grid(axis="x", alpha=0.3)
    return fig
