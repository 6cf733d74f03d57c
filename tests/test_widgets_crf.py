"""CRFIterationViewer (notebook 06): stepping through the mean-field iterations."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from widget_cases import PNG_MAGIC, check_bundle, hand_miou  # noqa: E402

from course_lib import metrics, widgets  # noqa: E402
from course_lib.models import crf  # noqa: E402

K = 3


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
    assert s0["miou"] == pytest.approx(hand_miou(unary[0].argmax(0), target[0], K))
    assert s_last["miou"] > s0["miou"]
    assert s0["boundary_f"] == pytest.approx(metrics.boundary_f_score(
        unary[0].argmax(0)[None], target[0][None], K))

    viewer.index.value = 1  # drive the sample slider
    assert "sample 1" in viewer.label.value
    assert viewer.scores()["miou"] == pytest.approx(hand_miou(unary[1].argmax(0), target[1], K))
    check_bundle(viewer)


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
