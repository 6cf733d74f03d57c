"""One test matrix over every registered model (smp's BaseModelTester, torchvision's checks).

Driven by the registry: a model registered by any family module is checked here without a
line of its own. Each model must

- honour the contract: an explicit ``(in_channels, num_classes, width, full, ...)``
  signature without ``**kwargs`` (an argument that does not apply is documented in the
  docstring as "``name`` does not apply"), ``width=0`` / ``depth=0`` refused with a
  ValueError naming the argument, ``full=True`` built on the meta device with the
  registered ``full_params``, and an explicit width that wins over ``full=True``;
- be what it was: parameter counts, ``state_dict`` keys and seeded output fingerprints equal
  to ``tests/model_fingerprints.json`` (see ``tests/model_fingerprints.py``);
- work: logits [N, K, *spatial] (or the documented dict) at two input sizes, an odd size
  handled or refused with a ValueError naming it, 1 and 4 input channels, ``state_dict``
  round-trips, gradients reach every parameter and the input, eval mode is deterministic,
  one tiny batch is overfitted.

Detection models (``output="detections"``) are checked against torchvision's contract
instead: a list of images and a list of target dicts in training give a dict of scalar
losses; a list of images in eval gives a list of dicts with boxes, labels, scores, masks.

The check functions are tested on deliberately broken models at the end: the matrix can fail.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import pattern_data
from model_fingerprints import (
    NUM_CLASSES,
    call,
    fingerprint,
    fingerprint_input,
    full_param_count,
    load,
    output_tensors,
    seeded_model,
)
from torch import nn

from course_lib.models import ModelSpec, get_spec, list_models

MODEL_NAMES = list_models()
CONTRACT_ARGS = ("in_channels", "num_classes", "width", "full")
OVERFIT_STEPS = 200  # Adam steps allowed to reach the target accuracy
OVERFIT_TARGET = 0.95
FIXTURE = load()["models"]
DETECTION_KEYS = {"boxes", "labels", "scores", "masks"}


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


def images(spec: ModelSpec, batch: int, size: tuple[int, ...], channels: int = 3) -> Any:
    """A batch for ``spec``: a tensor, or a list of [C, *size] images for detection models."""
    x = torch.rand(batch, channels, *size)
    return list(x) if spec.output == "detections" else x


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_signature(spec: ModelSpec) -> None:
    """Explicit keyword arguments, no ``*args``/``**kwargs``; the contract's arguments present
    or their absence explained in the docstring ("``full`` does not apply: ...")."""
    parameters = inspect.signature(spec.builder).parameters
    hidden = [p.name for p in parameters.values()
              if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    assert not hidden, f"{spec.name}: *{hidden} hides the constructor's arguments"
    positional_only = [p.name for p in parameters.values() if p.kind is p.POSITIONAL_ONLY]
    assert not positional_only, f"{spec.name}: {positional_only} cannot be given by keyword"
    doc = inspect.getdoc(spec.builder) or ""
    for arg in CONTRACT_ARGS:
        if arg not in parameters:
            assert f"``{arg}`` does not apply" in doc, (
                f"{spec.name}: takes no {arg!r} and its docstring does not say why "
                f"(expected a sentence '``{arg}`` does not apply: ...')"
            )


def check_zero_size_refused(spec: ModelSpec, arg: str) -> None:
    """``arg=0`` is a ValueError that names ``arg`` (never a silent default)."""
    with pytest.raises(ValueError) as info:
        build(spec, **{arg: 0})
    assert arg in str(info.value), f"{spec.name}: {arg}=0 raised {info.value!r} without naming it"


def check_full_on_meta(spec: ModelSpec) -> None:
    """``full=True`` builds (on the meta device) with ``spec.full_params`` parameters, and an
    explicit ``width`` changes that model (an explicit value wins over ``full``)."""
    assert spec.full_params is not None, (
        f"{spec.name}: register full_params (the parameter count of {spec.builder.__name__}"
        f"(full=True): {full_param_count(spec):,})"
    )
    n = full_param_count(spec)
    assert n == spec.full_params, f"{spec.name}: full=True has {n:,} parameters, " \
                                  f"registered full_params={spec.full_params:,}"
    if "width" in inspect.signature(spec.builder).parameters:
        with torch.device("meta"):
            narrow = count(spec.builder(full=True, width=2))
        assert narrow < n, f"{spec.name}: full=True ignores an explicit width=2"


def check_fingerprint(spec: ModelSpec, recorded: dict[str, Any]) -> None:
    """Parameter counts, state-dict keys and seeded outputs equal the recorded ones."""
    assert recorded["test_kwargs"] == _json(spec.test_kwargs), (
        f"{spec.name}: test_kwargs changed from the recorded {recorded['test_kwargs']}; "
        "re-record with `python tests/model_fingerprints.py NAME` and say why in the commit"
    )
    model = seeded_model(spec)
    assert count(model) == recorded["params_test"], f"{spec.name}: parameters at test_kwargs"
    assert count(spec.builder()) == recorded["params_default"], (
        f"{spec.name}: parameters at the default size"
    )
    assert full_param_count(spec) == recorded["params_full"], f"{spec.name}: full=True params"
    assert list(model.state_dict()) == recorded["state_dict_keys"], f"{spec.name}: state_dict keys"
    ours = fingerprint(spec)
    assert ours.keys() == recorded["fingerprint"].keys()
    for kind, outputs in recorded["fingerprint"].items():
        assert ours[kind].keys() == outputs.keys(), f"{spec.name}: {kind} output names"
        for name, ref in outputs.items():
            got = ours[kind][name]
            assert got["shape"] == ref["shape"], f"{spec.name}: {kind} {name} shape"
            scale = max(ref["abs_sum"], 1.0)
            for stat in ("sum", "abs_sum"):
                assert math.isclose(got[stat], ref[stat], rel_tol=0, abs_tol=1e-9 * scale), (
                    f"{spec.name}: {kind} output {name!r} {stat} {got[stat]!r} != recorded "
                    f"{ref[stat]!r}"
                )


def _json(value: Any) -> Any:
    """``value`` as JSON stores it (tuples become lists)."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


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
    """Output is float logits [batch, NUM_CLASSES, *spatial], all finite (or, for detection
    models, one dict of boxes/labels/scores/masks per image)."""
    if spec.output == "detections":
        check_detections(out, spec, batch, spatial)
        return
    logits = logits_of(out, spec)
    expected = (batch, NUM_CLASSES, *spatial)
    assert tuple(logits.shape) == expected, (
        f"{spec.name}: output shape {tuple(logits.shape)}, expected {expected}"
    )
    assert logits.is_floating_point(), f"{spec.name}: logits dtype {logits.dtype}"
    assert torch.isfinite(logits).all(), f"{spec.name}: non-finite logits"


def check_detections(out: object, spec: ModelSpec, batch: int, spatial: tuple[int, ...]) -> None:
    """torchvision's eval contract: a list of ``batch`` dicts, boxes [n, 4] (x1, y1, x2, y2),
    labels [n] int64, scores [n], masks [n, 1, H, W] — n the same within a dict."""
    assert isinstance(out, list) and len(out) == batch, (
        f"{spec.name}: eval output must be a list of {batch} dicts, got {type(out).__name__}"
    )
    for det in out:
        assert isinstance(det, dict) and DETECTION_KEYS <= set(det), (
            f"{spec.name}: each detection needs {sorted(DETECTION_KEYS)}, got "
            f"{sorted(det) if isinstance(det, dict) else type(det).__name__}"
        )
        n = det["boxes"].shape[0]
        assert det["boxes"].shape == (n, 4), f"{spec.name}: boxes {tuple(det['boxes'].shape)}"
        assert det["labels"].shape == (n,) and det["labels"].dtype == torch.int64
        assert det["scores"].shape == (n,)
        assert tuple(det["masks"].shape) == (n, 1, *spatial), (
            f"{spec.name}: masks {tuple(det['masks'].shape)}, expected {(n, 1, *spatial)}"
        )


def detection_targets(masks: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """torchvision targets from label masks [N, H, W]: one instance per class present."""
    targets = []
    for mask in masks:
        classes = [int(k) for k in mask.unique() if k > 0]
        instance = torch.stack([mask == k for k in classes]).to(torch.uint8)
        boxes = []
        for m in instance:
            rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
            boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32),
                        "labels": torch.tensor(classes, dtype=torch.int64), "masks": instance})
    return targets


def detection_losses(model: nn.Module, spec: ModelSpec, x: list[torch.Tensor],
                     masks: torch.Tensor) -> torch.Tensor:
    """torchvision's training contract: a dict of finite scalar losses; returns their sum."""
    losses = model(x, detection_targets(masks))
    assert isinstance(losses, dict) and losses, (
        f"{spec.name}: training mode must return a dict of losses, got {type(losses).__name__}"
    )
    for key, value in losses.items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0, (
            f"{spec.name}: loss {key!r} is not a scalar tensor"
        )
        assert torch.isfinite(value), f"{spec.name}: loss {key!r} = {value}"
    return sum(losses.values())


def check_odd_size(model: nn.Module, spec: ModelSpec, x: Any) -> str:
    """Odd input: right-shaped output, or a ValueError that names the size. Returns which."""
    size = tuple(x[0].shape[1:])
    try:
        with torch.no_grad():
            out = call(model, x)
    except ValueError as err:
        message = str(err)
        assert any(str(s) in message for s in size), (
            f"{spec.name}: ValueError for input {size} does not mention the size: {message!r}"
        )
        assert not all(s % spec.size_multiple == 0 for s in size), (
            f"{spec.name}: refused {size} although it is a multiple of {spec.size_multiple}"
        )
        return "refused"
    check_output(out, spec, len(x), size)
    return "works"


def check_backward(model: nn.Module, spec: ModelSpec, x: Any,
                   masks: torch.Tensor | None = None) -> None:
    """backward() of every output reaches every trainable parameter and the input."""
    if isinstance(x, list):
        x = [image.clone().requires_grad_(True) for image in x]
        loss = detection_losses(model, spec, x, masks)
        inputs = x
    else:
        x = x.clone().requires_grad_(True)
        out = call(model, x)
        outputs = list(out.values()) if isinstance(out, dict) else [out]
        loss = sum(o.float().mean() for o in outputs if isinstance(o, torch.Tensor))
        inputs = [x]
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{spec.name}: no gradient reaches {missing}"
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in inputs), (
        f"{spec.name}: no finite gradient reaches the input"
    )


def check_eval_determinism(model: nn.Module, spec: ModelSpec, x: Any) -> None:
    model.eval()
    with torch.no_grad():
        a, b = output_tensors(call(model, x)), output_tensors(call(model, x))
    assert a.keys() == b.keys(), f"{spec.name}: two eval-mode passes give different outputs"
    for key in a:
        assert torch.equal(a[key], b[key]), (
            f"{spec.name}: two eval-mode passes differ in {key!r} by "
            f"{(a[key].float() - b[key].float()).abs().max().item():.3g}"
        )


def check_state_dict_round_trip(spec: ModelSpec, x: Any) -> None:
    """A second model (another seed) loaded with the first one's state_dict computes the same
    function: everything the output depends on is in the state_dict."""
    torch.manual_seed(0)
    first = build(spec).eval()
    torch.manual_seed(1)
    second = build(spec).eval()
    second.load_state_dict(first.state_dict(), strict=True)
    with torch.no_grad():
        a, b = output_tensors(call(first, x)), output_tensors(call(second, x))
    for key in a:
        assert torch.equal(a[key], b[key]), (
            f"{spec.name}: output {key!r} differs after load_state_dict: some state is not "
            "in the state_dict"
        )


def overfit(model: nn.Module, spec: ModelSpec, images: torch.Tensor, masks: torch.Tensor,
            steps: int = OVERFIT_STEPS, lr: float = 1e-2) -> float:
    """Train on one batch with Adam; the best pixel accuracy seen (training mode)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    best = 0.0
    for _ in range(steps):
        logits = logits_of(call(model, images), spec)
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
    def test_signature(self, name: str) -> None:
        check_signature(get_spec(name))

    def test_zero_width_and_depth_are_refused(self, name: str) -> None:
        spec = get_spec(name)
        parameters = inspect.signature(spec.builder).parameters
        sizes = [arg for arg in ("width", "depth") if arg in parameters]
        if not sizes:
            pytest.skip(f"{name} has neither width nor depth (documented in its docstring)")
        for arg in sizes:
            check_zero_size_refused(spec, arg)

    def test_full_builds_on_meta_with_registered_count(self, name: str) -> None:
        spec = get_spec(name)
        if "full" not in inspect.signature(spec.builder).parameters:
            pytest.skip(f"``full`` does not apply to {name} (documented in its docstring)")
        check_full_on_meta(spec)

    def test_same_as_recorded(self, name: str) -> None:
        if name not in FIXTURE:
            pytest.fail(f"{name} has no recorded fingerprint: record it with "
                        f"`python tests/model_fingerprints.py {name}` and commit the JSON")
        check_fingerprint(get_spec(name), FIXTURE[name])

    def test_state_dict_round_trip(self, name: str) -> None:
        spec = get_spec(name)
        check_state_dict_round_trip(spec, fingerprint_input(spec, torch.float32))

    def test_output_shape(self, name: str) -> None:
        spec = get_spec(name)
        torch.manual_seed(0)
        model = build(spec).eval()
        for size in input_sizes(spec):
            with torch.no_grad():
                check_output(call(model, images(spec, 2, size)), spec, 2, size)

    def test_odd_size_works_or_refuses(self, name: str) -> None:
        spec = get_spec(name)
        torch.manual_seed(0)
        check_odd_size(build(spec).eval(), spec, images(spec, 1, odd_size(spec)))

    @pytest.mark.parametrize("in_channels", [1, 4])
    def test_in_channels(self, name: str, in_channels: int) -> None:
        spec = get_spec(name)
        torch.manual_seed(0)
        model = build(spec, in_channels=in_channels).eval()
        size = input_sizes(spec)[0]
        with torch.no_grad():
            check_output(call(model, images(spec, 2, size, in_channels)), spec, 2, size)

    def test_backward_reaches_params_and_input(self, name: str) -> None:
        spec = get_spec(name)
        torch.manual_seed(0)
        size = input_sizes(spec)[0]
        x, masks = pattern_data(2, size, NUM_CLASSES)
        if spec.output == "detections":
            x = list(x)
        check_backward(build(spec).train(), spec, x, masks)

    def test_eval_deterministic(self, name: str) -> None:
        spec = get_spec(name)
        torch.manual_seed(0)
        check_eval_determinism(build(spec), spec, images(spec, 2, input_sizes(spec)[0]))

    def test_overfits_one_batch(self, name: str) -> None:
        spec = get_spec(name)
        if spec.output == "detections":
            pytest.skip("a detector needs far more than the matrix's step budget to overfit; "
                        "its family's tests train it")
        torch.manual_seed(0)
        side = round_up(32, spec.size_multiple)
        size = input_sizes(spec)[0] if spec.spatial_dims == 3 else (side, side)
        x, masks = pattern_data(2, size, NUM_CLASSES)
        accuracy = overfit(build(spec), spec, x, masks)
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
        assert spec.output in ("logits", "dict", "detections"), f"{name}: output {spec.output!r}"
        assert spec.size_multiple >= 1, f"{name}: size_multiple {spec.size_multiple}"


def test_every_family_name_is_its_module() -> None:
    for name in list_models():
        spec = get_spec(name)
        module = spec.builder.__module__.removeprefix("course_lib.models.").split(".")[0]
        assert spec.family == module, f"{name}: family {spec.family!r} but module {module!r}"


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
