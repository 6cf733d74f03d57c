"""Readers for four scene-parsing data sets of the survey (§4.1) in their official layouts:
Cityscapes, ADE20K / SceneParse150, PASCAL Context (59 classes) and SBD.

Items are the course's sample dict (see :mod:`course_lib.data.formats`): ``"image"``
(``tv_tensors.Image`` uint8 ``[3,H,W]``), ``"mask"`` (``tv_tensors.Mask`` int64 ``[H,W]``,
class index per pixel, **255 = void**) and ``"image_id"``; a ``transform`` (e.g.
:func:`course_lib.data.train_transforms`, torchvision ``transforms.v2``) gets the whole dict.
Every reader turns its data set's own label coding into that one convention:

==================  ==========================================  ============================
data set            stored label                                ``mask``
==================  ==========================================  ============================
Cityscapes          ``gtFine_labelIds.png``: ids 0..33          train ids 0..18, others 255
ADE20K              ``annotations/*.png``: 0 other, 1..150      ``value - 1``, 0 -> 255
PASCAL Context 59   ``SegmentationClassContext``: 0 bg, 1..59   ``value - 1``, 0 -> 255
SBD                 ``cls/*.mat``: ``GTcls.Segmentation`` 0..20  as stored (0 = background)
==================  ==========================================  ============================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors

from course_lib.config import IGNORE_INDEX
from course_lib.data.readers import (
    VOC_CLASSES,
    _check_size,
    _find_root,
    _read_index,
    _read_rgb,
    _Reader,
    _require,
)

__all__ = [
    "ADE20K_CLASSES",
    "CITYSCAPES_LABELS",
    "CITYSCAPES_TRAIN_CLASSES",
    "PASCAL_CONTEXT59_CLASSES",
    "ADE20K",
    "Cityscapes",
    "PascalContext",
    "SBD",
    "cityscapes_train_ids",
]

# --------------------------------------------------------------------------------------
# Class tables
# --------------------------------------------------------------------------------------
# (name, labelId, trainId) of the 34 labels that gtFine_labelIds.png can hold, as published
# in cityscapesScripts/helpers/labels.py (Cordts et al., CVPR 2016); trainId 255 = not
# evaluated. "license plate" (id -1) is never written to labelIds PNGs and is left out.
# tests/test_readers_scenes.py compares this table with torchvision.datasets.Cityscapes.classes.
CITYSCAPES_LABELS: tuple[tuple[str, int, int], ...] = (
    ("unlabeled", 0, 255), ("ego vehicle", 1, 255), ("rectification border", 2, 255),
    ("out of roi", 3, 255), ("static", 4, 255), ("dynamic", 5, 255), ("ground", 6, 255),
    ("road", 7, 0), ("sidewalk", 8, 1), ("parking", 9, 255), ("rail track", 10, 255),
    ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4), ("guard rail", 14, 255),
    ("bridge", 15, 255), ("tunnel", 16, 255), ("pole", 17, 5), ("polegroup", 18, 255),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8),
    ("terrain", 22, 9), ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12),
    ("car", 26, 13), ("truck", 27, 14), ("bus", 28, 15), ("caravan", 29, 255),
    ("trailer", 30, 255), ("train", 31, 16), ("motorcycle", 32, 17), ("bicycle", 33, 18),
)
CITYSCAPES_TRAIN_CLASSES: tuple[str, ...] = tuple(
    name for name, _, train in sorted(CITYSCAPES_LABELS, key=lambda r: r[2]) if train != 255
)

# The 150 SceneParse150 classes in label order 1..150 (objectInfo150.txt of the
# ADEChallengeData2016 release; spelled as in mmsegmentation's mmseg/datasets/ade.py,
# commit 088894bd6167bf55031e4d05475d22504035b3e6, without its trailing blank in 'bed ').
ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp",
    "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator",
    "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door",
    "stairway", "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower",
    "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island", "computer",
    "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
    "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt",
    "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen",
    "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan",
    "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)

# The 59 PASCAL Context classes in label order 1..59: the order of the official 59_labels.txt
# (https://cs.stanford.edu/~roozbeh/pascal-context/; the same in rstrudel/segmenter's
# segm/data/config/pascal_context.yml), spelled as in mmsegmentation's
# mmseg/datasets/pascal_context.py, commit 0999c55813344b9f3d1471d6ce9f570081370514.
# course_lib.data.converters writes this order. mmsegmentation's converter numbers the 59
# classes alphabetically instead (aeroplane, bag, bed, ...: its later class list and its
# issue #3021), so the names below do not fit PNGs written by it.
PASCAL_CONTEXT59_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "table", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor", "bag", "bed", "bench", "book", "building", "cabinet", "ceiling", "cloth",
    "computer", "cup", "door", "fence", "floor", "flower", "food", "grass", "ground",
    "keyboard", "light", "mountain", "mouse", "curtain", "platform", "sign", "plate", "road",
    "rock", "shelves", "sidewalk", "sky", "snow", "bedclothes", "track", "tree", "truck",
    "wall", "water", "window", "wood",
)


def cityscapes_train_ids(label_ids: np.ndarray | torch.Tensor) -> np.ndarray:
    """Cityscapes ``labelIds`` ``[H,W]`` -> ``trainIds`` (0..18; 255 for the 15 labels that
    are not evaluated). A value that is no Cityscapes label id (above 33) raises."""
    ids = np.asarray(label_ids).astype(np.int64)
    lookup = np.full(256, -1, dtype=np.int64)
    for _, label_id, train_id in CITYSCAPES_LABELS:
        lookup[label_id] = train_id
    if ids.size and (ids.min() < 0 or ids.max() > 255 or (lookup[ids] < 0).any()):
        bad = np.unique(ids[(ids < 0) | (ids > 255) | (lookup[ids.clip(0, 255)] < 0)])
        raise ValueError(f"label id(s) {bad[:10].tolist()} are no Cityscapes label ids "
                         "(expected 0..33, the labelIds of cityscapesScripts' labels.py)")
    return lookup[ids]


def _shifted(stored: np.ndarray, num_classes: int, path: Path, zero_means: str) -> np.ndarray:
    """Labels stored as ``1..K`` with 0 = ``zero_means`` -> ``0..K-1`` with 0 -> 255."""
    bad = np.unique(stored[stored > num_classes])
    if bad.size:
        raise ValueError(f"{path} holds label(s) {bad[:10].tolist()}; expected 0 "
                         f"({zero_means}) or 1..{num_classes}")
    return np.where(stored == 0, IGNORE_INDEX, stored - 1)


def _sample(image: np.ndarray, mask: np.ndarray, image_id: str) -> dict[str, Any]:
    return {
        "image": tv_tensors.Image(torch.from_numpy(image)),
        "mask": tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))),
        "image_id": image_id,
    }


def _split_list(path: Path) -> list[str]:
    names = [ln.strip() for ln in _require(path, "split list").read_text().splitlines()]
    return [n for n in names if n]


# --------------------------------------------------------------------------------------
# Cityscapes
# --------------------------------------------------------------------------------------
class Cityscapes(_Reader):
    """Cityscapes fine annotations, official layout (``leftImg8bit_trainvaltest.zip`` and
    ``gtFine_trainvaltest.zip`` unpacked side by side)::

        root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
        root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

    ``mask`` holds the 19 evaluated classes as train ids 0..18 and 255 elsewhere
    (:func:`cityscapes_train_ids`, the official mapping of ``labels.py``).
    """

    class_names = CITYSCAPES_TRAIN_CLASSES

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = _find_root(root, "leftImg8bit", ("cityscapes", "Cityscapes"))
        self.split = split
        image_dir = _require(self.root / "leftImg8bit" / split, "image folder")
        images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
        if not images:
            raise FileNotFoundError(f"no <city>/*_leftImg8bit.png images in {image_dir}")
        self.items = [
            (p, _require(self.root / "gtFine" / split / p.parent.name
                         / p.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png"),
                         "gtFine labelIds file"))
            for p in images
        ]

    def _load(self, index: int) -> dict[str, Any]:
        ipath, mpath = self.items[index]
        image, ids = _read_rgb(ipath), _read_index(mpath)
        _check_size(image, ids, ipath, mpath)
        try:
            mask = cityscapes_train_ids(ids)
        except ValueError as err:
            raise ValueError(f"{mpath}: {err}") from err
        return _sample(image, mask, ipath.name.removesuffix("_leftImg8bit.png"))


# --------------------------------------------------------------------------------------
# ADE20K / SceneParse150
# --------------------------------------------------------------------------------------
class ADE20K(_Reader):
    """ADE20K as released for the MIT Scene Parsing benchmark (``ADEChallengeData2016.zip``)::

        root/images/{training,validation}/ADE_<split>_<8 digits>.jpg
        root/annotations/{training,validation}/ADE_<split>_<8 digits>.png

    ``split`` is ``"training"`` or ``"validation"`` (``"train"``/``"val"`` also accepted).
    Annotation value 0 ("other", not among the 150 classes) becomes 255 and classes 1..150
    become 0..149, as mmsegmentation's ``reduce_zero_label`` does.
    """

    class_names = ADE20K_CLASSES
    SPLITS = {"train": "training", "val": "validation"}

    def __init__(self, root: str | Path, split: str = "training",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = _find_root(root, "annotations", ("ADEChallengeData2016",))
        self.split = self.SPLITS.get(split, split)
        image_dir = _require(self.root / "images" / self.split, "image folder")
        images = sorted(image_dir.glob("*.jpg")) or sorted(image_dir.glob("*.png"))
        if not images:
            raise FileNotFoundError(f"no .jpg images in {image_dir}")
        self.items = [(p, _require(self.root / "annotations" / self.split / f"{p.stem}.png",
                                   "annotation file")) for p in images]

    def _load(self, index: int) -> dict[str, Any]:
        ipath, mpath = self.items[index]
        image, stored = _read_rgb(ipath), _read_index(mpath)
        _check_size(image, stored, ipath, mpath)
        return _sample(image, _shifted(stored, 150, mpath, "other"), ipath.stem)


# --------------------------------------------------------------------------------------
# PASCAL Context
# --------------------------------------------------------------------------------------
class PascalContext(_Reader):
    """PASCAL Context (VOC 2010 images) in the layout that
    :func:`course_lib.data.converters.convert_pascal_context` writes from the official
    release (``python -m course_lib.data.converters pascal-context SRC DST``)::

        root/JPEGImages/<id>.jpg
        root/SegmentationClassContext/<id>.png   (0 = background, 1..59 = the 59 classes)
        root/ImageSets/SegmentationContext/<split>.txt

    Labels 1..59 follow the official ``59_labels.txt`` (:data:`PASCAL_CONTEXT59_CLASSES`).
    mmsegmentation's converter writes the same layout but numbers the classes alphabetically,
    so with its PNGs the class names here are wrong (the pixels are read correctly).

    ``root`` may also be ``VOCdevkit`` or its parent (then ``VOC2010`` is looked up).
    With ``include_background=False`` (the usual 59-class benchmark) background becomes
    255 and the classes 0..58; with ``True`` the 60 labels are kept as stored.
    """

    def __init__(self, root: str | Path, split: str = "train",
                 include_background: bool = False,
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = _find_root(root, "SegmentationClassContext",
                               ("VOC2010", "VOCdevkit/VOC2010"))
        self.split = split
        self.include_background = include_background
        self.class_names = (("background",) if include_background else ()) \
            + PASCAL_CONTEXT59_CLASSES
        self.items = _split_list(self.root / "ImageSets" / "SegmentationContext" / f"{split}.txt")

    def _load(self, index: int) -> dict[str, Any]:
        name = self.items[index]
        ipath = _require(self.root / "JPEGImages" / f"{name}.jpg", "image")
        mpath = _require(self.root / "SegmentationClassContext" / f"{name}.png", "label file")
        image, stored = _read_rgb(ipath), _read_index(mpath)
        _check_size(image, stored, ipath, mpath)
        if self.include_background:
            bad = np.unique(stored[stored > 59])
            if bad.size:
                raise ValueError(f"{mpath} holds label(s) {bad[:10].tolist()}; expected 0..59")
            return _sample(image, stored, name)
        return _sample(image, _shifted(stored, 59, mpath, "background"), name)


# --------------------------------------------------------------------------------------
# SBD
# --------------------------------------------------------------------------------------
class SBD(_Reader):
    """Semantic Boundaries Dataset (Hariharan et al., ICCV 2011), ``benchmark.tgz`` layout::

        root/img/<id>.jpg
        root/cls/<id>.mat      (MATLAB struct GTcls with field Segmentation, uint8 0..20)
        root/<split>.txt       (train: 8,498 ids, val: 2,857)

    ``root`` may also be the folder that holds ``benchmark_RELEASE/dataset``. ``mask`` is
    ``GTcls.Segmentation`` as stored (0 = background, 1..20 = the VOC classes); SBD has no
    void label. Reading ``.mat`` files needs scipy.
    """

    class_names = VOC_CLASSES

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = _find_root(root, "cls", ("benchmark_RELEASE/dataset", "dataset"))
        self.split = split
        self.items = _split_list(self.root / f"{split}.txt")

    def _load(self, index: int) -> dict[str, Any]:
        from scipy.io import loadmat

        name = self.items[index]
        ipath = _require(self.root / "img" / f"{name}.jpg", "image")
        mpath = _require(self.root / "cls" / f"{name}.mat", "GTcls .mat file")
        try:
            segmentation = loadmat(mpath)["GTcls"]["Segmentation"][0, 0]
        except (KeyError, ValueError, IndexError) as err:
            raise ValueError(f"{mpath} has no GTcls.Segmentation field: {err}") from err
        stored = np.asarray(segmentation).astype(np.int64)
        bad = np.unique(stored[(stored < 0) | (stored > 20)])
        if bad.size:
            raise ValueError(f"{mpath} holds label(s) {bad[:10].tolist()}; expected 0..20")
        image = _read_rgb(ipath)
        _check_size(image, stored, ipath, mpath)
        return _sample(image, stored, name)
