"""SizeTable: the paper row with full=True, explicit values win, non-positive sizes refused."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from course_lib.models.contract import SizeTable


@dataclass(frozen=True)
class _Sizes:
    width: int
    depth: int
    rates: tuple[int, ...] = (6, 12)


TABLE = SizeTable(small=_Sizes(width=16, depth=3), paper=_Sizes(width=64, depth=4))


def test_rows_and_explicit_values() -> None:
    assert TABLE.resolve("M", False) == _Sizes(16, 3)
    assert TABLE.resolve("M", True) == _Sizes(64, 4)
    assert TABLE.resolve("M", True, width=8) == _Sizes(8, 4)  # explicit beats full
    assert TABLE.resolve("M", False, width=None, depth=5) == _Sizes(16, 5)


@pytest.mark.parametrize("given", [{"width": 0}, {"depth": -1}, {"rates": (6, 0)}])
def test_non_positive_sizes_are_errors_naming_the_model(given: dict) -> None:
    with pytest.raises(ValueError, match=r"^M: .* must be positive"):
        TABLE.resolve("M", False, **given)


def test_unknown_sizes_and_bad_full_are_refused() -> None:
    with pytest.raises(ValueError, match="widht is not a size of this model"):
        TABLE.resolve("M", False, widht=3)
    with pytest.raises(TypeError, match="full must be True or False"):
        TABLE.resolve("M", 1)
    with pytest.raises(TypeError):
        SizeTable(small=_Sizes(1, 1), paper=(1, 1))


@dataclass(frozen=True)
class _Head:
    channels: int
    dropout: float
    backbone: str


def test_names_and_fractions_are_not_sizes_but_integers_are() -> None:
    table = SizeTable(small=_Head(16, 0.1, "resnet_tiny"), paper=_Head(256, 0.5, "resnet50"))
    assert table.resolve("M", True, dropout=0.0) == _Head(256, 0.0, "resnet50")  # 0.0: no dropout
    assert table.resolve("M", False, backbone="vgg16").backbone == "vgg16"
    with pytest.raises(ValueError, match="M: channels must be positive, got 0"):
        table.resolve("M", True, channels=0)


def test_a_table_without_a_paper_row_refuses_full() -> None:
    table = SizeTable(small=_Sizes(width=16, depth=3))
    assert table.resolve("Baseline", False, width=8) == _Sizes(8, 3)
    with pytest.raises(ValueError, match="Baseline: is no paper's network"):
        table.resolve("Baseline", True)
