"""The per-epoch record of a training run."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields


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
