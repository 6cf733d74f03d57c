"""Shapes-world export: lossless VOC and COCO layouts read back by the format readers, the
RLE strings checked by pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.data import synthetic as sy
from course_lib.data.formats import COCOInstances, VOCSegmentation, rle_decode
from course_lib.data.synthetic import ShapesWorld


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
