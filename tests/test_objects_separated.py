"""metrics.objects_separated: touching objects merged into one predicted region are lost."""

import pytest
import torch

from course_lib.metrics import objects_separated


def _two_touching_cells() -> torch.Tensor:
    ids = torch.zeros(1, 6, 10, dtype=torch.long)
    ids[0, 1:5, 1:5] = 1
    ids[0, 1:5, 5:9] = 2  # shares a border with cell 1
    return ids


def test_merged_cells_are_lost_and_a_membrane_gap_separates_them() -> None:
    ids = _two_touching_cells()
    merged = ids > 0
    assert objects_separated(merged, ids) == 0.0  # one blob: IoU 1/2 with each cell
    split = merged.clone()
    split[0, :, 5] = False  # a gap in cell 2: its region keeps 12 of its 16 pixels
    assert objects_separated(split, ids) == 1.0
    assert objects_separated(split, ids, min_iou=0.8) == 0.5  # cell 2: 12 / 16 = 0.75


def test_partial_recovery_and_no_objects() -> None:
    ids = torch.cat([_two_touching_cells(), torch.zeros(1, 6, 10, dtype=torch.long)])
    fg = torch.zeros(2, 6, 10, dtype=torch.bool)
    fg[0, 1:5, 1:5] = True  # only cell 1 predicted
    assert objects_separated(fg, ids) == 0.5
    assert torch.isnan(torch.tensor(objects_separated(fg[1:], ids[1:])))


def test_bad_input_is_named() -> None:
    ids = _two_touching_cells()
    with pytest.raises(ValueError, match="bool"):
        objects_separated(ids.float(), ids)
    with pytest.raises(ValueError, match="shape"):
        objects_separated(ids[0] > 0, ids)
