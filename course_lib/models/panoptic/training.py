"""Training Panoptic-DeepLab: three losses on three heads (Cheng et al. 2020, Sec. 3.4).

``loss = semantic_weight * CE(semantic) + center_weight * MSE(heat-map) + offset_weight *
L1(offsets on thing pixels)``, with the paper's weights 1, 200 and 0.01 by default (the paper's
offsets are in pixels of 1024 x 2048 images; at the course's small sizes a larger offset
weight is passed). The loop samples random batches of tensors already in memory, AdamW with a
poly schedule (the paper: Adam, poly), a progress bar, ``COURSE_SMOKE=1`` caps the steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_lib import config
from course_lib.config import IGNORE_INDEX
from course_lib.runtime import evaluating, on_device
from course_lib.train.step import optimizer_step

from .grouping import panoptic_targets

LOSS_WEIGHTS = {"semantic": 1.0, "center": 200.0, "offset": 0.01}  # the paper's


def panoptic_loss(outputs: dict[str, torch.Tensor], semantic: torch.Tensor,
                  targets: dict[str, torch.Tensor],
                  weights: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """The three weighted losses and their sum ``"loss"``; ``targets`` from
    :func:`.grouping.panoptic_targets`. The offset loss is the mean L1 over thing pixels."""
    w = {**LOSS_WEIGHTS, **(weights or {})}
    losses = {
        "semantic": F.cross_entropy(outputs["out"], semantic, ignore_index=IGNORE_INDEX),
        "center": F.mse_loss(outputs["center"], targets["center"]),
    }
    thing = targets["thing"][:, None].float()
    offset_error = (outputs["offset"] - targets["offset"]).abs() * thing
    losses["offset"] = offset_error.sum() / (2 * thing.sum()).clamp(min=1)
    losses["loss"] = sum(w[name] * value for name, value in losses.items())
    return losses


def train_panoptic(model: nn.Module, images: torch.Tensor, semantic: torch.Tensor,
                   instance_ids: torch.Tensor, things: Sequence[int], steps: int,
                   batch_size: int = 8, lr: float = 3e-3, sigma: float = 8.0,
                   weights: dict[str, float] | None = None, seed: int | None = None,
                   progress: bool = True, desc: str = "Panoptic-DeepLab",
                   device: torch.device | str | None = None) -> dict[str, list[float]]:
    """Train ``model`` for ``steps`` AdamW steps on random batches of in-memory tensors
    (images [N, C, H, W], semantic and instance ids [N, H, W]). Returns the per-step losses.
    The model trains on ``device`` (default :func:`course_lib.config.get_device`) and comes
    back on the device it was on (:func:`course_lib.runtime.on_device`)."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if not len(images) == len(semantic) == len(instance_ids) or len(images) == 0:
        raise ValueError(f"need as many images as label maps (> 0), got {len(images)}, "
                         f"{len(semantic)}, {len(instance_ids)}")
    steps = config.cap_steps(steps)
    device = config.get_device() if device is None else torch.device(device)
    targets = panoptic_targets(semantic, instance_ids, things, sigma)
    generator = torch.Generator().manual_seed(config.course_seed() if seed is None else seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                 lambda step: (1 - step / steps) ** 0.9)
    scaler = config.grad_scaler(device)
    history: dict[str, list[float]] = {}
    with on_device(device, model):
        model.train()
        bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
        for _ in bar:
            pick = torch.randint(len(images), (min(batch_size, len(images)),), generator=generator)
            batch = {k: v[pick].to(device) for k, v in targets.items()}
            with config.autocast(device):
                outputs = model(images[pick].to(device))
            outputs = {k: v.float() for k, v in outputs.items()}
            losses = panoptic_loss(outputs, semantic[pick].to(device), batch, weights)
            optimizer_step(losses["loss"], optimizer, scaler, schedule)
            for name, value in losses.items():
                history.setdefault(name, []).append(float(value.detach()))
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
        bar.close()
        return history


@torch.no_grad()
def predict_outputs(model: nn.Module, images: torch.Tensor, batch_size: int = 16
                    ) -> dict[str, torch.Tensor]:
    """Eval-mode outputs (``out``, ``center``, ``offset``) of every image, on the CPU (run on
    the best device; the model comes back where it was)."""
    device = config.get_device()
    chunks: dict[str, list[torch.Tensor]] = {}
    with on_device(device, model), evaluating(model):
        for start in config.capped(range(0, len(images), batch_size)):
            out = model(images[start: start + batch_size].to(device))
            for k, v in out.items():
                chunks.setdefault(k, []).append(v.float().cpu())
    return {k: torch.cat(v) for k, v in chunks.items()}


__all__ = ["LOSS_WEIGHTS", "panoptic_loss", "predict_outputs", "train_panoptic"]
