"""PredictionBrowser (one model, per-class IoU against a brute-force oracle) and ModelComparer
(notebook 05, several models side by side), driven from Python."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from widget_cases import PNG_MAGIC, check_bundle, hand_miou, noisy_dataset, tiny_model  # noqa: E402
from widget_cases import K as BROWSER_K  # noqa: E402

from course_lib import widgets  # noqa: E402
from course_lib.widgets.predictions import predict_labels  # noqa: E402

K = 3  # classes of the comparer's models and data set


def _oracle_iou(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    p, t = pred.numpy().ravel(), target.numpy().ravel()
    keep = t != 255
    p, t = p[keep], t[keep]
    out = np.full(BROWSER_K, np.nan)
    for k in range(BROWSER_K):
        union = np.sum((p == k) | (t == k))
        if union:
            out[k] = np.sum((p == k) & (t == k)) / union
    return out


def test_prediction_browser_updates_picture_and_iou_table() -> None:
    pytest.importorskip("course_lib.metrics", reason="course_lib.metrics not written yet")
    names = ["sky", "grass", "road", "disk"]
    browser = widgets.PredictionBrowser(tiny_model(), noisy_dataset(), BROWSER_K, class_names=names,
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

    # Each toggle shows its state: "on"/"off" in its label, a ticked/empty box, a colour.
    def visible_state(button: object) -> tuple[str, str, str]:
        return button.description, button.icon, button.button_style

    assert visible_state(browser.overlay) == ("overlay: off", "square-o", "")
    assert visible_state(browser.toggles["error map"]) == ("error map: on", "check-square-o",
                                                           "info")
    before = bytes(browser.picture.value)
    browser.overlay.value = True
    assert bytes(browser.picture.value) != before
    assert visible_state(browser.overlay) == ("overlay: on", "check-square-o", "info")
    before = bytes(browser.picture.value)
    browser.toggles["error map"].value = False
    assert bytes(browser.picture.value) != before
    assert visible_state(browser.toggles["error map"]) == ("error map: off", "square-o", "")
    assert visible_state(browser.toggles["prediction"])[0] == "prediction: on"  # the others stay
    assert len(browser.figure().get_axes()) == 3  # image, ground truth, prediction
    check_bundle(browser)


def test_prediction_browser_accepts_dict_samples_and_uint8_images() -> None:
    pytest.importorskip("course_lib.metrics", reason="course_lib.metrics not written yet")
    data = [{"image": (img * 255).to(torch.uint8), "mask": m} for img, m in noisy_dataset(2)]
    browser = widgets.PredictionBrowser(tiny_model(), data, BROWSER_K)
    assert browser.sample(1)[0].dtype == torch.float32
    with pytest.raises(ValueError, match="empty"):
        widgets.PredictionBrowser(tiny_model(), [], BROWSER_K)


def test_prediction_browser_chooses_among_models_and_predicts_only_what_it_shows() -> None:
    pytest.importorskip("course_lib.metrics", reason="course_lib.metrics not written yet")
    first, second = tiny_model(), tiny_model()
    with torch.no_grad():
        second[-2].weight.neg_()  # negated scores: another prediction on every pixel
    browser = widgets.PredictionBrowser({"first": first, "second": second}, noisy_dataset(),
                                        BROWSER_K, chosen="second")
    data = browser.dataset
    assert browser.chooser in browser.widget.children  # buttons shown for several models
    assert browser.model is second and list(browser._predictions) == [("second", 0)]
    image, target = data[0]
    shown_png = bytes(browser.picture.value)
    for name, net in (("second", second), ("first", first)):
        browser.chooser.value = name
        expected = predict_labels(net, image, tuple(target.shape[-2:]))
        assert torch.equal(browser.sample()[2], expected)
    assert bytes(browser.picture.value) != shown_png  # the other model's picture
    assert sorted(browser._predictions) == [("first", 0), ("second", 0)]
    assert list(browser._samples) == [0]  # the sample is read once for both models
    assert "first" in browser.figure().texts[0].get_text()  # the suptitle names the model

    single = widgets.PredictionBrowser(first, data, BROWSER_K)
    assert single.chooser not in single.widget.children and single.model is first
    with pytest.raises(ValueError, match="none of the models"):
        widgets.PredictionBrowser({"first": first}, data, BROWSER_K, chosen="third")
    with pytest.raises(ValueError, match="empty"):
        widgets.PredictionBrowser({}, data, BROWSER_K)
    with pytest.raises(TypeError, match="not an nn.Module"):
        widgets.PredictionBrowser({"first": "fcn"}, data, BROWSER_K)


class Oracle(nn.Module):
    """Reads the label hidden in channel 0 of the image (label / (K - 1)): always right."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        labels = (x[:, 0] * (K - 1)).round().long()
        return nn.functional.one_hot(labels, K).permute(0, 3, 1, 2).float() + 0 * self.dummy


class Constant(nn.Module):
    """Always predicts class ``c``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.c = c
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], K, *x.shape[-2:]) + 0 * self.dummy
        out[:, self.c] = 1
        return out


def _halves(n: int = 3, size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        mask = torch.zeros(size, size, dtype=torch.long)
        mask[:, size // 2:] = 1
        mask[: 3 + 2 * i, : 3 + 2 * i] = 2  # a square that grows with i
        image = torch.rand(3, size, size, generator=g)
        image[0] = mask / (K - 1)
        items.append((image, mask))
    return items


def test_model_comparer_shows_every_model_and_follows_the_slider() -> None:
    data = _halves()
    comparer = widgets.ModelComparer({"oracle": Oracle(), "all zero": Constant(0)}, data, K,
                                     class_names=["a", "b", "c"], palette="shapes")
    check_bundle(comparer)
    assert comparer.index.max == len(data) - 1

    first_png, first_table = bytes(comparer.picture.value), comparer.table.value
    assert first_png.startswith(PNG_MAGIC)
    s0 = comparer.scores()
    assert s0["oracle"] == pytest.approx(1.0)
    assert s0["all zero"] == pytest.approx(hand_miou(torch.zeros(16, 16, dtype=torch.long),
                                                      data[0][1], K))
    assert "<b>oracle</b>" in first_table and "1.000" in first_table  # best model in bold

    comparer.index.value = 2  # drive the slider: picture, table and numbers follow
    assert bytes(comparer.picture.value) != first_png
    assert comparer.table.value != first_table and "sample 2" in comparer.table.value
    s2 = comparer.scores()
    expected = hand_miou(torch.zeros(16, 16, dtype=torch.long), data[2][1], K)
    assert s2["all zero"] == pytest.approx(expected) and expected != pytest.approx(
        s0["all zero"])
    image, target, preds = comparer.sample()
    assert torch.equal(preds["oracle"], target) and set(preds) == {"oracle", "all zero"}

    comparer.index.value = 0  # back: the same picture again (deterministic, cached)
    assert bytes(comparer.picture.value) == first_png


def test_model_comparer_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty dict"):
        widgets.ModelComparer({}, _halves(), K)
    with pytest.raises(ValueError, match="nn.Module"):
        widgets.ModelComparer({"x": "not a model"}, _halves(), K)
    with pytest.raises(ValueError, match="empty"):
        widgets.ModelComparer({"o": Oracle()}, [], K)
