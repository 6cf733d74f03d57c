"""The model contract: one small size table per model, resolved so that an explicit value wins.

Every registered model takes ``(in_channels, num_classes, width, full, ...)``. Its sizes
(width, depth, channel plans, ...) live in one frozen dataclass with two instances, the
course's ``small`` sizes (a 2-core CPU trains them in minutes) and the paper's sizes::

    @dataclass(frozen=True)
    class UNetSizes:
        width: int
        depth: int

    UNET_SIZES = SizeTable(small=UNetSizes(width=16, depth=4),
                           paper=UNetSizes(width=64, depth=4))

    class UNet(nn.Module):
        def __init__(self, in_channels=1, num_classes=2, width=None, full=False, depth=None):
            sizes = UNET_SIZES.resolve("UNet", full, width=width, depth=depth)

``full`` picks the paper's row; any argument that is not ``None`` replaces that row's
value (``UNet(width=8, full=True)`` is the paper's U-Net at width 8). Every integer size
must be positive: ``width=0`` is an error that names the model, never a silent default.
A row may hold names (``backbone="resnet50"``) and fractions (``dropout=0.5``) too; only
integers are sizes that must be positive. A model that is no paper's network (the course's
baseline) has a ``small`` row only, and ``full=True`` is refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

S = TypeVar("S")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_positive(owner: str, name: str, value: Any) -> None:
    if _is_int(value):
        if value <= 0:
            raise ValueError(f"{owner}: {name} must be positive, got {value}")
    elif isinstance(value, tuple | list):
        if any(_is_int(v) and v <= 0 for v in value):
            raise ValueError(f"{owner}: every entry of {name} must be positive, got {value}")


@dataclass(frozen=True)
class SizeTable(Generic[S]):
    """A model's two size rows: ``small`` (the course's default) and ``paper`` (``full=True``;
    ``None`` for a model that is no paper's network)."""

    small: S
    paper: S | None = None

    def __post_init__(self) -> None:
        paper_type = type(self.small) if self.paper is None else type(self.paper)
        if type(self.small) is not paper_type or not dataclasses.is_dataclass(self.small):
            raise TypeError("SizeTable needs two instances of the same dataclass")

    def resolve(self, owner: str, full: bool, /, **given: Any) -> S:
        """The ``paper`` row if ``full`` else ``small``, with every non-``None`` value replaced.

        Raises ``ValueError`` for a name that is not a size of this model, for a size
        that is not positive (``width=0``, ``depth=-1``, a zero in a channel plan) and for
        ``full=True`` without a paper row.
        """
        if not isinstance(full, bool):
            raise TypeError(f"{owner}: full must be True or False, got {full!r}")
        if full and self.paper is None:
            raise ValueError(f"{owner}: is no paper's network, so it has no full=True size")
        names = {f.name for f in dataclasses.fields(self.small)}
        unknown = sorted(set(given) - names)
        if unknown:
            raise ValueError(f"{owner}: {', '.join(unknown)} is not a size of this model; "
                             f"its sizes are {', '.join(sorted(names))}")
        row = self.paper if full and self.paper is not None else self.small
        chosen = dataclasses.replace(row, **{k: v for k, v in given.items() if v is not None})
        for name in names:
            _check_positive(owner, name, getattr(chosen, name))
        return chosen


__all__ = ["SizeTable"]
