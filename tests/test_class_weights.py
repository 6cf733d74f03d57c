"""course_lib.data.balance.median_frequency_weights: Eigen & Fergus's weights against a hand
count, notebook 05's numbers on the shapes world, void and absent classes, clear errors."""

from __future__ import annotations

import pytest
import torch

from course_lib.data import NUM_CLASSES, ShapesWorld
from course_lib.data.balance import median_frequency_weights


def test_weights_against_a_hand_count():
    # shares 0.6 / 0.3 / 0.1: median 0.3, so weights 0.5, 1, 3 (power 1), their roots (0.5)
    mask = torch.tensor([0] * 6 + [1] * 3 + [2] + [255] * 5)
    full = median_frequency_weights([mask], 3, power=1.0)
    assert full.dtype == torch.float32
    assert full.tolist() == pytest.approx([0.5, 1.0, 3.0])
    assert median_frequency_weights([mask], 3).tolist() == pytest.approx([0.5**0.5, 1.0, 3**0.5])
    assert median_frequency_weights([mask], 3, power=0.0).tolist() == [1.0, 1.0, 1.0]


def test_even_class_count_takes_the_lower_middle_share_and_absent_classes_are_capped():
    mask = torch.tensor([0] * 5 + [1] * 3 + [2] * 1 + [3] * 1)  # shares .5 .3 .1 .1, class 4 absent
    w = median_frequency_weights([mask], 5, power=1.0, min_share=1e-3)
    assert w.tolist() == pytest.approx([0.1 / 0.5, 0.1 / 0.3, 1.0, 1.0, 0.1 / 1e-3])


def test_the_median_is_over_the_classes_present():
    # two classes present out of six: over all six shares the median would be 0 (all weights 0)
    mask = torch.tensor([0] * 3 + [1] * 1)  # shares .75 .25 0 0 0 0: median of the present .25
    w = median_frequency_weights([mask], 6, power=1.0)
    assert w[:2].tolist() == pytest.approx([0.25 / 0.75, 1.0])
    assert (w > 0).all()


def test_same_weights_as_the_formula_notebook_05_used():
    data = ShapesWorld(24, image_size=48, split="train")
    masks = torch.stack([data[i][1] for i in range(len(data))])
    counts = torch.bincount(masks.flatten(), minlength=256)[:NUM_CLASSES].double()
    freq = counts / counts.sum()
    expected = (freq.median() / freq.clamp(min=1e-6)).sqrt().float()
    assert torch.equal(median_frequency_weights(masks, NUM_CLASSES), expected)
    # a rare class weighs more than a common one
    w = median_frequency_weights(masks, NUM_CLASSES)
    assert w[freq.argmin()] > 1 > w[freq.argmax()]


def test_bad_arguments_are_refused():
    mask = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="power"):
        median_frequency_weights([mask], 3, power=-1.0)
    with pytest.raises(ValueError, match="min_share"):
        median_frequency_weights([mask], 3, min_share=0.0)
    with pytest.raises(ValueError, match=r"\[5\]"):
        median_frequency_weights([torch.tensor([0, 5])], 3)
