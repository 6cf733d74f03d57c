"""TrainingMonitor: one printed line per epoch without a front end, live redraws in a kernel;
and the static PNG every explorer can show."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from widget_cases import PNG_MAGIC, check_bundle  # noqa: E402

from course_lib import widgets  # noqa: E402


def test_training_monitor_prints_without_a_front_end(capsys: pytest.CaptureFixture) -> None:
    monitor = widgets.TrainingMonitor()
    assert monitor.live is False  # no kernel under pytest
    history = {"epoch": [1], "train_loss": [1.0], "val_loss": [1.2], "val_miou": [0.25],
               "val_pixel_accuracy": [0.5], "lr": [1e-3]}
    monitor.update(history)
    history = {k: v * 2 for k, v in history.items()}
    history["epoch"] = [1, 2]
    monitor.update(history)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2  # one line per epoch, none repeated
    assert lines[1].startswith("epoch 2:") and "val mIoU 0.2500" in lines[1]


def test_show_static_displays_a_png(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    monitor = widgets.TrainingMonitor(live=False)
    monitor.history = {"epoch": [1], "train_loss": [1.0]}
    monitor.show_static()
    assert isinstance(shown[0], IPython.display.Image)
    assert shown[0].data.startswith(PNG_MAGIC)


def test_training_monitor_live_redraws(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    class Handle:
        updates = 0

        def update(self, obj: object) -> None:
            Handle.updates += 1

    shown = []
    monkeypatch.setattr(IPython.display, "display",
                        lambda obj, display_id=None: shown.append(obj) or Handle())
    monitor = widgets.TrainingMonitor(live=True)
    monitor.update({"epoch": [1], "train_loss": [1.0], "lr": [1e-3]})
    first = bytes(monitor.picture.value)
    monitor.update({"epoch": [1, 2], "train_loss": [1.0, 0.5], "lr": [1e-3, 1e-4]})
    assert shown == [monitor] and Handle.updates == 1
    assert bytes(monitor.picture.value) != first
    assert "epoch 2" in monitor.status.value
    check_bundle(monitor)
