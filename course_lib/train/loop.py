"""``fit``: the training loop, one epoch at a time, with exact resume after an interruption.

``fit`` checks its arguments and joins a process group under ``torchrun``; ``_fit`` builds
the run (optimizer, schedule, scaler), :func:`_resume` restores an interrupted one,
:func:`_train_epoch` makes the optimizer steps of one epoch and :func:`_record` evaluates,
appends to the :class:`~course_lib.train.history.History`, writes the checkpoint and calls
the monitor. Everything a resume needs is in :class:`_Progress`, and all of it goes into
every checkpoint.

A dict batch may carry a per-pixel ``"weight"`` map ``[N, H, W]`` (U-Net's border weights,
notebook 08): that batch is then trained with :func:`pixel_weighted_cross_entropy`. Batches
without one take exactly the unweighted path.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import RandomSampler
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from course_lib import config
from course_lib.losses import (
    AUX_WEIGHT,
    LossFn,
    cross_entropy,
    model_loss,
    pixel_weighted_cross_entropy,
    split_output,
)
from course_lib.runtime import on_device

from .batches import plain, split_batch, to_device
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .distributed import (
    DistState,
    distributed_loader,
    global_mean,
    setup_distributed,
    shared_seed,
)
from .evaluation import evaluate
from .history import History
from .schedule import PolyLR, make_scheduler
from .step import check_clip_grad_norm, optimizer_step


def _loader_length(loader: Iterable, name: str) -> int:
    try:
        n = len(loader)  # type: ignore[arg-type]
    except TypeError as err:
        raise ValueError(
            f"{name} must have a length (a DataLoader over a map-style dataset)"
        ) from err
    if n == 0:
        raise ValueError(
            f"{name} is empty: it yields no batches (check the dataset and batch size)"
        )
    return n


def _set_epoch_order(loader: Iterable, seed: int, epoch: int) -> None:
    """Make the shuffling of ``epoch`` depend only on (seed, epoch), so a resume repeats it."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
    elif isinstance(sampler, RandomSampler):
        sampler.generator = torch.Generator().manual_seed(seed + epoch)


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    loss_fn: LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    num_classes: int | None = None,
    scheduler: str | LRScheduler | None = "poly",
    device: torch.device | str | None = None,
    aux_weight: float = AUX_WEIGHT,
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = False,
    monitor: Any = None,
    progress: bool = True,
    clip_grad_norm: float | None = None,
) -> History:
    """Train ``model`` on ``train_loader``; evaluate on ``val_loader`` after every epoch.

    Args:
        model: returns logits [N, K, H, W] or a dict with ``"out"`` (and ``"aux"``).
        train_loader: yields ``(image, mask)`` or ``{"image", "mask"}`` batches; must not
            be empty. A dict batch may also carry ``"weight"``, a float map of the mask's
            shape ``[N, H, W]`` (>= 0): that batch's loss is then the pixel-weighted
            cross-entropy ``sum(w * CE) / sum(w)`` (U-Net's Eq. 1; ignored pixels weigh 0;
            an auxiliary head gets the same weights; ``[N, 1, H, W]`` is squeezed like a mask).
            A shuffling DataLoader is re-seeded every epoch (seed drawn once from the global
            torch generator, so :func:`config.seed_everything` fixes it).
        val_loader: optional; gives ``val_loss``, ``val_miou``, ``val_pixel_accuracy``.
        loss_fn: ``loss_fn(logits, mask)``; default cross-entropy ignoring 255. Weighted
            batches need the default (a weight map weights the cross-entropy).
        optimizer: default ``AdamW(lr=profile.lr, weight_decay=1e-4)``.
        epochs: passes over the data (default: the profile's ``epochs``).
        steps: alternatively, the number of optimizer steps (the last epoch may be partial).
        num_classes: for the metrics; default: read from the model's output.
        scheduler: ``"poly"`` (power 0.9, stepped per iteration), ``"constant"``/``None``,
            or your own ``LRScheduler`` (stepped per iteration).
        device: default :func:`config.get_device`. The model trains there and comes back
            on the device it was on (:func:`course_lib.runtime.on_device`): on a GPU
            machine a model built on the CPU is on the CPU again after ``fit``.
        aux_weight: weight of the auxiliary head's loss.
        checkpoint_path: written (atomically) after every epoch.
        resume: continue from ``checkpoint_path`` if it exists (else start afresh). With a
            different ``epochs``/``steps`` than the interrupted run, the poly schedule is
            stretched to the new length; with ``scheduler=None`` after a scheduled run, the
            optimizer's own lr applies (not the schedule's last lr, e.g. 0), with a warning.
        monitor: any object with ``.update(history)``, called after every epoch.
        progress: show a tqdm progress bar with the loss and the validation mIoU.
        clip_grad_norm: if given, every step rescales the gradients to a global L2 norm of
            at most this value (after un-scaling them under AMP; see
            :func:`~course_lib.train.step.optimizer_step`). Default: no clipping.

    Returns:
        The :class:`History` of all epochs (including those before a resume).

    A last batch of one image that BatchNorm cannot train on (one value per channel: e.g.
    DeepLab's image pooling, or 1x1 inputs) is skipped with a warning; its BatchNorm running
    statistics are restored.

    Raises:
        ValueError: an empty train or validation loader (before any training), both or
            neither of ``epochs``/``steps`` invalid, a bad batch (or ``"weight"`` map: shape,
            dtype, negative or non-finite values; or given with a ``loss_fn``), a batch of one
            image that is not the last of the epoch and that BatchNorm cannot train on.
        FloatingPointError: NaN/inf in an input batch (before the forward pass, so
            BatchNorm's statistics stay finite), or a NaN/infinite loss (names epoch, step).
    """
    if epochs is not None and steps is not None:
        raise ValueError("give epochs= or steps=, not both")
    if epochs is None and steps is None:
        epochs = config.get_profile().epochs
    if (epochs is not None and epochs < 1) or (steps is not None and steps < 1):
        raise ValueError(f"epochs/steps must be >= 1, got epochs={epochs}, steps={steps}")
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path")
    check_clip_grad_norm(clip_grad_norm)  # before the first epoch, not at the first step
    _loader_length(train_loader, "train_loader")
    if val_loader is not None and hasattr(val_loader, "__len__"):
        _loader_length(val_loader, "val_loader")  # found now, not after a training epoch

    device = config.get_device() if device is None else torch.device(device)
    ddp, device = setup_distributed(device)
    try:
        with on_device(device, model):
            return _fit(
                model, train_loader, val_loader, loss_fn, optimizer, epochs=epochs,
                steps=steps, num_classes=num_classes, scheduler=scheduler, device=device,
                aux_weight=aux_weight, checkpoint_path=checkpoint_path, resume=resume,
                monitor=monitor, progress=progress, ddp=ddp, clip_grad_norm=clip_grad_norm,
            )
    finally:
        if ddp.created_group and dist.is_initialized():
            dist.destroy_process_group()


@dataclass
class _Progress:
    """Where a run stands after ``epoch`` epochs: what a checkpoint keeps, a resume restores."""

    history: History
    epoch: int  # epochs done
    step: int  # optimizer steps done
    order_seed: int  # the data order of epoch e is drawn from order_seed + e
    num_classes: int | None


@dataclass
class _Run:
    """The parts of one ``fit`` call that stay fixed while it trains."""

    model: nn.Module
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler | None
    scaler: torch.amp.GradScaler
    device: torch.device
    aux_weight: float
    total_steps: int
    ddp: DistState
    clip_grad_norm: float | None = None


def _fit(
    model: nn.Module, train_loader: Iterable, val_loader: Iterable | None,
    loss_fn: LossFn | None, optimizer: torch.optim.Optimizer | None, *, epochs: int | None,
    steps: int | None, num_classes: int | None, scheduler: str | LRScheduler | None,
    device: torch.device, aux_weight: float, checkpoint_path: str | os.PathLike | None,
    resume: bool, monitor: Any, progress: bool, ddp: DistState,
    clip_grad_norm: float | None = None,
) -> History:
    loss_fn = cross_entropy if loss_fn is None else loss_fn
    if optimizer is None:
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.get_profile().lr, weight_decay=1e-4
        )
    # The shuffling seed comes from the global generator (seed_everything fixes it).
    order_seed = int(torch.randint(0, 2**31 - 1, (), dtype=torch.int64))
    if ddp.world_size > 1:
        order_seed = shared_seed(order_seed, device)  # all ranks take rank 0's
        train_loader = distributed_loader(train_loader, order_seed)  # type: ignore[arg-type]
    per_epoch = _loader_length(train_loader, "train_loader")
    total_steps = steps if steps is not None else epochs * per_epoch  # type: ignore[operator]
    total_steps = config.cap_steps(total_steps)  # a smoke run trains a couple of steps only
    num_epochs = math.ceil(total_steps / per_epoch)
    sched = make_scheduler(scheduler, optimizer, total_steps)
    scaler = config.grad_scaler(device)

    done = _Progress(History(), 0, 0, order_seed, num_classes)
    if resume and checkpoint_path is not None and Path(checkpoint_path).is_file():
        done = _resume(checkpoint_path, model, optimizer, sched, scaler, train_loader, done,
                       total_steps)
    elif resume:
        warnings.warn(f"no checkpoint at {checkpoint_path}: training from scratch", stacklevel=3)

    net: nn.Module = model
    if ddp.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    run = _Run(model, net, loss_fn, optimizer, sched, scaler, device, aux_weight, total_steps,
               ddp, clip_grad_norm)

    sampler = getattr(train_loader, "sampler", None)
    user_generator = getattr(sampler, "generator", None)
    bar = tqdm(
        total=total_steps, initial=done.step, disable=not (progress and ddp.main),
        desc="train", unit="step", dynamic_ncols=True,
    )
    postfix: dict[str, Any] = {}
    try:
        for epoch in range(done.epoch, num_epochs):
            if done.step >= total_steps:
                break
            started = time.perf_counter()
            _set_epoch_order(train_loader, done.order_seed, epoch)
            train_loss = _train_epoch(run, train_loader, done, epoch, bar, postfix)
            done.epoch = epoch + 1
            _record(run, done, train_loss, val_loader, started, checkpoint_path, monitor, bar,
                    postfix)
    finally:
        bar.close()
        if isinstance(sampler, RandomSampler):
            sampler.generator = user_generator
    return done.history


def _resume(
    checkpoint_path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
    sched: LRScheduler | None, scaler: torch.amp.GradScaler, train_loader: Iterable,
    fresh: _Progress, total_steps: int,
) -> _Progress:
    """Load a checkpoint written by :func:`_record` and say where the run stands."""
    own_lrs = [group["lr"] for group in optimizer.param_groups]
    ckpt = load_checkpoint(checkpoint_path, model, optimizer, sched)
    if sched is None and "scheduler" in ckpt:
        # The saved optimizer holds the schedule's last lr (0 at the end of a poly run);
        # without a scheduler now, the optimizer's own lr applies.
        saved_lr = optimizer.param_groups[0]["lr"]
        for group, lr in zip(optimizer.param_groups, own_lrs, strict=True):
            group["lr"] = lr
        warnings.warn(
            f"{checkpoint_path} was written by a run with a learning-rate schedule (its last "
            f"lr was {saved_lr:g}); resuming with scheduler=None trains at the optimizer's "
            f"own lr={own_lrs[0]:g}", stacklevel=4,
        )
    if "epoch" not in ckpt or "step" not in ckpt:
        raise ValueError(
            f"{checkpoint_path} was not written by fit() (no 'epoch'/'step'): cannot resume"
        )
    if "scaler" in ckpt:
        scaler.load_state_dict(ckpt["scaler"])
    done = _Progress(
        history=History.from_dict(ckpt.get("history", {})),
        epoch=int(ckpt["epoch"]),
        step=int(ckpt["step"]),
        order_seed=int(ckpt.get("order_seed", fresh.order_seed)),
        num_classes=fresh.num_classes or ckpt.get("num_classes"),
    )
    if isinstance(sched, PolyLR):
        sched.total_iters = total_steps  # a longer run stretches the schedule
    if "rng" in ckpt:
        set_rng_state(ckpt["rng"])
    if isinstance(getattr(train_loader, "sampler", None), DistributedSampler):
        train_loader.sampler.seed = done.order_seed  # type: ignore[union-attr]
    return done


def _forward(run: _Run, image: torch.Tensor, epoch: int, step_in_epoch: int,
             per_epoch: int) -> Any:
    """The model's output in training mode, or None for a last batch of one image that
    BatchNorm cannot train on (one value per channel, e.g. DeepLab's image pooling or a 1x1
    input): skipped with a warning, and BatchNorm's running statistics left as they were."""
    if len(image) != 1:
        with config.autocast(run.device):
            return run.net(image)
    saved = {name: b.clone() for name, b in run.model.named_buffers()}  # running statistics
    try:
        with config.autocast(run.device):
            return run.net(image)
    except ValueError as err:
        if "Expected more than 1 value per channel" not in str(err):
            raise
        with torch.no_grad():  # layers before the failing one have seen the batch
            for name, b in run.model.named_buffers():
                b.copy_(saved[name])
        if step_in_epoch < per_epoch or step_in_epoch == 1:
            raise ValueError(
                f"a batch of one image at epoch {epoch + 1}, step {step_in_epoch}: BatchNorm "
                f"cannot train on it ({err}); use batch_size >= 2"
            ) from err
    warnings.warn(
        f"fit skipped the last batch of epoch {epoch + 1}: it holds one image, and BatchNorm "
        "cannot train on one value per channel; use drop_last=True in the DataLoader (or a "
        "data set size that leaves no single image over) to silence this", stacklevel=5,
    )
    return None


def _pixel_weight(batch: Any, mask: torch.Tensor, device: torch.device,
                  where: str) -> torch.Tensor | None:
    """The batch's ``"weight"`` map on ``device`` (None when it has none), checked."""
    if not isinstance(batch, Mapping) or "weight" not in batch:
        return None
    weight = plain(batch["weight"]).to(device)
    if weight.dim() == mask.dim() + 1 and weight.shape[1] == 1:  # [N, 1, H, W] like a mask
        weight = weight[:, 0]
    if weight.shape != mask.shape:
        raise ValueError(f"{where}: the batch's 'weight' map has shape {tuple(weight.shape)}, "
                         f"expected the mask's shape {tuple(mask.shape)} (one weight per pixel)")
    if not weight.is_floating_point():
        raise ValueError(f"{where}: the 'weight' map must be a float tensor, got {weight.dtype}")
    if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
        raise ValueError(f"{where}: the 'weight' map must be finite and >= 0, got values in "
                         f"[{float(weight.min())}, {float(weight.max())}]")
    return weight


def _train_epoch(
    run: _Run, train_loader: Iterable, done: _Progress, epoch: int, bar: tqdm,
    postfix: dict[str, Any],
) -> float:
    """The optimizer steps of one epoch (up to the run's last step); the mean train loss."""
    run.net.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    seen = 0
    for step_in_epoch, batch in enumerate(train_loader, start=1):
        image, mask = to_device(*split_batch(batch), run.device)
        where = f"at epoch {epoch + 1}, step {step_in_epoch}"
        weight = _pixel_weight(batch, mask, run.device, where)
        if weight is not None and run.loss_fn is not cross_entropy:
            raise ValueError(f"{where}: the batch carries a 'weight' map, which fit applies to "
                             f"its default cross-entropy; leave loss_fn unset "
                             f"(got {run.loss_fn!r})")
        if image.is_floating_point() and not bool(torch.isfinite(image).all()):
            raise FloatingPointError(
                f"at epoch {epoch + 1}, step {step_in_epoch} (global step {done.step + 1}) "
                f"the input images hold {int((~torch.isfinite(image)).sum())} NaN/inf "
                "value(s): fix the data (the model did not see it: BatchNorm's statistics "
                "are unharmed)"
            )
        out = _forward(run, image, epoch, step_in_epoch, len(train_loader))  # type: ignore[arg-type]
        if out is None:  # a last batch of one that BatchNorm cannot train on: skipped
            continue
        loss_fn = run.loss_fn if weight is None else partial(
            pixel_weighted_cross_entropy, pixel_weight=weight)
        loss = model_loss(out, mask, loss_fn, run.aux_weight)
        if done.num_classes is None:  # read K from the model's output
            done.num_classes = int(split_output(out)[0].shape[1])
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"loss is {value} at epoch {epoch + 1}, step {step_in_epoch} "
                f"(global step {done.step + 1}): lower the learning rate, check "
                "the inputs for NaN/inf and the mask values (0..K-1 or 255)"
            )
        optimizer_step(loss, run.optimizer, run.scaler, run.scheduler, run.clip_grad_norm)
        loss_sum += loss.detach().double() * len(image)
        seen += len(image)
        done.step += 1
        bar.update(1)
        postfix.update(epoch=epoch + 1, loss=f"{value:.4f}")
        bar.set_postfix(postfix, refresh=False)
        if done.step >= run.total_steps:
            break
    return global_mean(loss_sum, seen, run.ddp, run.device)


def _record(
    run: _Run, done: _Progress, train_loss: float, val_loader: Iterable | None,
    started: float, checkpoint_path: str | os.PathLike | None, monitor: Any, bar: tqdm,
    postfix: dict[str, Any],
) -> None:
    """After an epoch: validate, append to the history, write the checkpoint, tell the monitor."""
    nan = float("nan")
    val = {"loss": nan, "miou": nan, "pixel_accuracy": nan}
    if val_loader is not None and done.num_classes is not None:
        val = evaluate(run.model, val_loader, done.num_classes, device=run.device,
                       loss_fn=run.loss_fn)
    history = done.history
    history.epoch.append(done.epoch)
    history.train_loss.append(train_loss)
    history.val_loss.append(float(val["loss"]))
    history.val_miou.append(float(val["miou"]))
    history.val_pixel_accuracy.append(float(val["pixel_accuracy"]))
    history.lr.append(float(run.optimizer.param_groups[0]["lr"]))
    history.seconds.append(time.perf_counter() - started)
    postfix.update(epoch=done.epoch, loss=f"{train_loss:.4f}")
    if val_loader is not None:
        postfix["val_mIoU"] = f"{history.val_miou[-1]:.3f}"
    bar.set_postfix(postfix)

    if checkpoint_path is not None and run.ddp.main:
        save_checkpoint(
            checkpoint_path, run.model, run.optimizer, run.scheduler,
            scaler=run.scaler.state_dict(), history=history.as_dict(), epoch=done.epoch,
            step=done.step, order_seed=done.order_seed, rng=rng_state(),
            num_classes=done.num_classes,
        )
    if monitor is not None and run.ddp.main:
        monitor.update(history)
