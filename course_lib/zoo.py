"""The model zoo: every registered 2D segmentation model trained on one budget, one table.

::

    python -m course_lib.zoo                          # every model, the standard budget
    python -m course_lib.zoo --quick                  # tiny models, 2 steps: artifacts/zoo/quick
    python -m course_lib.zoo --models fcn8s,unet --out /tmp/zoo

Each model of the registry (:mod:`course_lib.models`) that maps an image to logits
``[N, K, H, W]`` (or a dict with ``"out"``) is built at its course size, seeded with
:func:`config.course_seed`, trained by :func:`course_lib.train.fit` for the same number of
optimizer steps on the same shapes-world split, and scored on the same validation images
with the course's metrics (mean IoU, boundary F). Its cost comes from
:mod:`course_lib.bench`: parameters, FLOPs (``torch.utils.flop_counter``, batch 1 at the
training size), latency at batch 1 at the training size and at 512 x 512, the peak memory of
that 512 x 512 forward pass (tensors it creates), and the training throughput (images/s of
a training step). Models with another contract are listed as *skipped* with the reason
(Mask R-CNN's detections, V-Net's volumes, a forward that needs more than the image); a
model that fails is listed as *failed* with its error, and the zoo goes on.

The table is written to ``--out`` (default ``artifacts/zoo/``) as ``zoo.csv`` and
``zoo.md``, with ``zoo.png``: mean IoU against latency, one labelled point per model
coloured by family, and the 25 frames-per-second line (40 ms), the survey's real-time bar.

The zoo is a tool, like :mod:`course_lib.bench` (COURSE_DESIGN: "Speed and memory targets
are measured by benchmarks (bench.py, zoo.py)"), so it imports ``bench``; no library module
imports the zoo. From a notebook: ``rows = zoo.run(quick=True, models=[...])`` or
``rows = zoo.read_csv()``, then ``zoo.plot(rows)``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from . import bench, config
from .data.shapes import NUM_CLASSES
from .data.synthetic import ShapesWorld
from .metrics.boundary import boundary_f_score
from .models import build_model, get_spec, list_models
from .runtime import evaluating
from .train import evaluate, fit, predict

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "artifacts" / "zoo"
REAL_TIME_MS = 40.0  # 25 frames per second: the survey's bar for a real-time model

# The table's columns, in order (zoo.csv, zoo.md and the dicts run() returns).
COLUMNS: tuple[str, ...] = (
    "model", "family", "paper", "year", "status", "params", "gflops", "image_size",
    "latency_ms", "fps", "large_size", "latency_large_ms", "peak_memory_mb",
    "train_images_per_s", "steps", "train_s", "miou", "boundary_f", "note",
)
_TEXT = {"model", "family", "paper", "status", "note"}
_INTS = {"year", "params", "image_size", "large_size", "steps"}


@dataclass(frozen=True)
class Budget:
    """What every model of one zoo run gets: the same data, steps and measurement sizes."""

    image_size: int  # side of the training and validation images, and of `latency_ms`
    num_train: int  # shapes-world training images (split "train")
    num_val: int  # validation images (split "val") that mIoU and boundary F are scored on
    batch_size: int
    steps: int  # optimizer steps of fit() (AdamW, poly schedule, the profile's lr)
    large_size: int  # side of the second latency and of the peak memory (512 in the table)
    repeats: int  # timed calls of each latency (the median is reported)
    max_train_s: float  # a model whose estimated training time exceeds this is not trained
    tiny: bool  # build the registry's tiny test configuration instead of the course size


def budget(quick: bool = False) -> Budget:
    """The zoo's budget: ``quick`` (the tests: tiny models, 2 steps) or standard.

    Standard: the standard profile's 96-pixel images, 512 training and 64 validation
    images, 40 steps of 16 images (1.25 epochs: every model sees the same 640 images), and
    a cap of 240 s of training per model (only the CRF-RNN's window CRF exceeds it on one
    CPU core: about 70 s a step). The whole standard zoo (38 models: 32 trained) took 1052 s
    on one core of a busy 2-core machine, 219 s of it measuring the untrained CRF-RNN.
    """
    if quick:
        return Budget(image_size=32, num_train=8, num_val=4, batch_size=4, steps=2,
                      large_size=64, repeats=1, max_train_s=60.0, tiny=True)
    return Budget(image_size=96, num_train=512, num_val=64, batch_size=16, steps=40,
                  large_size=512, repeats=5, max_train_s=240.0, tiny=False)


def model_config(name: str, quick: bool = False) -> dict[str, Any]:
    """The keyword arguments the zoo builds ``name`` with (3-channel images, shapes classes)."""
    spec = get_spec(name)
    cfg = dict(spec.test_kwargs) if quick else {}
    cfg.update(in_channels=3, num_classes=NUM_CLASSES)
    return cfg


def _empty_row(name: str, b: Budget) -> dict[str, Any]:
    spec = get_spec(name)
    row: dict[str, Any] = {c: math.nan for c in COLUMNS}
    row.update(model=name, family=spec.family, paper=spec.paper, year=spec.year, status="ok",
               image_size=b.image_size, large_size=b.large_size, steps=0, note="")
    return row


def _loaders(b: Budget, seed: int) -> tuple[DataLoader, DataLoader, torch.Tensor, torch.Tensor]:
    """The split every model sees, generated once into tensors (no per-model drawing cost)."""

    def tensors(split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        data = ShapesWorld(n, image_size=b.image_size, seed=seed, split=split)
        images, masks = zip(*(data[i] for i in range(n)), strict=True)
        return torch.stack(images), torch.stack(masks)

    train_x, train_y = tensors("train", b.num_train)
    val_x, val_y = tensors("val", b.num_val)
    train = DataLoader(TensorDataset(train_x, train_y), batch_size=b.batch_size, shuffle=True,
                       drop_last=True)
    val = DataLoader(TensorDataset(val_x, val_y), batch_size=b.batch_size)
    return train, val, val_x, val_y


def _measure(model: nn.Module, row: dict[str, Any], b: Budget, device: torch.device,
             sample: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Fill the cost columns; return the measured seconds of one training step."""
    row["params"] = bench.count_parameters(model)
    x = torch.rand(1, 3, b.image_size, b.image_size, device=device)
    row["gflops"] = bench.count_flops(model, x) / 1e9
    row["latency_ms"] = bench.measure_latency(model, x, warmup=1, repeats=b.repeats)["median_ms"]
    row["fps"] = 1000.0 / row["latency_ms"]
    # the throughput of a copy, so the measured steps do not train the model the zoo scores;
    # one step first: a model far over the training cap is timed once, not three times
    image, mask = (t.to(device) for t in sample)
    step_ms = bench.train_step_time(copy.deepcopy(model), image, mask, warmup=0,
                                    repeats=1)["median_ms"]
    if step_ms * b.steps <= b.max_train_s * 1000.0:
        step_ms = bench.train_step_time(copy.deepcopy(model), image, mask, warmup=1,
                                        repeats=2)["median_ms"]
    row["train_images_per_s"] = len(image) / (step_ms / 1000.0)
    large = torch.rand(1, 3, b.large_size, b.large_size, device=device)
    slow = row["latency_ms"] * (b.large_size / b.image_size) ** 2 > 2000.0  # > 2 s a call
    row["latency_large_ms"] = bench.measure_latency(
        model, large, warmup=0 if slow else 1, repeats=1 if slow else max(1, b.repeats // 2),
    )["median_ms"]
    with evaluating(model):
        peak = bench.peak_tensor_memory(lambda: model(large), device)
    row["peak_memory_mb"] = peak / 2**20
    return step_ms / 1000.0


def zoo_row(name: str, b: Budget, train: DataLoader, val: DataLoader,
            val_x: torch.Tensor, val_y: torch.Tensor, device: torch.device,
            num_classes: int, progress: bool = False) -> dict[str, Any]:
    """One model's row: skipped (with the reason), failed (with the error) or measured."""
    row = _empty_row(name, b)
    reason = get_spec(name).not_an_image_model()  # why the zoo does not train it
    if reason is not None:
        row.update(status="skipped", note=reason)
        return row
    try:
        config.seed_everything(config.course_seed())
        model = build_model(name, **model_config(name, quick=b.tiny)).to(device)
        step_s = _measure(model, row, b, device, next(iter(train)))
        estimate = step_s * b.steps
        if estimate > b.max_train_s:
            row.update(status="not trained", note=(
                f"{b.steps} steps would take about {estimate:.0f} s (one step {step_s:.1f} s), "
                f"over the {b.max_train_s:.0f} s cap per model"))
            return row
        config.seed_everything(config.course_seed())
        start = time.perf_counter()
        fit(model, train, steps=b.steps, num_classes=num_classes, device=device,
            progress=progress)
        row["train_s"] = time.perf_counter() - start
        row["steps"] = config.cap_steps(b.steps)
        row["miou"] = evaluate(model, val, num_classes, device=device)["miou"]
        labels = predict(model, val_x, device=device)
        row["boundary_f"] = boundary_f_score(labels, val_y, num_classes)
    except Exception as err:  # one broken model must not hide the others
        row.update(status="failed", note=f"{type(err).__name__}: {err}".replace("\n", " "))
    return row


def check_names(models: Sequence[str]) -> list[str]:
    """``models`` as a list, or a ``ValueError`` naming every unknown one and the valid names."""
    known = list_models()
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(map(repr, unknown))}; valid names are: "
                         f"{', '.join(known)}")
    if not models:
        raise ValueError(f"no model chosen; valid names are: {', '.join(known)}")
    return list(models)


def run(models: Sequence[str] | None = None, quick: bool = False,
        out: str | Path | None = None, device: torch.device | str | None = None,
        progress: bool = True) -> list[dict[str, Any]]:
    """Train and measure ``models`` (default: every registered model) on one budget.

    Args:
        models: registry names; unknown names raise ``ValueError`` listing the valid ones.
            Skipped models (other contracts) may be named: they get a ``skipped`` row.
        quick: the tiny budget of :func:`budget` (tests, a notebook's live cell).
        out: folder to write ``zoo.csv``, ``zoo.md`` and ``zoo.png`` into (the command line
            uses :data:`DEFAULT_OUT`, ``artifacts/zoo/``, or ``artifacts/zoo/quick/`` with
            ``--quick``); ``None`` (the default) writes nothing.
        device: default :func:`config.get_device` (AMP on CUDA inside ``fit``).
        progress: print one line per model as it finishes.

    Returns:
        One dict per model with the keys :data:`COLUMNS`; numbers not measured are NaN.
        ``status`` is ``ok``, ``skipped``, ``not trained`` (over the per-model cap) or
        ``failed``, with the reason or the error in ``note``.
    """
    names = check_names(list_models() if models is None else list(models))
    b = budget(quick)
    device = config.get_device() if device is None else torch.device(device)
    train, val, val_x, val_y = _loaders(b, config.course_seed())
    rows = []
    # the tiny configurations hit the oneDNN convolution-backward bug of torch 2.14.1 that
    # tests/conftest.py describes, so they use the native kernels
    # (torch.backends.mkldnn.flags() would also reset TF32 and warn about Intel GPUs)
    mkldnn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = mkldnn and not b.tiny
    try:
        for name in names:
            start = time.perf_counter()
            rows.append(zoo_row(name, b, train, val, val_x, val_y, device, NUM_CLASSES))
            if progress:
                print(f"{_format_row(rows[-1])}  [{time.perf_counter() - start:.0f} s]",
                      flush=True)
    finally:
        torch.backends.mkldnn.enabled = mkldnn
    if out is not None:
        write(rows, out, b)
    return rows


def _fmt(column: str, value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if column == "params":
        return f"{value:,}"
    if column in ("miou", "boundary_f"):
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.3g}" if value < 100 else f"{value:.0f}"
    return str(value)


def _format_row(row: dict[str, Any]) -> str:
    return (f"{row['model']:<20} {row['status']:<11} params {_fmt('params', row['params']):>10}"
            f"  {_fmt('latency_ms', row['latency_ms']):>6} ms  mIoU {_fmt('miou', row['miou'])}"
            f"  BF {_fmt('boundary_f', row['boundary_f'])}  {row['note'][:60]}")


def markdown(rows: Sequence[dict[str, Any]], b: Budget | None = None) -> str:
    """The table in Markdown (measured rows sorted by mIoU, then the others), with its budget."""
    measured = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: -r["miou"])
    rest = [r for r in rows if r["status"] != "ok"]
    lines = []
    if b is not None:
        lines += [f"Budget: {', '.join(f'{k}={v}' for k, v in asdict(b).items())}; device "
                  f"{config.get_device().type}, seed {config.course_seed()}.", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in measured + rest:
        cells = [_fmt(c, row[c]).replace("|", "/") for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(rows: Sequence[dict[str, Any]], out: str | Path, b: Budget | None = None) -> Path:
    """Write ``zoo.csv``, ``zoo.md`` and ``zoo.png`` into ``out``; returns the folder."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "zoo.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "zoo.md").write_text(markdown(rows, b), encoding="utf-8")
    fig = plot(rows)
    fig.savefig(out / "zoo.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


def read_csv(path: str | Path = DEFAULT_OUT / "zoo.csv") -> list[dict[str, Any]]:
    """The rows of a written ``zoo.csv``, numbers as ``int``/``float`` (missing: NaN)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no zoo table at {path}: run `make zoo` (or zoo.run) first")
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = {}
            for column in COLUMNS:
                value = raw.get(column, "")
                if column in _TEXT:
                    row[column] = value
                elif value in ("", "nan"):
                    row[column] = math.nan
                else:
                    row[column] = int(float(value)) if column in _INTS else float(value)
            rows.append(row)
    return rows


def plot(rows: Sequence[dict[str, Any]], latency: str = "latency_ms", ax: Any = None) -> Any:
    """Accuracy against latency: mean IoU vs batch-1 latency (log scale) of the measured
    rows, one labelled point per model coloured by family, and the 25 FPS (40 ms) line.

    ``latency`` is the column on the x axis: ``"latency_ms"`` (the training size) or
    ``"latency_large_ms"`` (512 x 512 in the standard zoo). Returns the matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, ScalarFormatter

    if latency not in ("latency_ms", "latency_large_ms"):
        raise ValueError(f"latency must be 'latency_ms' or 'latency_large_ms', got {latency!r}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 6.5))
    else:
        fig = ax.figure
    measured = [r for r in rows if r["status"] == "ok"
                and not (math.isnan(r["miou"]) or math.isnan(r[latency]))]
    families = sorted({r["family"] for r in measured})
    palette = plt.get_cmap("tab20")  # the ten strong colours first, then their light twins
    colours = [palette((2 * i) % 20 + (2 * i // 20) % 2) for i in range(len(families))]
    for family, colour in zip(families, colours, strict=True):
        points = [r for r in measured if r["family"] == family]
        ax.scatter([r[latency] for r in points], [r["miou"] for r in points],
                   color=colour, s=40, label=family, edgecolor="black", linewidth=0.5)
        for r in points:
            ax.annotate(r["model"], (r[latency], r["miou"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.axvline(REAL_TIME_MS, color="red", linestyle="--", label="25 FPS (40 ms)")
    side = "large_size" if latency == "latency_large_ms" else "image_size"
    size = measured[0][side] if measured else "?"
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())  # 20 rather than 2 x 10^1
    ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 3.0, 5.0)))
    ax.xaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"latency, batch 1 at {size} x {size} px (ms, log scale)")
    ax.set_ylabel("validation mean IoU")
    ax.set_title(f"The zoo: accuracy vs latency ({len(measured)} models, one budget)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2, title="family")
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.zoo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny models, 32-pixel images, 2 steps (the tests)")
    parser.add_argument("--models", default=None,
                        help="comma-separated registry names (default: every model)")
    parser.add_argument("--out", default=None, help="folder of zoo.csv/md/png (default "
                        "artifacts/zoo/, with --quick artifacts/zoo/quick/)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)
    models = None if args.models is None else [m.strip() for m in args.models.split(",")
                                               if m.strip()]
    try:
        if models is not None:
            check_names(models)
    except ValueError as err:
        parser.error(str(err))
    import matplotlib

    matplotlib.use("Agg")
    print(config.banner())
    print(f"zoo budget: {budget(args.quick)}", flush=True)
    start = time.perf_counter()
    rows = run(models, quick=args.quick, out=out,
               device=config.get_device(args.device), progress=True)
    failed = [r["model"] for r in rows if r["status"] == "failed"]
    print(f"zoo: {len(rows)} models in {time.perf_counter() - start:.0f} s -> {out}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
