"""The converters of course_lib.data.converters: tiny files written in the OFFICIAL release
layouts (PASCAL Context's per-image .mat files and class lists; NYU-Depth V2's MATLAB v7.3
file with its transposed arrays, splits.mat, classMapping40.mat), converted, then read back
with the course's readers."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from course_lib.config import IGNORE_INDEX
from course_lib.data import converters
from course_lib.data.converters import (
    PASCAL_CONTEXT59_FULL_INDEX,
    convert_nyu_depth_v2,
    convert_pascal_context,
)
from course_lib.data.readers_rgbd_em import NYUDepthV2
from course_lib.data.readers_scenes import PASCAL_CONTEXT59_CLASSES, PascalContext

# --------------------------------------------------------------------------------------
# PASCAL Context
# --------------------------------------------------------------------------------------
H, W = 6, 8
FULL = {index: name for name, index in PASCAL_CONTEXT59_FULL_INDEX.items()}
# 459-class indices used below: aeroplane (2 -> 59-class 1), wood (458 -> 59), table (397 -> 11),
# accordion (1, not among the 59 -> background 0), and an unlabelled 0 -> background.
AEROPLANE, WOOD, TABLE, OTHER = 2, 458, 397, 1


def _labels_txt() -> str:
    """labels.txt as released: 459 lines '<index>: <name>' (names outside the 59 invented)."""
    return "".join(f"{i}: {FULL.get(i, f'other class {i}')}\n" for i in range(1, 460))


def _context_release(tmp_path, label_maps: dict[str, np.ndarray],
                     splits: dict[str, list[str]]):
    """The Context release in `context/` and VOC 2010 (JPEGImages, ImageSets/Main) in
    `VOCdevkit/VOC2010`."""
    context = tmp_path / "context"
    (context / "trainval").mkdir(parents=True)
    (context / "labels.txt").write_text(_labels_txt())
    (context / "59_labels.txt").write_text(
        "".join(f"{k}: {name}\n" for k, name in enumerate(PASCAL_CONTEXT59_CLASSES, 1)))
    for name, label_map in label_maps.items():
        savemat(context / "trainval" / f"{name}.mat", {"LabelMap": label_map.astype(np.uint16)})
    voc = tmp_path / "VOCdevkit" / "VOC2010"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in label_maps:
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(
            voc / "JPEGImages" / f"{name}.jpg")
    for split, names in splits.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return context, voc


def _label_map(values: list[int]) -> np.ndarray:
    """An [H,W] LabelMap whose columns take ``values`` in turn."""
    return np.array(values)[np.arange(W) % len(values)][None].repeat(H, 0)


def test_pascal_context_release_converts_to_the_59_class_layout(tmp_path):
    maps = {"2008_000002": _label_map([AEROPLANE, WOOD, OTHER, 0]),
            "2008_000003": _label_map([TABLE, TABLE, AEROPLANE]),
            "2008_000007": _label_map([WOOD])}
    context, voc = _context_release(
        tmp_path, maps, {"train": ["2008_000003", "2008_000002"], "val": ["2008_000007"]})

    assert convert_pascal_context(context, tmp_path / "VOCdevkit") == {"train": 2, "val": 1}

    lists = voc / "ImageSets" / "SegmentationContext"
    assert (lists / "train.txt").read_text() == "2008_000002\n2008_000003\n"
    assert (lists / "val.txt").read_text() == "2008_000007\n"
    stored = np.asarray(Image.open(voc / "SegmentationClassContext" / "2008_000002.png"))
    assert stored.dtype == np.uint8
    assert stored[0].tolist() == [1, 59, 0, 0] * 2  # aeroplane, wood, other -> 0, unlabelled -> 0

    train = PascalContext(tmp_path, split="train")
    assert [train[i]["image_id"] for i in range(2)] == ["2008_000002", "2008_000003"]
    first = train[0]["mask"]
    assert first[0].tolist() == [0, 58, IGNORE_INDEX, IGNORE_INDEX] * 2
    assert train.class_names[0] == "aeroplane" and train.class_names[58] == "wood"
    second = train[1]["mask"][0].tolist()
    assert second[:3] == [10, 10, 0] and train.class_names[10] == "table"
    with_bg = PascalContext(tmp_path, split="val", include_background=True)
    assert with_bg[0]["mask"].unique().tolist() == [59]
    assert with_bg.class_names[59] == "wood"


def test_pascal_context_bad_release_gives_clear_errors(tmp_path):
    maps = {"a": _label_map([AEROPLANE]), "b": _label_map([460])}
    context, voc = _context_release(tmp_path, maps, {"train": ["a", "b"], "val": ["a"]})
    with pytest.raises(ValueError, match=r"b\.mat: LabelMap holds \[460\]; expected 0\.\.\.459"):
        convert_pascal_context(context, voc)

    savemat(context / "trainval" / "b.mat", {"Labels": np.ones((H, W), np.uint16)})
    with pytest.raises(ValueError, match=r"b\.mat has no variable 'LabelMap'"):
        convert_pascal_context(context, voc)

    (context / "trainval" / "b.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"annotation of train image b not found"):
        convert_pascal_context(context, voc)

    (context / "labels.txt").write_text(_labels_txt().replace("2: aeroplane", "2: airplane"))
    with pytest.raises(ValueError, match=r"class 'aeroplane' the index None.* has 2"):
        convert_pascal_context(context, voc)

    (context / "labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"class list not found: .*labels\.txt"):
        convert_pascal_context(context, voc)


def test_pascal_context_class_order_is_the_official_59_list(tmp_path):
    context, voc = _context_release(tmp_path, {"a": _label_map([AEROPLANE])}, {"train": ["a"]})
    swapped = list(PASCAL_CONTEXT59_CLASSES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    (context / "59_labels.txt").write_text(
        "".join(f"{k}: {name}\n" for k, name in enumerate(swapped, 1)))
    with pytest.raises(ValueError, match=r"first differences .*\(1, 'bicycle', 'aeroplane'\)"):
        convert_pascal_context(context, voc, splits=("train",))
    # The published 459-class indices are those of mmsegmentation's converter (sorted ids =
    # alphabetical names); the 59 names are exactly the reader's.
    assert sorted(PASCAL_CONTEXT59_FULL_INDEX) == sorted(PASCAL_CONTEXT59_CLASSES)
    by_index = sorted(PASCAL_CONTEXT59_FULL_INDEX, key=PASCAL_CONTEXT59_FULL_INDEX.get)
    assert by_index == sorted(by_index)


# --------------------------------------------------------------------------------------
# NYU-Depth V2
# --------------------------------------------------------------------------------------
NH, NW, FRAMES = 4, 5, 4


def _nyu_release(tmp_path, labels: np.ndarray | None = None, with_labels: bool = True):
    """nyu_depth_v2_labeled.mat (HDF5, arrays transposed as MATLAB stores them), splits.mat
    (frames 1 and 3 train, 2 and 4 test) and classMapping40.mat (raw k -> (k - 1) % 40 + 1)."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (FRAMES, NH, NW, 3), dtype=np.uint8)  # [N,H,W,3]
    metres = rng.uniform(0.5, 9.9, (FRAMES, NH, NW)).astype(np.float32)
    if labels is None:
        labels = rng.integers(0, 895, (FRAMES, NH, NW)).astype(np.uint16)
        labels[:, 0, 0] = [0, 894, 41, 40]
    src = tmp_path / "src"
    src.mkdir(parents=True)
    with h5py.File(src / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"] = images.transpose(0, 3, 2, 1)  # MATLAB H x W x 3 x N read by h5py
        f["depths"] = metres.transpose(0, 2, 1)
        if with_labels:
            f["labels"] = labels.transpose(0, 2, 1)
    savemat(src / "splits.mat", {"trainNdxs": np.array([[1], [3]], dtype=np.float64),
                                 "testNdxs": np.array([[2], [4]], dtype=np.float64)})
    map_class = (np.arange(894) % 40 + 1)[None].astype(np.float64)
    class_name = np.array([[np.array([n]) for n in converters.NYU40_CLASSES]], dtype=object)
    savemat(src / "classMapping40.mat", {"mapClass": map_class, "className": class_name})
    return src, images, metres, labels


def test_nyu_labeled_mat_converts_to_the_per_image_layout(tmp_path):
    src, images, metres, labels = _nyu_release(tmp_path)
    dst = tmp_path / "nyu_depth_v2"
    converters.main(["nyu-depth-v2", str(src), str(dst)])
    assert sorted(p.name for p in (dst / "train" / "rgb").iterdir()) == ["00001.png",
                                                                        "00003.png"]
    assert sorted(p.name for p in (dst / "test" / "label").iterdir()) == ["00002.png",
                                                                         "00004.png"]
    expected40 = np.where(labels == 0, 0, (labels.astype(np.int64) - 1) % 40 + 1)
    assert expected40[:, 0, 0].tolist() == [0, 14, 1, 40]
    for split, frames in (("train", [1, 3]), ("test", [2, 4])):
        ds = NYUDepthV2(tmp_path, split=split)
        for item, frame in zip([ds[i] for i in range(len(ds))], frames, strict=True):
            assert item["image_id"] == f"{frame:05d}"
            assert item["image"].permute(1, 2, 0).numpy().tolist() == images[frame - 1].tolist()
            want = np.where(expected40[frame - 1] == 0, IGNORE_INDEX, expected40[frame - 1] - 1)
            assert item["mask"].numpy().tolist() == want.tolist()
            np.testing.assert_allclose(item["depth"][0].numpy(), metres[frame - 1], atol=5e-4)
    stored = Image.open(dst / "train" / "depth" / "00001.png")
    assert stored.mode.startswith("I;16")
    assert np.asarray(stored).tolist() == np.round(metres[0] * 1000).astype(int).tolist()


def test_nyu_bad_input_gives_clear_errors(tmp_path, monkeypatch):
    labels = np.zeros((FRAMES, NH, NW), dtype=np.uint16)
    labels[2, 1, 1] = 895
    src, *_ = _nyu_release(tmp_path, labels=labels)
    args = (src / "nyu_depth_v2_labeled.mat", src / "splits.mat", src / "classMapping40.mat")
    with pytest.raises(ValueError, match=r"labels of frame 3 hold \[895\]; expected 0\.\.894"):
        convert_nyu_depth_v2(*args, tmp_path / "out")

    savemat(src / "classMapping40.mat", {"mapClass": np.full((1, 894), 41.0)})
    with pytest.raises(ValueError, match=r"mapClass holds \[41(\.0)?\]; expected classes 1\.\.40"):
        convert_nyu_depth_v2(*args, tmp_path / "out")
    savemat(src / "classMapping40.mat", {"classMap": np.ones((1, 894))})
    with pytest.raises(ValueError, match=r"no variable 'mapClass' \(found: \['classMap'\]\)"):
        convert_nyu_depth_v2(*args, tmp_path / "out")

    with pytest.raises(FileNotFoundError, match=r"NYU-Depth V2 file not found: .*nope\.mat"):
        convert_nyu_depth_v2(src / "nope.mat", *args[1:], tmp_path / "out")

    monkeypatch.setitem(sys.modules, "h5py", None)  # as if h5py were not installed
    with pytest.raises(ImportError, match=r"needs h5py.*pip install h5py"):
        convert_nyu_depth_v2(*args, tmp_path / "out")


def test_nyu_missing_array_bad_split_and_non_hdf5_file(tmp_path):
    src, *_ = _nyu_release(tmp_path, with_labels=False)
    args = (src / "nyu_depth_v2_labeled.mat", src / "splits.mat", src / "classMapping40.mat")
    with pytest.raises(ValueError, match=r"lacks one of the arrays .*found: \['depths', "
                                         r"'images'\]"):
        convert_nyu_depth_v2(*args, tmp_path / "out")

    src, *_ = _nyu_release(tmp_path / "again")
    args = (src / "nyu_depth_v2_labeled.mat", src / "splits.mat", src / "classMapping40.mat")
    savemat(src / "splits.mat", {"trainNdxs": np.array([[5.0]]), "testNdxs": np.array([[1.0]])})
    with pytest.raises(ValueError, match=r"trainNdxs holds \[5\]; expected frame numbers 1\.\.4"):
        convert_nyu_depth_v2(*args, tmp_path / "out")

    (src / "nyu_depth_v2_labeled.mat").write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(ValueError, match=r"cannot open .* as MATLAB v7\.3 \(HDF5\)"):
        convert_nyu_depth_v2(*args, tmp_path / "out")


def test_pascal_context_command_line(tmp_path, capsys):
    context, voc = _context_release(tmp_path, {"a": _label_map([WOOD])},
                                    {"train": ["a"], "val": []})
    converters.main(["pascal-context", str(context), str(voc)])
    assert "train: 1 images, val: 0 images" in capsys.readouterr().out
    assert PascalContext(voc, split="train")[0]["mask"].unique().tolist() == [58]
