"""The level-set explorer of notebook 15."""

from __future__ import annotations

import pytest
import torch

from course_lib.models.active_contour import chan_vese, morphological_chan_vese
from course_lib.widgets.active_contour import LevelSetExplorer

PNG = b"\x89PNG"


def _image() -> tuple[torch.Tensor, torch.Tensor]:
    truth = torch.zeros(32, 32, dtype=torch.bool)
    truth[8:24, 10:26] = True
    return torch.where(truth, 0.8, 0.2) + 0.05 * torch.randn(32, 32), truth


def test_the_slider_steps_through_the_evolution() -> None:
    image, truth = _image()
    evolution = chan_vese(image, iterations=20, history_every=5)
    explorer = LevelSetExplorer(image[None], evolution, truth=truth)
    assert list(explorer.step.options) == [0, 5, 10, 15, 20] == evolution.steps
    last = bytes(explorer.picture.value)
    assert last.startswith(PNG) and explorer.to_png().startswith(PNG)
    explorer.step.value = 0
    assert bytes(explorer.picture.value) != last  # the picture follows the slider
    morph = morphological_chan_vese(image, iterations=10, history_every=2)
    assert LevelSetExplorer(image, morph).to_png().startswith(PNG)


def test_refuses_an_evolution_without_history() -> None:
    image, _ = _image()
    with pytest.raises(ValueError, match="history_every"):
        LevelSetExplorer(image, chan_vese(image, iterations=3))
    with pytest.raises(ValueError, match="one image"):
        pair = image[None, None].expand(2, 1, 32, 32)
        LevelSetExplorer(image, chan_vese(pair, 3, history_every=1))
