"""Measure models instead of guessing: parameters, FLOPs, latency, memory, step time.

Every speed or size claim of the course comes from these functions (or from the CLI)::

    python -m course_lib.bench model baseline --size 128 --batch 2
    python -m course_lib.bench --all            # every registered model, small size
    python -m course_lib.bench data             # synthetic-data generation speed
    python -m course_lib.bench metrics          # our metrics vs torchmetrics

Timings report the *median* of repeated runs after a warm-up (the first calls pay for
memory allocation and kernel selection); on CUDA the clock is read only after
``torch.cuda.synchronize()``, because kernels run asynchronously.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from . import config, pretrain
from .config import IGNORE_INDEX
from .losses import cross_entropy, model_loss
from .metrics import ConfusionMatrix, mean_iou, score_segmentation
from .runtime import evaluating, model_device
from .train import predict
from .train.step import optimizer_step


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, input: torch.Tensor) -> int:
    """Floating-point operations of one forward pass on ``input`` (eval mode, no grad).

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode`, which counts a
    multiply-add as 2 FLOPs and covers matrix products and convolutions (the bulk of the
    cost); element-wise operations (ReLU, BatchNorm, interpolation) are not counted. The
    input goes to the model's device.
    """
    counter = FlopCounterMode(display=False)
    with evaluating(model), counter:
        model(input.to(model_device(model)))
    return int(counter.get_total_flops())


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued kernels (CUDA and MPS run asynchronously): a clock read
    before it would time the launch, not the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _time_calls(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> dict:
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats=}, {warmup=}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return {
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": repeats,
        "device": device.type,
    }


def measure_latency(
    model: nn.Module, input: torch.Tensor, warmup: int = 3, repeats: int | None = None
) -> dict[str, Any]:
    """Inference time of ``model(input)`` in eval mode without gradients.

    Runs ``warmup`` untimed calls, then ``repeats`` timed ones (default: the profile's
    ``bench_repeats``). Returns ``median_ms`` (the number to quote), ``mean_ms``,
    ``min_ms``, ``max_ms``, ``repeats``, ``device``. The input and model must already be
    on the same device.
    """
    repeats = config.get_profile().bench_repeats if repeats is None else repeats
    with evaluating(model):
        return _time_calls(lambda: model(input), input.device, warmup, repeats)


def compare_latency(
    models: Mapping[str, nn.Module], input: torch.Tensor, rounds: int = 3, warmup: int = 3,
    repeats: int | None = None,
) -> dict[str, float]:
    """Latency in ms of each model on ``input``, fair on a busy machine: the models take
    turns for ``rounds`` rounds (a busy moment hits all of them, not one), each round is a
    :func:`measure_latency`, and each model keeps the best of its per-round medians.
    ``rounds`` is capped in smoke runs (:func:`config.cap_steps`)."""
    if rounds < 1 or not models:
        raise ValueError(f"need rounds >= 1 and at least one model, got {rounds=}, "
                         f"{len(models)} models")
    medians: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(config.cap_steps(rounds)):
        for name, model in models.items():
            timing = measure_latency(model, input, warmup=warmup, repeats=repeats)
            medians[name].append(timing["median_ms"])
    return {name: min(values) for name, values in medians.items()}


def peak_memory(fn: Callable[[], Any], device: torch.device | str | None = None) -> int:
    """Peak memory in bytes while ``fn()`` runs.

    * CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak — memory held by
      tensors during ``fn`` (what the model needs), not the caching allocator's reserve.
    * CPU (and MPS): the *process's* peak resident set size (``resource.getrusage``
      ``ru_maxrss``) after ``fn``. It is a high-water mark of the whole process that never
      goes down, so it includes the Python interpreter and PyTorch (hundreds of MB) and
      anything that peaked earlier: compare values measured in fresh processes, or read
      differences with care.
    """
    device = config.get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        gc.collect()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    fn()
    try:
        import resource
    except ImportError:  # Windows: the peak working set, if psutil is installed
        import psutil

        return int(psutil.Process().memory_info().peak_wset)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)  # macOS: bytes, Linux: KiB


def peak_tensor_memory(fn: Callable[[], Any], device: torch.device | str | None = None) -> int:
    """Peak bytes held by the tensors that ``fn()`` creates, on any device.

    Tensors that exist before the call (the inputs, the parameters) are not counted, so two
    computations measured one after the other in one process compare fairly (full vs
    criss-cross attention, say), which :func:`peak_memory`'s process high-water mark cannot.

    * CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak, minus the memory
      allocated before the call;
    * CPU and MPS: every tensor an operation returns is recorded by its storage (a
      ``TorchDispatchMode``) until that storage is freed; the result is the peak of the
      running sum. Views and in-place results share their input's storage and add nothing;
      memory that is not a tensor's (scratch space inside a kernel, the allocator's caches)
      is not seen.
    """
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    device = config.get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        gc.collect()
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)

    class _Storages(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live: dict[int, int] = {}
            self.now = self.peak = 0

        def _freed(self, key: int) -> None:
            self.now -= self.live.pop(key)

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0]
                      if isinstance(t, torch.Tensor) and t.device.type != "meta"}
            for t in tree_flatten(out)[0]:
                if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                    continue
                storage = t.untyped_storage()
                if id(storage) not in self.live and id(storage) not in inputs:  # new memory
                    self.live[id(storage)] = storage.nbytes()
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(storage, self._freed, id(storage))
            return out

    tracker = _Storages()
    with tracker:
        fn()
    return int(tracker.peak)


def train_step_time(
    model: nn.Module,
    input: torch.Tensor,
    target: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    warmup: int = 2,
    repeats: int | None = None,
) -> dict[str, Any]:
    """Time of one training step (forward, loss, backward, SGD update), as in ``fit``.

    Uses mixed precision on CUDA like :func:`course_lib.train.fit`. The model's weights are
    changed by the steps (it is trained a little): pass a copy if that matters. Returns the
    same keys as :func:`measure_latency`.
    """
    repeats = config.get_profile().bench_repeats if repeats is None else repeats
    device = input.device
    loss_fn = cross_entropy if loss_fn is None else loss_fn
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    scaler = config.grad_scaler(device)

    def step() -> None:
        with config.autocast(device):
            out = model(input)
        optimizer_step(model_loss(out, target, loss_fn), optimizer, scaler)

    # evaluating() records every submodule's mode and restores it afterwards (also on an
    # error); inside it the model trains.
    with evaluating(model, no_grad=False):
        model.train()
        return _time_calls(step, device, warmup, repeats)


def fine_tune_and_score(
    model: nn.Module, loader: Sequence, loss_fn: Callable[..., torch.Tensor], lr: float,
    epochs: int, images: torch.Tensor, masks: torch.Tensor, label: str | None = None,
) -> tuple[dict[str, float], torch.Tensor]:
    """Fine-tune ``model`` from its pre-trained encoder (:func:`pretrain.fine_tune`), then
    measure it: returns (row, validation logits). The row holds
    :func:`~course_lib.metrics.score_segmentation`'s columns on ``images``/``masks`` and its
    costs: ``"params"``, ``"gflops"`` (one image), ``"train_s"``, ``"ms_per_step"`` and
    ``"latency_ms"`` (NaN: time the models of a comparison together, :func:`compare_latency`).
    Prints one line when given a ``label``.
    """
    if epochs < 1 or len(loader) == 0:
        raise ValueError(f"need epochs >= 1 and a non-empty loader, got {epochs=}, "
                         f"{len(loader)} batches")
    seconds = sum(pretrain.fine_tune(model, loader, loss_fn, lr, epochs).seconds)
    logits = predict(model, images, batch_size=16, output="logits")
    row = {**score_segmentation(logits.argmax(1), masks), "latency_ms": float("nan"),
           "gflops": count_flops(model.eval(), images[:1]) / 1e9,
           "params": count_parameters(model), "train_s": seconds,
           "ms_per_step": 1000 * seconds / (epochs * len(loader))}
    if label is not None:
        print(f"{label}: mIoU {row['miou']:.3f}, boundary F {row['boundary_f']:.3f}, "
              f"trained in {seconds:.0f} s")
    return row, logits


def benchmark_vs_torchmetrics(
    batch: int = 16,
    size: int = 512,
    num_classes: int = 21,
    repeats: int = 5,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time ``ConfusionMatrix`` update + mIoU against torchmetrics' ``MulticlassJaccardIndex``.

    Both score the same random labels (5 % of target pixels set to the ignore index 255);
    the values must agree to 1e-6. Times are medians over ``repeats`` runs after one warm-up.
    torchmetrics is timed twice: with its default input validation (``validate_args=True``,
    which calls ``torch.unique`` on both inputs) and without it.

    Where the time goes (16 x 512 x 512, K = 21, one CPU thread): torchmetrics' default spends
    most of it sorting in ``torch.unique`` and then compacts both inputs with a boolean mask;
    without validation it runs the same ``bincount`` as we do, so the gap shrinks to what
    the mask and the int64 copies cost. Ours is one fused ``pred + K * target`` into a reused
    buffer, two ``aminmax`` range checks and one ``bincount`` (about half of our time).

    Returns:
        dict with ``ours_ms``, ``torchmetrics_ms``, ``torchmetrics_no_validation_ms``,
        ``speedup`` (torchmetrics_ms / ours_ms), ``speedup_no_validation``, ``miou``,
        ``device``, ``pixels``.
    """
    from torchmetrics.classification import MulticlassJaccardIndex  # dev dependency

    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, size, size)
    target = torch.randint(0, num_classes, shape, generator=gen)
    target[torch.rand(shape, generator=gen) < 0.05] = IGNORE_INDEX
    pred = torch.randint(0, num_classes, shape, generator=gen)
    pred, target = pred.to(dev), target.to(dev)

    def timed(fn: Callable[[], float]) -> tuple[float, float]:
        value = fn()  # warm-up (allocations, CUDA context, kernels); the runs repeat it
        return _time_calls(fn, dev, warmup=0, repeats=repeats)["median_ms"], value

    ours = ConfusionMatrix(num_classes, ignore_index=IGNORE_INDEX)

    def run_ours() -> float:
        ours.matrix.zero_()  # like reset(), but keeps the scratch buffer between repeats
        ours.update(pred, target)
        return mean_iou(ours.matrix)

    def make_tm(validate: bool) -> Callable[[], float]:
        metric = MulticlassJaccardIndex(
            num_classes=num_classes, ignore_index=IGNORE_INDEX, average="macro",
            validate_args=validate,
        ).to(dev)

        def run() -> float:
            metric.reset()
            metric.update(pred, target)
            return float(metric.compute())

        return run

    ours_ms, ours_val = timed(run_ours)
    tm_ms, tm_val = timed(make_tm(True))
    tm_nv_ms, _ = timed(make_tm(False))
    if abs(ours_val - tm_val) > 1e-6:
        raise AssertionError(f"mIoU differs: ours {ours_val:.8f} vs torchmetrics {tm_val:.8f}")
    return {
        "ours_ms": ours_ms,
        "torchmetrics_ms": tm_ms,
        "torchmetrics_no_validation_ms": tm_nv_ms,
        "speedup": tm_ms / ours_ms,
        "speedup_no_validation": tm_nv_ms / ours_ms,
        "miou": ours_val,
        "device": str(dev),
        "pixels": batch * size * size,
    }


def _example_input(spatial_dims: int, batch: int, channels: int, size: int, multiple: int,
                   device: torch.device) -> torch.Tensor:
    size = max(multiple, (size + multiple - 1) // multiple * multiple)
    shape = (batch, channels) + (size,) * spatial_dims
    return torch.rand(shape, device=device)


def benchmark_model(
    name: str, size: int = 128, batch: int = 2, num_classes: int = 12,
    device: torch.device | str | None = None, repeats: int | None = None, **cfg: Any,
) -> dict[str, Any]:
    """All measurements of one registered model on random input of side ``size``."""
    from .models import build_model, get_spec

    spec = get_spec(name)
    device = config.get_device() if device is None else torch.device(device)
    cfg.setdefault("in_channels", 3)  # RGB: FuseNet's own default is RGB-D
    model = build_model(name, num_classes=num_classes, **cfg).to(device)
    x = _example_input(spec.spatial_dims, batch, 3, size, spec.size_multiple, device)
    target = torch.randint(0, num_classes, (x.shape[0], *x.shape[2:]), device=device)
    latency = measure_latency(model, x, repeats=repeats)
    step = train_step_time(model, x, target, repeats=repeats)
    return {
        "model": name,
        "input": tuple(x.shape),
        "params": count_parameters(model),
        "gflops": count_flops(model, x) / 1e9,
        "latency_ms": latency["median_ms"],
        "train_step_ms": step["median_ms"],
        "device": device.type,
    }


_HEADER = (f"{'model':<24}{'input':>22}{'params':>12}{'GFLOPs':>10}"
           f"{'latency ms':>12}{'step ms':>10}")


def _print_row(r: dict[str, Any]) -> None:
    print(f"{r['model']:<24}{str(r['input']):>22}{r['params']:>12,}{r['gflops']:>10.3f}"
          f"{r['latency_ms']:>12.2f}{r['train_step_ms']:>10.2f}", flush=True)


def _print_header() -> None:
    print(_HEADER)
    print("-" * len(_HEADER), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true",
                        help="benchmark every registered model at a small size")
    parser.add_argument("--profile", default=None, help="course profile (quick/standard/full)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best)")
    sub = parser.add_subparsers(dest="command")
    p_model = sub.add_parser("model", help="params, FLOPs, latency and step time of one model")
    p_model.add_argument("name", nargs="?", help="registered model name (see --all)")
    p_model.add_argument("--size", type=int, default=None,
                         help="input side in pixels (default 128; 64 with --all)")
    p_model.add_argument("--batch", type=int, default=2)
    p_model.add_argument("--classes", type=int, default=12)
    p_model.add_argument("--repeats", type=int, default=None)
    p_model.add_argument("--all", action="store_true", dest="all_models")
    sub.add_parser("data", help="synthetic data generation speed")
    sub.add_parser("metrics", help="course_lib.metrics vs torchmetrics")
    args = parser.parse_args(argv)

    if args.profile:
        config.set_profile(args.profile)
    device = config.get_device(args.device)
    print(config.banner())
    if args.all or (args.command == "model" and args.all_models):
        from .models import list_models

        size = getattr(args, "size", None) or 64
        batch = getattr(args, "batch", None) or 2
        from .models import get_spec

        _print_header()
        failed = []
        for name in list_models():  # one row as soon as it is measured
            try:
                reason = get_spec(name).not_an_image_model()
                if reason is not None:
                    print(f"{name:<24}skipped: {reason}", flush=True)
                    continue
                _print_row(benchmark_model(name, size=size, batch=batch, device=device,
                                           repeats=3))
            except Exception as err:  # report and go on: one broken model must not hide the rest
                failed.append(name)
                print(f"{name:<24}FAILED: {type(err).__name__}: {err}", flush=True)
        if failed:
            print(f"{len(failed)} model(s) failed: {', '.join(failed)}")
        return 1 if failed else 0
    if args.command == "model":
        if not args.name:
            parser.error("model: give a model name or --all")
        row = benchmark_model(args.name, size=args.size or 128, batch=args.batch,
                              num_classes=args.classes, device=device, repeats=args.repeats)
        _print_header()
        _print_row(row)
        return 0
    if args.command == "data":
        from .data.synthetic import generation_speed

        speed = generation_speed()
        print(f"shapes-world generation: {speed:,.0f} images/s on one core (128 px)")
        return 0
    if args.command == "metrics":
        result = benchmark_vs_torchmetrics(device=device)
        for key, value in result.items():
            print(f"{key:<32}{value:.4g}" if isinstance(value, float) else f"{key:<32}{value}")
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
