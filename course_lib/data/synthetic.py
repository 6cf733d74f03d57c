"""The "shapes world": a synthetic segmentation data set generated on the fly, no download.

Every image is a small outdoor-like scene, drawn deterministically from
``(seed, split, index)``:

* four *stuff* classes fill the background: **sky** on top, a horizon, and the ground split
  into bands of **grass**, **road** and **water**, each with its own texture;
* eight *thing* classes are painted on top, far objects first, so near objects occlude far
  ones: **disk, square, triangle, star** (solid shapes), **ring** and **wire** (thin
  structures, 1-3 px wide), and **car** and **boat**;
* the class of a thing is decided by its **shape only**: colours and textures (flat, stripes,
  noise, gradient, checker) are random per object;
* **car and boat look identical** (same silhouette, same colour distribution). A car only
  ever stands on road and a boat only ever floats on water, so only the *context* around an
  object tells them apart (PSPNet's boat-vs-car failure of a plain FCN);
* a plausible **depth map** (ground plane receding to the horizon, objects in front of the
  surface behind them) can be appended as a fourth image channel (``with_depth=True``).

One sample yields semantic, instance (visible masks, XYXY boxes, labels) and panoptic
targets. Rasterisation uses NumPy coordinate grids, restricted to each object's bounding
box, so one core makes well over a thousand 128 x 128 images per second
(:func:`generation_speed`).

Two further variants serve the medical lesson (notebook 08), each with its own
``class_names`` / ``palette`` / ``num_classes`` on the data set:

* ``variant="microscopy"``: electron-microscopy-like sections of touching cells, a Voronoi
  tessellation of jittered seeds under a smooth warp. Cells are separated by thin dark
  membranes (1-3 px; two different cells are never 4-neighbours), cytoplasm is granular,
  dark mitochondria-like organelles lie *inside* cells (dark, but not membrane), then blur
  and noise. **One grey channel**: image ``[1,H,W]`` (like :class:`~course_lib.data.formats.
  EMStack`), mask ``[H,W]`` with ``0 = membrane``, ``1 = cell`` (the ISBI 2012 convention),
  instance ids ``1..M`` per cell (0 on membranes) for :func:`course_lib.losses.unet_weight_map`.
* ``variant="volume"``: 3D volumes, image ``[1,D,H,W]`` (``D = H = W = image_size``, default
  the profile's ``volume_size``) and mask ``[D,H,W]``: an organ-like blob in a darker
  surround, and 1-3 small brighter "lesions" (class 1) that together cover **at most 1 %**
  of the voxels (0.2-0.7 % on average): the class imbalance of V-Net's Dice-loss lesson.
  Only ``target="semantic"``; no depth channel, no VOC/COCO export.

The ``variant="context"`` (notebook 05, ParseNet) keeps the shapes classes but makes the
car/boat pair a *global* context problem: one car or boat stands on grass at least half the
image away from the only road (car) or river (boat) of the scene, so its local surround is
the same for both classes. No depth channel, no VOC/COCO export.

The ``variant="rgbd"`` (notebook 17, the RGB-D lesson) is an indoor wall and floor with
*objects* standing in front of them and *pictures* printed on them, drawn alike, so that
only the depth channel (``with_depth=True``) tells the two classes apart
(:mod:`~course_lib.data.rgbd_scene`).

The ``variant="dense"`` (notebook 19, "more challenging data") is the default scene with
about four times as many objects (:data:`~course_lib.data.scenes.DENSE_THINGS` things and
:data:`~course_lib.data.scenes.DENSE_VEHICLES` vehicles per road or water band), so that most
objects are partly hidden by nearer ones; same classes, palette and depth map.

This module holds the data set (:class:`ShapesWorld`, its variants and targets); the drawing
lives in :mod:`~course_lib.data.shapes` (classes, rasterisers, textures),
:mod:`~course_lib.data.scenes` (default and context scenes) and
:mod:`~course_lib.data.medical` (microscopy and volumes), the VOC/COCO writers in
:mod:`~course_lib.data.export`; their public names are importable from here too.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from course_lib import config
from course_lib.config import IGNORE_INDEX
from course_lib.data import export, medical, shapes
from course_lib.data.coco_masks import boxes_from_masks
from course_lib.data.export import *  # noqa: F403 - re-exported, see __all__
from course_lib.data.medical import *  # noqa: F403
from course_lib.data.medical import (
    MICROSCOPY_CLASS_NAMES,
    MICROSCOPY_PALETTE,
    VOLUME_CLASS_NAMES,
    VOLUME_PALETTE,
    draw_microscopy,
    draw_volume,
)
from course_lib.data.rgbd_scene import RGBD_CLASS_NAMES, RGBD_PALETTE, draw_rgbd
from course_lib.data.scenes import draw_context, draw_default, draw_dense
from course_lib.data.shapes import *  # noqa: F403
from course_lib.data.shapes import CLASS_NAMES, NUM_CLASSES, PALETTE, THING_CLASSES

# The classes, the medical variants' constants and the VOC/COCO writers are importable from
# here too: every name in those modules' __all__.
__all__ = [
    "IGNORE_INDEX",
    "VARIANTS",
    "TARGETS",
    "SPLITS",
    "ShapesWorld",
    "foreground",
    "things_vs_stuff",
    "generation_speed",
    "RGBD_CLASS_NAMES",
    "RGBD_PALETTE",
    *shapes.__all__,
    *medical.__all__,
    *export.__all__,
]

TARGETS: tuple[str, ...] = ("semantic", "all")
SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
GENERATOR_VERSION = 1  # bump when the drawing changes: it invalidates the on-disk cache


@dataclass(frozen=True)
class _Variant:
    """One world: its drawing function and what a data set of it looks like."""

    draw: Callable[[np.random.Generator, int, bool], dict[str, np.ndarray]]
    class_names: tuple[str, ...]
    palette: np.ndarray
    image_channels: int = 3
    spatial_dims: int = 2  # 3: volumes [C,D,H,W], semantic targets only
    has_depth: bool = False  # can append a depth channel (with_depth=True)
    size_field: str = "image_size"  # the profile field that gives the default side


#: Append only: a variant's position is part of its random seed.
_VARIANTS: dict[str, _Variant] = {
    "default": _Variant(draw_default, CLASS_NAMES, PALETTE, has_depth=True),
    "microscopy": _Variant(draw_microscopy, MICROSCOPY_CLASS_NAMES, MICROSCOPY_PALETTE,
                           image_channels=1),
    "volume": _Variant(draw_volume, VOLUME_CLASS_NAMES, VOLUME_PALETTE, image_channels=1,
                       spatial_dims=3, size_field="volume_size"),
    "context": _Variant(draw_context, CLASS_NAMES, PALETTE),
    # notebook 17: indoor objects vs pictures of them, told apart by depth only
    "rgbd": _Variant(draw_rgbd, RGBD_CLASS_NAMES, RGBD_PALETTE, has_depth=True),
    # notebook 19: the default scene with about four times as many, heavily overlapping objects
    "dense": _Variant(draw_dense, CLASS_NAMES, PALETTE, has_depth=True),
}
VARIANTS: tuple[str, ...] = tuple(_VARIANTS)


# --------------------------------------------------------------------------------------
# The Dataset
# --------------------------------------------------------------------------------------
def _check_choice(value: str, valid: tuple[str, ...] | dict, what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid {what}s are: {', '.join(valid)}")
    return value


class ShapesWorld(Dataset):
    """The embedded synthetic data set (see the module docstring for what it contains).

    Args:
        num_samples: number of images (indices ``0 .. num_samples-1``).
        image_size: side of the square images; ``None`` = the active profile's size.
        seed: selects a different world; with ``split`` and the index it fixes each image.
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint random streams).
        variant: ``"default"``, ``"microscopy"`` (grey EM-like cells, image ``[1,H,W]``,
            classes membrane/cell) or ``"volume"`` (3D, image ``[1,D,H,W]``, mask ``[D,H,W]``,
            ``image_size`` = the cube's side, default the profile's ``volume_size``; only
            ``target="semantic"``, no depth), or ``"context"`` (the shapes classes: one car or
            boat on grass, far from the road or river that alone tells which; no depth), or
            ``"rgbd"`` (indoor wall and floor with objects and pictures of them that only
            the depth channel tells apart: :mod:`~course_lib.data.rgbd_scene`), or ``"dense"``
            (the default scene with about four times as many objects, heavily overlapping).
            See the module docstring.
        with_depth: append a depth channel to the image (``[4,H,W]``) and return ``"depth"``.
        target: ``"semantic"`` -> ``(image, mask)``; ``"all"`` -> a dict with semantic,
            instance and panoptic targets.
        cache: keep the generated tensors in ``config.data_dir()/"cache"`` (written once).
        transform: optional callable applied to the ``(image, mask)`` tuple or the dict.

    Images are float32 in [0, 1] quantised to 8-bit levels (so PNG export is lossless).
    """

    def __init__(
        self,
        num_samples: int,
        image_size: int | None = None,
        seed: int = 0,
        split: str = "train",
        variant: str = "default",
        with_depth: bool = False,
        target: str = "semantic",
        cache: bool = False,
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        self.num_samples = int(num_samples)
        self.variant = _check_choice(variant, VARIANTS, "variant")
        world = self._world = _VARIANTS[self.variant]
        self.image_size = int(image_size or getattr(config.get_profile(), world.size_field))
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")
        self.seed = int(seed)
        self.split = _check_choice(split, SPLITS, "split")
        self.with_depth = bool(with_depth)
        self.target = _check_choice(target, TARGETS, "target")
        if self.with_depth and not world.has_depth:
            raise ValueError("with_depth=True needs variant='default' or 'rgbd' (the "
                             f"{variant!r} variant has no depth map)")
        if self.target != "semantic" and world.spatial_dims == 3:
            raise ValueError("the 'volume' variant supports only target='semantic' "
                             f"(image [1,D,H,W], mask [D,H,W]), got target={target!r}")
        self.transform = transform
        self.class_names = world.class_names
        self.palette = world.palette
        self.num_classes = len(self.class_names)
        self.spatial_dims = world.spatial_dims
        self.cache_path: Path | None = None
        self._cached: dict[str, torch.Tensor] | None = None
        if cache:
            self._cached = self._load_or_build_cache()

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (
            f"ShapesWorld(num_samples={self.num_samples}, image_size={self.image_size}, "
            f"seed={self.seed}, split={self.split!r}, variant={self.variant!r}, "
            f"with_depth={self.with_depth}, target={self.target!r})"
        )

    # -- raw arrays -----------------------------------------------------------------
    def _rng(self, index: int) -> np.random.Generator:
        variant_code = VARIANTS.index(self.variant)
        return np.random.default_rng([self.seed, SPLITS[self.split], index, variant_code])

    def raw(self, index: int) -> dict[str, np.ndarray]:
        """The generated arrays of one image: ``image`` uint8 [3,H,W], ``label`` and
        ``inst`` uint8 [H,W] and, with depth, ``depth`` float32 [H,W] (microscopy: image
        [1,H,W]; volume: image [1,D,H,W], label and inst [D,H,W])."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        index = index % self.num_samples if self.num_samples else index
        if self._cached is not None:
            out = {
                "image": self._cached["image"][index].numpy(),
                "label": self._cached["label"][index].numpy(),
                "inst": self._cached["inst"][index].numpy(),
            }
            if self.with_depth:
                out["depth"] = self._cached["depth"][index].numpy()
            return out
        return self._world.draw(self._rng(index), self.image_size, self.with_depth)

    # -- cache ----------------------------------------------------------------------
    def _load_or_build_cache(self) -> dict[str, torch.Tensor]:
        name = (
            f"shapes_v{GENERATOR_VERSION}_{self.variant}_s{self.seed}_{self.split}"
            f"_n{self.num_samples}_{self.image_size}px{'_depth' if self.with_depth else ''}.pt"
        )
        path = config.data_dir() / "cache" / name
        self.cache_path = path
        if path.exists():
            try:
                data = torch.load(path, map_location="cpu", weights_only=True)
                if int(data["image"].shape[0]) == self.num_samples:
                    return data
            except Exception:  # noqa: BLE001 - a broken cache file is simply rebuilt
                pass
        raws = [
            self._world.draw(self._rng(i), self.image_size, self.with_depth)
            for i in range(self.num_samples)
        ]
        s = self.image_size
        grid = (s,) * self.spatial_dims
        data = {
            "image": torch.from_numpy(np.stack([r["image"] for r in raws]))
            if raws else torch.zeros(0, self._world.image_channels, *grid, dtype=torch.uint8),
            "label": torch.from_numpy(np.stack([r["label"] for r in raws]))
            if raws else torch.zeros(0, *grid, dtype=torch.uint8),
            "inst": torch.from_numpy(np.stack([r["inst"] for r in raws]))
            if raws else torch.zeros(0, *grid, dtype=torch.uint8),
        }
        if self.with_depth:
            data["depth"] = (torch.from_numpy(np.stack([r["depth"] for r in raws]))
                             if raws else torch.zeros(0, s, s))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            torch.save(data, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return data

    # -- samples --------------------------------------------------------------------
    def __getitem__(self, index: int) -> Any:
        sample = _to_sample(self.raw(index), self.target)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample


def _to_sample(raw: dict[str, np.ndarray], target: str) -> Any:
    """Tensors (tv_tensors) from the raw arrays of one image."""
    image = torch.from_numpy(raw["image"] * np.float32(1.0 / 255.0))
    depth = torch.from_numpy(raw["depth"])[None] if "depth" in raw else None
    if depth is not None:
        image = torch.cat([image, depth], dim=0)
    label = torch.from_numpy(raw["label"]).long()
    if target == "semantic":
        return tv_tensors.Image(image), tv_tensors.Mask(label)
    inst = torch.from_numpy(raw["inst"]).long()
    m = int(inst.max())
    ids = torch.arange(1, m + 1)
    masks = inst[None] == ids[:, None, None]
    labels = torch.zeros(m + 1, dtype=torch.long).scatter_(0, inst.flatten(), label.flatten())[1:]
    h, w = label.shape
    boxes = boxes_from_masks(masks)
    out = {
        "image": tv_tensors.Image(image),
        "mask": tv_tensors.Mask(label),
        "masks": tv_tensors.Mask(masks),
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
        "labels": labels,
        "instance_ids": tv_tensors.Mask(inst),
        "panoptic": tv_tensors.Mask(label * 1000 + inst),
    }
    if depth is not None:
        out["depth"] = tv_tensors.Mask(depth)
    return out


def foreground(mask: torch.Tensor) -> torch.Tensor:
    """Boolean map of thing pixels (classes 4..11) of a semantic mask; void is not foreground."""
    mask = torch.as_tensor(mask)
    return (mask >= THING_CLASSES[0]) & (mask < NUM_CLASSES)


def things_vs_stuff(sample: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A dataset transform for figure-ground segmentation: ``(image, semantic mask)`` ->
    ``(image, labels)`` with 1 on thing pixels, 0 on stuff (and on void): :func:`foreground`."""
    image, mask = sample
    return image, foreground(mask).long()


# --------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------
def generation_speed(image_size: int = 128, n: int = 500) -> float:
    """Images per second generated on ONE core (semantic target, no cache)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = ShapesWorld(n, image_size=image_size, seed=12345, split="train")
        ds[0]  # build the per-size texture bank outside the timing
        start = time.perf_counter()
        for i in range(n):
            ds[i]
        return n / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
