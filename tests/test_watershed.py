"""Tests of course_lib.classic.watershed: touching discs split, single objects kept whole."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from course_lib.classic.watershed import distance_watershed


def _discs(centres: list[tuple[int, int]], radius: float, size: int = 40) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    mask = torch.zeros(size, size, dtype=torch.bool)
    for y, x in centres:
        mask |= (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
    return mask


def test_two_touching_discs_are_one_component_and_two_watershed_regions() -> None:
    mask = _discs([(20, 12), (20, 27)], 8)  # overlapping discs: one blob with a neck
    assert ndimage.label(mask.numpy(), structure=np.ones((3, 3)))[1] == 1
    labels = distance_watershed(mask)
    assert labels.max() == 2
    assert torch.equal(labels > 0, mask)  # every mask pixel labelled, nothing outside
    assert labels[20, 12] != labels[20, 27]  # each disc centre in its own region
    sizes = torch.bincount(labels.flatten())[1:]
    assert abs(int(sizes[0]) - int(sizes[1])) <= 0.1 * int(sizes.sum())  # cut near the neck


def test_probability_map_threshold_and_separate_objects() -> None:
    mask = _discs([(10, 10), (30, 30)], 5)
    probability = mask.float() * 0.9 + 0.05
    labels = distance_watershed(probability, threshold=0.5)
    assert labels.max() == 2 and torch.equal(labels > 0, mask)
    # one disc stays one region; a tiny speck without a marker keeps its own label
    speck = _discs([(20, 20)], 9)
    speck[2, 2] = True
    labels = distance_watershed(speck)
    assert labels.max() == 2 and labels[2, 2] > 0 and labels[2, 2] != labels[20, 20]


def test_empty_and_bad_input() -> None:
    assert distance_watershed(torch.zeros(8, 8)).max() == 0
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        distance_watershed(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="min_distance"):
        distance_watershed(torch.ones(8, 8), min_distance=0)
