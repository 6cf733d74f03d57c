"""SliceViewer (notebook 08): driven from Python, the slice, axis and overlay change the view."""

from __future__ import annotations

import base64
import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import widgets  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _volume() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 8, 10, 12, generator=g)
    mask = torch.zeros(8, 10, 12, dtype=torch.long)
    mask[5, 2:6, 3:7] = 1  # 16 voxels on slice 5 (axis 0) ...
    mask[6, 2:4, 3:5] = 1  # ... and 4 on slice 6
    pred = torch.zeros_like(mask)
    pred[5, 2:6, 3:5] = 1  # 8 voxels, all inside the mask on slice 5
    return image, mask, pred


def test_slice_viewer_starts_on_foreground_and_follows_the_slider() -> None:
    image, mask, pred = _volume()
    viewer = widgets.SliceViewer(image, mask, pred, class_names=["background", "lesion"])
    assert viewer.slider.value == 5 and viewer.slider.max == 7  # most foreground: slice 5
    stats = viewer.slice_stats()
    assert stats["mask_voxels"] == 16 and stats["prediction_voxels"] == 8
    assert stats["dice"] == pytest.approx(2 * 8 / (16 + 8))
    assert "slice Dice 0.667" in viewer.label.value
    first = bytes(viewer.picture.value)
    assert first.startswith(PNG_MAGIC)

    viewer.slider.value = 6
    assert viewer.slice_stats() == {"mask_voxels": 4, "prediction_voxels": 0, "dice": 0.0}
    second = bytes(viewer.picture.value)
    assert second != first
    viewer.slider.value = 0  # empty slice: Dice undefined
    assert math.isnan(viewer.slice_stats()["dice"]) and "Dice" not in viewer.label.value

    viewer.overlay.value = False
    assert bytes(viewer.picture.value) != second

    viewer.axis.value = 2  # sagittal: 12 slices, the fullest is x = 3 (6 + 2 voxels)
    assert viewer.slider.max == 11 and viewer.slider.value == 3
    assert viewer.slice_stats()["mask_voxels"] == 6
    bundle = viewer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)


def test_slice_viewer_takes_logits_and_plain_volumes() -> None:
    image, mask, pred = _volume()
    logits = torch.stack([(pred == 0).float(), (pred == 1).float()])  # [K, D, H, W]
    viewer = widgets.SliceViewer(image[0], prediction=logits)
    assert torch.equal(viewer.prediction, pred)
    assert viewer.slider.value == 4  # no mask: the middle slice
    stats = viewer.slice_stats()
    assert "mask_voxels" not in stats and stats["prediction_voxels"] == 0
    assert math.isnan(stats["dice"])
    viewer.slider.value = 5
    assert viewer.slice_stats()["prediction_voxels"] == 8


def test_slice_viewer_rejects_bad_input() -> None:
    image, mask, _ = _volume()
    with pytest.raises(ValueError, match="volume must be"):
        widgets.SliceViewer(torch.rand(4, 4))
    with pytest.raises(ValueError, match="mask must be a"):
        widgets.SliceViewer(image, mask[:4])
    with pytest.raises(ValueError, match="integer"):
        widgets.SliceViewer(image, mask.float())
    with pytest.raises(ValueError, match="axis"):
        widgets.SliceViewer(image, mask, axis=3)
