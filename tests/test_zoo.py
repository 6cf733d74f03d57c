"""course_lib.zoo: the quick zoo's table, files and plot; counts against hand counts and the
models themselves; a broken model reported, not fatal; bad names refused with the valid ones."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from course_lib import zoo
from course_lib.data.shapes import NUM_CLASSES
from course_lib.models import ModelSpec, build_model

pytestmark = pytest.mark.slow  # about 10 s: a few tiny models trained and measured

REAL = ["baseline", "segan", "fcn8s"]  # three tiny registry models with logit maps
SKIPPED = ["vnet", "mask_rcnn"]  # a 3D model and a detector


class OneByOne(nn.Module):
    """A 1x1 convolution: its parameters and FLOPs are known by hand."""

    def __init__(self, in_channels: int = 3, num_classes: int = 12) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Broken(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 12) -> None:
        raise RuntimeError("this model cannot be built")


class NeedsTokens(OneByOne):
    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.conv(x)


def _spec(name: str, builder: type[nn.Module]) -> ModelSpec:
    return ModelSpec(name=name, builder=builder, family="tests", paper="test", year=2026)


@pytest.fixture(scope="module")
def quick_zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path]:
    from course_lib import models

    out = tmp_path_factory.mktemp("zoo")
    extra = {"zoo_one_by_one": OneByOne, "zoo_broken": Broken, "zoo_tokens": NeedsTokens}
    with pytest.MonkeyPatch.context() as mp:  # the registry is restored after the run
        for name, builder in extra.items():
            mp.setitem(models._REGISTRY, name, _spec(name, builder))
        rows = zoo.run(REAL + SKIPPED + list(extra), quick=True, out=out, progress=False)
    return rows, out


def _by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["model"]: r for r in rows}


def test_quick_zoo_writes_csv_md_png_with_the_columns(quick_zoo) -> None:
    rows, out = quick_zoo
    with open(out / "zoo.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == zoo.COLUMNS
        assert [r["model"] for r in reader] == [r["model"] for r in rows]
    md = (out / "zoo.md").read_text()
    assert "| " + " | ".join(zoo.COLUMNS) + " |" in md
    assert all(f"| {name} |" in md for name in REAL + SKIPPED)
    assert (out / "zoo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # read back: the same numbers
    again = _by_name(zoo.read_csv(out / "zoo.csv"))
    for row in rows:
        for column in zoo.COLUMNS:
            a, b = row[column], again[row["model"]][column]
            assert (isinstance(a, float) and math.isnan(a) and math.isnan(b)) or a == b, column


def test_every_real_model_is_trained_and_scored_on_one_budget(quick_zoo) -> None:
    rows = _by_name(quick_zoo[0])
    b = zoo.budget(quick=True)
    for name in REAL + ["zoo_one_by_one"]:
        row = rows[name]
        assert row["status"] == "ok", row["note"]
        assert row["steps"] == b.steps and row["image_size"] == b.image_size
        assert row["large_size"] == b.large_size
        assert 0.0 <= row["miou"] <= 1.0 and 0.0 <= row["boundary_f"] <= 1.0
        for column in ("gflops", "latency_ms", "latency_large_ms", "peak_memory_mb",
                       "train_images_per_s", "train_s"):
            assert row[column] > 0, (name, column)
        assert row["fps"] == pytest.approx(1000.0 / row["latency_ms"])


def test_parameter_counts_equal_the_models(quick_zoo) -> None:
    rows = _by_name(quick_zoo[0])
    for name in REAL:
        model = build_model(name, **zoo.model_config(name, quick=True))
        assert rows[name]["params"] == sum(p.numel() for p in model.parameters())
    # the 1x1 convolution by hand: 3 * K weights + K biases; 2 FLOPs per multiply-add
    side = zoo.budget(quick=True).image_size
    assert rows["zoo_one_by_one"]["params"] == 3 * NUM_CLASSES + NUM_CLASSES
    assert rows["zoo_one_by_one"]["gflops"] * 1e9 == pytest.approx(
        2 * 3 * NUM_CLASSES * side * side)
    # the forward pass at the large size holds at least its output, K float32 maps
    large = zoo.budget(quick=True).large_size
    assert rows["zoo_one_by_one"]["peak_memory_mb"] * 2**20 >= NUM_CLASSES * large * large * 4


def test_broken_and_other_contracts_are_reported_not_fatal(quick_zoo) -> None:
    rows = _by_name(quick_zoo[0])
    broken = rows["zoo_broken"]
    assert broken["status"] == "failed"
    assert broken["note"] == "RuntimeError: this model cannot be built"
    assert math.isnan(broken["miou"]) and math.isnan(broken["params"])
    assert rows["vnet"]["status"] == "skipped" and "3D" in rows["vnet"]["note"]
    assert rows["mask_rcnn"]["status"] == "skipped" and "detection" in rows["mask_rcnn"]["note"]
    assert rows["zoo_tokens"]["status"] == "skipped" and "tokens" in rows["zoo_tokens"]["note"]
    assert rows["baseline"]["status"] == "ok"  # the models after the broken one still ran


def test_plot_has_a_point_per_family_and_the_real_time_line(quick_zoo) -> None:
    import matplotlib.pyplot as plt

    rows = quick_zoo[0]
    fig = zoo.plot(rows)
    ax = fig.axes[0]
    measured = [r for r in rows if r["status"] == "ok"]
    assert len(ax.collections) == len({r["family"] for r in measured})
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(measured)
    lines = [line for line in ax.get_lines() if list(line.get_xdata()) == [40.0, 40.0]]
    assert len(lines) == 1 and "25 FPS" in lines[0].get_label()
    labels = {t.get_text() for t in ax.texts}
    assert {r["model"] for r in measured} <= labels
    large = zoo.budget(quick=True).large_size
    big = zoo.plot(rows, latency="latency_large_ms")
    xs = sorted(x for c in big.axes[0].collections for x, _ in c.get_offsets())
    assert xs == sorted(r["latency_large_ms"] for r in measured)
    assert f"{large} x {large}" in big.axes[0].get_xlabel()
    with pytest.raises(ValueError, match="latency_large_ms"):
        zoo.plot(rows, latency="fps")
    plt.close("all")


def test_bad_model_names_are_refused_with_the_valid_names(capsys) -> None:
    with pytest.raises(ValueError, match=r"'no_such_net'.*valid names are: .*fcn8s"):
        zoo.run(["fcn8s", "no_such_net"], quick=True, out=None)
    with pytest.raises(SystemExit) as exit_info:
        zoo.main(["--quick", "--models", "fcn8s,no_such_net"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no_such_net" in err and "valid names are" in err and "unet" in err


def test_command_line_writes_the_table(tmp_path: Path, capsys) -> None:
    assert zoo.main(["--quick", "--models", "segan,vnet", "--out", str(tmp_path)]) == 0
    rows = zoo.read_csv(tmp_path / "zoo.csv")
    assert [(r["model"], r["status"]) for r in rows] == [("segan", "ok"), ("vnet", "skipped")]
    assert "segan" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="make zoo"):
        zoo.read_csv(tmp_path / "missing.csv")
