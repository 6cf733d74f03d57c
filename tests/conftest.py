"""Shared test set-up: the quick profile, one thread per worker, a tiny pattern data set."""

from __future__ import annotations

import os

os.environ.setdefault("COURSE_PROFILE", "quick")

import pytest  # noqa: E402
import torch  # noqa: E402

# `make test` runs two xdist workers on two cores: more threads per worker only contend.
torch.set_num_threads(1)

# torch 2.14.1's oneDNN (mkldnn) CPU convolution backward corrupts the heap ("corrupted
# double-linked list", the process aborts) on the tiny dilated ResNet configurations of the
# model matrix (DeepLab v2, PSPNet) and on LinkNet at width 4; the native kernels do not.
torch.backends.mkldnn.enabled = False

# Per-class colours of the pattern images: far apart, so one pixel's colour names its class.
_COLOURS = torch.tensor([[0.1, 0.2, 0.9], [0.9, 0.1, 0.2], [0.2, 0.9, 0.1], [0.9, 0.9, 0.2]])


def pattern_data(
    n: int = 2, size: int | tuple[int, ...] = 32, num_classes: int = 3, channels: int = 3,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images [n, C, *size] in [0, 1] and masks [n, *size]: big boxes on a background.

    Class 0 is the background; classes 1.. are axis-aligned boxes on a quarter grid (so
    even coarse, low-resolution models can fit them), each class with its own colour.
    Works in 2D (``size`` an int or (H, W)) and 3D (``size`` = (D, H, W)).
    """
    if not 2 <= num_classes <= len(_COLOURS):
        raise ValueError(f"num_classes must be in 2..{len(_COLOURS)}, got {num_classes}")
    shape = (size, size) if isinstance(size, int) else tuple(size)
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros((n, *shape), dtype=torch.long)
    for i in range(n):
        for k in range(1, num_classes):
            box = []
            for side in shape:
                q = max(side // 4, 1)
                start = int(torch.randint(0, 2, (), generator=g)) * q
                box.append(slice(start, min(start + 2 * q, side)))
            masks[(i, *box)] = k
    colours = _COLOURS[:num_classes].repeat(1, (channels + 2) // 3)[:, :channels]
    if channels == 1:
        colours = torch.linspace(0.1, 0.9, num_classes)[:, None]
    images = colours[masks].movedim(-1, 1)  # [n, C, *shape]
    images = (images + 0.05 * torch.randn(images.shape, generator=g)).clamp(0, 1)
    return images, masks


@pytest.fixture
def own_data_dir(tmp_path, monkeypatch):
    """``COURSE_DATA_DIR`` set to the test's own folder: the data-set caches and pre-trained
    weights it writes stay there."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def make_pattern():
    """The :func:`pattern_data` factory, for tests that need a tiny labelled batch."""
    return pattern_data


# Each notebook's time in the quick profile (the README's "quick" column): the sum of its cells'
# call times under nbval, kernel start-up not included, reported at the end of `make test`.
_NOTEBOOK_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb") and report.when == "call":
        _NOTEBOOK_SECONDS[path] = _NOTEBOOK_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if not _NOTEBOOK_SECONDS:
        return
    terminalreporter.section("quick profile: seconds per notebook (sum of cell times)")
    for path, seconds in sorted(_NOTEBOOK_SECONDS.items()):
        terminalreporter.write_line(f"{path}: {seconds:.0f} s")
