"""course_lib.train.checkpoint on damaged files and interrupted writes: every error names the
checkpoint's path, and a write killed mid-save leaves no temporary file behind for long."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from course_lib.train import load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parent.parent


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_an_empty_checkpoint_file_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{path}.*empty \(0 bytes\)"):
        load_checkpoint(path, small_model())


def test_a_truncated_checkpoint_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    save_checkpoint(path, small_model())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"cannot read checkpoint {path}.*truncated"):
        load_checkpoint(path, small_model())


def test_another_optimizer_is_refused_before_anything_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "adam.pt"
    saved = small_model()
    with torch.no_grad():
        saved[0].weight.add_(1.0)
    save_checkpoint(path, saved, torch.optim.Adam(saved.parameters()))
    model = small_model()
    before = model[0].weight.detach().clone()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=rf"{path} was saved with the optimizer Adam.*SGD"):
        load_checkpoint(path, model, sgd)
    assert torch.equal(model[0].weight, before)  # nothing loaded


KILLED_SAVE = """
import sys, time
import torch
from torch import nn
from course_lib.train import save_checkpoint

def slow_save(obj, f):  # writes part of the file, then hangs: killed here
    f.write(b"partial checkpoint")
    f.flush()
    time.sleep(60)

torch.save = slow_save
save_checkpoint(sys.argv[1], nn.Linear(2, 2))
"""


def test_a_save_killed_midway_leaves_no_temporary_file_after_the_next_save_or_load(
        tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    save_checkpoint(path, small_model())
    script = tmp_path / "killed_save.py"
    script.write_text(textwrap.dedent(KILLED_SAVE))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cleanups = (lambda: save_checkpoint(path, small_model()),
                lambda: load_checkpoint(path, small_model()))
    for clean_up in cleanups:  # kill a save, then the next save (or load) cleans up
        proc = subprocess.Popen([sys.executable, str(script), str(path)], env=env)
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".run.pt*tmp")) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert list(tmp_path.glob(".run.pt*tmp")), "the killed save left no temporary file"
        clean_up()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["killed_save.py", "run.pt"]
