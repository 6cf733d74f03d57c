"""Format readers on the real sample data (skipped when absent; COCO's annotations decoded
against pycocotools) and their clear errors."""

from __future__ import annotations

import json
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


# --------------------------------------------------------------------------------------
# Masks and images that used to be read wrongly without a word
# --------------------------------------------------------------------------------------
def _voc_layout(root: Path, mask: Image.Image) -> Path:
    voc = root / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    w, h = mask.size
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(voc / "JPEGImages" / "a.png")
    mask.save(voc / "SegmentationClass" / "a.png")
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("a\n")
    return voc


def test_voc_mask_saved_as_rgb_is_read_through_the_voc_colour_map(tmp_path):
    from course_lib.viz import voc_colormap

    # boat is (0, 0, 128), whose luminance 15 is person's index: the old misreading
    labels = np.array([[0, 4, 4], [15, 20, 255]], np.uint8)
    rgb = voc_colormap(256)[labels]
    assert rgb[0, 1].tolist() == [0, 0, 128]
    assert np.asarray(Image.fromarray(rgb).convert("L"))[0, 1] == 15
    s = rd.VOCSegmentation(_voc_layout(tmp_path / "rgb", Image.fromarray(rgb)))[0]
    assert s["mask"].tolist() == labels.tolist()
    rgb[1, 0] = [1, 2, 3]  # no VOC colour
    bad = rd.VOCSegmentation(_voc_layout(tmp_path / "bad", Image.fromarray(rgb)))
    with pytest.raises(ValueError, match=r"a\.png.*\(1, 2, 3\).*VOC colour map"):
        bad[0]


def test_voc_palette_index_that_is_no_class_fails_at_read_time(tmp_path):
    labels = np.array([[0, 12], [50, 255]], np.uint8)
    png = Image.fromarray(labels, mode="L").convert("P")
    with pytest.raises(ValueError, match=r"SegmentationClass/a\.png.*\[50\].*0\.\.20.*255"):
        rd.VOCSegmentation(_voc_layout(tmp_path, png))[0]


def test_camvid_labels_beyond_the_classes_are_refused_only_11_is_void(tmp_path):
    root = _camvid_layout(tmp_path / "cv")
    Image.fromarray(np.array([[0, 10, 11, 12]] * 6, np.uint8).repeat(2, axis=1)).save(
        root / "trainannot" / "a.png")
    with pytest.raises(ValueError, match=r"trainannot/a\.png.*\[12\].*0\.\.10.*11"):
        rd.CamVid(root)[0]
    Image.fromarray(np.array([[0, 10, 11, 255]] * 6, np.uint8).repeat(2, axis=1)).save(
        root / "trainannot" / "a.png")
    assert rd.CamVid(root)[0]["mask"][0].tolist() == [0, 0, 10, 10, 255, 255, 255, 255]


def test_16_bit_images_are_rescaled_not_clipped(tmp_path):
    stack = tmp_path / "drosophila_vnc_sstem" / "stack1"
    (stack / "raw").mkdir(parents=True)
    (stack / "membranes").mkdir(parents=True)
    values = np.array([[0, 257, 1000, 4095], [30000, 40000, 65280, 65535]], np.uint16)
    Image.fromarray(values).save(stack / "raw" / "00.tif")  # a 16-bit microscope slice
    Image.fromarray(np.zeros((2, 4), np.uint8)).save(stack / "membranes" / "00.png")
    image = rd.EMStack(tmp_path, kind="sstem")[0]["image"]
    assert image.dtype == torch.uint8
    expected = np.round(values.astype(np.float64) * 255 / 65535)
    assert image[0].tolist() == expected.tolist()  # 4095 -> 16, not 255
    # a 16-bit greyscale photo read as RGB (VOC, CamVid, COCO, Penn-Fudan) is rescaled too
    root = _camvid_layout(tmp_path / "cv", image_size=(4, 2), mask_size=(4, 2))
    Image.fromarray(values).save(root / "train" / "a.png")
    assert Image.open(root / "train" / "a.png").mode.startswith("I")
    rgb = rd.CamVid(root)[0]["image"]
    assert rgb.dtype == torch.uint8 and all(c.tolist() == expected.tolist() for c in rgb)


def _coco_layout(root: Path, annotations: list[dict]) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").mkdir()
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(root / "train2017" / "1.png")
    data = {"images": [{"id": 1, "file_name": "1.png", "height": 10, "width": 12}],
            "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
            "annotations": annotations}
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(data))
    return root


def _ann(ann_id: int, segmentation: object, category_id: int = 1) -> dict:
    return {"id": ann_id, "image_id": 1, "category_id": category_id, "iscrowd": 0,
            "segmentation": segmentation, "bbox": [1, 1, 5, 5], "area": 25}


def test_coco_polygon_of_fewer_than_3_points_is_refused_like_pycocotools(tmp_path):
    ds = rd.COCOInstances(_coco_layout(tmp_path / "short", [_ann(7, [[2.0, 3.0, 6.0, 3.0,
                                                                      6.0, 8.0]]),
                                                             _ann(8, [[2.0, 3.0]])]))
    with pytest.raises(ValueError, match=r"annotation 8 .*1\.png.*at least 3 points"):
        ds[0]


def test_coco_malformed_polygons_and_unknown_categories_are_named(tmp_path):
    odd = rd.COCOInstances(_coco_layout(tmp_path / "odd", [_ann(5, [[1.0, 1.0, 8.0, 1.0, 8.0]])]))
    with pytest.raises(ValueError, match=r"annotation 5 .*odd number of coordinates \(5\)"):
        odd[0]
    with pytest.raises(ValueError, match=r"annotation 6 has category_id 99.*instances_train2017"
                                         r"\.json.*1, 3"):
        rd.COCOInstances(_coco_layout(tmp_path / "cat", [_ann(6, [[1, 1, 8, 1, 8, 8]], 99)]))
