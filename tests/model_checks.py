"""The checks of the model matrix, one function each, for every registered model (smp's
BaseModelTester, torchvision's checks): ``tests/test_model_matrix.py`` runs them over the
registry, ``tests/test_model_checks.py`` shows that each fails on a deliberately broken model.
A family's own tests may call them too.

Detection models (``output="detections"``) are checked against torchvision's contract: a list
of images and a list of target dicts in training give a dict of scalar losses; a list of
images in eval gives a list of dicts with boxes, labels, scores, masks.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from model_fingerprints import (
    NUM_CLASSES,
    call,
    fingerprint,
    full_param_count,
    output_tensors,
    seeded_model,
)
from torch import nn

from course_lib.models import ModelSpec

CONTRACT_ARGS = ("in_channels", "num_classes", "width", "full")
OVERFIT_STEPS = 200  # Adam steps allowed to reach the target accuracy
OVERFIT_TARGET = 0.95
DETECTION_KEYS = {"boxes", "labels", "scores", "masks"}


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
