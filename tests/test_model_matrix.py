"""One test matrix over every registered model (smp's BaseModelTester, torchvision's checks).

Each model is built from its registry entry's tiny ``test_kwargs`` and must: give logits
[N, K, *spatial] (or a dict with "out") at two input sizes; handle an odd size or refuse
it with a ValueError naming the size; accept 1 and 4 input channels; pass gradients to
every parameter and to the input; be deterministic in eval mode; and overfit one tiny
batch. The check functions are tested on deliberately broken models at the end, so the
matrix can fail.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import pattern_data
from torch import nn

from course_lib.models import ModelSpec, get_spec, list_models

MODEL_NAMES = list_models()
NUM_CLASSES = 3
OVERFIT_STEPS = 200  # Adam steps allowed to reach the target accuracy
OVERFIT_TARGET = 0.95


# --------------------------------------------------------------------------- check functions


def round_up(size: int, multiple: int) -> int:
    return max(multiple, -(-size // multiple) * multiple)


def input_sizes(spec: ModelSpec) -> list[tuple[int, ...]]:
    """Two valid input sizes (one non-square) for ``spec``."""
    m = spec.size_multiple
    base = [(32, 48), (64, 64)] if spec.spatial_dims == 2 else [(16, 16, 16), (16, 32, 24)]
    return [tuple(round_up(s, m) for s in shape) for shape in base]


def odd_size(spec: ModelSpec) -> tuple[int, ...]:
    return (45, 45) if spec.spatial_dims == 2 else (33, 65, 65)


def build(spec: ModelSpec, **overrides: object) -> nn.Module:
    kwargs = {**spec.test_kwargs, "num_classes": NUM_CLASSES, **overrides}
    return spec.builder(**kwargs)


def logits_of(out: object, spec: ModelSpec) -> torch.Tensor:
    """The main output, checking the kind the registry promises."""
    if spec.output == "dict":
        assert isinstance(out, dict) and "out" in out, (
            f"{spec.name}: registered output='dict' but returned {type(out).__name__} "
            f"(keys: {sorted(out) if isinstance(out, dict) else '-'})"
        )
        return out["out"]
    assert isinstance(out, torch.Tensor), (
        f"{spec.name}: registered output='logits' but returned {type(out).__name__}"
    )
    return out


def check_output(out: object, spec: ModelSpec, batch: int, spatial: tuple[int, ...]) -> None:
    """Output is float logits [batch, NUM_CLASSES, *spatial], all finite."""
    logits = logits_of(out, spec)
    expected = (batch, NUM_CLASSES, *spatial)
    assert tuple(logits.shape) == expected, (
        f"{spec.name}: output shape {tuple(logits.shape)}, expected {expected}"
    )
    assert logits.is_floating_point(), f"{spec.name}: logits dtype {logits.dtype}"
    assert torch.isfinite(logits).all(), f"{spec.name}: non-finite logits"


def check_odd_size(model: nn.Module, spec: ModelSpec, x: torch.Tensor) -> str:
    """Odd input: right-shaped output, or a ValueError that names the size. Returns which."""
    size = tuple(x.shape[2:])
    try:
        with torch.no_grad():
            out = model(x)
    except ValueError as err:
        message = str(err)
        assert any(str(s) in message for s in size), (
            f"{spec.name}: ValueError for input {size} does not mention the size: {message!r}"
        )
        assert not all(s % spec.size_multiple == 0 for s in size), (
            f"{spec.name}: refused {size} although it is a multiple of {spec.size_multiple}"
        )
        return "refused"
    check_output(out, spec, x.shape[0], size)
    return "works"


def check_backward(model: nn.Module, spec: ModelSpec, x: torch.Tensor) -> None:
    """backward() of every output reaches every trainable parameter and the input."""
    x = x.clone().requires_grad_(True)
    out = model(x)
    outputs = list(out.values()) if isinstance(out, dict) else [out]
    loss = sum(o.float().mean() for o in outputs if isinstance(o, torch.Tensor))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{spec.name}: no gradient reaches {missing}"
    assert x.grad is not None and torch.isfinite(x.grad).all(), (
        f"{spec.name}: no finite gradient reaches the input"
    )


def check_eval_determinism(model: nn.Module, spec: ModelSpec, x: torch.Tensor) -> None:
    model.eval()
    with torch.no_grad():
        a, b = logits_of(model(x), spec), logits_of(model(x), spec)
    assert torch.equal(a, b), (
        f"{spec.name}: two eval-mode passes differ by {(a - b).abs().max().item():.3g}"
    )


def overfit(model: nn.Module, spec: ModelSpec, images: torch.Tensor, masks: torch.Tensor,
            steps: int = OVERFIT_STEPS, lr: float = 1e-2) -> float:
    """Train on one batch with Adam; the best pixel accuracy seen (training mode)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    best = 0.0
    for _ in range(steps):
        logits = logits_of(model(images), spec)
        loss = F.cross_entropy(logits, masks)
        best = max(best, (logits.argmax(1) == masks).float().mean().item())
        if best >= OVERFIT_TARGET:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return best


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("name", MODEL_NAMES)
class TestModelMatrix:
    def test_output_shape(self, name: str) -> None:
        spec = get_spec(name)
        torch.manual_seed(0)
        model = build(spec).eval()
        for size in input_sizes(spec):
            with torch.no_grad():
                check_output(model(torch.rand(2, 3, *size)), spec, 2, size)

    def test_odd_size_works_or_refuses(self, name: str) -> None:
        spec = get_spec(name)
        torch.manual_seed(0)
        check_odd_size(build(spec).eval(), spec, torch.rand(1, 3, *odd_size(spec)))

    @pytest.mark.parametrize("in_channels", [1, 4])
    def test_in_channels(self, name: str, in_channels: int) -> None:
        spec = get_spec(name)
        torch.manual_seed(0)
        model = build(spec, in_channels=in_channels).eval()
        size = input_sizes(spec)[0]
        with torch.no_grad():
            check_output(model(torch.rand(2, in_channels, *size)), spec, 2, size)

    def test_backward_reaches_params_and_input(self, name: str) -> None:
        spec = get_spec(name)
        torch.manual_seed(0)
        check_backward(build(spec).train(), spec, torch.rand(2, 3, *input_sizes(spec)[0]))

    def test_eval_deterministic(self, name: str) -> None:
        spec = get_spec(name)
        torch.manual_seed(0)
        check_eval_determinism(build(spec), spec, torch.rand(2, 3, *input_sizes(spec)[0]))

    def test_overfits_one_batch(self, name: str) -> None:
        spec = get_spec(name)
        torch.manual_seed(0)
        side = round_up(32, spec.size_multiple)
        size = input_sizes(spec)[0] if spec.spatial_dims == 3 else (side, side)
        images, masks = pattern_data(2, size, NUM_CLASSES)
        accuracy = overfit(build(spec), spec, images, masks)
        assert accuracy >= OVERFIT_TARGET, (
            f"{name}: pixel accuracy {accuracy:.3f} < {OVERFIT_TARGET} after {OVERFIT_STEPS} steps"
        )


# --------------------------------------------------------------------------- the matrix can fail


def test_matrix_covers_every_registered_model() -> None:
    names = list_models()
    assert names, "no model registered"
    assert MODEL_NAMES == names
    for name in names:
        spec = get_spec(name)
        assert spec.spatial_dims in (2, 3), f"{name}: spatial_dims {spec.spatial_dims}"
        assert spec.output in ("logits", "dict"), f"{name}: output {spec.output!r}"
        assert spec.size_multiple >= 1, f"{name}: size_multiple {spec.size_multiple}"


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


class _BlindBias(nn.Module):
    """Ignores the image: one learned logit per class (can only predict the majority)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias[None, :, None, None].expand(x.shape[0], -1, *x.shape[2:])


def test_shape_check_catches_wrong_output_size() -> None:
    spec = _spec("half", _HalfSize)
    with pytest.raises(AssertionError, match="output shape"):
        check_output(build(spec)(torch.rand(2, 3, 32, 48)), spec, 2, (32, 48))
    dict_spec = _spec("half", _HalfSize, output="dict")
    with pytest.raises(AssertionError, match="output='dict'"):
        check_output(torch.rand(2, 3, 32, 48), dict_spec, 2, (32, 48))


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


def test_overfit_check_fails_for_a_model_that_ignores_the_image() -> None:
    images, masks = pattern_data(2, 32, NUM_CLASSES)
    background = (masks == 0).float().mean().item()
    assert background < OVERFIT_TARGET  # otherwise "always background" would pass
    accuracy = overfit(_BlindBias(), _spec("blind", _BlindBias), images, masks, steps=50)
    assert accuracy < OVERFIT_TARGET


# --------------------------------------------------------------------------- shared blocks


def test_blocks_shapes_norms_and_errors() -> None:
    from course_lib.models.blocks import (
        ConvBNReLU,
        DepthwiseSeparableConv,
        DoubleConv,
        make_norm,
        resize_to,
    )

    x = torch.rand(2, 8, 45, 45)
    assert ConvBNReLU(8, 16, stride=2)(x).shape == (2, 16, 23, 23)  # stride 2 rounds up
    assert ConvBNReLU(8, 16, dilation=3)(x).shape == (2, 16, 45, 45)  # "same" padding
    assert ConvBNReLU(8, 4, norm=None)[0].bias is not None
    assert ConvBNReLU(8, 4)[0].bias is None  # the norm's shift replaces the bias
    assert isinstance(ConvBNReLU(8, 6, norm="gn")[1], nn.GroupNorm)
    assert make_norm("gn", 6).num_groups == 2 and isinstance(make_norm(None, 4), nn.Identity)
    assert DoubleConv(8, 16, mid_ch=4)(x).shape == (2, 16, 45, 45)
    sep, full = DepthwiseSeparableConv(8, 16), ConvBNReLU(8, 16)
    assert sep(x).shape == full(x).shape
    count = sum(p.numel() for p in sep.parameters()), sum(p.numel() for p in full.parameters())
    assert count[0] < count[1] / 2
    with pytest.raises(ValueError, match="valid norms"):
        ConvBNReLU(8, 8, norm="ln")
    with pytest.raises(ValueError, match="in_ch=0"):
        ConvBNReLU(0, 8)

    assert resize_to(x, x) is x  # no-op when the size matches
    assert resize_to(x, (10, 12)).shape == (2, 8, 10, 12)
    assert resize_to(x, torch.zeros(1, 1, 7, 9)).shape == (2, 8, 7, 9)
    assert resize_to(torch.rand(1, 2, 4, 4, 4), (8, 8, 8)).shape == (1, 2, 8, 8, 8)  # trilinear
    assert torch.equal(resize_to(torch.ones(1, 1, 3, 3), (6, 6)), torch.ones(1, 1, 6, 6))
    with pytest.raises(ValueError, match="dims"):
        resize_to(x, (10, 10, 10))
