"""Format readers on the real sample data (skipped when absent; COCO's annotations decoded
against pycocotools) and their clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

from course_lib.data import coco_masks as cm
from course_lib.data import readers as rd

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


REAL = Path(os.environ.get("COURSE_DATA_MIRROR")
            or Path(__file__).resolve().parents[2] / "shared" / "data" / "real")


def real(folder: str) -> Path:
    path = REAL / folder
    if not path.exists():
        pytest.skip(f"real sample data not found at {path} (set COURSE_DATA_MIRROR)")
    return path


def test_coco_tiny_all_annotations_match_pycocotools():
    coco_mod = pytest.importorskip("pycocotools.coco")
    root = real("coco_tiny")
    coco = coco_mod.COCO(str(root / "annotations" / "instances_train2017.json"))
    kinds = set()
    for ann in coco.dataset["annotations"]:
        img = coco.imgs[ann["image_id"]]
        mine = cm.ann_to_mask(ann["segmentation"], img["height"], img["width"])
        assert np.array_equal(mine, coco.annToMask(ann).astype(bool)), ann["id"]
        kinds.add(type(ann["segmentation"]).__name__)
    assert kinds == {"list", "dict"}  # polygons and uncompressed RLE both covered


def test_coco_reader_on_real_data():
    coco_mod = pytest.importorskip("pycocotools.coco")
    root = real("coco_tiny")
    ds = rd.COCOInstances(root, split="train2017")
    coco = coco_mod.COCO(str(root / "annotations" / "instances_train2017.json"))
    assert len(ds) == 50 and ds.class_names[0] == "background" and len(ds.class_names) == 81
    crowd_seen = False
    for i in [0, 1, 2] + [k for k, (_, anns) in enumerate(ds.items)
                          if any(a["iscrowd"] for a in anns)][:1]:
        s = ds[i]
        info, anns = ds.items[i]
        assert isinstance(s["image"], tv_tensors.Image) and s["image"].dtype == torch.uint8
        assert s["image"].shape == (3, info["height"], info["width"])
        assert s["masks"].shape[0] == len(anns) == len(s["labels"]) == len(s["boxes"])
        for m, lab, ann in zip(s["masks"], s["labels"], anns, strict=True):
            assert np.array_equal(m.numpy(), coco.annToMask(ann).astype(bool))
            assert ds.class_names[lab] == coco.cats[ann["category_id"]]["name"]
            assert ds.category_ids[lab] == ann["category_id"]
        keep = s["masks"].flatten(1).any(1)
        assert torch.equal(s["boxes"][keep], masks_to_boxes(s["masks"][keep]))
        assert s["mask"].shape == s["image"].shape[1:]
        crowd_seen |= bool(s["iscrowd"].any())
        if s["iscrowd"].any():
            assert (s["mask"] == 255).any()
    assert crowd_seen


def test_voc_reader_on_real_sample():
    ds = rd.VOCSegmentation(real("VOCdevkit"), split="train")
    assert len(ds) == 1 and ds.class_names[12] == "dog"
    s = ds[0]
    assert s["image"].shape == (3, 375, 500) and s["image"].dtype == torch.uint8
    assert set(s["mask"].unique().tolist()) == {0, 9, 12, 255}
    assert s["labels"].tolist() == [12, 9]  # object 1 = dog, object 2 = chair
    assert s["masks"].shape == (2, 375, 500)
    assert torch.equal(s["boxes"].as_subclass(torch.Tensor), masks_to_boxes(s["masks"]))
    # the same reader accepts VOCdevkit's parent, VOCdevkit and VOC2012
    assert len(rd.VOCSegmentation(real("VOCdevkit") / "VOC2012")) == 1
    with pytest.raises(FileNotFoundError, match="val.txt"):
        rd.VOCSegmentation(real("VOCdevkit"), split="val")


def test_camvid_reader_on_real_data():
    root = real("CamVid")
    train, val = rd.CamVid(root, "train"), rd.CamVid(root.parent, "val")
    assert len(train) == 30 and len(val) == 10 and train.num_classes == 11
    values = set()
    for i in (0, 5, 12, 29):
        s = train[i]
        assert s["image"].shape == (3, 360, 480) and s["mask"].shape == (360, 480)
        values |= set(s["mask"].unique().tolist())
    assert 11 not in values and 255 in values and values - {255} <= set(range(11))


def test_em_readers_on_real_data():
    sstem = rd.EMStack(real("drosophila_vnc_sstem"), kind="sstem")
    assert len(sstem) == 10
    s = sstem[0]
    assert s["image"].shape == (1, 1024, 1024) and s["image"].dtype == torch.uint8
    assert set(s["mask"].unique().tolist()) == {0, 1}
    frac = float(s["mask"].float().mean())
    assert 0.05 < frac < 0.6, "membranes are a minority of the pixels"
    isbi = rd.EMStack(real("isbi2012_em"), kind="isbi")
    assert len(isbi) == 5
    t = isbi[0]
    assert t["image"].shape == (1, 512, 512) and "mask" not in t
    assert isbi.volume().shape == (5, 512, 512)
    with pytest.raises(ValueError, match="sstem"):
        rd.EMStack(real("isbi2012_em"), kind="cells")


def test_pennfudan_reader_on_real_data():
    root = real("PennFudanPed")
    ds = rd.PennFudanPed(root)
    assert len(ds) == 20
    total = 0
    for i in range(len(ds)):
        s = ds[i]
        ids = np.asarray(Image.open(ds.items[i][1]))
        n = len(np.unique(ids)) - 1
        assert s["masks"].shape[0] == n and s["labels"].tolist() == [1] * n
        assert torch.equal(s["boxes"].as_subclass(torch.Tensor), masks_to_boxes(s["masks"]))
        assert torch.equal(s["mask"], (s["masks"].any(0)).long())
        total += n
    assert total == 43  # as the README of the sample says


def _camvid_layout(root: Path, image_size=(8, 6), mask_size=(8, 6)) -> Path:
    for d in ("train", "trainannot"):
        (root / d).mkdir(parents=True)
    Image.fromarray(np.zeros((image_size[1], image_size[0], 3), np.uint8)).save(
        root / "train" / "a.png")
    Image.fromarray(np.full((mask_size[1], mask_size[0]), 11, np.uint8)).save(
        root / "trainannot" / "a.png")
    return root


def test_errors_name_the_problem(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        rd.CamVid(missing)
    ok = rd.CamVid(_camvid_layout(tmp_path / "ok"))
    assert set(ok[0]["mask"].unique().tolist()) == {255}
    bad = rd.CamVid(_camvid_layout(tmp_path / "bad", mask_size=(7, 6)))
    with pytest.raises(ValueError, match=r"8x6.*7x6"):
        bad[0]
    corrupt = _camvid_layout(tmp_path / "corrupt")
    (corrupt / "train" / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="a.png"):
        rd.CamVid(corrupt)[0]
    (tmp_path / "nolabel" / "train").mkdir(parents=True)
    (tmp_path / "nolabel" / "trainannot").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "nolabel" / "train" / "x.png")
    with pytest.raises(FileNotFoundError, match="x.png"):
        rd.CamVid(tmp_path / "nolabel")
    with pytest.raises(FileNotFoundError, match="instances_val"):
        rd.COCOInstances(tmp_path, split="val")
