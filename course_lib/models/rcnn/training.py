"""Training and running a detection model (torchvision's contract: a dict of losses in training).

:func:`course_lib.train.fit` trains models that return logits; a Mask R-CNN returns its five
losses instead, and its batches are lists (images of any size, a target dict each). The
loop here is the paper's (Sec. 3.1, "Training"): SGD with momentum 0.9 and weight decay
1e-4, a linear warm-up, the learning rate divided by 10 late in training, the five losses
summed with equal weights. A progress bar shows the summed loss; ``COURSE_SMOKE=1`` stops
after two steps (:func:`course_lib.config.cap_steps`); AMP on CUDA.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm.auto import tqdm

from course_lib import config
from course_lib.data.instances import collate
from course_lib.runtime import evaluating, on_device
from course_lib.train.step import optimizer_step


def _to(target: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in target.items()}


def train_detector(
    model: nn.Module,
    dataset: Dataset,
    steps: int,
    batch_size: int = 8,
    lr: float = 0.02,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    warmup: int = 50,
    decay_at: float = 0.8,
    optimizer: str = "sgd",
    seed: int | None = None,
    progress: bool = True,
    desc: str = "training",
    device: torch.device | str | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` for ``steps`` SGD steps on random batches of ``dataset``.

    ``dataset`` yields ``(image [C, H, W], target dict)``. The learning rate rises linearly
    over ``warmup`` steps and drops to a tenth after ``decay_at`` of the steps. Returns the
    history: ``{"loss": [...], "<each loss>": [...]}``, one value per step. The model
    trains on ``device`` (default :func:`course_lib.config.get_device`) and comes back on
    the device it was on (:func:`course_lib.runtime.on_device`).
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("the training set is empty")
    steps = config.cap_steps(steps)
    device = config.get_device() if device is None else torch.device(device)
    generator = torch.Generator().manual_seed(config.course_seed() if seed is None else seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=steps * batch_size,
                            generator=generator)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":  # the paper's
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum,
                                                     weight_decay=weight_decay)
    elif optimizer == "adamw":  # converges in fewer steps from scratch (a CPU budget)
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")

    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        return ramp * (0.1 if step >= decay_at * steps else 1.0)

    schedule = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    scaler = config.grad_scaler(device)
    history: dict[str, list[float]] = {"loss": []}
    with on_device(device, model):
        model.train()
        bar = tqdm(loader, total=steps, desc=desc, disable=not progress, leave=False)
        for images, targets in bar:
            images = [im.to(device) for im in images]
            targets = [_to(t, device) for t in targets]
            with config.autocast(device):
                losses = model(images, targets)
            loss = sum(losses.values())  # Mask R-CNN: the five losses with equal weights
            optimizer_step(loss, opt, scaler, schedule)
            history["loss"].append(float(loss.detach()))
            for name, value in losses.items():
                history.setdefault(name, []).append(float(value.detach()))
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
        bar.close()
        return history


@torch.no_grad()
def detect(model: nn.Module, images: Sequence[torch.Tensor], batch_size: int = 16
           ) -> list[dict[str, torch.Tensor]]:
    """Eval-mode detections of every image (on the CPU), ``batch_size`` images at a time, on
    the best device (the model comes back where it was)."""
    device = config.get_device()
    out: list[dict[str, torch.Tensor]] = []
    with on_device(device, model), evaluating(model):
        for start in range(0, len(images), batch_size):
            batch = [im.to(device) for im in images[start : start + batch_size]]
            out += [{k: v.cpu() for k, v in d.items()} for d in model(batch)]
    return out


__all__ = ["train_detector", "detect"]
