"""PanopticExplorer: the threshold changes the centres kept, and the picture with them."""

from __future__ import annotations

import pytest
import torch

from course_lib.widgets.panoptic import PanopticExplorer, segment_colours


def outputs_with_two_peaks() -> dict[str, torch.Tensor]:
    center = torch.zeros(2, 1, 16, 16)
    center[:, 0, 4, 4], center[:, 0, 11, 11] = 0.9, 0.3
    out = torch.zeros(2, 3, 16, 16)
    out[:, 0] = 1.0
    out[:, 1, 2:7, 2:7] = 2.0
    out[:, 1, 9:14, 9:14] = 2.0
    return {"out": out, "center": center, "offset": torch.zeros(2, 2, 16, 16)}


def test_threshold_decides_the_centres_and_the_picture() -> None:
    outputs = outputs_with_two_peaks()
    truth = torch.zeros(2, 16, 16, dtype=torch.long)
    truth[:, 2:7, 2:7] = 1001
    truth[:, 9:14, 9:14] = 1002
    explorer = PanopticExplorer(torch.rand(2, 3, 16, 16), outputs, things=(1, 2),
                                num_classes=3, truth=truth, nms_kernel=3)
    explorer.threshold.value = 0.1
    a = explorer.analysis()
    assert len(a["centers"]) == 2 and a["pq"]["things"]["pq"] == 1.0
    first = explorer.to_png()
    assert first.startswith(b"\x89PNG")
    explorer.threshold.value = 0.5  # the weak centre goes: both squares join the strong one
    a = explorer.analysis()
    assert len(a["centers"]) == 1 and a["pq"]["things"]["pq"] < 1.0
    assert explorer.to_png() != first
    assert bytes(explorer.picture.value).startswith(b"\x89PNG")


def test_segment_colours_and_bad_arguments() -> None:
    ids = torch.tensor([[0, 1001], [1002, 255000]])
    rgb = segment_colours(ids)
    assert rgb.shape == (2, 2, 3) and (rgb[1, 1] == 0).all() and not (rgb[0, 1] == rgb[1, 0]).all()
    with pytest.raises(ValueError, match="missing"):
        PanopticExplorer(torch.rand(1, 3, 4, 4), {"out": torch.rand(1, 3, 4, 4)}, (1,), 3)
    with pytest.raises(ValueError, match="2 images for 1 outputs"):
        outputs = {k: v[:1] for k, v in outputs_with_two_peaks().items()}
        PanopticExplorer(torch.rand(2, 3, 16, 16), outputs, (1,), 3)
