"""Widgets driven from Python: changing a control changes what is shown."""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from course_lib import widgets  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
K = 4


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
        nn.Conv2d(6, 10, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv2d(10, K, 1), nn.Upsample(scale_factor=2),
    )


def _dataset(n: int = 3, size: int = 24) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    items = []
    for i in range(n):
        mask = torch.randint(0, K, (size, size), generator=g)
        mask[: 2 + i] = 255  # some void
        items.append((torch.rand(3, size, size, generator=g), mask))
    return items


def _check_bundle(explorer: object) -> None:
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the live view
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)  # static fallback


def test_feature_map_explorer_follows_layer_and_channel() -> None:
    explorer = widgets.FeatureMapExplorer(_model(), torch.rand(3, 24, 24))
    layer_names = [value for _, value in explorer.layer.options]
    assert layer_names == ["0", "1", "2", "3", "4", "5"]  # leaf layers with 4-D outputs
    assert "(1, 6, 24, 24)" in explorer.label.value
    assert explorer.channel.max == 5
    first = bytes(explorer.picture.value)
    assert first.startswith(PNG_MAGIC)

    explorer.layer.value = "2"
    assert "(1, 10, 12, 12)" in explorer.label.value and "Conv2d" in explorer.label.value
    assert explorer.channel.max == 9
    second = bytes(explorer.picture.value)
    assert second != first

    explorer.channel.value = 7
    assert bytes(explorer.picture.value) != second

    explorer.layer.value = "4"  # 4 channels: the slider is clamped
    assert explorer.channel.value == 3 and explorer.channel.max == 3
    _check_bundle(explorer)



def test_feature_map_explorer_restores_the_mode_when_the_forward_pass_raises() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    with pytest.raises(RuntimeError):  # three channels for a one-channel convolution
        widgets.FeatureMapExplorer(model, torch.rand(3, 8, 8))
    assert model.training and model[0].training and not model[1].training
    assert not model[0]._forward_hooks  # the recording hooks are gone too


def test_feature_map_explorer_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="tensor"):
        widgets.FeatureMapExplorer(_model(), torch.rand(24, 24))
    with pytest.raises(ValueError, match="4-D output"):
        widgets.FeatureMapExplorer(nn.Flatten(), torch.rand(3, 4, 4))


def _oracle_iou(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    p, t = pred.numpy().ravel(), target.numpy().ravel()
    keep = t != 255
    p, t = p[keep], t[keep]
    out = np.full(K, np.nan)
    for k in range(K):
        union = np.sum((p == k) | (t == k))
        if union:
            out[k] = np.sum((p == k) & (t == k)) / union
    return out


def test_prediction_browser_updates_picture_and_iou_table() -> None:
    pytest.importorskip("course_lib.metrics", reason="course_lib.metrics not written yet")
    names = ["sky", "grass", "road", "disk"]
    browser = widgets.PredictionBrowser(_model(), _dataset(), K, class_names=names,
                                        palette="voc")
    assert browser.index.max == 2
    first_png, first_table = bytes(browser.picture.value), browser.table.value
    assert first_png.startswith(PNG_MAGIC)
    assert "<b>sample 0</b>" in first_table and "<table>" in first_table

    image, target, pred = browser.sample(0)
    assert pred.shape == target.shape and pred.dtype == torch.int64
    np.testing.assert_allclose(browser.iou(0)["iou"].numpy(), _oracle_iou(pred, target),
                               atol=1e-6)
    for k, name in enumerate(names):
        expected = _oracle_iou(pred, target)[k]
        if not np.isnan(expected):
            assert f"{name}</td><td style='text-align:right'>{expected:.3f}" in first_table

    browser.index.value = 2
    assert "<b>sample 2</b>" in browser.table.value
    assert bytes(browser.picture.value) != first_png

    before = bytes(browser.picture.value)
    browser.overlay.value = True
    assert bytes(browser.picture.value) != before
    before = bytes(browser.picture.value)
    browser.toggles["error map"].value = False
    assert bytes(browser.picture.value) != before
    assert len(browser.figure().get_axes()) == 3  # image, ground truth, prediction
    _check_bundle(browser)


def test_prediction_browser_accepts_dict_samples_and_uint8_images() -> None:
    pytest.importorskip("course_lib.metrics", reason="course_lib.metrics not written yet")
    data = [{"image": (img * 255).to(torch.uint8), "mask": m} for img, m in _dataset(2)]
    browser = widgets.PredictionBrowser(_model(), data, K)
    assert browser.sample(1)[0].dtype == torch.float32
    with pytest.raises(ValueError, match="empty"):
        widgets.PredictionBrowser(_model(), [], K)


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
    _check_bundle(monitor)
