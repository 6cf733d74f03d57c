"""The shapes world: contract constants, determinism, target consistency, scene rules,
cache, and lossless export to VOC / COCO layouts read back by the format readers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

from course_lib.data import synthetic as sy
from course_lib.data.formats import COCOInstances, VOCSegmentation, rle_decode
from course_lib.data.synthetic import ShapesWorld

SIZE = 64


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    ds = ShapesWorld(48, image_size=SIZE, seed=7, target="all", with_depth=True)
    return [ds[i] for i in range(len(ds))]


def test_constants_match_contract():
    assert sy.CLASS_NAMES == ("sky", "grass", "road", "water", "disk", "square", "triangle",
                              "star", "ring", "wire", "car", "boat")
    assert sy.NUM_CLASSES == 12
    assert sy.STUFF_CLASSES == (0, 1, 2, 3)
    assert sy.THING_CLASSES == tuple(range(4, 12))
    assert sy.THIN_CLASSES == (8, 9)
    assert sy.CONTEXT_PAIR == (10, 11)
    assert sy.PALETTE.shape == (12, 3) and sy.PALETTE.dtype == np.uint8
    assert len({tuple(c) for c in sy.PALETTE.tolist()}) == 12
    assert sy.IGNORE_INDEX == 255


def test_semantic_sample_types_and_determinism():
    ds = ShapesWorld(3, image_size=SIZE, seed=1)
    image, mask = ds[0]
    assert isinstance(image, tv_tensors.Image) and isinstance(mask, tv_tensors.Mask)
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
    assert mask.shape == (SIZE, SIZE) and mask.dtype == torch.int64
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert mask.min() >= 0 and mask.max() < sy.NUM_CLASSES
    again = ShapesWorld(3, image_size=SIZE, seed=1)[0]
    assert torch.equal(image, again[0]) and torch.equal(mask, again[1])
    other_split = ShapesWorld(3, image_size=SIZE, seed=1, split="val")[0]
    other_seed = ShapesWorld(3, image_size=SIZE, seed=2)[0]
    assert not torch.equal(image, other_split[0])
    assert not torch.equal(image, other_seed[0])
    assert not torch.equal(image, ds[1][0])
    # 8-bit levels, so that PNG export is lossless
    assert ((image * 255) - (image * 255).round()).abs().max() < 1e-3
    with pytest.raises(IndexError):
        ds[3]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="default"):
        ShapesWorld(2, SIZE, variant="nope")
    with pytest.raises(ValueError, match="train"):
        ShapesWorld(2, SIZE, split="dev")
    with pytest.raises(ValueError, match="semantic"):
        ShapesWorld(2, SIZE, target="boxes")


def test_all_targets_are_consistent(samples):
    for s in samples:
        mask, ids = s["mask"], s["instance_ids"]
        m = int(ids.max())
        assert s["masks"].shape == (m, SIZE, SIZE) and s["masks"].dtype == torch.bool
        assert s["labels"].shape == (m,) and s["labels"].dtype == torch.int64
        assert isinstance(s["boxes"], tv_tensors.BoundingBoxes)
        assert s["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY
        for k in range(m):
            assert torch.equal(s["masks"][k], ids == k + 1)
            assert s["masks"][k].any(), "every listed instance is visible"
            assert (mask[s["masks"][k]] == s["labels"][k]).all()
        if m:
            assert torch.equal(s["boxes"].as_subclass(torch.Tensor), masks_to_boxes(s["masks"]))
        assert torch.equal(sy.foreground(mask), ids > 0)
        assert torch.equal(s["panoptic"], mask * 1000 + ids)
        assert set(s["labels"].tolist()) <= set(sy.THING_CLASSES)
        # depth: a 4th image channel and a separate target, in [0, 1], sky farthest
        assert s["image"].shape == (4, SIZE, SIZE)
        assert torch.equal(s["image"][3], s["depth"][0])
        assert s["depth"].shape == (1, SIZE, SIZE) and s["depth"].dtype == torch.float32
        assert 0 <= float(s["depth"].min()) and float(s["depth"].max()) <= 1
        sky = mask == 0
        if sky.any() and (~sy.foreground(mask) & ~sky).any():
            assert s["depth"][0][sky].min() >= s["depth"][0][~sy.foreground(mask) & ~sky].max()


def test_scene_layout_and_class_coverage(samples):
    seen = set()
    for s in samples:
        mask = s["mask"]
        stuff = mask < 4
        top, bottom = mask[0][stuff[0]], mask[-1][stuff[-1]]
        assert (top == 0).all(), "the top row is sky wherever no object covers it"
        assert (bottom != 0).all(), "the bottom row is ground"
        seen |= set(mask.unique().tolist())
    assert seen == set(range(12)), f"classes never drawn: {set(range(12)) - seen}"


def test_context_pair_car_on_road_boat_on_water():
    ds = ShapesWorld(120, image_size=SIZE, seed=3, target="all")
    good = total = 0
    areas = {10: [], 11: []}
    colours = {10: [], 11: []}
    for i in range(len(ds)):
        s = ds[i]
        mask = s["mask"]
        for m, lab, box in zip(s["masks"], s["labels"].tolist(), s["boxes"], strict=True):
            if lab not in sy.CONTEXT_PAIR:
                continue
            ground = 2 if lab == 10 else 3
            assert (mask == ground).any(), "a car needs a road, a boat needs water"
            x0, y0, x1, y1 = (int(v) for v in box)
            win = mask[max(y1 - 1, 0): y1 + 2, max(x0 - 3, 0): x1 + 4]
            other = 5 - ground
            good += int((win == ground).sum() > (win == other).sum())
            total += 1
            areas[lab].append(int(m.sum()))
            colours[lab].append(s["image"][:, m].mean(dim=1))
    assert total > 50
    assert good / total > 0.9, f"only {good}/{total} vehicles sit on their own ground"
    assert min(len(areas[10]), len(areas[11])) > 20
    mean_area = {k: float(np.mean(v)) for k, v in areas.items()}
    assert abs(mean_area[10] - mean_area[11]) < 0.35 * max(mean_area.values())
    mean_col = {k: torch.stack(v).mean(0) for k, v in colours.items()}
    assert (mean_col[10] - mean_col[11]).abs().max() < 0.12, "same colour distribution"


def _erode(m: torch.Tensor) -> torch.Tensor:
    return -F.max_pool2d(-m.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0


def test_thin_structures_are_thin_and_solids_are_not(samples):
    thin, solid = 0, 0
    for s in samples:
        for m, lab in zip(s["masks"], s["labels"].tolist(), strict=True):
            twice = _erode(_erode(m))
            if lab in sy.THIN_CLASSES:
                assert not twice.any(), f"{sy.CLASS_NAMES[lab]} is thicker than 3 px"
                thin += 1
            elif lab in (4, 5) and m.sum() > 150:  # big disks and squares survive erosion
                assert twice.any()
                solid += 1
    assert thin > 5 and solid > 2


def test_wide_scale_range(samples):
    areas = [int(m.sum()) for s in samples for m, lab in zip(s["masks"], s["labels"], strict=True)
             if int(lab) in (4, 5, 6, 7)]
    assert max(areas) / max(min(areas), 1) > 30


def test_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    fresh = ShapesWorld(5, image_size=32, seed=4, split="val", with_depth=True, target="all")
    cached = ShapesWorld(5, image_size=32, seed=4, split="val", with_depth=True, target="all",
                         cache=True)
    assert cached.cache_path is not None and cached.cache_path.exists()
    assert cached.cache_path.parent == tmp_path / "cache"
    again = ShapesWorld(5, image_size=32, seed=4, split="val", with_depth=True, target="all",
                        cache=True)
    for i in range(5):
        for key in ("image", "mask", "masks", "labels", "panoptic", "depth"):
            assert torch.equal(fresh[i][key], cached[i][key]), key
            assert torch.equal(fresh[i][key], again[i][key]), key


def test_voc_export_roundtrip(tmp_path):
    ds = ShapesWorld(6, image_size=48, seed=5, split="val", target="all")
    voc = sy.write_voc(ds, tmp_path)
    assert (voc / "ImageSets" / "Segmentation" / "val.txt").exists()
    back = VOCSegmentation(tmp_path, split="val")
    assert len(back) == 6 and back.class_names == sy.CLASS_NAMES
    for i in range(6):
        a, b = ds[i], back[i]
        assert torch.equal((a["image"] * 255).round().to(torch.uint8), b["image"])
        assert torch.equal(a["mask"], b["mask"])
        assert torch.equal(a["masks"], b["masks"])
        assert torch.equal(a["labels"], b["labels"])
        assert torch.equal(a["boxes"], b["boxes"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_coco_export_roundtrip(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils

    ds = ShapesWorld(6, image_size=48, seed=6, split="train", target="all")
    root = sy.write_coco(ds, tmp_path)
    back = COCOInstances(root, split="train")
    assert len(back) == 6
    n_inst = 0
    for i in range(6):
        a, b = ds[i], back[i]
        assert torch.equal((a["image"] * 255).round().to(torch.uint8), b["image"])
        assert torch.equal(a["masks"], b["masks"])
        assert torch.equal(a["boxes"], b["boxes"])
        names = [back.class_names[k] for k in b["labels"].tolist()]
        assert names == [sy.CLASS_NAMES[k] for k in a["labels"].tolist()]
        n_inst += len(names)
    assert n_inst > 5
    import json

    anns = json.loads((root / "annotations" / "instances_train.json").read_text())["annotations"]
    for ann in anns:  # pycocotools is the oracle for the RLE strings we wrote
        rle = {"size": ann["segmentation"]["size"],
               "counts": ann["segmentation"]["counts"].encode()}
        ref = mask_utils.decode(rle).astype(bool)
        assert np.array_equal(ref, rle_decode(ann["segmentation"]))
        assert list(mask_utils.toBbox(rle)) == ann["bbox"]
        assert int(mask_utils.area(rle)) == ann["area"]


def test_write_requires_shapes_world(tmp_path):
    with pytest.raises(ValueError, match="ShapesWorld"):
        sy.write_voc([1, 2], tmp_path)


def test_generation_speed_reports_a_rate():
    rate = sy.generation_speed(image_size=32, n=10)
    assert isinstance(rate, float) and rate > 0
