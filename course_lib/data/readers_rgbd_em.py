"""Readers for an RGB-D data set (NYU-Depth V2, survey §4.2) and for the ISBI 2012 EM
challenge's official multi-page TIFF stacks.

Items follow the course's sample dict (:mod:`course_lib.data.formats`); the RGB-D reader
adds ``"depth"``: a ``tv_tensors.Mask`` float32 ``[1,H,W]`` in metres (0 = no reading), the
same key and type as the shapes world's depth (``ShapesWorld(..., with_depth=True)``), so
a ``transforms.v2`` pipeline moves it with the image and leaves its values alone.
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
    _check_size,
    _find_root,
    _open_image,
    _read_index,
    _read_rgb,
    _Reader,
    _require,
)

__all__ = ["NYU40_CLASSES", "ISBI2012Stack", "NYUDepthV2", "read_tiff_stack"]

# The 40 classes of Gupta, Arbelaez and Malik (CVPR 2013) that most NYU-Depth V2 work uses,
# in label order 1..40 (0 = unlabelled).
NYU40_CLASSES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
    "bookshelf", "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser",
    "pillow", "mirror", "floor mat", "clothes", "ceiling", "books", "refrigerator",
    "television", "paper", "towel", "shower curtain", "box", "whiteboard", "person",
    "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
    "otherfurniture", "otherprop",
)


# --------------------------------------------------------------------------------------
# NYU-Depth V2
# --------------------------------------------------------------------------------------
class NYUDepthV2(_Reader):
    """NYU-Depth V2's 1,449 labelled RGB-D frames (795 train / 654 test), one PNG per map.

    The official release is one MATLAB file (``nyu_depth_v2_labeled.mat``, 2.8 GB, arrays
    ``images``, ``depths``, ``labels``); the course reads the per-image PNG layout that the
    common preprocessed releases unpack it to, and that
    :func:`course_lib.data.converters.convert_nyu_depth_v2` writes from the .mat, the official
    ``splits.mat`` and Gupta et al.'s ``classMapping40.mat``
    (``python -m course_lib.data.converters nyu-depth-v2 SRC DST``)::

        root/<split>/rgb/<id>.png     uint8 RGB, 640 x 480
        root/<split>/depth/<id>.png   16-bit grey, depth in millimetres (0 = no reading)
        root/<split>/label/<id>.png   8-bit: 0 = unlabelled, 1..40 = NYU40 classes

    ``root`` may also be the folder that holds ``nyu_depth_v2``. ``mask`` = label - 1 with
    0 -> 255 (classes 0..39, :data:`NYU40_CLASSES`); ``depth`` = millimetres / 1000.
    """

    class_names = NYU40_CLASSES

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = _find_root(root, split, ("nyu_depth_v2",))
        self.split = split
        rgb_dir = _require(self.root / split / "rgb", "rgb folder")
        images = sorted(rgb_dir.glob("*.png"))
        if not images:
            raise FileNotFoundError(f"no .png images in {rgb_dir}")
        self.items = [
            (p, _require(self.root / split / "depth" / p.name, "depth file"),
             _require(self.root / split / "label" / p.name, "label file"))
            for p in images
        ]

    def _load(self, index: int) -> dict[str, Any]:
        ipath, dpath, lpath = self.items[index]
        image = _read_rgb(ipath)
        depth_img = _open_image(dpath)
        if not (depth_img.mode.startswith("I;16") or depth_img.mode == "I"):
            raise ValueError(f"{dpath} is a {depth_img.mode} image; expected a 16-bit PNG of "
                             "depth in millimetres")
        millimetres = np.asarray(depth_img).astype(np.float32)
        stored = _read_index(lpath)
        _check_size(image, millimetres, ipath, dpath)
        _check_size(image, stored, ipath, lpath)
        bad = np.unique(stored[stored > len(NYU40_CLASSES)])
        if bad.size:
            raise ValueError(f"{lpath} holds label(s) {bad[:10].tolist()}; expected 0 "
                             f"(unlabelled) or 1..{len(NYU40_CLASSES)}")
        mask = np.where(stored == 0, IGNORE_INDEX, stored - 1)
        return {
            "image": tv_tensors.Image(torch.from_numpy(image)),
            "mask": tv_tensors.Mask(torch.from_numpy(mask)),
            "depth": tv_tensors.Mask(torch.from_numpy(millimetres / 1000.0)[None]),
            "image_id": ipath.stem,
        }


# --------------------------------------------------------------------------------------
# ISBI 2012 multi-page TIFF stacks
# --------------------------------------------------------------------------------------
def read_tiff_stack(path: str | Path) -> np.ndarray:
    """All pages of a multi-page TIFF as uint8 ``[D,H,W]`` (PIL's ``ImageSequence``)."""
    from PIL import ImageSequence

    path = Path(path)
    img = _open_image(_require(path, "TIFF stack"))
    pages = [np.asarray(page.convert("L")) for page in ImageSequence.Iterator(img)]
    if len({p.shape for p in pages}) != 1:
        raise ValueError(f"{path}: pages differ in size: {sorted({p.shape for p in pages})}")
    return np.stack(pages)


class ISBI2012Stack(_Reader):
    """The ISBI 2012 EM segmentation challenge in its official files (Arganda-Carreras et al.,
    2015): ``train-volume.tif`` and ``train-labels.tif`` (30 pages of 512 x 512 each) and
    ``test-volume.tif`` (30 pages, labels never released).

    Items are single sections: ``image`` uint8 ``[1,H,W]`` and, for ``split="train"``,
    ``mask`` with 1 = cell (white in the labels) and 0 = membrane (black), the class order
    of :class:`course_lib.data.EMStack` ``kind="isbi"``; label pages that are not purely
    black and white raise. The stacks are read once, when the reader is made.
    """

    class_names = ("membrane", "cell")
    SPLITS = ("train", "test")

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        if split not in self.SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(self.SPLITS)}")
        self.root = _find_root(root, f"{split}-volume.tif", ("isbi2012", "isbi2012_em"))
        self.split = split
        self.volume = read_tiff_stack(self.root / f"{split}-volume.tif")
        self.labels: np.ndarray | None = None
        if split == "train":
            lpath = self.root / "train-labels.tif"
            labels = read_tiff_stack(lpath)
            if labels.shape != self.volume.shape:
                raise ValueError(f"{lpath} is {labels.shape} (D,H,W) but train-volume.tif is "
                                 f"{self.volume.shape}")
            odd = np.setdiff1d(np.unique(labels), [0, 255])
            if odd.size:
                raise ValueError(f"{lpath} holds grey values {odd[:10].tolist()}; expected 0 "
                                 "(membrane) and 255 (cell)")
            self.labels = (labels == 255).astype(np.int64)
        self.items = list(range(len(self.volume)))

    def _load(self, index: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": tv_tensors.Image(torch.from_numpy(self.volume[index][None].copy())),
            "image_id": f"{self.split}-{index:02d}",
        }
        if self.labels is not None:
            out["mask"] = tv_tensors.Mask(torch.from_numpy(self.labels[index].copy()))
        return out
