"""What every registered model is, in numbers: the record that proves a refactor moved nothing.

For each model of the registry, :func:`measure` returns its parameter count at the tiny
``test_kwargs``, at the default size and with ``full=True`` (built on the meta device, no
memory), its ``state_dict`` keys, and a *fingerprint*: the sum and the absolute sum of each
output tensor for a fixed seeded input, with weights initialised under ``torch.manual_seed(0)``,
in eval mode and float64 (so the thread count cannot change the digits that are compared).

``tests/model_fingerprints.json`` holds these numbers; ``tests/test_model_matrix.py`` compares
every model with it. Record a new model (or a deliberate change, said in the commit) with::

    python tests/model_fingerprints.py NAME [NAME ...]    # add or replace these entries
    python tests/model_fingerprints.py --all              # re-record every model
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

FIXTURE = Path(__file__).with_name("model_fingerprints.json")
NUM_CLASSES = 3  # as in the model matrix
SEED = 0


def input_size(spatial_dims: int, size_multiple: int) -> tuple[int, ...]:
    """The fingerprint's input size: 32 x 48 (2D) or 16³ (3D), rounded up to the multiple."""
    base = (32, 48) if spatial_dims == 2 else (16, 16, 16)
    return tuple(max(size_multiple, -(-s // size_multiple) * size_multiple) for s in base)


def fingerprint_input(spec: Any, dtype: torch.dtype = torch.float64) -> Any:
    """Two seeded images (a batch, or a list of [C, *size] for detection models)."""
    channels = spec.test_kwargs.get("in_channels", 3)
    size = input_size(spec.spatial_dims, spec.size_multiple)
    generator = torch.Generator().manual_seed(SEED)
    x = torch.rand(2, channels, *size, generator=generator, dtype=dtype)
    return list(x) if spec.output == "detections" else x


def output_tensors(out: Any) -> dict[str, torch.Tensor]:
    """Every tensor of a model's output by name: ``"out"`` for a tensor, the keys of a dict,
    ``"<i>.<key>"`` for a list of dicts (detections)."""
    if isinstance(out, torch.Tensor):
        return {"out": out}
    if isinstance(out, dict):
        return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
    if isinstance(out, list | tuple):
        return {f"{i}.{k}": v for i, item in enumerate(out)
                for k, v in output_tensors(item).items()}
    raise TypeError(f"cannot fingerprint an output of type {type(out).__name__}")


def call(model: nn.Module, x: Any) -> Any:
    """``model(x)``, plus the extra inputs a model asks for with ``model.extra_inputs(x)``
    (the tokens of a referring-expression segmenter, say)."""
    extra = model.extra_inputs(x) if hasattr(model, "extra_inputs") else ()
    return model(x, *extra)


def seeded_model(spec: Any, **overrides: Any) -> nn.Module:
    """The model at ``test_kwargs`` (``NUM_CLASSES`` classes), weights drawn after seeding."""
    torch.manual_seed(SEED)
    return spec.builder(**{**spec.test_kwargs, "num_classes": NUM_CLASSES, **overrides})


def _summary(model: nn.Module, x: Any) -> dict[str, dict[str, Any]]:
    with torch.no_grad():
        out = call(model, x)
    return {name: {"sum": t.double().sum().item(), "abs_sum": t.double().abs().sum().item(),
                   "shape": list(t.shape)}
            for name, t in output_tensors(out).items()}


def fingerprint(spec: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"init" | "perturbed": {output name: {"sum", "abs_sum", "shape"}}}``.

    ``init``: the seeded model as built — checks the initialisation and the order in which
    layers draw their weights. ``perturbed``: every parameter (in ``named_parameters``
    order) plus seeded noise of std 0.05 — zero-initialised layers (FCN's skip scores) then
    take part, so a change in *any* path of ``forward`` shows.
    """
    model = seeded_model(spec).double().eval()
    x = fingerprint_input(spec)
    result = {"init": _summary(model, x)}
    generator = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    result["perturbed"] = _summary(model, x)
    return result


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def full_param_count(spec: Any) -> int | None:
    """Parameters of ``builder(full=True)`` built on the meta device; ``None`` for a model
    that is no paper's network (its constructor refuses ``full=True``)."""
    try:
        with torch.device("meta"):
            return count(spec.builder(full=True))
    except ValueError as refusal:
        if "no paper's network" in str(refusal):
            return None
        raise


def measure(spec: Any) -> dict[str, Any]:
    model = seeded_model(spec)
    return {
        "test_kwargs": json.loads(json.dumps(spec.test_kwargs)),
        "params_test": count(model),
        "params_default": count(spec.builder()),
        "params_full": full_param_count(spec),
        "state_dict_keys": list(model.state_dict()),
        "fingerprint": fingerprint(spec),
    }


def load() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {"models": {}}


def main(argv: list[str] | None = None) -> int:
    from course_lib.models import get_spec, list_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models to (re-)record")
    parser.add_argument("--all", action="store_true", help="re-record every registered model")
    args = parser.parse_args(argv)
    names = list_models() if args.all else args.names
    if not names:
        parser.error("name the models to record, or pass --all")
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False  # as in conftest.py
    record = load()
    record["torch"] = torch.__version__
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip() or "unknown"
    for name in names:
        record["models"][name] = {"recorded_at": commit, **measure(get_spec(name))}
        print(f"{name:<16} {record['models'][name]['params_test']:>10,} params (test) "
              f"{record['models'][name]['params_full']} (full)", file=sys.stderr)
    record["models"] = dict(sorted(record["models"].items()))
    FIXTURE.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
