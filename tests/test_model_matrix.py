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

The check functions live in ``tests/model_checks.py``; ``tests/test_model_checks.py`` shows
that each of them fails on a deliberately broken model, so the matrix can fail.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from conftest import pattern_data
from model_checks import (
    NUM_CLASSES,
    OVERFIT_STEPS,
    OVERFIT_TARGET,
    build,
    call,
    check_backward,
    check_eval_determinism,
    check_fingerprint,
    check_full_on_meta,
    check_odd_size,
    check_output,
    check_signature,
    check_state_dict_round_trip,
    check_zero_size_refused,
    images,
    input_sizes,
    odd_size,
    overfit,
    round_up,
)
from model_fingerprints import fingerprint_input, full_param_count, load

from course_lib.models import get_spec, list_models

MODEL_NAMES = list_models()
FIXTURE = load()["models"]


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
        if full_param_count(spec) is None:  # its constructor refuses full=True (test_registry)
            pytest.skip(f"{name} is no paper's network: no full=True size")
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
