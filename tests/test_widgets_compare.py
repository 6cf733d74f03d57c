"""ModelComparer (notebook 05) and CRFIterationViewer (notebook 06), driven from Python."""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from course_lib import metrics, widgets  # noqa: E402
from course_lib.models import crf  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
K = 3


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


def _dataset(n: int = 3, size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
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


def _hand_miou(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Per-image mIoU by hand: mean over the classes present in target or prediction."""
    ious = []
    for c in range(K):
        p, t = pred == c, target == c
        union = (p | t).sum().item()
        if union:
            ious.append((p & t).sum().item() / union)
    return sum(ious) / len(ious)


def test_model_comparer_shows_every_model_and_follows_the_slider() -> None:
    data = _dataset()
    comparer = widgets.ModelComparer({"oracle": Oracle(), "all zero": Constant(0)}, data, K,
                                     class_names=["a", "b", "c"], palette="shapes")
    bundle = comparer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)
    assert comparer.index.max == len(data) - 1

    first_png, first_table = bytes(comparer.picture.value), comparer.table.value
    assert first_png.startswith(PNG_MAGIC)
    s0 = comparer.scores()
    assert s0["oracle"] == pytest.approx(1.0)
    assert s0["all zero"] == pytest.approx(_hand_miou(torch.zeros(16, 16, dtype=torch.long),
                                                      data[0][1]))
    assert "<b>oracle</b>" in first_table and "1.000" in first_table  # best model in bold

    comparer.index.value = 2  # drive the slider: picture, table and numbers follow
    assert bytes(comparer.picture.value) != first_png
    assert comparer.table.value != first_table and "sample 2" in comparer.table.value
    s2 = comparer.scores()
    expected = _hand_miou(torch.zeros(16, 16, dtype=torch.long), data[2][1])
    assert s2["all zero"] == pytest.approx(expected) and expected != pytest.approx(
        s0["all zero"])
    image, target, preds = comparer.sample()
    assert torch.equal(preds["oracle"], target) and set(preds) == {"oracle", "all zero"}

    comparer.index.value = 0  # back: the same picture again (deterministic, cached)
    assert bytes(comparer.picture.value) == first_png


def test_model_comparer_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty dict"):
        widgets.ModelComparer({}, _dataset(), K)
    with pytest.raises(ValueError, match="nn.Module"):
        widgets.ModelComparer({"x": "not a model"}, _dataset(), K)
    with pytest.raises(ValueError, match="empty"):
        widgets.ModelComparer({"o": Oracle()}, [], K)


def _crf_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two 16x16 images split into two flat halves; a noisy unary the CRF can clean."""
    g = torch.Generator().manual_seed(3)
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[:, :, 8:] = 1
    target[1, 10:, :5] = 2
    palette = torch.tensor([[0.1, 0.8, 0.5], [0.9, 0.1, 0.3], [0.2, 0.2, 0.9]])
    images = palette[target].permute(0, 3, 1, 2)  # colour = class
    unary = 1.5 * nn.functional.one_hot(target, K).permute(0, 3, 1, 2).float()
    unary = unary + 1.2 * torch.randn(unary.shape, generator=g)
    return unary, images, target


PARAMS = crf.CRFParams(iterations=4, w_gauss=2.0, theta_gamma=1.0, w_bilateral=4.0,
                       theta_alpha=4.0, theta_beta=20.0)


def test_crf_viewer_steps_through_the_iterations() -> None:
    unary, images, target = _crf_case()
    viewer = widgets.CRFIterationViewer(unary, images, target, PARAMS, method="exact",
                                        class_names=["a", "b", "c"], palette="shapes")
    assert viewer.iterations == 4 and viewer.iteration.max == 4
    assert viewer.iteration.value == 4  # starts at the last iteration
    history = crf.dense_crf(unary, images, PARAMS, method="exact", return_history=True)
    assert torch.equal(viewer.prediction(0, 0), unary[0].argmax(0))  # t = 0: network alone
    for t in (0, 2, 4):  # the viewer's labels are the library's CRF after t iterations
        assert torch.equal(viewer.prediction(t, 1), history[t][1].argmax(0))
        cm = metrics.confusion_matrix(history[t].argmax(1), target, K)
        assert viewer.curve[t]["miou"] == pytest.approx(metrics.mean_iou(cm))
    # the lesson on this toy case: the CRF cleans the salt-and-pepper noise
    assert viewer.curve[-1]["miou"] > viewer.curve[0]["miou"] + 0.1

    last_png, last_label = bytes(viewer.picture.value), viewer.label.value
    assert last_png.startswith(PNG_MAGIC) and "iteration 4" in last_label
    s_last = viewer.scores()
    viewer.iteration.value = 0  # drive the iteration slider
    assert bytes(viewer.picture.value) != last_png
    assert "iteration 0" in viewer.label.value
    s0 = viewer.scores()
    assert s0["changed"] == 0 and s_last["changed"] > 0
    assert s0["miou"] == pytest.approx(_hand_miou(unary[0].argmax(0), target[0]))
    assert s_last["miou"] > s0["miou"]
    assert s0["boundary_f"] == pytest.approx(metrics.boundary_f_score(
        unary[0].argmax(0)[None], target[0][None], K))

    viewer.index.value = 1  # drive the sample slider
    assert "sample 1" in viewer.label.value
    assert viewer.scores()["miou"] == pytest.approx(_hand_miou(unary[1].argmax(0), target[1]))
    bundle = viewer._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)


def test_crf_viewer_reuses_a_history_and_rejects_bad_input() -> None:
    unary, images, target = _crf_case()
    history = crf.dense_crf(unary, images, PARAMS, method="window", window=5,
                            return_history=True)
    viewer = widgets.CRFIterationViewer(unary, images, target, history=history)
    assert viewer.iterations == PARAMS.iterations
    assert torch.equal(viewer.prediction(3, 0), history[3][0].argmax(0))
    with pytest.raises(ValueError, match="unary"):
        widgets.CRFIterationViewer(unary[0], images, target)
    with pytest.raises(ValueError, match="targets"):
        widgets.CRFIterationViewer(unary, images, target[:, :8])
    with pytest.raises(ValueError, match="history"):
        widgets.CRFIterationViewer(unary, images, target, history=[h[:1] for h in history])
    with pytest.raises(ValueError, match="iteration"):
        viewer.prediction(9)
