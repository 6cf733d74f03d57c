"""evaluating() restores every submodule's mode, also when the forward pass raises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.runtime import evaluating, model_device


def test_evaluating_restores_each_submodule_mode_after_an_error() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    with pytest.raises(RuntimeError), evaluating(model):
        assert not model.training and not model[0].training
        assert not torch.is_grad_enabled()
        model(torch.zeros(1, 3, 8, 8))  # wrong channel count: raises
    assert model.training and model[0].training and not model[1].training
    assert torch.is_grad_enabled()


def test_model_device() -> None:
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")
    assert model_device(nn.Linear(2, 2, device="meta")).type == "meta"
