"""Colours of the course's pictures: palettes, coloured masks, overlays, error maps."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.patches import Patch

from course_lib.config import IGNORE_INDEX

VOID_COLOR = np.array([224, 224, 192], dtype=np.uint8)  # VOC's colour for the void label
# Black: no class of any palette here is black, and it stands out on the lightened image.
ERROR_COLOR = np.array([0, 0, 0], dtype=np.uint8)


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


def as_numpy(x: Any) -> np.ndarray:
    """A tensor (detached, on the CPU) or array-like as a NumPy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def as_labels(mask: Any) -> np.ndarray:
    """A mask as int64 class indices (a float mask must hold whole numbers)."""
    labels = as_numpy(mask)
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
    labels = as_labels(mask)
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
    array = as_numpy(image)
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
    labels = as_labels(mask)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(
            f"image is {rgb.shape[0]}x{rgb.shape[1]} but mask is {'x'.join(map(str, labels.shape))}"
        )
    colors = colorize(labels, palette, ignore_index).astype(np.float32) / 255.0
    weight = np.where(labels == ignore_index, 0.0, alpha)[..., None]
    return (1.0 - weight) * rgb + weight * colors


def error_map(rgb: np.ndarray, wrong: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The image lightened and faded, wrong pixels in ``ERROR_COLOR``, void pixels grey."""
    err = 0.35 * rgb + 0.55
    err[wrong] = ERROR_COLOR / 255.0
    err[~valid] = 0.4
    return err


def legend_handles(labels_seen: np.ndarray, colors: np.ndarray,
                   class_names: Sequence[str] | None) -> list[Patch]:
    """One legend patch per class in ``labels_seen``, named from ``class_names``."""
    handles = []
    for k in labels_seen:
        name = class_names[k] if class_names is not None and k < len(class_names) else f"class {k}"
        handles.append(Patch(facecolor=colors[k] / 255.0, edgecolor="black", label=name))
    return handles
