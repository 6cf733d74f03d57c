"""The shapes world data set: contract constants, determinism, target consistency, cache,
generation speed, and every public name importable where the notebooks import it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

from course_lib.data import formats
from course_lib.data import synthetic as sy
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


def test_cache_roundtrip(own_data_dir):
    fresh = ShapesWorld(5, image_size=32, seed=4, split="val", with_depth=True, target="all")
    cached = ShapesWorld(5, image_size=32, seed=4, split="val", with_depth=True, target="all",
                         cache=True)
    assert cached.cache_path is not None and cached.cache_path.exists()
    assert cached.cache_path.parent == own_data_dir / "cache"
    again = ShapesWorld(5, image_size=32, seed=4, split="val", with_depth=True, target="all",
                        cache=True)
    for i in range(5):
        for key in ("image", "mask", "masks", "labels", "panoptic", "depth"):
            assert torch.equal(fresh[i][key], cached[i][key]), key
            assert torch.equal(fresh[i][key], again[i][key]), key


def test_generation_speed_reports_a_rate():
    rate = sy.generation_speed(image_size=32, n=10)
    assert isinstance(rate, float) and rate > 0


def test_public_names_stay_where_the_notebooks_import_them():
    for module in (sy, formats):
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert not missing, f"{module.__name__} lacks {missing}"
    assert {"ShapesWorld", "CLASS_NAMES", "MEMBRANE", "write_voc", "write_coco"} <= set(dir(sy))
    assert {"fetch", "EMStack", "rle_encode", "boxes_from_masks"} <= set(dir(formats))


def test_things_vs_stuff_labels_thing_pixels_one_and_keeps_the_image() -> None:
    image = torch.rand(3, 2, 3)
    mask = torch.tensor([[sy.STUFF_CLASSES[0], sy.THING_CLASSES[0], sy.THING_CLASSES[-1]],
                         [sy.IGNORE_INDEX, sy.STUFF_CLASSES[-1], sy.THING_CLASSES[3]]])
    out_image, labels = sy.things_vs_stuff((image, mask))
    assert out_image is image
    assert labels.dtype == torch.long and labels.tolist() == [[0, 1, 1], [0, 0, 1]]
