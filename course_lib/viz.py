"""Static pictures for the notebooks: palettes, overlays, grids, curves, confusion matrices.

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` built with the
object-oriented Figure API (not ``pyplot``), so a figure is drawn exactly once: when it is
the value of a notebook cell (or when you call :func:`figure_to_png` / ``fig.savefig``).
Masks are class-index maps (``int`` tensors or arrays ``[H, W]``); the void label
:data:`course_lib.config.IGNORE_INDEX` (255) is drawn in a neutral colour.
"""

from __future__ import annotations

import inspect
import io
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.colors import TABLEAU_COLORS, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from course_lib.config import IGNORE_INDEX

__all__ = [
    "PALETTES",
    "VOID_COLOR",
    "CourseFigure",
    "colorize",
    "figure_to_png",
    "get_palette",
    "get_source",
    "overlay",
    "plot_confusion_matrix",
    "plot_history",
    "plot_instances",
    "plot_metric_table",
    "plot_segmentation_grid",
    "show_source",
    "to_numpy_image",
    "voc_colormap",
]

VOID_COLOR = np.array([224, 224, 192], dtype=np.uint8)  # VOC's colour for the void label
# Black: no class of any palette here is black, and it stands out on the lightened image.
ERROR_COLOR = np.array([0, 0, 0], dtype=np.uint8)


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


# --------------------------------------------------------------------------------------
# Palettes
# --------------------------------------------------------------------------------------
def voc_colormap(n: int = 256) -> np.ndarray:
    """The standard PASCAL VOC colour map (``uint8 [n, 3]``), built from the bits of the index."""
    index = np.arange(n)
    colors = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):  # 8 bit planes, vectorised over all indices
        for channel in range(3):
            bit = (index >> (3 * shift + channel)) & 1
            colors[:, channel] |= bit << (7 - shift)
    return colors.astype(np.uint8)


_CAMVID = np.array(
    [
        [128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
        [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
        [0, 128, 192], [0, 0, 0],
    ],
    dtype=np.uint8,
)  # SegNet tutorial colours: Sky, Building, Pole, Road, Pavement, Tree, SignSymbol,
#    Fence, Car, Pedestrian, Bicyclist, Unlabelled (void)


class _Palettes(Mapping):
    """``PALETTES[name]`` → ``uint8 [K, 3]``; "shapes" is read from the data module on use."""

    _static: dict[str, np.ndarray] = {
        "voc": voc_colormap(256),
        "camvid": _CAMVID,
        "binary": np.array([[0, 0, 0], [255, 255, 255]], dtype=np.uint8),
    }
    _names = ("shapes", "voc", "camvid", "binary")

    def __getitem__(self, name: str) -> np.ndarray:
        if name == "shapes":
            from course_lib.data import synthetic  # imported lazily: data imports torchvision

            return np.asarray(synthetic.PALETTE, dtype=np.uint8)
        if name in self._static:
            return self._static[name]
        raise KeyError(f"unknown palette {name!r}; valid palettes are: {', '.join(self._names)}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


PALETTES: Mapping[str, np.ndarray] = _Palettes()


def get_palette(palette: str | np.ndarray | Sequence | None = None, num_classes: int = 0
                ) -> np.ndarray:
    """A ``uint8 [max(K, num_classes), 3]`` palette from a name, an array, or ``None``.

    ``None`` gives the VOC colour map (distinct colours for up to 256 classes).
    """
    if palette is None:
        colors = PALETTES["voc"]
    elif isinstance(palette, str):
        if palette not in PALETTES:
            raise ValueError(
                f"unknown palette {palette!r}; valid palettes are: {', '.join(PALETTES)}"
            )
        colors = PALETTES[palette]
    else:
        colors = np.asarray(palette)
        if colors.ndim != 2 or colors.shape[1] != 3:
            raise ValueError(f"a palette must have shape [K, 3], got {tuple(colors.shape)}")
        if colors.dtype.kind == "f" and colors.size and colors.max() <= 1.0:
            colors = colors * 255.0
        colors = np.clip(colors, 0, 255).astype(np.uint8)
    if len(colors) < num_classes:  # extend with VOC colours so every class has one
        extra = voc_colormap(256)[len(colors):num_classes]
        colors = np.concatenate([colors, extra])
    return colors


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _to_labels(mask: Any) -> np.ndarray:
    labels = _to_numpy(mask)
    if labels.dtype.kind not in "iub":
        if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(
            labels == np.round(labels)
        ):
            labels = labels.astype(np.int64)
        else:
            raise ValueError(f"a mask holds integer class indices, got dtype {labels.dtype}")
    return labels.astype(np.int64)


def colorize(mask: Any, palette: str | np.ndarray | Sequence | None = None,
             ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Colour a class-index mask ``[..., H, W]`` → ``uint8 [..., H, W, 3]``.

    ``ignore_index`` pixels get :data:`VOID_COLOR`; a label with no colour raises ValueError.
    """
    labels = _to_labels(mask)
    colors = get_palette(palette)
    if labels.size and labels.min() < 0:
        raise ValueError(f"mask has negative labels (min {labels.min()})")
    valid = labels != ignore_index
    if labels.size and valid.any() and labels[valid].max() >= len(colors):
        raise ValueError(
            f"mask has label {labels[valid].max()} but the palette has only {len(colors)} "
            "colours; pass a longer palette"
        )
    lut = np.zeros((max(len(colors), ignore_index + 1, 256), 3), dtype=np.uint8)
    lut[: len(colors)] = colors
    if 0 <= ignore_index < len(lut):
        lut[ignore_index] = VOID_COLOR
    return lut[np.clip(labels, 0, len(lut) - 1)]


def to_numpy_image(image: Any) -> np.ndarray:
    """An image (``[C,H,W]`` / ``[H,W,C]``, uint8 or float) → float ``[H,W,3]`` in [0, 1].

    One channel is repeated to grey; extra channels (e.g. depth in RGB-D) are dropped; float
    images outside [0, 1] (normalised ones) are rescaled to their min..max.
    """
    array = _to_numpy(image)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"an image has shape [C,H,W] or [H,W,C], got {tuple(array.shape)}")
    if array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    elif array.shape[0] in (1, 3, 4) and array.shape[-1] in (1, 3, 4) and isinstance(
        image, torch.Tensor
    ):
        array = np.moveaxis(array, 0, -1)  # tensors are channel-first
    channels = array.shape[-1]
    if channels == 1:
        array = np.repeat(array, 3, axis=-1)
    elif channels >= 3:
        array = array[..., :3]
    else:
        raise ValueError(f"an image has 1, 3 or 4 channels, got {channels}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    lo, hi = float(array.min()), float(array.max())
    if lo < 0.0 or hi > 1.0:
        array = (array - lo) / max(hi - lo, 1e-8)
    return array


def overlay(image: Any, mask: Any, palette: str | np.ndarray | Sequence | None = None,
            alpha: float = 0.5, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Blend a coloured mask over an image → float ``[H, W, 3]`` in [0, 1].

    Void (``ignore_index``) pixels keep the plain image.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = to_numpy_image(image)
    labels = _to_labels(mask)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(
            f"image is {rgb.shape[0]}x{rgb.shape[1]} but mask is {'x'.join(map(str, labels.shape))}"
        )
    colors = colorize(labels, palette, ignore_index).astype(np.float32) / 255.0
    weight = np.where(labels == ignore_index, 0.0, alpha)[..., None]
    return (1.0 - weight) * rgb + weight * colors


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
def _batch(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, torch.Tensor | np.ndarray):
        return list(x)
    return list(x)


def _legend_handles(labels_seen: np.ndarray, colors: np.ndarray,
                    class_names: Sequence[str] | None) -> list[Patch]:
    handles = []
    for k in labels_seen:
        name = class_names[k] if class_names is not None and k < len(class_names) else f"class {k}"
        handles.append(Patch(facecolor=colors[k] / 255.0, edgecolor="black", label=name))
    return handles


def error_map(rgb: np.ndarray, wrong: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The image lightened and faded, wrong pixels in ``ERROR_COLOR``, void pixels grey."""
    err = 0.35 * rgb + 0.55
    err[wrong] = ERROR_COLOR / 255.0
    err[~valid] = 0.4
    return err


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
    target_arrays = [_to_labels(t) for t in target_list[:rows]]
    pred_arrays = [_to_labels(p) for p in pred_list[:rows]]
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
    handles = _legend_handles(seen, colors, class_names)
    if show_error and pred_list:
        handles.append(Patch(facecolor=ERROR_COLOR / 255.0, label="wrong pixel"))
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="classes")
    if title:
        fig.suptitle(title)
    return fig


def _history_dict(history: Any) -> dict[str, list]:
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
    data = _history_dict(history)
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
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes,
                    color="grey")
    if title:
        fig.suptitle(title)
    return fig


def plot_confusion_matrix(cm: Any, class_names: Sequence[str] | None = None,
                          normalize: bool = True, title: str | None = None) -> Figure:
    """Heat map of a confusion matrix (rows = true class, columns = predicted class).

    ``normalize=True`` divides each row by its total (the per-class recall is the diagonal).
    """
    matrix = _to_numpy(cm).astype(np.float64)
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
    mask_array = _to_numpy(masks).astype(np.float32)
    if mask_array.ndim == 2:
        mask_array = mask_array[None]
    if mask_array.ndim != 3 or (len(mask_array) and mask_array.shape[1:] != rgb.shape[:2]):
        raise ValueError(
            f"masks must be [M,H,W] with H,W = {rgb.shape[:2]}, got {tuple(mask_array.shape)}"
        )
    m = len(mask_array)
    box_array = _to_numpy(boxes).reshape(-1, 4) if boxes is not None else None
    label_array = _to_numpy(labels).reshape(-1) if labels is not None else None
    score_array = _to_numpy(scores).reshape(-1) if scores is not None else None
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


# --------------------------------------------------------------------------------------
# Library source in notebooks
# --------------------------------------------------------------------------------------
def get_source(obj: Any) -> str:
    """The (dedented) source code of a library function, class, method or module."""
    target = obj.fget if isinstance(obj, property) else obj
    try:
        return textwrap.dedent(inspect.getsource(target))
    except (TypeError, OSError) as error:
        raise ValueError(f"cannot show the source of {obj!r}: {error}") from None


def show_source(obj: Any) -> None:
    """Display a library object's source with syntax highlighting in the notebook.

    Notebooks call ``show_source(build_fcn)`` instead of pasting library code, so the library
    stays the single source of truth.
    """
    from IPython.display import Code, display

    display(Code(get_source(obj), language="python"))
