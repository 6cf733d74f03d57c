"""Checkpoints written atomically and loaded with ``weights_only=True``, and the random states
that let an interrupted run resume exactly."""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from .batches import unwrap


def _temporary_prefix(path: Path) -> str:
    """Temporary files of ``path`` are ``.<name>.<pid>.<random>.tmp``: the writer's process id
    tells a dead writer's leftover from a write still under way."""
    return f".{path.name}."


def _remove_orphans(path: Path) -> None:
    """Delete temporary files of ``path`` whose writer died (e.g. killed mid-save)."""
    prefix = _temporary_prefix(path)
    if not path.parent.is_dir():
        return
    for tmp in path.parent.iterdir():  # not glob: the name may hold glob's own characters
        if not (tmp.name.startswith(prefix) and tmp.name.endswith(".tmp")):
            continue
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                tmp.unlink()
        except OSError:
            pass  # alive, under another user


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_temporary_prefix(path)}{os.getpid()}.",
                               suffix=".tmp")
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
    checkpoint: dict[str, Any] = {"model": unwrap(model).state_dict()}
    if optimizer is not None:
        checkpoint["optimizer"] = optimizer.state_dict()
        checkpoint["optimizer_class"] = type(optimizer).__name__
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

    Raises ``ValueError`` naming ``path`` for an empty, truncated or damaged file and for an
    optimizer of another class than the saved one (checked before anything is loaded).
    Temporary files left by a save that was killed are removed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    _remove_orphans(path)
    if path.stat().st_size == 0:
        raise ValueError(f"cannot read checkpoint {path}: the file is empty (0 bytes)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as err:
        raise ValueError(
            f"cannot read checkpoint {path} ({path.stat().st_size} bytes): the file is "
            f"truncated or damaged, or not a torch checkpoint ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path} is not a course_lib checkpoint (no 'model' entry)")
    saved_optimizer = checkpoint.get("optimizer_class")
    if optimizer is not None and saved_optimizer not in (None, type(optimizer).__name__):
        raise ValueError(
            f"{path} was saved with the optimizer {saved_optimizer}, but the optimizer given "
            f"is {type(optimizer).__name__}: resume with a {saved_optimizer}, or start afresh "
            "with another checkpoint path"
        )
    unwrap(model).load_state_dict(checkpoint["model"])
    if optimizer is not None and "optimizer" in checkpoint:
        try:
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (KeyError, ValueError) as err:  # a checkpoint older than "optimizer_class"
            raise ValueError(
                f"{path}: its optimizer state does not fit the {type(optimizer).__name__} "
                f"given (another optimizer or other parameters?): {type(err).__name__}: {err}"
            ) from err
    if scheduler is not None and "scheduler" in checkpoint:
        scheduler.load_state_dict(checkpoint["scheduler"])
    return checkpoint


def rng_state() -> dict[str, Any]:
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


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(_tuplify(state["python"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
