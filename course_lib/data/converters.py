"""Converters from two official releases to the per-image layouts the course's readers read.

PASCAL Context (Mottaghi et al., CVPR 2014) -> :class:`~course_lib.data.PascalContext`
    The release (https://cs.stanford.edu/~roozbeh/pascal-context/) is ``trainval.tar.gz``:
    one MATLAB file ``trainval/<VOC 2010 id>.mat`` per image whose variable ``LabelMap``
    (uint16, ``[H,W]``) holds the 1-based index of one of the 459 full classes listed in
    ``labels.txt`` (lines ``"<index>: <name>"``); ``59_labels.txt`` (same line format) lists the
    59 frequent classes of the usual benchmark. :func:`convert_pascal_context` writes, into
    the VOC 2010 folder (``VOCdevkit/VOC2010`` with ``JPEGImages`` and ``ImageSets/Main``)::

        SegmentationClassContext/<id>.png         0 = background (the other 400 classes),
                                                  k = the k-th class of 59_labels.txt
        ImageSets/SegmentationContext/train.txt   VOC 2010's Main train list (4,998 ids)
        ImageSets/SegmentationContext/val.txt     and val list (5,105 ids), as the Context
                                                  paper splits its 10,103 images

    The 459-class indices of the 59 classes are checked against the table that
    mmsegmentation's converter uses (``_mapping`` in tools/dataset_converters/pascal_context.py,
    https://github.com/open-mmlab/mmsegmentation/blob/2b6a1aafbf40c8cf2501743e9d6fd9e611e2889d/
    tools/dataset_converters/pascal_context.py, which reads the same labels from the Detail
    API's ``trainval_merged.json`` and maps every class outside the 59 to 0, as we do).
    One difference: mmsegmentation numbers the 59 classes by ascending 459-class index
    (alphabetical: aeroplane, bag, bed, ...; its ``PascalContextDataset59`` class list and
    mmsegmentation issue #3021), whereas this converter keeps the order of the official
    ``59_labels.txt`` (aeroplane, bicycle, bird, ...), the order of
    :data:`~course_lib.data.PASCAL_CONTEXT59_CLASSES`. File names and fields as read by
    public converters of the release (e.g. NVlabs/ODISE
    ``datasets/prepare_pascal_ctx_full_sem_seg.py``: ``loadmat(...)["LabelMap"]``, uint16).

NYU-Depth V2 (Silberman et al., ECCV 2012) -> :class:`~course_lib.data.NYUDepthV2`
    ``nyu_depth_v2_labeled.mat`` (https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html)
    is MATLAB v7.3, i.e. HDF5 (read with h5py), whose arrays MATLAB stores transposed:
    ``images`` ``[N,3,W,H]`` uint8, ``depths`` ``[N,W,H]`` float metres (in-painted),
    ``labels`` ``[N,W,H]`` uint16 with 0 = unlabelled and 1..894 the raw classes.
    ``splits.mat`` (same page, "train/test split") holds ``trainNdxs`` (795) and ``testNdxs``
    (654), 1-based. ``classMapping40.mat`` (Gupta, Arbelaez, Malik, CVPR 2013; published at
    http://www.cs.berkeley.edu/~sgupta/cvpr13/ and in ankurhanda/nyuv2-meta-data on GitHub)
    holds ``mapClass`` (``[1,894]``: raw class -> 1..40) and ``className``.
    :func:`convert_nyu_depth_v2` writes ``<split>/{rgb,depth,label}/<index>.png`` with the
    1-based index of the frame in the .mat as a 5-digit id (as the common preprocessing
    scripts name them), depth as 16-bit millimetres (0 = no reading) and labels 0..40.

Command line::

    python -m course_lib.data.converters pascal-context CONTEXT_DIR VOC2010_DIR
    python -m course_lib.data.converters nyu-depth-v2 SRC_DIR DST_DIR
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from course_lib.data.readers import _find_root, _require
from course_lib.data.readers_rgbd_em import NYU40_CLASSES
from course_lib.data.readers_scenes import PASCAL_CONTEXT59_CLASSES

__all__ = [
    "PASCAL_CONTEXT59_FULL_INDEX",
    "convert_nyu_depth_v2",
    "convert_pascal_context",
    "main",
]

# Index in labels.txt (1..459) of each of the 59 classes: the values of mmsegmentation's
# `_mapping` (cited in the module docstring) paired, in ascending order, with the class names
# in alphabetical order, as its PascalContextDataset59 lists them.
PASCAL_CONTEXT59_FULL_INDEX: dict[str, int] = {
    "aeroplane": 2, "bag": 9, "bed": 18, "bedclothes": 19, "bench": 22, "bicycle": 23,
    "bird": 25, "boat": 31, "book": 33, "bottle": 34, "building": 44, "bus": 45,
    "cabinet": 46, "car": 59, "cat": 65, "ceiling": 68, "chair": 72, "cloth": 80,
    "computer": 85, "cow": 98, "cup": 104, "curtain": 105, "dog": 113, "door": 115,
    "fence": 144, "floor": 158, "flower": 159, "food": 162, "grass": 187, "ground": 189,
    "horse": 207, "keyboard": 220, "light": 232, "motorbike": 258, "mountain": 259,
    "mouse": 260, "person": 284, "plate": 295, "platform": 296, "pottedplant": 308,
    "road": 324, "rock": 326, "sheep": 347, "shelves": 349, "sidewalk": 354, "sign": 355,
    "sky": 360, "snow": 366, "sofa": 368, "table": 397, "track": 415, "train": 416,
    "tree": 420, "truck": 424, "tvmonitor": 427, "wall": 440, "water": 445, "window": 454,
    "wood": 458,
}
PASCAL_CONTEXT_FULL_CLASSES = 459
NYU_RAW_CLASSES = 894
_CONTEXT_SPLITS = ("train", "val")


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)


# --------------------------------------------------------------------------------------
# PASCAL Context
# --------------------------------------------------------------------------------------
def _read_label_list(path: Path) -> list[str]:
    """``"<index>: <name>"`` lines numbered 1, 2, 3, ... -> the names in that order."""
    names = []
    for number, line in enumerate(_require(path, "class list").read_text().splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"\s*(\d+)\s*:\s*(.+?)\s*", line)
        if not match:
            raise ValueError(f"{path}, line {number}: {line!r} is not '<index>: <name>'")
        if int(match.group(1)) != len(names) + 1:
            raise ValueError(f"{path}, line {number}: index {match.group(1)}, expected "
                             f"{len(names) + 1} (the classes are numbered 1, 2, 3, ...)")
        names.append(match.group(2))
    return names


def _context_lookup(full_names: list[str], names59: list[str], where: Path) -> np.ndarray:
    """Lookup table 0..459 -> 0..59: the k-th class of 59_labels.txt -> k, all others -> 0."""
    if tuple(names59) != PASCAL_CONTEXT59_CLASSES:
        pairs = zip(names59, PASCAL_CONTEXT59_CLASSES, strict=False)
        diff = [(k, a, b) for k, (a, b) in enumerate(pairs, 1) if a != b][:3]
        raise ValueError(f"{where / '59_labels.txt'} lists {len(names59)} classes (first "
                         f"differences (k, file, expected): {diff}); expected the 59 classes "
                         "of the official 59_labels.txt in the order of "
                         "course_lib.data.PASCAL_CONTEXT59_CLASSES")
    index = {name: i for i, name in enumerate(full_names, 1)}
    lookup = np.zeros(len(full_names) + 1, dtype=np.uint8)
    for k, name in enumerate(names59, 1):
        if index.get(name) != PASCAL_CONTEXT59_FULL_INDEX[name]:
            raise ValueError(f"{where / 'labels.txt'} gives class {name!r} the index "
                             f"{index.get(name)}; the official release (and mmsegmentation's "
                             f"mapping) has {PASCAL_CONTEXT59_FULL_INDEX[name]}")
        lookup[index[name]] = k
    return lookup


def _context_label(mat_path: Path, lookup: np.ndarray) -> np.ndarray:
    from scipy.io import loadmat

    try:
        label_map = loadmat(mat_path)["LabelMap"]
    except KeyError:
        raise ValueError(f"{mat_path} has no variable 'LabelMap' (the official PASCAL Context "
                         "annotation of one image)") from None
    except (ValueError, OSError) as err:  # not a MATLAB file, or a truncated one
        raise ValueError(f"cannot read {mat_path} as a MATLAB file: {err}") from err
    label_map = np.asarray(label_map)
    if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError(f"{mat_path}: LabelMap is {label_map.dtype} {list(label_map.shape)}; "
                         "expected integer class indices [H,W]")
    bad = np.unique(label_map[(label_map < 0) | (label_map >= len(lookup))])
    if bad.size:
        raise ValueError(f"{mat_path}: LabelMap holds {bad[:10].tolist()}; expected 0..."
                         f"{len(lookup) - 1} (indices into labels.txt)")
    return lookup[label_map]


def convert_pascal_context(context_dir: str | Path, voc2010_dir: str | Path,
                           splits: Sequence[str] = _CONTEXT_SPLITS) -> dict[str, int]:
    """Write PASCAL Context's 59-class label PNGs and split lists into ``voc2010_dir``.

    ``context_dir`` holds the official release unpacked: ``trainval/<id>.mat``, ``labels.txt``
    and ``59_labels.txt``. ``voc2010_dir`` is ``VOCdevkit/VOC2010`` of
    ``VOCtrainval_03-May-2010.tar`` (or ``VOCdevkit`` or its parent); each split's ids are
    read from its ``ImageSets/Main/<split>.txt``. Writes ``SegmentationClassContext/<id>.png``
    (uint8: 0 = background, 1..59 in the order of ``59_labels.txt``) and
    ``ImageSets/SegmentationContext/<split>.txt``; returns the number of images per split.
    A missing file, a ``.mat`` without ``LabelMap`` or with an index above 459, or class
    lists that disagree with the official ones raise an error naming the file.
    """
    context = Path(context_dir).expanduser()
    full_names = _read_label_list(context / "labels.txt")
    if len(full_names) != PASCAL_CONTEXT_FULL_CLASSES:
        raise ValueError(f"{context / 'labels.txt'} lists {len(full_names)} classes; the "
                         f"official file lists {PASCAL_CONTEXT_FULL_CLASSES}")
    lookup = _context_lookup(full_names, _read_label_list(context / "59_labels.txt"), context)
    mat_dir = _require(context / "trainval", "folder of PASCAL Context .mat files")
    voc = _find_root(voc2010_dir, "ImageSets", ("VOC2010", "VOCdevkit/VOC2010"))
    ids = {}
    for split in splits:
        lines = _require(voc / "ImageSets" / "Main" / f"{split}.txt",
                         "VOC 2010 split list").read_text().split()
        ids[split] = sorted(lines)
    out_dir = voc / "SegmentationClassContext"
    list_dir = voc / "ImageSets" / "SegmentationContext"
    out_dir.mkdir(exist_ok=True)
    list_dir.mkdir(parents=True, exist_ok=True)
    for split, names in ids.items():
        for name in names:
            _require(voc / "JPEGImages" / f"{name}.jpg", "VOC 2010 image")
            label = _context_label(_require(mat_dir / f"{name}.mat", "PASCAL Context "
                                            f"annotation of {split} image {name}"), lookup)
            _save_png(label, out_dir / f"{name}.png")
        (list_dir / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return {split: len(names) for split, names in ids.items()}


# --------------------------------------------------------------------------------------
# NYU-Depth V2
# --------------------------------------------------------------------------------------
def _import_h5py() -> Any:
    try:
        import h5py
    except ImportError as err:
        raise ImportError("reading nyu_depth_v2_labeled.mat (MATLAB v7.3, an HDF5 file) needs "
                          "h5py, which the course lists in pyproject.toml and environment.yml: "
                          "run `pip install h5py` (or `make setup`)") from err
    return h5py


def _mat_variable(path: Path, name: str) -> np.ndarray:
    """A variable of a MATLAB v5 file (``splits.mat``, ``classMapping40.mat``), flattened."""
    from scipy.io import loadmat

    try:
        data = loadmat(_require(path))
    except (ValueError, OSError, NotImplementedError) as err:
        raise ValueError(f"cannot read {path} as a MATLAB file: {err}") from err
    if name not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise ValueError(f"{path} has no variable {name!r} (found: {found})")
    return np.asarray(data[name]).ravel()


def _nyu_class_map(path: Path) -> np.ndarray:
    """Lookup raw label 0..894 -> 0..40 from classMapping40.mat's ``mapClass``."""
    map_class = _mat_variable(path, "mapClass")
    if map_class.size != NYU_RAW_CLASSES:
        raise ValueError(f"{path}: mapClass has {map_class.size} entries; expected "
                         f"{NYU_RAW_CLASSES} (one per raw NYU-Depth V2 class)")
    # MATLAB saves it as double: whole numbers 1..40 are expected.
    bad = np.unique(map_class[(map_class < 1) | (map_class > len(NYU40_CLASSES))
                              | (map_class != np.round(map_class))])
    if bad.size:
        raise ValueError(f"{path}: mapClass holds {bad[:10].tolist()}; expected classes "
                         f"1..{len(NYU40_CLASSES)}")
    return np.concatenate([[0], map_class]).astype(np.uint8)


def _nyu_split(path: Path, name: str, count: int) -> np.ndarray:
    """1-based frame numbers of one split from splits.mat, checked against ``count``."""
    idx = _mat_variable(path, name).astype(np.int64)
    bad = idx[(idx < 1) | (idx > count)]
    if bad.size:
        raise ValueError(f"{path}: {name} holds {bad[:10].tolist()}; expected frame numbers "
                         f"1..{count} (1-based, as MATLAB counts)")
    return idx


def _nyu_arrays(mat: Any, path: Path) -> tuple[Any, Any, Any]:
    """The three HDF5 datasets, their (transposed) shapes checked."""
    try:
        images, depths, labels = mat["images"], mat["depths"], mat["labels"]
    except KeyError as err:
        raise ValueError(f"{path} lacks one of the arrays 'images', 'depths', 'labels' "
                         f"(found: {sorted(mat.keys())})") from err
    n, channels, width, height = images.shape if images.ndim == 4 else (0, 0, 0, 0)
    if channels != 3:
        raise ValueError(f"{path}: images is {list(images.shape)}; expected [N,3,W,H] "
                         "(MATLAB's H x W x 3 x N as h5py reads it)")
    for name, arr in (("depths", depths), ("labels", labels)):
        if tuple(arr.shape) != (n, width, height):
            raise ValueError(f"{path}: {name} is {list(arr.shape)}; expected "
                             f"{[n, width, height]} to match images {list(images.shape)}")
    return images, depths, labels


def _millimetres(metres: np.ndarray, path: Path, frame: int) -> np.ndarray:
    bad = ~np.isfinite(metres) | (metres < 0) | (metres > 65.535)
    if bad.any():
        raise ValueError(f"{path}: depths of frame {frame} hold {np.unique(metres[bad])[:5]}; "
                         "expected metres in 0..65.535 (16-bit millimetres)")
    return np.round(metres * 1000).astype(np.uint16)


def convert_nyu_depth_v2(labeled_mat: str | Path, splits_mat: str | Path,
                         class_mapping_mat: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write NYU-Depth V2's labelled frames as ``out_dir/<split>/{rgb,depth,label}/<id>.png``.

    ``labeled_mat``: ``nyu_depth_v2_labeled.mat`` (HDF5; needs h5py); ``splits_mat``: the
    official ``splits.mat`` (``trainNdxs`` -> ``train``, ``testNdxs`` -> ``test``);
    ``class_mapping_mat``: Gupta et al.'s ``classMapping40.mat``. Each frame is read on its own
    (the file is 2.8 GB) and written as RGB uint8, depth uint16 millimetres and the 40-class
    label (0 = unlabelled). Returns the number of frames per split. A missing file or array,
    wrong shapes, a raw label above 894, or split indices outside the file raise an error
    naming the file.
    """
    h5py = _import_h5py()
    labeled_mat = _require(Path(labeled_mat), "NYU-Depth V2 file")
    splits_mat = _require(Path(splits_mat), "NYU-Depth V2 split file")
    lookup = _nyu_class_map(_require(Path(class_mapping_mat), "40-class mapping file"))
    out = Path(out_dir)
    try:
        mat = h5py.File(labeled_mat, "r")
    except OSError as err:
        raise ValueError(f"cannot open {labeled_mat} as MATLAB v7.3 (HDF5): {err}") from err
    counts = {}
    with mat:
        images, depths, labels = _nyu_arrays(mat, labeled_mat)
        for split, key in (("train", "trainNdxs"), ("test", "testNdxs")):
            frames = _nyu_split(splits_mat, key, images.shape[0])
            dirs = {kind: out / split / kind for kind in ("rgb", "depth", "label")}
            for d in dirs.values():
                d.mkdir(parents=True, exist_ok=True)
            for frame in frames:
                i = int(frame) - 1
                raw = np.asarray(labels[i]).T
                too_high = np.unique(raw[raw > NYU_RAW_CLASSES])
                if too_high.size:
                    raise ValueError(f"{labeled_mat}: labels of frame {frame} hold "
                                     f"{too_high[:10].tolist()}; expected 0..{NYU_RAW_CLASSES}")
                name = f"{frame:05d}.png"
                _save_png(np.ascontiguousarray(np.asarray(images[i]).transpose(2, 1, 0)),
                          dirs["rgb"] / name)
                _save_png(_millimetres(np.asarray(depths[i]).T, labeled_mat, int(frame)),
                          dirs["depth"] / name)
                _save_png(lookup[raw], dirs["label"] / name)
            counts[split] = len(frames)
    return counts


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.data.converters",
        description="Convert an official data set release to the course's per-image layout.")
    sub = parser.add_subparsers(dest="dataset", required=True)
    ctx = sub.add_parser("pascal-context", help="trainval/*.mat -> SegmentationClassContext")
    ctx.add_argument("src", help="folder with trainval/, labels.txt and 59_labels.txt")
    ctx.add_argument("dst", help="VOCdevkit/VOC2010 (JPEGImages, ImageSets/Main); written into")
    nyu = sub.add_parser("nyu-depth-v2", help="nyu_depth_v2_labeled.mat -> per-image PNGs")
    nyu.add_argument("src", help="folder with nyu_depth_v2_labeled.mat, splits.mat and "
                                 "classMapping40.mat")
    nyu.add_argument("dst", help="output folder (gets train/ and test/)")
    args = parser.parse_args(argv)
    src = Path(args.src).expanduser()
    if args.dataset == "pascal-context":
        counts = convert_pascal_context(src, args.dst)
    else:
        counts = convert_nyu_depth_v2(src / "nyu_depth_v2_labeled.mat", src / "splits.mat",
                                      src / "classMapping40.mat", Path(args.dst).expanduser())
    print(", ".join(f"{split}: {n} images" for split, n in counts.items()) + f" -> {args.dst}")


if __name__ == "__main__":
    main()
