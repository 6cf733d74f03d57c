"""The shapes world written in the official layouts of the survey's data sets, so that the
readers of :mod:`~course_lib.data.readers_scenes` and :mod:`~course_lib.data.readers_rgbd_em`
run (in the tests and the notebook) where the real data is not at hand.

Each writer stores the shapes-world class ``k`` (void = 255) in that data set's own coding,
which its reader must undo: Cityscapes label id of train id ``k`` (void -> 0 "unlabeled"),
ADE20K / PASCAL Context / NYU ``k + 1`` (void -> 0), SBD ``k`` in a ``.mat`` file (void ->
0, SBD has no void), ISBI 2012 0 / 255 pages of a multi-page TIFF. Images are PNG (lossless)
even where the data set ships JPEG, except where the reader only looks for ``.jpg``; those
are written as JPEG at quality 95 (so only the masks round-trip exactly there).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from course_lib.config import IGNORE_INDEX
from course_lib.data.readers_scenes import CITYSCAPES_LABELS

if TYPE_CHECKING:
    from course_lib.data.synthetic import ShapesWorld

__all__ = [
    "DEPTH_RANGE_M",
    "write_ade20k",
    "write_cityscapes",
    "write_isbi2012",
    "write_nyu_depth",
    "write_pascal_context",
    "write_sbd",
]

DEPTH_RANGE_M = 10.0  # the shapes world's depth (0..1) is written as 0..10 m, NYU's range


def _rgb(image: np.ndarray):  # noqa: ANN202 - a PIL image
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))


def _grey(values: np.ndarray):  # noqa: ANN202 - a PIL image
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(values.astype(np.uint8)), mode="L")


def _recode(label: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """Shapes-world labels (0..K-1, 255) through a 256-entry lookup table."""
    return lookup[label.astype(np.int64)].astype(np.uint8)


def _shift_lookup(void_to: int = 0) -> np.ndarray:
    lookup = np.arange(1, 257) % 256
    lookup[IGNORE_INDEX] = void_to
    return lookup


def _names(dataset: ShapesWorld) -> list[str]:
    return [f"{dataset.split}_{i:06d}" for i in range(len(dataset))]


def write_cityscapes(dataset: ShapesWorld, root: str | Path, city: str = "shapesville") -> Path:
    """``root/leftImg8bit/<split>/<city>/*_leftImg8bit.png`` + ``gtFine/.../*_labelIds.png``
    (classes 0..11 as the label ids whose train ids they are). Returns ``root``."""
    root = Path(root)
    lookup = np.zeros(256, dtype=np.int64)  # void -> 0 "unlabeled"
    for _, label_id, train_id in CITYSCAPES_LABELS:
        if train_id != IGNORE_INDEX:
            lookup[train_id] = label_id
    images = root / "leftImg8bit" / dataset.split / city
    labels = root / "gtFine" / dataset.split / city
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for i in range(len(dataset)):
        raw, stem = dataset.raw(i), f"{city}_{i:06d}_000019"
        _rgb(raw["image"]).save(images / f"{stem}_leftImg8bit.png")
        _grey(_recode(raw["label"], lookup)).save(labels / f"{stem}_gtFine_labelIds.png")
    return root


def write_ade20k(dataset: ShapesWorld, root: str | Path) -> Path:
    """``root/ADEChallengeData2016/{images,annotations}/<training|validation>/`` with JPEG
    images and PNG labels ``k + 1`` (0 = other). Returns the ``ADEChallengeData2016`` folder."""
    base = Path(root) / "ADEChallengeData2016"
    split = "training" if dataset.split == "train" else "validation"
    (base / "images" / split).mkdir(parents=True, exist_ok=True)
    (base / "annotations" / split).mkdir(parents=True, exist_ok=True)
    for i in range(len(dataset)):
        raw, stem = dataset.raw(i), f"ADE_{'train' if split == 'training' else 'val'}_{i + 1:08d}"
        _rgb(raw["image"]).save(base / "images" / split / f"{stem}.jpg", quality=95)
        _grey(_recode(raw["label"], _shift_lookup())).save(base / "annotations" / split
                                                           / f"{stem}.png")
    return base


def write_pascal_context(dataset: ShapesWorld, root: str | Path) -> Path:
    """``root/VOCdevkit/VOC2010/`` with ``JPEGImages``, ``SegmentationClassContext`` (``k + 1``,
    0 = background) and ``ImageSets/SegmentationContext/<split>.txt``. Returns ``VOC2010``."""
    base = Path(root) / "VOCdevkit" / "VOC2010"
    for sub in ("JPEGImages", "SegmentationClassContext", "ImageSets/SegmentationContext"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    names = _names(dataset)
    for i, name in enumerate(names):
        raw = dataset.raw(i)
        _rgb(raw["image"]).save(base / "JPEGImages" / f"{name}.jpg", quality=95)
        _grey(_recode(raw["label"], _shift_lookup())).save(
            base / "SegmentationClassContext" / f"{name}.png")
    (base / "ImageSets" / "SegmentationContext" / f"{dataset.split}.txt").write_text(
        "\n".join(names) + "\n")
    return base


def write_sbd(dataset: ShapesWorld, root: str | Path) -> Path:
    """``root/benchmark_RELEASE/dataset/`` with ``img/<id>.jpg``, ``cls/<id>.mat`` (struct
    ``GTcls`` with SBD's ``Segmentation`` and ``CategoriesPresent``; no ``Boundaries``) and
    ``<split>.txt``. Returns the ``dataset`` folder."""
    from scipy.io import savemat

    base = Path(root) / "benchmark_RELEASE" / "dataset"
    (base / "img").mkdir(parents=True, exist_ok=True)
    (base / "cls").mkdir(parents=True, exist_ok=True)
    names = _names(dataset)
    lookup = np.arange(256)
    lookup[IGNORE_INDEX] = 0
    for i, name in enumerate(names):
        raw = dataset.raw(i)
        seg = _recode(raw["label"], lookup)
        _rgb(raw["image"]).save(base / "img" / f"{name}.jpg", quality=95)
        present = np.unique(seg[seg > 0]).astype(np.uint8)
        savemat(base / "cls" / f"{name}.mat", {"GTcls": {
            "Segmentation": seg,
            "CategoriesPresent": present[:, None],
        }})
    (base / f"{dataset.split}.txt").write_text("\n".join(names) + "\n")
    return base


def write_nyu_depth(dataset: ShapesWorld, root: str | Path) -> Path:
    """``root/nyu_depth_v2/<split>/{rgb,depth,label}/<id>.png``: depth (``with_depth=True``
    needed) as 16-bit millimetres of ``depth * DEPTH_RANGE_M``, labels ``k + 1``.
    Returns the ``nyu_depth_v2`` folder."""
    from PIL import Image

    if not dataset.with_depth:
        raise ValueError("write_nyu_depth needs a ShapesWorld made with with_depth=True")
    base = Path(root) / "nyu_depth_v2"
    dirs = {k: base / dataset.split / k for k in ("rgb", "depth", "label")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(_names(dataset)):
        raw = dataset.raw(i)
        _rgb(raw["image"]).save(dirs["rgb"] / f"{name}.png")
        millimetres = np.round(raw["depth"] * DEPTH_RANGE_M * 1000).astype(np.uint16)
        Image.fromarray(millimetres).save(dirs["depth"] / f"{name}.png")
        _grey(_recode(raw["label"], _shift_lookup())).save(dirs["label"] / f"{name}.png")
    return base


def write_isbi2012(dataset: ShapesWorld, root: str | Path) -> Path:
    """``root/isbi2012/train-volume.tif`` and ``train-labels.tif`` (multi-page TIFF; labels
    255 = cell, 0 = membrane) from a ``variant="microscopy"`` world; ``split="test"`` writes
    ``test-volume.tif`` only. Returns the ``isbi2012`` folder."""
    if dataset.variant != "microscopy":
        raise ValueError(f"write_isbi2012 needs variant='microscopy', got {dataset.variant!r}")
    base = Path(root) / "isbi2012"
    base.mkdir(parents=True, exist_ok=True)
    split = "test" if dataset.split == "test" else "train"
    raws = [dataset.raw(i) for i in range(len(dataset))]
    pages = [_grey(r["image"][0]) for r in raws]
    pages[0].save(base / f"{split}-volume.tif", save_all=True, append_images=pages[1:])
    if split == "train":
        labels = [_grey(np.where(r["label"] == 1, 255, 0)) for r in raws]
        labels[0].save(base / "train-labels.tif", save_all=True, append_images=labels[1:])
    return base
