"""Readers of the survey's data sets in their official layouts (notebook 17): the shapes world
written in each layout by course_lib.data.layouts, read back, values asserted; Cityscapes'
label-id mapping against torchvision's copy of the published table; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from course_lib.data import ShapesWorld, layouts, train_transforms
from course_lib.data import readers_rgbd_em as rgbd_em
from course_lib.data import readers_scenes as scenes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def world():
    return ShapesWorld(3, image_size=40, seed=7, split="val")


def _labels(ds: ShapesWorld, i: int) -> np.ndarray:
    return ds.raw(i)["label"].astype(np.int64)


def _check_item(sample: dict, shape: tuple[int, int]) -> None:
    assert isinstance(sample["image"], tv_tensors.Image) and sample["image"].dtype == torch.uint8
    assert sample["image"].shape[-2:] == shape
    assert isinstance(sample["mask"], tv_tensors.Mask) and sample["mask"].dtype == torch.int64
    assert sample["mask"].shape == shape


# --------------------------------------------------------------------------------------
# Cityscapes
# --------------------------------------------------------------------------------------
def test_cityscapes_label_table_matches_torchvision_s_copy_of_labels_py():
    from torchvision.datasets import Cityscapes as TorchvisionCityscapes

    published = {c.id: (c.name, c.train_id) for c in TorchvisionCityscapes.classes if c.id >= 0}
    mine = {label_id: (name, train) for name, label_id, train in scenes.CITYSCAPES_LABELS}
    assert mine == published  # 34 label ids 0..33
    ids = np.arange(34)
    assert scenes.cityscapes_train_ids(ids).tolist() == [published[i][1] for i in ids]
    evaluated = sorted((t, n) for n, t in published.values() if t != 255)
    assert list(scenes.CITYSCAPES_TRAIN_CLASSES) == [n for _, n in evaluated]
    assert len(scenes.CITYSCAPES_TRAIN_CLASSES) == 19


def test_cityscapes_train_ids_spot_values_and_bad_ids():
    got = scenes.cityscapes_train_ids(np.array([[7, 26, 0], [33, 9, 23]]))
    assert got.tolist() == [[0, 13, 255], [18, 255, 10]]  # road, car, unlabeled / bicycle ...
    with pytest.raises(ValueError, match=r"\[34, 200\]"):
        scenes.cityscapes_train_ids(np.array([1, 34, 200]))


def test_cityscapes_reader_on_its_layout(tmp_path, world):
    root = layouts.write_cityscapes(world, tmp_path / "cityscapes")
    ds = scenes.Cityscapes(tmp_path, split="val")
    assert len(ds) == 3 and ds.num_classes == 19
    for i in range(3):
        s = ds[i]
        _check_item(s, (40, 40))
        assert torch.equal(s["mask"], torch.from_numpy(_labels(world, i)))
        assert torch.equal(s["image"], torch.from_numpy(world.raw(i)["image"]))
    assert ds[0]["image_id"] == "shapesville_000000_000019"
    # A pixel of a label that is not evaluated ("static", id 4) becomes 255.
    path = ds.items[1][1]
    ids = np.asarray(Image.open(path)).copy()
    ids[0, :5] = 4
    Image.fromarray(ids).save(path)
    assert (ds[1]["mask"][0, :5] == 255).all()
    ids[0, 0] = 77
    Image.fromarray(ids).save(path)
    with pytest.raises(ValueError, match=r"gtFine_labelIds.*\[77\]"):
        ds[1]
    (root / "gtFine" / "val" / "shapesville" / path.name).unlink()
    with pytest.raises(FileNotFoundError, match="gtFine labelIds"):
        scenes.Cityscapes(root, split="val")


# --------------------------------------------------------------------------------------
# ADE20K and PASCAL Context: labels stored shifted by one, 0 = not a class
# --------------------------------------------------------------------------------------
def test_ade20k_reader_shifts_labels_and_voids_zero(tmp_path, world):
    base = layouts.write_ade20k(world, tmp_path)
    ds = scenes.ADE20K(tmp_path, split="val")
    assert ds.split == "validation" and len(ds) == 3 and ds.num_classes == 150
    assert ds.class_names[:3] == ("wall", "building", "sky") and ds.class_names[-1] == "flag"
    stored = np.asarray(Image.open(ds.items[2][1])).astype(np.int64)
    s = ds[2]
    _check_item(s, (40, 40))
    assert torch.equal(s["mask"], torch.from_numpy(_labels(world, 2)))
    assert (s["mask"][torch.from_numpy(stored == 0)] == 255).all()
    assert torch.equal(s["mask"][torch.from_numpy(stored > 0)],
                       torch.from_numpy(stored[stored > 0] - 1))
    bad = stored.copy().astype(np.uint8)
    bad[0, 0] = 151
    Image.fromarray(bad).save(ds.items[2][1])
    with pytest.raises(ValueError, match=r"\[151\].*1\.\.150"):
        ds[2]
    assert base.name == "ADEChallengeData2016"


@pytest.mark.parametrize("include_background", [False, True])
def test_pascal_context_59_and_60_label_layouts(tmp_path, world, include_background):
    layouts.write_pascal_context(world, tmp_path)
    ds = scenes.PascalContext(tmp_path, split="val", include_background=include_background)
    assert len(ds) == 3
    s = ds[1]
    _check_item(s, (40, 40))
    labels = _labels(world, 1)
    if include_background:
        assert ds.num_classes == 60 and ds.class_names[0] == "background"
        assert torch.equal(s["mask"], torch.from_numpy(np.where(labels == 255, 0, labels + 1)))
    else:
        assert ds.num_classes == 59 and ds.class_names[0] == "aeroplane"
        assert ds.class_names[58] == "wood"
        assert torch.equal(s["mask"], torch.from_numpy(labels))


# --------------------------------------------------------------------------------------
# SBD
# --------------------------------------------------------------------------------------
def test_sbd_reader_reads_gtcls_segmentation(tmp_path, world):
    from scipy.io import loadmat, savemat

    base = layouts.write_sbd(world, tmp_path)
    ds = scenes.SBD(tmp_path, split="val")
    assert ds.root == base and len(ds) == 3 and ds.class_names[15] == "person"
    s = ds[0]
    _check_item(s, (40, 40))
    labels = _labels(world, 0)
    assert torch.equal(s["mask"], torch.from_numpy(np.where(labels == 255, 0, labels)))
    mat = loadmat(base / "cls" / f"{ds.items[0]}.mat")  # the struct as SBD stores it
    assert mat["GTcls"]["Segmentation"][0, 0].dtype == np.uint8
    savemat(base / "cls" / f"{ds.items[1]}.mat", {"GTinst": {"Segmentation": labels}})
    with pytest.raises(ValueError, match="GTcls.Segmentation"):
        ds[1]
    seg = labels.astype(np.uint8)
    seg[0, 0] = 21
    savemat(base / "cls" / f"{ds.items[2]}.mat", {"GTcls": {"Segmentation": seg}})
    with pytest.raises(ValueError, match=r"\[21\].*0\.\.20"):
        ds[2]


# --------------------------------------------------------------------------------------
# NYU-Depth V2 (RGB-D)
# --------------------------------------------------------------------------------------
def test_nyu_depth_reader_returns_depth_in_metres(tmp_path):
    world = ShapesWorld(2, image_size=40, seed=3, split="train", with_depth=True)
    layouts.write_nyu_depth(world, tmp_path)
    ds = rgbd_em.NYUDepthV2(tmp_path, split="train")
    assert len(ds) == 2 and ds.num_classes == 40 and ds.class_names[0] == "wall"
    s = ds[1]
    _check_item(s, (40, 40))
    raw = world.raw(1)
    assert torch.equal(s["image"], torch.from_numpy(raw["image"]))
    assert torch.equal(s["mask"], torch.from_numpy(raw["label"].astype(np.int64)))
    assert isinstance(s["depth"], tv_tensors.Mask) and s["depth"].shape == (1, 40, 40)
    expected = raw["depth"] * layouts.DEPTH_RANGE_M
    assert np.abs(s["depth"][0].numpy() - expected).max() <= 0.0005 + 1e-6  # 1 mm steps
    # A transforms.v2 pipeline flips depth with the image and mask.
    flipped = v2.RandomHorizontalFlip(p=1.0)(s)
    assert torch.equal(flipped["depth"], s["depth"].flip(-1))
    assert torch.equal(flipped["mask"], s["mask"].flip(-1))
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(ds.items[0][1])  # 8-bit depth
    with pytest.raises(ValueError, match="16-bit"):
        ds[0]


# --------------------------------------------------------------------------------------
# ISBI 2012 multi-page TIFF stacks
# --------------------------------------------------------------------------------------
def test_isbi2012_stacks_are_read_page_by_page(tmp_path):
    world = ShapesWorld(5, image_size=32, seed=1, variant="microscopy")
    base = layouts.write_isbi2012(world, tmp_path)
    volume = rgbd_em.read_tiff_stack(base / "train-volume.tif")
    assert volume.shape == (5, 32, 32) and volume.dtype == np.uint8
    ds = rgbd_em.ISBI2012Stack(tmp_path, split="train")
    assert len(ds) == 5 and ds.class_names == ("membrane", "cell")
    for i in (0, 4):
        s = ds[i]
        assert s["image"].shape == (1, 32, 32)
        assert torch.equal(s["image"], torch.from_numpy(world.raw(i)["image"]))
        assert torch.equal(s["mask"], torch.from_numpy(world.raw(i)["label"].astype(np.int64)))
    with pytest.raises(ValueError, match="split"):
        rgbd_em.ISBI2012Stack(tmp_path, split="val")
    with pytest.raises(FileNotFoundError, match="test-volume.tif"):
        rgbd_em.ISBI2012Stack(tmp_path, split="test")
    test_world = ShapesWorld(2, image_size=32, seed=1, split="test", variant="microscopy")
    layouts.write_isbi2012(test_world, tmp_path)
    test = rgbd_em.ISBI2012Stack(tmp_path, split="test")
    assert len(test) == 2 and "mask" not in test[0]
    grey = [Image.fromarray(np.full((32, 32), 128, np.uint8))] * 5
    grey[0].save(base / "train-labels.tif", save_all=True, append_images=grey[1:])
    with pytest.raises(ValueError, match=r"\[128\]"):
        rgbd_em.ISBI2012Stack(tmp_path, split="train")


# --------------------------------------------------------------------------------------
# The course's transforms run on every reader's items
# --------------------------------------------------------------------------------------
def test_train_transforms_apply_jointly_to_reader_items(tmp_path, world):
    layouts.write_cityscapes(world, tmp_path)
    ds = scenes.Cityscapes(tmp_path, split="val", transform=train_transforms(32))
    s = ds[0]
    assert s["image"].shape == (3, 32, 32) and s["mask"].shape == (32, 32)
    assert set(s["mask"].unique().tolist()) <= set(range(19)) | {255}
