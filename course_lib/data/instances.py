"""Instance-segmentation data for notebook 10: touching objects, detection targets, batching.

Detection models (:mod:`course_lib.models.rcnn`) take a *list* of images and a list of target
dicts, as torchvision's do: ``{"boxes": [M, 4] float XYXY, "labels": [M] int64 (1..K-1, 0 is
the background), "masks": [M, H, W] uint8}``. This module makes such samples:

- :class:`TouchingWorld`: a generated world made for the instance-versus-semantic lesson —
  disks and squares, each with its own colour, most of them *touching or overlapping another
  object of the same class* (clusters of coins and tiles). A semantic segmentation labels
  the pixels of a cluster right and still cannot say how many objects it holds; an instance
  model can. Sizes span small (a few pixels across) to large, for PANet's small objects;
- :func:`shapes_instances`: the thing instances of a :class:`~course_lib.data.synthetic.
  ShapesWorld` sample (``target="all"``) as a detection target;
- :func:`resize_instances`: a real sample (e.g. :class:`~course_lib.data.formats.PennFudanPed`)
  scaled to a given shorter side, uint8 image to float;
- :func:`collate`: a DataLoader's list of samples → (list of images, list of targets).

Box convention: a box covers its pixels, ``(x0, y0, x1 + 1, y1 + 1)`` for a mask whose
first/last columns are ``x0``/``x1`` (continuous pixel-edge coordinates, the ones RoIAlign
reads). ``torchvision.ops.masks_to_boxes`` gives ``(x0, y0, x1, y1)`` instead, a box of zero
width for a one-pixel-wide object.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from course_lib import config
from course_lib.data.formats import boxes_from_masks

__all__ = ["TOUCHING_CLASSES", "TOUCHING_PALETTE", "TouchingWorld", "mask_boxes",
           "shapes_instances", "resize_instances", "collate", "semantic_from_instances"]

#: Class names of the touching world (index = label; 0 is the background).
TOUCHING_CLASSES: tuple[str, ...] = ("background", "disk", "square")
TOUCHING_PALETTE = np.array([[30, 30, 30], [230, 80, 60], [70, 140, 230]], dtype=np.uint8)
_SPLITS = {"train": 0, "val": 1, "test": 2}


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Boxes ``[M, 4]`` that cover the pixels of bool/0-1 masks ``[M, H, W]`` (see module)."""
    boxes = boxes_from_masks(torch.as_tensor(masks))
    return boxes + torch.tensor([0.0, 0.0, 1.0, 1.0]) if len(boxes) else boxes


def semantic_from_instances(masks: torch.Tensor, labels: torch.Tensor, height: int,
                            width: int) -> torch.Tensor:
    """The class map ``[H, W]`` (0 = background) of non-overlapping instance masks."""
    semantic = torch.zeros(height, width, dtype=torch.long)
    for m, lab in zip(masks.bool(), labels.tolist(), strict=True):  # a loop over objects
        semantic[m] = lab
    return semantic


class TouchingWorld(Dataset):
    """Disks and squares in touching clusters, on a textured background (see the module).

    Each image holds ``objects`` (a range, default 4..9) objects in clusters: the first
    object of a cluster is placed anywhere, every next one *touches or overlaps* an earlier
    object of the same cluster (centre distance ``spacing`` x the sum of the two radii, 0.7-1.0
    by default), and all objects of a cluster share its class. Later objects occlude earlier
    ones; masks are the visible parts. Radii are log-uniform in ``radius`` x the image side.
    Every object has its own random colour and a faint texture.

    Items: ``(image [3, S, S] float in [0, 1], target)``, target with ``boxes``, ``labels``
    (1 disk, 2 square), ``masks`` (uint8), ``semantic`` ([S, S], 0 background) and
    ``instance_ids`` ([S, S], 0 background, 1..M); with ``target="semantic"``,
    ``(image, semantic)`` (for a semantic segmentation model and ``course_lib.train.fit``).
    """

    def __init__(self, num_samples: int, image_size: int | None = None, seed: int = 0,
                 split: str = "train", objects: tuple[int, int] = (4, 9),
                 radius: tuple[float, float] = (0.035, 0.15), cluster_size: int = 3,
                 spacing: tuple[float, float] = (0.7, 1.0), target: str = "instances") -> None:
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        if split not in _SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits are: {', '.join(_SPLITS)}")
        if target not in ("instances", "semantic"):
            raise ValueError(f"target must be 'instances' or 'semantic', got {target!r}")
        if not 1 <= objects[0] <= objects[1]:
            raise ValueError(f"objects must be a range (lo, hi) with 1 <= lo <= hi, got {objects}")
        if not 0 < radius[0] <= radius[1] < 0.5:
            raise ValueError(f"radius must be a range of fractions in (0, 0.5), got {radius}")
        if not 0 < spacing[0] <= spacing[1]:
            raise ValueError(f"spacing must be a range (lo, hi) with 0 < lo <= hi, got {spacing}")
        self.num_samples = int(num_samples)
        self.image_size = int(image_size or config.get_profile().image_size)
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")
        self.seed, self.split = int(seed), split
        self.objects, self.radius, self.cluster_size = objects, radius, int(cluster_size)
        self.spacing, self.target = spacing, target
        self.class_names, self.palette = TOUCHING_CLASSES, TOUCHING_PALETTE
        self.num_classes = len(TOUCHING_CLASSES)

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"TouchingWorld(num_samples={self.num_samples}, image_size={self.image_size}, "
                f"seed={self.seed}, split={self.split!r}, target={self.target!r})")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        index %= self.num_samples
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], index, 10])
        image, ids, labels = self._draw(rng)
        inst = torch.from_numpy(ids).long()
        m = len(labels)
        masks = (inst[None] == torch.arange(1, m + 1)[:, None, None]).to(torch.uint8)
        lab = torch.tensor(labels, dtype=torch.int64)
        s = self.image_size
        semantic = semantic_from_instances(masks, lab, s, s)
        if self.target == "semantic":
            return torch.from_numpy(image), semantic
        target = {"boxes": mask_boxes(masks), "labels": lab, "masks": masks,
                  "semantic": semantic, "instance_ids": inst}
        return torch.from_numpy(image), target

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[int]]:
        s = self.image_size
        ys = np.arange(s, dtype=np.float32)[:, None] + 0.5
        xs = np.arange(s, dtype=np.float32)[None, :] + 0.5
        # background: a dim gradient between two random colours, plus a little noise
        top, bottom = rng.uniform(0.1, 0.45, 3), rng.uniform(0.1, 0.45, 3)
        t = ys / s
        image = (top[:, None, None] * (1 - t) + bottom[:, None, None] * t) * np.ones((1, 1, s))
        image = image + rng.normal(0, 0.03, (3, s, s))
        ids = np.zeros((s, s), dtype=np.int64)
        placed: list[tuple[float, float, float, int]] = []  # (cx, cy, r, cluster)
        n = int(rng.integers(self.objects[0], self.objects[1] + 1))
        cls_of_cluster: list[int] = []
        lo, hi = math.log(self.radius[0] * s), math.log(self.radius[1] * s)
        label_of: dict[int, int] = {}  # object id → class
        for k in range(n):
            r = math.exp(rng.uniform(lo, hi))
            cluster = len(cls_of_cluster) - 1
            same = [p for p in placed if p[3] == cluster]
            if not same or len(same) >= self.cluster_size:  # start a new cluster
                cls_of_cluster.append(int(rng.integers(1, 3)))
                cluster += 1
                cx, cy = rng.uniform(r, s - r), rng.uniform(r, s - r)
            else:  # touch or overlap an object of this cluster
                px, py, pr, _ = same[int(rng.integers(len(same)))]
                angle = rng.uniform(0, 2 * math.pi)
                gap = rng.uniform(*self.spacing) * (pr + r)
                cx, cy = px + gap * math.cos(angle), py + gap * math.sin(angle)
            placed.append((cx, cy, r, cluster))
            cls = cls_of_cluster[cluster]
            dx, dy = xs - cx, ys - cy
            if cls == 1:  # disk
                inside = dx * dx + dy * dy <= r * r
            else:  # square, rotated
                theta = rng.uniform(0, math.pi / 2)
                u = dx * math.cos(theta) + dy * math.sin(theta)
                v = dy * math.cos(theta) - dx * math.sin(theta)
                inside = (np.abs(u) <= 0.85 * r) & (np.abs(v) <= 0.85 * r)
            if not inside.any():
                continue
            colour = rng.uniform(0.35, 1.0, 3)
            colour[int(rng.integers(3))] = rng.uniform(0.75, 1.0)  # bright, well off the ground
            shade = 1.0 + 0.08 * np.sin((dx * math.cos(k) + dy * math.sin(k)) * 0.6)
            image = np.where(inside[None], colour[:, None, None] * shade[None], image)
            ids[inside] = k + 1
            label_of[k + 1] = cls
        # keep the visible objects only (>= 4 pixels), numbered 1..M in painting order
        counts = np.bincount(ids.ravel(), minlength=n + 1)
        visible = [k for k in label_of if counts[k] >= 4]
        remap = np.zeros(n + 1, dtype=np.int64)
        remap[visible] = np.arange(1, len(visible) + 1)
        ids = remap[ids]
        image = np.clip(image, 0.0, 1.0)
        image = (np.round(image * 255) / 255).astype(np.float32)  # 8-bit levels
        return image, ids, [label_of[k] for k in visible]


def shapes_instances(sample: dict[str, Any], first_thing: int = 4
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A :class:`~course_lib.data.synthetic.ShapesWorld` sample (``target="all"``) as
    ``(image, target)`` for a detection model: thing class ``c`` becomes label
    ``c - first_thing + 1`` (disk = 1 ... boat = 8), boxes cover their pixels."""
    for key in ("image", "masks", "labels"):
        if key not in sample:
            raise ValueError(f"need a ShapesWorld sample with target='all' (a dict with "
                             f"'image', 'masks', 'labels'), got keys {sorted(sample)}")
    labels = torch.as_tensor(sample["labels"]).long()
    if len(labels) and int(labels.min()) < first_thing:
        raise ValueError(f"instance labels must be thing classes >= {first_thing}, got "
                         f"{labels.tolist()}")
    masks = torch.as_tensor(sample["masks"]).to(torch.uint8)
    image = torch.as_tensor(sample["image"]).float()
    return image, {"boxes": mask_boxes(masks), "labels": labels - first_thing + 1,
                   "masks": masks}


def resize_instances(image: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor,
                     shorter_side: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Scale an image ``[C, H, W]`` (uint8 or float in [0, 1]) and its instance masks so the
    shorter side is ``shorter_side``; boxes from the resized masks (objects that vanish are
    dropped)."""
    if shorter_side < 8:
        raise ValueError(f"shorter_side must be >= 8, got {shorter_side}")
    image = torch.as_tensor(image)
    image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    h, w = image.shape[-2:]
    scale = shorter_side / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False,
                          antialias=True)[0].clamp(0, 1)
    masks = torch.as_tensor(masks)
    masks = F.interpolate(masks[:, None].float(), size=size, mode="bilinear",
                          align_corners=False)[:, 0] >= 0.5 if len(masks) else \
        torch.zeros((0, *size), dtype=torch.bool)
    keep = masks.flatten(1).any(1)
    masks = masks[keep].to(torch.uint8)
    return image, {"boxes": mask_boxes(masks), "labels": torch.as_tensor(labels)[keep].long(),
                   "masks": masks}


def collate(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """DataLoader ``collate_fn`` for detection: images and targets as two lists."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
