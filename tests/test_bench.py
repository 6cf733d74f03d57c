"""course_lib.bench: parameter and FLOP counts against hand counts; timers; the CLI."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from course_lib import bench, config
from course_lib.metrics import score_segmentation
from course_lib.models import build_model


def test_count_parameters_by_hand() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))  # (3*4 + 4) + (4*2 + 2)
    assert bench.count_parameters(model) == 26
    model[0].requires_grad_(False)
    assert bench.count_parameters(model) == 26
    assert bench.count_parameters(model, trainable_only=True) == 10


def test_count_flops_by_hand() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    # 2 FLOPs per multiply-add: 2 * out_ch * in_ch * k * k * H * W
    assert bench.count_flops(conv, torch.rand(1, 3, 16, 16)) == 2 * 8 * 3 * 9 * 16 * 16
    lin = nn.Linear(10, 5).train()
    assert bench.count_flops(lin, torch.rand(4, 10)) == 2 * 4 * 10 * 5
    assert lin.training  # mode restored


def test_measure_latency_and_step_time() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).train()
    x = torch.rand(2, 3, 16, 16)
    lat = bench.measure_latency(model, x, warmup=1)
    assert lat["repeats"] == config.get_profile().bench_repeats
    assert 0 < lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"] and lat["device"] == "cpu"
    assert model.training
    before = model[0].weight.detach().clone()
    step = bench.train_step_time(model, x, torch.randint(0, 4, (2, 16, 16)), repeats=2)
    assert step["repeats"] == 2 and step["median_ms"] > 0
    assert not torch.equal(before, model[0].weight)  # it really stepped
    with pytest.raises(ValueError, match="repeats"):
        bench.measure_latency(model, x, repeats=0)


def test_timers_restore_each_submodule_mode_when_the_forward_pass_raises() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    wrong = torch.zeros(1, 3, 8, 8)  # three channels for a one-channel convolution: raises
    for run in (lambda: bench.count_flops(model, wrong),
                lambda: bench.measure_latency(model, wrong, warmup=0, repeats=1),
                lambda: bench.train_step_time(model, wrong, torch.zeros(1, 6, 6).long(),
                                              warmup=0, repeats=1)):
        with pytest.raises(RuntimeError):
            run()
        assert model.training and model[0].training and not model[1].training
        assert torch.is_grad_enabled()


def test_peak_memory_cpu_sees_a_large_allocation() -> None:
    size = 96 * 2**20
    peak = bench.peak_memory(lambda: torch.ones(size // 4), device="cpu")  # 96 MiB touched
    assert isinstance(peak, int) and peak >= size
    assert bench.peak_memory(lambda: None, device="cpu") >= peak  # a high-water mark


def test_cli_model_prints_params_flops_latency_step(capsys: pytest.CaptureFixture) -> None:
    assert bench.main(["model", "baseline", "--size", "32", "--batch", "2",
                       "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "profile " in out and "threads " in out  # the banner
    for column in ("params", "GFLOPs", "latency ms", "step ms"):
        assert column in out
    from course_lib.models import build_model
    assert f"{bench.count_parameters(build_model('baseline')):,}" in out
    assert "(2, 3, 32, 32)" in out


def test_cli_all_runs_every_registered_model(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import course_lib.models as models

    calls = []
    monkeypatch.setattr(models, "list_models", lambda: ["baseline", "baseline"])
    real = bench.benchmark_model

    def spy(name: str, **kw: object) -> dict:
        calls.append((name, kw["size"]))
        return real(name, **{**kw, "size": 16})

    monkeypatch.setattr(bench, "benchmark_model", spy)
    assert bench.main(["--all"]) == 0
    assert calls == [("baseline", 64), ("baseline", 64)]  # every model, small size
    assert capsys.readouterr().out.count("baseline") == 2

    monkeypatch.setattr(models, "list_models", lambda: ["unet3d", "baseline"])
    assert bench.main(["--all"]) == 0  # a model of another contract is skipped, not failed
    assert "unet3d                  skipped: 3D model" in capsys.readouterr().out

    monkeypatch.setattr(models, "list_models", lambda: ["no_such_model", "baseline"])
    assert bench.main(["model", "--all", "--size", "16"]) == 1  # a failure is reported...
    out = capsys.readouterr().out
    assert "no_such_model" in out and "FAILED" in out
    assert calls[-1] == ("baseline", 16)  # ...and the other models still run


def test_cli_data_and_metrics_delegate(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_synthetic = types.ModuleType("course_lib.data.synthetic")
    fake_synthetic.generation_speed = lambda: 1234.0
    monkeypatch.setitem(sys.modules, "course_lib.data.synthetic", fake_synthetic)
    assert bench.main(["data"]) == 0
    assert "1,234 images/s" in capsys.readouterr().out

    monkeypatch.setattr(bench, "benchmark_vs_torchmetrics",
                        lambda device=None: {"speedup": 2.5, "device": "x"})
    assert bench.main(["metrics"]) == 0
    out = capsys.readouterr().out
    assert "speedup" in out and "2.5" in out


def test_benchmark_vs_torchmetrics_small() -> None:
    pytest.importorskip("torchmetrics")
    out = bench.benchmark_vs_torchmetrics(batch=2, size=32, num_classes=5, repeats=1)
    assert {"ours_ms", "torchmetrics_ms", "speedup", "miou"} <= set(out)
    assert out["ours_ms"] > 0 and 0 <= out["miou"] <= 1


def test_no_library_module_imports_bench() -> None:
    """Benchmarks measure the library; the library never depends on them. The zoo is a
    benchmark tool itself (COURSE_DESIGN: "measured by benchmarks (bench.py, zoo.py)"), and
    so are bench.py's comparisons with torchvision (bench_torchvision.py)."""
    import ast
    from pathlib import Path

    root = Path(bench.__file__).parent
    tools = {root / "bench.py", root / "bench_torchvision.py", root / "zoo.py"}
    offenders = []
    for path in root.rglob("*.py"):
        if path in tools:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) and node.module else [])
            for tool in ("bench", "bench_torchvision", "zoo"):
                if any(n == f"course_lib.{tool}" or n.startswith(f"course_lib.{tool}.")
                       for n in names):
                    offenders.append(f"{path.relative_to(root)} imports {tool}")
                if isinstance(node, ast.ImportFrom) and node.level and (
                        node.module == tool or any(a.name == tool for a in node.names)):
                    offenders.append(f"{path.relative_to(root)} imports {tool}")
    assert not offenders, f"library modules import a benchmark tool: {sorted(set(offenders))}"


def test_cli_errors() -> None:
    with pytest.raises(KeyError, match="registered models"):
        bench.main(["model", "no_such_model", "--size", "16"])
    with pytest.raises(SystemExit):
        bench.main(["model"])  # no name and no --all
    assert bench.main([]) == 2  # help


class _Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


def test_compare_latency_interleaves_rounds_and_keeps_each_models_best() -> None:
    models = {"a": _Counting(), "b": _Counting()}
    x = torch.zeros(1, 3, 4, 4)
    times = bench.compare_latency(models, x, rounds=3, warmup=1, repeats=2)
    assert set(times) == {"a", "b"} and all(t >= 0 for t in times.values())
    assert models["a"].calls == models["b"].calls == 3 * (1 + 2)
    with pytest.raises(ValueError, match="rounds"):
        bench.compare_latency(models, x, rounds=0)


def test_fine_tune_and_score_returns_the_scores_and_the_costs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(bench.pretrain, "load_pretrained", lambda module, **kw: None)
    torch.manual_seed(0)
    model = build_model("deeplabv3", width=4, channels=8, aux=False)
    batch = (torch.rand(2, 3, 32, 32), torch.randint(0, 12, (2, 32, 32)))
    images, masks = torch.rand(3, 3, 32, 32), torch.randint(0, 12, (3, 32, 32))
    row, logits = bench.fine_tune_and_score(model, [batch], nn.functional.cross_entropy, 1e-3, 1,
                                            images, masks, label="tiny v3")
    assert logits.shape == (3, 12, 32, 32)
    assert row["miou"] == score_segmentation(logits.argmax(1), masks)["miou"]
    assert row["params"] == bench.count_parameters(model)
    assert row["gflops"] == bench.count_flops(model, images[:1]) / 1e9 > 0
    assert row["ms_per_step"] == pytest.approx(1000 * row["train_s"])  # 1 epoch of 1 step
    assert row["latency_ms"] != row["latency_ms"]  # NaN until compare_latency fills it
    assert "tiny v3: mIoU" in capsys.readouterr().out
    with pytest.raises(ValueError, match="epochs >= 1"):
        bench.fine_tune_and_score(model, [batch], nn.functional.cross_entropy, 1e-3, 0,
                                  images, masks)


def test_benchmark_model_feeds_rgb_to_a_model_whose_default_input_is_rgbd() -> None:
    row = bench.benchmark_model("fusenet", size=32, batch=2, repeats=1, width=4)
    assert row["input"] == (2, 3, 32, 32) and row["params"] > 0
