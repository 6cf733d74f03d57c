"""FeatureMapExplorer (notebooks 01 and 07): changing a control changes what is shown."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from widget_cases import PNG_MAGIC, check_bundle, tiny_model  # noqa: E402

from course_lib import widgets  # noqa: E402


def test_feature_map_explorer_follows_layer_and_channel() -> None:
    explorer = widgets.FeatureMapExplorer(tiny_model(), torch.rand(3, 24, 24))
    layer_names = [value for _, value in explorer.layer.options]
    assert layer_names == ["0", "1", "2", "3", "4", "5"]  # leaf layers with 4-D outputs
    assert "(1, 6, 24, 24)" in explorer.label.value
    assert explorer.channel.max == 5
    first = bytes(explorer.picture.value)
    assert first.startswith(PNG_MAGIC)

    explorer.layer.value = "2"
    assert "(1, 10, 12, 12)" in explorer.label.value and "Conv2d" in explorer.label.value
    assert explorer.channel.max == 9
    second = bytes(explorer.picture.value)
    assert second != first

    explorer.channel.value = 7
    assert bytes(explorer.picture.value) != second

    explorer.layer.value = "4"  # 4 channels: the slider is clamped
    assert explorer.channel.value == 3 and explorer.channel.max == 3
    check_bundle(explorer)


def test_feature_map_explorer_restores_the_mode_when_the_forward_pass_raises() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    with pytest.raises(RuntimeError):  # three channels for a one-channel convolution
        widgets.FeatureMapExplorer(model, torch.rand(3, 8, 8))
    assert model.training and model[0].training and not model[1].training
    assert not model[0]._forward_hooks  # the recording hooks are gone too


def test_feature_map_explorer_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="tensor"):
        widgets.FeatureMapExplorer(tiny_model(), torch.rand(24, 24))
    with pytest.raises(ValueError, match="4-D output"):
        widgets.FeatureMapExplorer(nn.Flatten(), torch.rand(3, 4, 4))
