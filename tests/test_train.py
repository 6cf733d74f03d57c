"""course_lib.train: fit, evaluate, predict, checkpoints, exact resume, DDP on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from conftest import pattern_data
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision import tv_tensors

from course_lib import config
from course_lib.models import build_model, get_spec
from course_lib.train import (
    History,
    PolyLR,
    evaluate,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parent.parent
K = 3


def loaders(n_train: int = 8, n_val: int = 4, size: int = 16, batch: int = 2,
            shuffle: bool = True) -> tuple[DataLoader, DataLoader]:
    x, y = pattern_data(n_train + n_val, size, K, seed=1)
    train = DataLoader(TensorDataset(x[:n_train], y[:n_train]), batch_size=batch, shuffle=shuffle)
    val = DataLoader(TensorDataset(x[n_train:], y[n_train:]), batch_size=batch)
    return train, val


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("baseline", num_classes=K, width=4)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class Interrupt(Exception):
    """Raised by a monitor to simulate a crash after a checkpoint was written."""


class StopAfter:
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.calls: list[int] = []

    def update(self, history: History) -> None:
        self.calls.append(len(history))
        if len(history) >= self.epochs:
            raise Interrupt


# --------------------------------------------------------------------------- fit


def test_fit_learns_and_records_history() -> None:
    config.seed_everything(0)
    train, val = loaders(n_train=16, size=32, batch=2)
    monitor = StopAfter(epochs=99)
    history = fit(tiny_model(), train, val, epochs=6, progress=False, monitor=monitor,
                  optimizer=None, device="cpu")
    assert history.epoch == [1, 2, 3, 4, 5, 6] and len(history) == 6
    assert monitor.calls == [1, 2, 3, 4, 5, 6]
    assert set(history.as_dict()) == {"epoch", "train_loss", "val_loss", "val_miou",
                                      "val_pixel_accuracy", "lr", "seconds"}
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_miou[-1] > 0.7, history.val_miou
    assert all(0 <= a <= 1 for a in history.val_pixel_accuracy)
    assert all(a > b for a, b in zip(history.lr, history.lr[1:], strict=False))  # poly decay
    assert history.lr[0] < config.get_profile().lr and history.lr[-1] == 0.0
    assert history.best("val_miou") == max(history.val_miou)
    assert history.best("val_loss") == min(history.val_loss)
    assert history.best_epoch("val_loss") == history.epoch[history.val_loss.index(
        min(history.val_loss))]
    assert History.from_dict(history.as_dict()) == history
    with pytest.raises(ValueError, match="valid metrics"):
        history.best("accuracy")


def test_steps_counts_optimizer_steps_and_partial_epochs() -> None:
    config.seed_everything(0)
    train, _ = loaders(n_train=8, batch=2)  # 4 batches per epoch
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    steps = []
    optimizer.register_step_post_hook(lambda *_: steps.append(1))
    history = fit(model, train, None, optimizer=optimizer, steps=6, progress=False)
    assert len(steps) == 6
    assert history.epoch == [1, 2]
    assert all(v != v for v in history.val_miou)  # NaN without a validation loader
    assert history.lr[-1] == pytest.approx(0.0, abs=1e-12)  # poly reached the end


def test_smoke_run_trains_two_steps_and_scores_two_batches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    config.seed_everything(0)
    train, val = loaders(n_train=8, n_val=8, batch=2)  # 4 batches each
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    steps, seen = [], []
    optimizer.register_step_post_hook(lambda *_: steps.append(1))
    model.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    monkeypatch.setenv(config.SMOKE_VAR, "1")
    history = fit(model, train, val, optimizer=optimizer, epochs=3, progress=False)
    assert len(steps) == config.SMOKE_STEPS and history.epoch == [1]
    assert seen.count(False) == config.SMOKE_STEPS  # two validation batches, not four


def test_poly_schedule_values() -> None:
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    sched = PolyLR(optimizer, total_iters=10)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step()
    assert lrs == pytest.approx([0.1 * (1 - t / 10) ** 0.9 for t in range(10)])
    with pytest.raises(ValueError, match="total_iters"):
        PolyLR(optimizer, total_iters=0)


def test_bad_arguments_raise_clear_errors() -> None:
    train, _ = loaders()
    empty = DataLoader(TensorDataset(torch.zeros(0, 3, 8, 8), torch.zeros(0, 8, 8).long()),
                       batch_size=2)
    with pytest.raises(ValueError, match="empty"):
        fit(tiny_model(), empty, epochs=1, progress=False)
    with pytest.raises(ValueError, match="not both"):
        fit(tiny_model(), train, epochs=1, steps=3, progress=False)
    with pytest.raises(ValueError, match="checkpoint_path"):
        fit(tiny_model(), train, epochs=1, resume=True, progress=False)
    with pytest.raises(ValueError, match="scheduler"):
        fit(tiny_model(), train, epochs=1, scheduler="cosine", progress=False)


def test_nan_loss_stops_with_epoch_and_step() -> None:
    train, _ = loaders(n_train=8, batch=2)
    calls = []

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = nn.functional.cross_entropy(logits, target)
        return loss * float("nan") if len(calls) == 7 else loss  # epoch 2, step 3

    with pytest.raises(FloatingPointError, match=r"epoch 2, step 3"):
        fit(tiny_model(), train, loss_fn=loss_fn, epochs=3, progress=False)


def test_progress_bar_shows_loss_and_val_miou(capsys: pytest.CaptureFixture) -> None:
    train, val = loaders()
    fit(tiny_model(), train, val, epochs=1, progress=True)
    err = capsys.readouterr().err
    assert "loss=" in err and "val_mIoU=" in err, err


class DictData(Dataset):
    """tv_tensors in dict samples, uint8 images: the format readers' kind of batch."""

    def __init__(self) -> None:
        self.x, self.y = pattern_data(4, 16, K)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        image = tv_tensors.Image((self.x[i] * 255).to(torch.uint8))
        return {"image": image, "mask": tv_tensors.Mask(self.y[i]), "id": i}


class WithAux(nn.Module):
    """Dict output with a half-resolution auxiliary head (resized by fit)."""

    def __init__(self, half_main: bool = False) -> None:
        super().__init__()
        self.body = tiny_model()
        self.aux = nn.Conv2d(3, K, 3, stride=2, padding=1)
        self.half_main = half_main

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.body(x)
        return {"out": out[..., ::2, ::2] if self.half_main else out, "aux": self.aux(x)}


def test_dict_batches_dict_outputs_and_aux_head() -> None:
    loader = DataLoader(DictData(), batch_size=2)
    model = WithAux()
    before = model.aux.weight.detach().clone()
    history = fit(model, loader, loader, epochs=1, progress=False)
    assert len(history) == 1 and history.val_miou[0] == history.val_miou[0]
    assert not torch.equal(before, model.aux.weight)  # the aux loss trained the aux head
    with pytest.raises(ValueError, match="spatial size"):
        fit(WithAux(half_main=True), loader, epochs=1, progress=False)


def test_evaluate_and_predict() -> None:
    train, val = loaders()
    model = tiny_model().train()
    result = evaluate(model, val, num_classes=K)
    assert {"miou", "pixel_accuracy", "iou", "loss"} <= set(result)
    assert 0 <= result["pixel_accuracy"] <= 1 and result["loss"] > 0
    assert model.training  # mode restored
    x, _ = next(iter(val))
    labels = predict(model, x)
    assert labels.shape == (len(x), 16, 16) and labels.dtype == torch.long
    assert labels.max() < K
    assert predict(model, x[0]).shape == (16, 16)
    as_uint8 = (x * 255).to(torch.uint8)
    assert torch.equal(predict(model, as_uint8), predict(model, list(as_uint8)))
    assert model.training


def test_evaluate_and_predict_restore_each_submodule_mode_after_an_error() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    wrong = torch.zeros(2, 3, 8, 8)  # three channels for a one-channel convolution: raises
    with pytest.raises(RuntimeError):
        evaluate(model, [(wrong, torch.zeros(2, 8, 8).long())], num_classes=2)
    assert model.training and model[0].training and not model[1].training
    with pytest.raises(RuntimeError):
        predict(model, wrong)
    assert model.training and model[0].training and not model[1].training
    assert torch.is_grad_enabled()


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_roundtrip_is_weights_only(tmp_path: Path) -> None:
    model, path = tiny_model(0), tmp_path / "sub" / "m.pt"
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(path, model, opt, epoch=3, note="hi", values=[1.0, 2.0])
    torch.load(path, weights_only=True)  # only tensors and plain containers
    other = tiny_model(1)
    assert not same_weights(model, other)
    state = load_checkpoint(path, other, torch.optim.AdamW(other.parameters()))
    assert same_weights(model, other)
    assert state["epoch"] == 3 and state["note"] == "hi" and state["values"] == [1.0, 2.0]
    with pytest.raises(FileNotFoundError, match="missing"):
        load_checkpoint(tmp_path / "missing.pt", other)


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, path = tiny_model(0), tmp_path / "m.pt"
    save_checkpoint(path, model)

    def broken_save(obj: object, f) -> None:  # writes half a file, then dies
        f.write(b"garbage")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, tiny_model(1))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temporary left
    other = tiny_model(2)
    load_checkpoint(path, other)
    assert same_weights(model, other)  # the old checkpoint is intact


def test_resume_after_interruption_gives_identical_weights(tmp_path: Path) -> None:
    train, val = loaders()  # shuffled: the data order must resume identically too

    config.seed_everything(0)
    straight = tiny_model(0)
    h_straight = fit(straight, train, val, epochs=2, progress=False,
                     checkpoint_path=tmp_path / "a.pt")

    config.seed_everything(0)
    part = tiny_model(0)
    with pytest.raises(Interrupt):
        fit(part, train, val, epochs=2, progress=False, checkpoint_path=tmp_path / "b.pt",
            monitor=StopAfter(epochs=1))
    # A new process: other initial weights and another global seed.
    config.seed_everything(123)
    resumed = tiny_model(7)
    h_resumed = fit(resumed, train, val, epochs=2, progress=False,
                    checkpoint_path=tmp_path / "b.pt", resume=True)

    assert same_weights(straight, resumed)
    assert h_resumed.epoch == [1, 2]
    assert h_resumed.train_loss == h_straight.train_loss
    assert h_resumed.val_miou == h_straight.val_miou

    # Resuming a finished run trains no further; a longer run continues from it.
    again = fit(resumed, train, val, epochs=2, progress=False,
                checkpoint_path=tmp_path / "b.pt", resume=True)
    assert again.epoch == [1, 2] and same_weights(straight, resumed)
    longer = fit(resumed, train, val, epochs=3, progress=False,
                 checkpoint_path=tmp_path / "b.pt", resume=True)
    assert longer.epoch == [1, 2, 3] and not same_weights(straight, resumed)


def test_resume_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    train, _ = loaders()
    with pytest.warns(UserWarning, match="from scratch"):
        history = fit(tiny_model(), train, epochs=1, progress=False,
                      checkpoint_path=tmp_path / "new.pt", resume=True)
    assert history.epoch == [1] and (tmp_path / "new.pt").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_with_amp() -> None:
    train, val = loaders()
    history = fit(tiny_model(), train, val, epochs=1, device="cuda", progress=False)
    assert history.train_loss[0] == history.train_loss[0]


# --------------------------------------------------------------------------- DDP

DDP_SCRIPT = """
import os, sys
import torch
from torch.utils.data import DataLoader, Dataset
from course_lib.models.baseline import BaselineCNN  # not every family: start fast
from course_lib.train import fit

out = sys.argv[1]
rank = int(os.environ["RANK"])
torch.set_num_threads(1)

class Recorded(Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(8, 3, 16, 16, generator=g)
        self.y = (self.x[:, 0] > 0.5).long()
        self.seen = []
    def __len__(self):
        return 8
    def __getitem__(self, i):
        self.seen.append(i)
        return self.x[i], self.y[i]

torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
data = Recorded()
model = BaselineCNN(num_classes=2, width=4)
torch.save(model.state_dict(), f"{out}/init{rank}.pt")
loader = DataLoader(data, batch_size=2, shuffle=True)
history = fit(model, loader, epochs=1, progress=False, checkpoint_path=f"{out}/ckpt{rank}.pt")
torch.save({"weights": model.state_dict(), "seen": data.seen, "loss": history.train_loss},
           f"{out}/rank{rank}.pt")
"""


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_equal_weights(tmp_path: Path) -> None:
    script = tmp_path / "ddp_script.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "COURSE_PROFILE": "quick"}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    init0 = torch.load(tmp_path / "init0.pt", weights_only=True)
    init1 = torch.load(tmp_path / "init1.pt", weights_only=True)
    params = [k for k in r0["weights"] if "running" not in k and "num_batches" not in k]
    assert any(not torch.equal(init0[k], init1[k]) for k in params)  # ranks started apart
    for k in params:
        assert torch.equal(r0["weights"][k], r1["weights"][k]), f"ranks differ in {k}"
    assert any(not torch.equal(r0["weights"][k], init0[k]) for k in params)  # it trained
    # Each rank saw its own half of the data; the train loss is averaged over both.
    assert sorted(r0["seen"]) != sorted(r1["seen"])
    assert sorted(r0["seen"] + r1["seen"]) == list(range(8))
    assert r0["loss"] == r1["loss"]
    # Only rank 0 writes checkpoints.
    assert (tmp_path / "ckpt0.pt").is_file() and not (tmp_path / "ckpt1.pt").exists()


# --------------------------------------------------------------------------- bad input, faults


class NaNModel(nn.Module):
    """A model whose output is NaN (a diverged network)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float("nan")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :K] * self.scale


def test_evaluate_refuses_nan_logits_and_names_the_batch() -> None:
    _, val = loaders(n_val=4, batch=2)
    with pytest.raises(FloatingPointError, match=r"batch 1.*NaN"):
        evaluate(NaNModel(), val, num_classes=K, device="cpu")


def batchnorm_buffers(model: nn.Module) -> list[torch.Tensor]:
    return [b.clone() for name, b in model.named_buffers() if "running" in name]


def test_a_nan_image_stops_fit_before_it_reaches_batchnorm() -> None:
    x, y = pattern_data(4, 16, K)
    x[3, 0, 5, 5] = float("nan")  # the second batch holds a NaN pixel
    model = tiny_model()
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 2.*image.*NaN"):
        fit(model, DataLoader(TensorDataset(x, y), batch_size=2), epochs=1, progress=False,
            device="cpu")
    assert all(torch.isfinite(b).all() for b in batchnorm_buffers(model))


def test_resume_with_scheduler_none_after_a_poly_run_does_not_train_at_lr_zero(
        tmp_path: Path) -> None:
    train, _ = loaders()
    path = tmp_path / "poly.pt"
    model = tiny_model()
    assert fit(model, train, epochs=1, progress=False, checkpoint_path=path).lr == [0.0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with pytest.warns(UserWarning, match=r"poly\.pt.*schedule.*scheduler=None.*lr=0\.001"):
        history = fit(model, train, epochs=2, optimizer=optimizer, scheduler=None,
                      progress=False, checkpoint_path=path, resume=True)
    assert history.lr == [0.0, 1e-3]
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_resume_with_another_optimizer_says_so(tmp_path: Path) -> None:
    train, _ = loaders()
    path = tmp_path / "adamw.pt"
    fit(tiny_model(), train, epochs=1, progress=False, checkpoint_path=path)
    model = tiny_model(1)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"adamw\.pt.*AdamW.*SGD"):
        fit(model, train, epochs=2, optimizer=sgd, progress=False, checkpoint_path=path,
            resume=True)


@pytest.mark.parametrize("name", ["deeplabv3", "deeplabv3plus"])
def test_a_last_batch_of_one_is_skipped_when_batchnorm_cannot_train_on_it(name: str) -> None:
    spec = get_spec(name)  # its image-pooling branch normalises a 1x1 map
    x, y = pattern_data(5, 32, K)
    model = build_model(name, num_classes=K, **spec.test_kwargs)
    steps: list[int] = []
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    optimizer.register_step_post_hook(lambda *_: steps.append(1))
    before = batchnorm_buffers(model)
    loader = DataLoader(TensorDataset(x, y), batch_size=2)  # batches of 2, 2 and 1
    each_epoch = r"skipped the last batch of epoch [12]: .*one image"
    with pytest.warns(UserWarning, match=each_epoch) as caught:
        fit(model, loader, epochs=2, optimizer=optimizer, progress=False, device="cpu")
    assert len(steps) == 4  # two steps per epoch: the batch of one is not trained on
    assert len(caught) == 2  # one warning per epoch
    assert any(not torch.equal(a, b) for a, b in zip(before, batchnorm_buffers(model),
                                                      strict=True))
    ones = DataLoader(TensorDataset(x, y), batch_size=1)
    with pytest.raises(ValueError, match=r"batch of one image.*batch_size >= 2"):
        fit(model, ones, epochs=1, progress=False, device="cpu")
    # any model on 1x1 images: batches of two train, the last batch of one is skipped
    tiny = DataLoader(TensorDataset(torch.rand(3, 3, 1, 1), torch.zeros(3, 1, 1).long()),
                      batch_size=2)
    with pytest.warns(UserWarning, match="skipped the last batch"):
        assert len(fit(tiny_model(), tiny, epochs=1, progress=False, device="cpu")) == 1


def test_an_empty_validation_loader_is_refused_before_training() -> None:
    train, _ = loaders()
    empty = DataLoader(TensorDataset(torch.zeros(0, 3, 16, 16), torch.zeros(0, 16, 16).long()),
                       batch_size=2)
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="val_loader is empty"):
        fit(model, train, empty, epochs=1, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_skipped_batch_of_one_leaves_no_trace_in_batchnorm() -> None:
    """Layers before the one that refuses a batch of one have seen it: fit restores them, so
    training on 5 images (2, 2, 1 skipped) ends exactly as training on the first 4."""
    spec = get_spec("deeplabv3")
    x, y = pattern_data(5, 32, K)
    states = []
    for n in (5, 4):
        torch.manual_seed(0)
        model = build_model("deeplabv3", num_classes=K, **spec.test_kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(model, DataLoader(TensorDataset(x[:n], y[:n]), batch_size=2), epochs=1,
                scheduler=None, progress=False, device="cpu")  # poly would count 3 vs 2 steps
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
