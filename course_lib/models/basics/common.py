"""What the small training loops of survey section 2 share: argument checks, a progress bar,
and the smoke-run caps of :mod:`course_lib.config` (``COURSE_SMOKE=1``: every loop stops
after :data:`~course_lib.config.SMOKE_STEPS` steps, every evaluation after as many batches)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from ... import config

T = TypeVar("T")


def require_positive(owner: str, **values: int | float) -> None:
    """A ValueError naming ``owner`` and the argument for any value <= 0."""
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{owner}: {name} must be > 0, got {value}")


def progress_bar(iterable: Iterable[T], enabled: bool, desc: str) -> Iterable[T]:
    """``iterable`` with a tqdm progress bar when ``enabled``."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


def epochs_of(epochs: int) -> range:
    """The epochs of a training loop: ``range(epochs)``, or one epoch in a smoke run."""
    return range(min(epochs, 1) if config.smoke() else epochs)


def batch_starts(n: int, batch_size: int) -> Iterator[int]:
    """Start indices of the mini-batches of ``n`` items; a smoke run stops after a couple."""
    return config.capped(range(0, n, batch_size))
