"""Every check of the model matrix fails on a model that has the bug it is for: a matrix
that cannot fail would prove nothing (tests/model_checks.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import pattern_data
from model_checks import (
    NUM_CLASSES,
    OVERFIT_TARGET,
    build,
    check_backward,
    check_eval_determinism,
    check_fingerprint,
    check_full_on_meta,
    check_odd_size,
    check_output,
    check_signature,
    check_state_dict_round_trip,
    check_zero_size_refused,
    count,
    detection_targets,
    overfit,
)
from model_fingerprints import load
from torch import nn

from course_lib.models import ModelSpec, get_spec

FIXTURE = load()["models"]


def _spec(name: str, cls: type[nn.Module], **kw: object) -> ModelSpec:
    return ModelSpec(name=name, builder=cls, family="test", paper="-", year=2024, **kw)


class _HalfSize(nn.Module):
    """Forgets to upsample: output at half the input size."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _CropsToEight(nn.Module):
    """Silently crops odd sizes to a multiple of 8 (the bug the odd-size check is for)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 8 * 8, x.shape[-1] // 8 * 8
        return self.conv(x[..., :h, :w])


class _OrDefault(nn.Module):
    """The contract's signature with sizes resolved the old way: ``width or 16``."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3, width: int | None = None,
                 full: bool = False) -> None:
        super().__init__()
        width = width or (64 if full else 16)  # the bug: width=0 silently becomes 16
        self.net = nn.Sequential(nn.Conv2d(in_channels, width, 1),
                                 nn.Conv2d(width, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _HidesKwargs(_OrDefault):
    def __init__(self, in_channels: int = 3, **kwargs: object) -> None:
        super().__init__(in_channels, **kwargs)


class _NoFullNoReason(nn.Module):
    """Takes no full argument and says nothing about it."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3, width: int = 4) -> None:
        super().__init__()


class _FullIgnoresWidth(_OrDefault):
    def __init__(self, in_channels: int = 3, num_classes: int = 3, width: int | None = None,
                 full: bool = False) -> None:
        super().__init__(in_channels, num_classes, 64 if full else width, full)


class _VagueError(_CropsToEight):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("bad input")


class _UnusedBranch(_CropsToEight):
    def __init__(self, in_channels: int = 3, num_classes: int = 3) -> None:
        super().__init__(in_channels, num_classes)
        self.unused = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _DetachedInput(_CropsToEight):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.detach())


class _DropoutInEval(_CropsToEight):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.conv(x), p=0.5, training=True)


class _StateOutsideStateDict(_CropsToEight):
    """Keeps a random projection as a plain attribute: not saved, not loaded."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3) -> None:
        super().__init__(in_channels, num_classes)
        self.projection = torch.randn(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.projection[:, None, None]


class _BlindBias(nn.Module):
    """Ignores the image: one learned logit per class (can only predict the majority)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias[None, :, None, None].expand(x.shape[0], -1, *x.shape[2:])


class _DetectorWithoutMasks(nn.Module):
    """A 'detector' that returns boxes but no masks in eval, and logits in training."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, images: list[torch.Tensor], targets: object = None) -> Any:
        if self.training:
            return self.conv(torch.stack(images))
        return [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                 "scores": torch.zeros(0)} for _ in images]


def test_signature_check_catches_kwargs_and_an_undocumented_missing_argument() -> None:
    check_signature(_spec("fine", _OrDefault))
    with pytest.raises(AssertionError, match="hides"):
        check_signature(_spec("kwargs", _HidesKwargs))
    with pytest.raises(AssertionError, match="does not say why"):
        check_signature(_spec("nofull", _NoFullNoReason))


def test_zero_width_check_catches_the_or_default() -> None:
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        check_zero_size_refused(_spec("or", _OrDefault), "width")


def test_full_check_catches_a_wrong_count_and_an_ignored_width() -> None:
    with torch.device("meta"):
        n = count(_FullIgnoresWidth(full=True))
    with pytest.raises(AssertionError, match="register full_params"):
        check_full_on_meta(_spec("none", _OrDefault))
    with pytest.raises(AssertionError, match="registered full_params"):
        check_full_on_meta(_spec("wrong", _FullIgnoresWidth, full_params=n + 1))
    with pytest.raises(AssertionError, match="ignores an explicit width"):
        check_full_on_meta(_spec("ignores", _FullIgnoresWidth, full_params=n))


def test_fingerprint_check_catches_a_changed_output() -> None:
    spec = get_spec("baseline")
    recorded = {**FIXTURE["baseline"]}
    check_fingerprint(spec, recorded)
    first = recorded["fingerprint"]["init"]["out"]
    recorded["fingerprint"] = {**recorded["fingerprint"],
                               "init": {"out": {**first, "sum": first["sum"] + 1e-3}}}
    with pytest.raises(AssertionError, match="sum"):
        check_fingerprint(spec, recorded)
    with pytest.raises(AssertionError, match="state_dict keys"):
        check_fingerprint(spec, {**FIXTURE["baseline"], "state_dict_keys": ["stem.0.weight"]})


def test_shape_check_catches_wrong_output_size() -> None:
    spec = _spec("half", _HalfSize)
    with pytest.raises(AssertionError, match="output shape"):
        check_output(build(spec)(torch.rand(2, 3, 32, 48)), spec, 2, (32, 48))
    dict_spec = _spec("half", _HalfSize, output="dict")
    with pytest.raises(AssertionError, match="output='dict'"):
        check_output(torch.rand(2, 3, 32, 48), dict_spec, 2, (32, 48))


def test_detection_checks_catch_missing_masks_and_logits_in_training() -> None:
    spec = _spec("det", _DetectorWithoutMasks, output="detections")
    model = _DetectorWithoutMasks()
    x, masks = pattern_data(2, 32, NUM_CLASSES)
    with pytest.raises(AssertionError, match="masks"):
        check_output(model.eval()(list(x)), spec, 2, (32, 32))
    with pytest.raises(AssertionError, match="dict of losses"):
        check_backward(model.train(), spec, list(x), masks)
    for target, mask in zip(detection_targets(masks), masks, strict=True):
        assert target["labels"].tolist() == [k for k in (1, 2) if (mask == k).any()]
        assert (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()
        for box, instance in zip(target["boxes"].long(), target["masks"], strict=True):
            x1, y1, x2, y2 = box.tolist()  # the box is the instance's tight bounding box
            assert instance[y1:y2, x1:x2].sum() == instance.sum()
            assert instance[y1, x1:x2].any() and instance[y2 - 1, x1:x2].any()


def test_odd_size_check_catches_silent_crop_and_vague_error() -> None:
    x = torch.rand(1, 3, 45, 45)
    with pytest.raises(AssertionError, match="output shape"):
        check_odd_size(_CropsToEight(), _spec("crop", _CropsToEight), x)
    with pytest.raises(AssertionError, match="does not mention the size"):
        check_odd_size(_VagueError(), _spec("vague", _VagueError), x)


def test_backward_check_catches_unused_parameter_and_detached_input() -> None:
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(AssertionError, match="unused"):
        check_backward(_UnusedBranch(), _spec("unused", _UnusedBranch), x)
    with pytest.raises(AssertionError, match="input"):
        check_backward(_DetachedInput(), _spec("detached", _DetachedInput), x)


def test_determinism_check_catches_dropout_in_eval() -> None:
    with pytest.raises(AssertionError, match="differ"):
        check_eval_determinism(_DropoutInEval(), _spec("drop", _DropoutInEval),
                               torch.rand(2, 3, 16, 16))


def test_round_trip_check_catches_state_outside_the_state_dict() -> None:
    with pytest.raises(AssertionError, match="not in the state_dict"):
        check_state_dict_round_trip(_spec("state", _StateOutsideStateDict),
                                    torch.rand(2, 3, 16, 16))


def test_overfit_check_fails_for_a_model_that_ignores_the_image() -> None:
    x, masks = pattern_data(2, 32, NUM_CLASSES)
    background = (masks == 0).float().mean().item()
    assert background < OVERFIT_TARGET  # otherwise "always background" would pass
    accuracy = overfit(_BlindBias(), _spec("blind", _BlindBias), x, masks, steps=50)
    assert accuracy < OVERFIT_TARGET
