"""Training and evaluation loops for semantic segmentation: one ``fit`` for every model.

``fit`` is the loop of torchvision's reference trainer, written to be read:

* it runs on whatever :func:`course_lib.config.get_device` finds (CUDA, MPS or CPU), with
  mixed precision and a ``GradScaler`` on CUDA only;
* the learning rate follows the *poly* schedule ``lr * (1 - it / total) ** 0.9``, stepped
  after every optimizer step (DeepLab, PSPNet and torchvision all use it);
* after every epoch it evaluates mean IoU and pixel accuracy on the validation set and
  appends them to a :class:`History` that :func:`course_lib.viz.plot_history` draws;
* checkpoints are written atomically (a temporary file then ``os.replace``) and hold only
  tensors and plain containers, so they load with ``torch.load(weights_only=True)``; with
  ``resume=True`` an interrupted run continues *exactly* where it stopped (weights,
  optimizer, schedule, gradient scaler, random states and data order);
* started by ``torchrun --nproc_per_node=N`` it trains with ``DistributedDataParallel``:
  each process sees its own share of the data, only rank 0 prints and writes checkpoints.

Batches are ``(image, mask)`` pairs or dicts with ``"image"`` and ``"mask"``; a model
returns logits [N, K, H, W] or a dict with ``"out"`` (and optionally ``"aux"``, an
auxiliary head added to the loss with weight ``aux_weight``, as in PSPNet).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import random
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from . import config
from .losses import AUX_WEIGHT, cross_entropy, model_loss, split_output
from .runtime import evaluating

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- history


@dataclass
class History:
    """Per-epoch record of a training run (one entry per epoch in every list).

    ``seconds`` is the wall time of each epoch (training and evaluation); ``lr`` the
    learning rate at the end of the epoch. Validation entries are NaN without a
    validation loader.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_miou: list[float] = field(default_factory=list)
    val_pixel_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.epoch)

    def as_dict(self) -> dict[str, list]:
        """The lists by name (a copy), e.g. for ``pandas.DataFrame(history.as_dict())``."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Iterable]) -> History:
        """Inverse of :meth:`as_dict` (unknown keys are ignored)."""
        return cls(**{f.name: list(data.get(f.name, [])) for f in fields(cls)})

    def _values(self, metric: str) -> list[float]:
        names = [f.name for f in fields(self) if f.name != "epoch"]
        if metric not in names:
            raise ValueError(f"unknown metric {metric!r}; valid metrics are: {', '.join(names)}")
        return getattr(self, metric)

    def best_epoch(self, metric: str = "val_miou") -> int:
        """The epoch with the best value: lowest for losses and seconds, highest otherwise."""
        values = self._values(metric)
        candidates = [(v, e) for v, e in zip(values, self.epoch, strict=True) if not math.isnan(v)]
        if not candidates:
            raise ValueError(f"history has no value for {metric!r} (no epoch, or no validation)")
        pick = min if metric.endswith("loss") or metric == "seconds" else max
        return pick(candidates, key=lambda ve: ve[0])[1]

    def best(self, metric: str = "val_miou") -> float:
        """The best value of ``metric`` over the epochs (see :meth:`best_epoch`)."""
        values = self._values(metric)
        return float(values[self.epoch.index(self.best_epoch(metric))])


# --------------------------------------------------------------------------- schedule


class PolyLR(LRScheduler):
    """Poly learning-rate schedule ``base_lr * (1 - it / total_iters) ** power``, per step.

    Written in closed form so that a resumed run may change ``total_iters`` (to train
    longer) and still get a well-defined learning rate.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, total_iters: int, power: float = 0.9,
        last_epoch: int = -1,
    ) -> None:
        if total_iters < 1:
            raise ValueError(f"PolyLR: total_iters must be >= 1, got {total_iters}")
        self.total_iters = int(total_iters)
        self.power = float(power)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # noqa: D102 (documented in the class)
        progress = min(max(self.last_epoch, 0), self.total_iters) / self.total_iters
        factor = (1.0 - progress) ** self.power
        return [base * factor for base in self.base_lrs]


def _make_scheduler(
    scheduler: str | LRScheduler | None, optimizer: torch.optim.Optimizer, total_steps: int
) -> LRScheduler | None:
    if scheduler is None or scheduler == "constant":
        return None
    if scheduler == "poly":
        return PolyLR(optimizer, total_steps)
    if isinstance(scheduler, LRScheduler):
        return scheduler
    raise ValueError(
        f"unknown scheduler {scheduler!r}; use 'poly', 'constant', None or an LRScheduler"
    )


# --------------------------------------------------------------------------- batches


def _plain(x: torch.Tensor) -> torch.Tensor:
    """Drop tv_tensors subclasses (Image, Mask) so that every op returns a plain tensor."""
    return x.as_subclass(torch.Tensor) if type(x) is not torch.Tensor else x


def _split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, Mapping):
        if "image" not in batch or "mask" not in batch:
            raise ValueError(
                f"a dict batch needs keys 'image' and 'mask', got keys {sorted(batch)}"
            )
        image, mask = batch["image"], batch["mask"]
    elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
        image, mask = batch[0], batch[1]
    else:
        raise ValueError(
            f"a batch must be (image, mask) or a dict with 'image'/'mask', got {type(batch)}"
        )
    return _plain(image), _plain(mask)


def _to_device(
    image: torch.Tensor, mask: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    non_blocking = device.type == "cuda"
    image = image.to(device, non_blocking=non_blocking)
    if not image.is_floating_point():  # uint8 images are scaled to [0, 1]
        image = image.float() / 255.0
    mask = mask.to(device, non_blocking=non_blocking)
    if mask.dim() == image.dim() and mask.shape[1] == 1:  # [N, 1, H, W] → [N, H, W]
        mask = mask[:, 0]
    return image, mask.long()


# tests/test_multiscale.py still imports the old private name; losses.model_loss is the API.
_compute_loss = model_loss


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# --------------------------------------------------------------------------- evaluate / predict


def evaluate(
    model: nn.Module,
    loader: Iterable,
    num_classes: int,
    device: torch.device | str | None = None,
    ignore_index: int = config.IGNORE_INDEX,
    loss_fn: LossFn | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` over a whole loader, from one confusion matrix.

    Returns :func:`course_lib.metrics.segmentation_metrics` (``"miou"``,
    ``"pixel_accuracy"``, per-class ``"iou"`` ...) plus ``"loss"``, the mean loss per
    image (cross-entropy ignoring ``ignore_index`` unless ``loss_fn`` is given). The
    model's train/eval mode is restored afterwards.
    """
    from .metrics import ConfusionMatrix

    device = config.get_device() if device is None else torch.device(device)
    if loss_fn is None:
        loss_fn = functools.partial(cross_entropy, ignore_index=ignore_index)
    model = _unwrap(model).to(device)
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    total_loss, total_images = 0.0, 0
    with evaluating(model):
        for batch in config.capped(loader):  # a smoke run scores a couple of batches
            image, mask = _to_device(*_split_batch(batch), device)
            with config.autocast(device):
                out = model(image)
            logits, _ = split_output(out)
            total_loss += float(model_loss(logits, mask, loss_fn, aux_weight=0.0)) * len(image)
            total_images += len(image)
            cm.update(logits.float(), mask)
    if total_images == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    result = dict(cm.compute())
    result["loss"] = total_loss / total_images
    return result


def predict(
    model: nn.Module, images: torch.Tensor | Iterable[torch.Tensor],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Predicted class of every pixel: LongTensor [N, H, W] on the CPU.

    ``images`` is a batch [N, C, H, W], a list of [C, H, W] images, or a single image
    [C, H, W] (then the result is [H, W]). uint8 images are scaled to [0, 1].
    """
    device = config.get_device() if device is None else torch.device(device)
    single = isinstance(images, torch.Tensor) and images.dim() == 3
    if isinstance(images, torch.Tensor):
        batch = _plain(images)[None] if single else _plain(images)
    else:
        batch = torch.stack([_plain(im) for im in images])
    if batch.dim() < 4:
        raise ValueError(
            f"predict expects images [N, C, H, W] or [C, H, W], got {tuple(batch.shape)}"
        )
    model = _unwrap(model).to(device)
    with evaluating(model), config.autocast(device):
        image, _ = _to_device(batch, torch.zeros(0), device)
        logits, _ = split_output(model(image))
    labels = logits.argmax(dim=1).cpu()
    return labels[0] if single else labels


# --------------------------------------------------------------------------- checkpoints


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    **state: Any,
) -> Path:
    """Write ``model`` (and optimizer, scheduler, extra ``state``) to ``path`` atomically.

    The file is first written next to ``path`` and then moved over it with ``os.replace``,
    so an interruption never leaves a half-written checkpoint. Extra ``state`` must be
    tensors, numbers, strings or lists/dicts/tuples of them (``weights_only`` loading).
    """
    path = Path(path)
    checkpoint: dict[str, Any] = {"model": _unwrap(model).state_dict()}
    if optimizer is not None:
        checkpoint["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        checkpoint["scheduler"] = scheduler.state_dict()
    checkpoint.update(state)
    _atomic_save(checkpoint, path)
    return path


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: LRScheduler | None = None,
) -> dict[str, Any]:
    """Load a checkpoint from :func:`save_checkpoint` into ``model`` (and optimizer, scheduler).

    Loaded with ``torch.load(weights_only=True)``: no arbitrary code runs. Returns the whole
    checkpoint dict (so extra state such as ``"epoch"`` or ``"history"`` can be read).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path} is not a course_lib checkpoint (no 'model' entry)")
    _unwrap(model).load_state_dict(checkpoint["model"])
    if optimizer is not None and "optimizer" in checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None and "scheduler" in checkpoint:
        scheduler.load_state_dict(checkpoint["scheduler"])
    return checkpoint


def _rng_state() -> dict[str, Any]:
    """Every random state as tensors and plain containers (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _listify(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _listify(obj: Any) -> Any:
    return [_listify(o) for o in obj] if isinstance(obj, (tuple, list)) else obj


def _tuplify(obj: Any) -> Any:
    return tuple(_tuplify(o) for o in obj) if isinstance(obj, list) else obj


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(_tuplify(state["python"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


# --------------------------------------------------------------------------- distributed


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    created_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device: torch.device) -> tuple[_Dist, torch.device]:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _Dist(), device
    created = False
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        created = True
    return _Dist(dist.get_rank(), dist.get_world_size(), created), device


def _distributed_loader(loader: DataLoader, seed: int) -> DataLoader:
    """The same loader, but each process draws its own share through a DistributedSampler."""
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise ValueError(
            "distributed training needs a torch DataLoader built with batch_size= "
            "(not a custom batch_sampler)"
        )
    sampler = DistributedSampler(
        loader.dataset, shuffle=isinstance(loader.sampler, RandomSampler), seed=seed,
        drop_last=loader.drop_last,
    )
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=sampler,
        num_workers=loader.num_workers, collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory, drop_last=loader.drop_last,
        timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
        persistent_workers=loader.persistent_workers if loader.num_workers > 0 else False,
    )


def _set_epoch_order(loader: Iterable, seed: int, epoch: int) -> None:
    """Make the shuffling of ``epoch`` depend only on (seed, epoch), so a resume repeats it."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
    elif isinstance(sampler, RandomSampler):
        sampler.generator = torch.Generator().manual_seed(seed + epoch)


# --------------------------------------------------------------------------- fit


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
) -> History:
    """Train ``model`` on ``train_loader``; evaluate on ``val_loader`` after every epoch.

    Args:
        model: returns logits [N, K, H, W] or a dict with ``"out"`` (and ``"aux"``).
        train_loader: yields ``(image, mask)`` or ``{"image", "mask"}`` batches; must not
            be empty. A shuffling DataLoader is re-seeded every epoch (seed drawn once from
            the global torch generator, so :func:`config.seed_everything` fixes it).
        val_loader: optional; gives ``val_loss``, ``val_miou``, ``val_pixel_accuracy``.
        loss_fn: ``loss_fn(logits, mask)``; default cross-entropy ignoring 255.
        optimizer: default ``AdamW(lr=profile.lr, weight_decay=1e-4)``.
        epochs: passes over the data (default: the profile's ``epochs``).
        steps: alternatively, the number of optimizer steps (the last epoch may be partial).
        num_classes: for the metrics; default: read from the model's output.
        scheduler: ``"poly"`` (power 0.9, stepped per iteration), ``"constant"``/``None``,
            or your own ``LRScheduler`` (stepped per iteration).
        device: default :func:`config.get_device`.
        aux_weight: weight of the auxiliary head's loss.
        checkpoint_path: written (atomically) after every epoch.
        resume: continue from ``checkpoint_path`` if it exists (else start afresh). With a
            different ``epochs``/``steps`` than the interrupted run, the poly schedule is
            stretched to the new length.
        monitor: any object with ``.update(history)``, called after every epoch.
        progress: show a tqdm progress bar with the loss and the validation mIoU.

    Returns:
        The :class:`History` of all epochs (including those before a resume).

    Raises:
        ValueError: empty loader, both or neither of ``epochs``/``steps`` invalid, bad batch.
        FloatingPointError: the loss became NaN or infinite (names the epoch and step).
    """
    if epochs is not None and steps is not None:
        raise ValueError("give epochs= or steps=, not both")
    if epochs is None and steps is None:
        epochs = config.get_profile().epochs
    if (epochs is not None and epochs < 1) or (steps is not None and steps < 1):
        raise ValueError(f"epochs/steps must be >= 1, got epochs={epochs}, steps={steps}")
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path")
    _loader_length(train_loader, "train_loader")

    device = config.get_device() if device is None else torch.device(device)
    ddp, device = _setup_distributed(device)
    try:
        return _fit(
            model, train_loader, val_loader, loss_fn, optimizer, epochs=epochs, steps=steps,
            num_classes=num_classes, scheduler=scheduler, device=device, aux_weight=aux_weight,
            checkpoint_path=checkpoint_path, resume=resume, monitor=monitor,
            progress=progress, ddp=ddp,
        )
    finally:
        if ddp.created_group and dist.is_initialized():
            dist.destroy_process_group()


def _fit(
    model: nn.Module, train_loader: Iterable, val_loader: Iterable | None,
    loss_fn: LossFn | None, optimizer: torch.optim.Optimizer | None, *, epochs: int | None,
    steps: int | None, num_classes: int | None, scheduler: str | LRScheduler | None,
    device: torch.device, aux_weight: float, checkpoint_path: str | os.PathLike | None,
    resume: bool, monitor: Any, progress: bool, ddp: _Dist,
) -> History:
    model.to(device)
    loss_fn = cross_entropy if loss_fn is None else loss_fn
    if optimizer is None:
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.get_profile().lr, weight_decay=1e-4
        )
    # The shuffling seed comes from the global generator (seed_everything fixes it).
    order_seed = int(torch.randint(0, 2**31 - 1, (), dtype=torch.int64))
    if ddp.world_size > 1:
        # All ranks must agree on the seed: take rank 0's.
        seed_t = torch.tensor([order_seed], dtype=torch.int64,
                              device=device if device.type == "cuda" else "cpu")
        dist.broadcast(seed_t, src=0)
        order_seed = int(seed_t.item())
        train_loader = _distributed_loader(train_loader, order_seed)  # type: ignore[arg-type]
    per_epoch = _loader_length(train_loader, "train_loader")
    total_steps = steps if steps is not None else epochs * per_epoch  # type: ignore[operator]
    total_steps = config.cap_steps(total_steps)  # a smoke run trains a couple of steps only
    num_epochs = math.ceil(total_steps / per_epoch)
    sched = _make_scheduler(scheduler, optimizer, total_steps)
    scaler = config.grad_scaler(device)

    history, start_epoch, global_step = History(), 0, 0
    if resume and checkpoint_path is not None and Path(checkpoint_path).is_file():
        ckpt = load_checkpoint(checkpoint_path, model, optimizer, sched)
        if "epoch" not in ckpt or "step" not in ckpt:
            raise ValueError(
                f"{checkpoint_path} was not written by fit() (no 'epoch'/'step'): cannot resume"
            )
        if "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        history = History.from_dict(ckpt.get("history", {}))
        start_epoch, global_step = int(ckpt["epoch"]), int(ckpt["step"])
        order_seed = int(ckpt.get("order_seed", order_seed))
        num_classes = num_classes or ckpt.get("num_classes")
        if isinstance(sched, PolyLR):
            sched.total_iters = total_steps  # a longer run stretches the schedule
        if "rng" in ckpt:
            _set_rng_state(ckpt["rng"])
        if isinstance(getattr(train_loader, "sampler", None), DistributedSampler):
            train_loader.sampler.seed = order_seed  # type: ignore[union-attr]
    elif resume:
        warnings.warn(f"no checkpoint at {checkpoint_path}: training from scratch", stacklevel=3)

    net: nn.Module = model
    if ddp.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    sampler = getattr(train_loader, "sampler", None)
    user_generator = getattr(sampler, "generator", None)
    bar = tqdm(
        total=total_steps, initial=global_step, disable=not (progress and ddp.main),
        desc="train", unit="step", dynamic_ncols=True,
    )
    postfix: dict[str, Any] = {}
    try:
        for epoch in range(start_epoch, num_epochs):
            if global_step >= total_steps:
                break
            started = time.perf_counter()
            _set_epoch_order(train_loader, order_seed, epoch)
            net.train()
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            seen = 0
            for step_in_epoch, batch in enumerate(train_loader, start=1):
                image, mask = _to_device(*_split_batch(batch), device)
                with config.autocast(device):
                    out = net(image)
                loss = model_loss(out, mask, loss_fn, aux_weight)
                if num_classes is None:  # read K from the model's output
                    num_classes = int(split_output(out)[0].shape[1])
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"loss is {value} at epoch {epoch + 1}, step {step_in_epoch} "
                        f"(global step {global_step + 1}): lower the learning rate, check "
                        "the inputs for NaN/inf and the mask values (0..K-1 or 255)"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if sched is not None:
                    sched.step()
                loss_sum += loss.detach().double() * len(image)
                seen += len(image)
                global_step += 1
                bar.update(1)
                postfix.update(epoch=epoch + 1, loss=f"{value:.4f}")
                bar.set_postfix(postfix, refresh=False)
                if global_step >= total_steps:
                    break
            train_loss = _global_mean(loss_sum, seen, ddp, device)

            nan = float("nan")
            val = {"loss": nan, "miou": nan, "pixel_accuracy": nan}
            if val_loader is not None and num_classes is not None:
                val = evaluate(model, val_loader, num_classes, device=device, loss_fn=loss_fn)
            history.epoch.append(epoch + 1)
            history.train_loss.append(train_loss)
            history.val_loss.append(float(val["loss"]))
            history.val_miou.append(float(val["miou"]))
            history.val_pixel_accuracy.append(float(val["pixel_accuracy"]))
            history.lr.append(float(optimizer.param_groups[0]["lr"]))
            history.seconds.append(time.perf_counter() - started)
            postfix.update(epoch=epoch + 1, loss=f"{train_loss:.4f}")
            if val_loader is not None:
                postfix["val_mIoU"] = f"{history.val_miou[-1]:.3f}"
            bar.set_postfix(postfix)

            if checkpoint_path is not None and ddp.main:
                save_checkpoint(
                    checkpoint_path, model, optimizer, sched,
                    scaler=scaler.state_dict(), history=history.as_dict(), epoch=epoch + 1,
                    step=global_step, order_seed=order_seed, rng=_rng_state(),
                    num_classes=num_classes,
                )
            if monitor is not None and ddp.main:
                monitor.update(history)
    finally:
        bar.close()
        if isinstance(sampler, RandomSampler):
            sampler.generator = user_generator
    return history


def _global_mean(total: torch.Tensor, count: int, ddp: _Dist, device: torch.device) -> float:
    """Mean over all processes (just total / count without DDP)."""
    if ddp.world_size > 1:
        both = torch.stack([total, torch.tensor(float(count), dtype=torch.float64, device=device)])
        dist.all_reduce(both)
        total, count = both[0], int(both[1].item())
    return float(total) / max(count, 1)


__all__ = [
    "History",
    "PolyLR",
    "fit",
    "evaluate",
    "predict",
    "save_checkpoint",
    "load_checkpoint",
]
