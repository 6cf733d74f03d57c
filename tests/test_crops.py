"""Single-object crops of the shapes world (course_lib/data/crops.py)."""

from __future__ import annotations

import pytest
import torch

from course_lib.data.crops import SHAPE_CLASSES, ShapeCrops


def test_shape_crops_are_labelled_single_objects() -> None:
    crops = ShapeCrops(6, crop_size=32, image_size=64, seed=0)
    assert crops.images.shape[1:] == (3, 32, 32) and crops.images.dtype == torch.float32
    assert len(crops) == len(crops.labels) > 0
    assert 0 <= crops.images.min() and crops.images.max() <= 1
    assert crops.labels.min() >= 0 and crops.labels.max() < len(SHAPE_CLASSES)
    assert crops.class_names[0] == "disk"
    again = ShapeCrops(6, crop_size=32, image_size=64, seed=0)
    assert torch.equal(crops.images, again.images)
    with pytest.raises(ValueError, match="thing classes"):
        ShapeCrops(2, classes=(0,))
    with pytest.raises(ValueError, match="crop_size must be > 0, got 0"):
        ShapeCrops(2, crop_size=0)


def test_basics_still_exports_the_crops() -> None:
    from course_lib.models import basics

    assert basics.ShapeCrops is ShapeCrops and basics.SHAPE_CLASSES == SHAPE_CLASSES
