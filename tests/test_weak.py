"""Tests of course_lib.weak on hand-made targets: box masks, BoxSup's refinement, the fall-back."""

import pytest
import torch

from course_lib import weak

STUFF = (0, 1)


def _target() -> tuple[torch.Tensor, torch.Tensor]:
    """An 8x8 image: stuff 0 above row 4, stuff 1 below; an L-shaped object of class 5 and a
    single-pixel object of class 3 inside the L's box."""
    mask = torch.zeros(1, 8, 8, dtype=torch.long)
    mask[0, 4:] = 1
    ids = torch.zeros_like(mask)
    mask[0, 1:6, 1] = 5; ids[0, 1:6, 1] = 1  # noqa: E702 - the L's vertical bar
    mask[0, 5, 1:5] = 5; ids[0, 5, 1:5] = 1  # noqa: E702 - its foot
    mask[0, 2, 3] = 3; ids[0, 2, 3] = 2  # noqa: E702 - a small object inside the L's box
    return mask, ids


def test_object_boxes_and_box_mask_of_a_hand_made_target() -> None:
    mask, ids = _target()
    (boxes,) = weak.object_boxes(mask, ids)
    assert boxes.tolist() == [[5, 1, 1, 5, 6], [3, 3, 2, 4, 3]]  # large box first
    expected = mask.clone()
    expected[0, 1:6, 1:5] = 5
    expected[0, 2, 3] = 3  # the small box stays on top
    assert torch.equal(weak.box_masks(mask, ids), expected)
    assert weak.object_boxes(torch.zeros(1, 4, 4, dtype=torch.long),
                             torch.zeros(1, 4, 4, dtype=torch.long))[0].shape == (0, 5)


def _logits(labels: torch.Tensor, k: int = 6) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, k).permute(0, 3, 1, 2).float()


def test_refinement_keeps_only_predicted_pixels_inside_the_box() -> None:
    mask, ids = _target()
    boxes = weak.object_boxes(mask, ids)
    box_mask = weak.box_masks(mask, ids)
    predicted = mask.clone()
    predicted[0, 0, 0] = 5  # class 5 outside every box: not kept
    predicted[0, 3, 3] = 5  # an extra in-box pixel of class 5: kept
    refined = weak.refine_box_masks(_logits(predicted), box_mask, boxes, STUFF)
    expected = mask.clone()
    expected[0, 3, 3] = 5
    assert torch.equal(refined, expected)


def test_refinement_falls_back_to_the_box_and_picks_the_best_stuff() -> None:
    mask, ids = _target()
    boxes = weak.object_boxes(mask, ids)
    box_mask = weak.box_masks(mask, ids)
    predicted = torch.ones_like(mask)  # stuff 1 everywhere: no object predicted at all
    predicted[0, 1:6, 1] = 5
    refined = weak.refine_box_masks(_logits(predicted), box_mask, boxes, STUFF)
    expected = torch.ones_like(mask)
    expected[0, :4][~(box_mask[0, :4] > 1)] = 0  # outside the boxes: the annotation
    expected[0, 1:6, 1] = 5
    expected[0, 2, 3] = 3  # the small box predicted empty: filled whole
    assert torch.equal(refined, expected)


def test_bad_input_is_refused() -> None:
    mask, ids = _target()
    with pytest.raises(ValueError, match="same|one shape"):
        weak.object_boxes(mask, ids[0])
    boxes = weak.object_boxes(mask, ids)
    with pytest.raises(ValueError, match="background_classes"):
        weak.refine_box_masks(_logits(mask), mask, boxes, (9,))
    with pytest.raises(ValueError, match="one box tensor per image"):
        weak.refine_box_masks(_logits(mask), mask, boxes * 2, STUFF)
