"""Dense CRF (mean field, exact and windowed), DeepLab v1's CRF post-processing, CRF-as-RNN."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.models import build_model
from course_lib.models.crf import (
    CRFASRNN_CRF,
    DEEPLAB_CRF,
    CRFasRNN,
    CRFParams,
    dense_crf,
    mean_field,
    refine,
)

SMALL = CRFParams(iterations=5, w_gauss=1.0, theta_gamma=1.5, w_bilateral=2.0,
                  theta_alpha=4.0, theta_beta=40.0)


def _inputs(n: int = 2, k: int = 3, h: int = 8, w: int = 8, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, h, w, generator=g, dtype=dtype)
    image = torch.rand(n, 3, h, w, generator=g, dtype=dtype)
    return logits, image


def _brute_force(logits: torch.Tensor, image: torch.Tensor, p: CRFParams) -> torch.Tensor:
    """Krähenbühl & Koltun's Algorithm 1 written pair by pair (one image, Potts)."""
    k, h, w = logits.shape
    pix = [(y, x) for y in range(h) for x in range(w)]
    col = (image * 255).reshape(image.shape[0], -1).T.tolist()
    kern = [[0.0] * len(pix) for _ in pix]
    for i, (yi, xi) in enumerate(pix):
        for j, (yj, xj) in enumerate(pix):
            if i == j:
                continue
            d_pos = (yi - yj) ** 2 + (xi - xj) ** 2
            d_col = sum((a - b) ** 2 for a, b in zip(col[i], col[j], strict=True))
            kern[i][j] = (p.w_gauss * math.exp(-d_pos / (2 * p.theta_gamma**2))
                          + p.w_bilateral * math.exp(-d_pos / (2 * p.theta_alpha**2)
                                                     - d_col / (2 * p.theta_beta**2)))
    kern_t = torch.tensor(kern, dtype=torch.float64)
    unary = logits.reshape(k, -1).double()
    q = torch.softmax(unary, 0)
    for _ in range(p.iterations):
        msg = q @ kern_t.T  # [K, P]: Σ_j k(i, j) Q_j(l)
        pairwise = msg.sum(0, keepdim=True) - msg  # Potts: Σ_{l' ≠ l}
        q = torch.softmax(unary - pairwise, 0)
    return q.reshape(k, h, w)


def test_zero_pairwise_weight_returns_softmax_of_unary() -> None:
    logits, image = _inputs()
    for method in ("exact", "window"):
        q = dense_crf(logits, image, SMALL.replace(w_gauss=0.0, w_bilateral=0.0), method=method)
        torch.testing.assert_close(q, torch.softmax(logits, 1))


def test_exact_equals_brute_force_on_8x8() -> None:
    logits, image = _inputs(n=2, dtype=torch.float64)
    q = dense_crf(logits, image, SMALL, method="exact")
    for b in range(2):
        torch.testing.assert_close(q[b], _brute_force(logits[b], image[b], SMALL))
    # the CRF did something: the test can fail
    assert (q - torch.softmax(logits, 1)).abs().max() > 0.05


def test_window_covering_the_image_equals_exact() -> None:
    logits, image = _inputs(n=2, h=9, w=13, dtype=torch.float64)
    exact = dense_crf(logits, image, SMALL, method="exact")
    full = dense_crf(logits, image, SMALL, method="window", window=2 * 13 - 1)
    torch.testing.assert_close(full, exact)


def test_window_truncation_error_is_small_and_shrinks() -> None:
    """Measured approximation error of the ConvCRF window vs the exact CRF (32x32 image).

    Mean |Q_window - Q_exact| on random unaries, float64: window 3 → 0.28, 7 → 0.12,
    15 → 0.023, 21 → 0.0045 (θα = 4 px), and exact once the window covers the image.
    """
    logits, image = _inputs(n=1, h=32, w=32, dtype=torch.float64, seed=1)
    exact = dense_crf(logits, image, SMALL, method="exact")
    errors, agree = [], []
    for win in (3, 7, 15, 21):
        q = dense_crf(logits, image, SMALL, method="window", window=win)
        errors.append((q - exact).abs().mean().item())
        agree.append((q.argmax(1) == exact.argmax(1)).float().mean().item())
    assert errors == sorted(errors, reverse=True) and errors[0] > 0.1
    assert errors[-1] < 0.01 and agree[-1] > 0.99
    blurred = dense_crf(logits, image, SMALL, method="window", window=7, blur=2)
    assert blurred.shape == exact.shape


def test_mean_field_converges_within_50_iterations() -> None:
    logits, image = _inputs(n=2, h=16, w=20)
    # (parallel mean field is not guaranteed to converge: DeepLab's unscaled weights on this
    # 16x20 image, where every pixel is a strong neighbour of every other, oscillate)
    history = dense_crf(logits, image, SMALL.replace(iterations=50), method="exact",
                        return_history=True)
    changes = [(b - a).abs().max().item() for a, b in zip(history, history[1:], strict=False)]
    assert len(history) == 51
    assert changes[0] > 0.1  # it did move
    assert changes[-1] < 1e-4


@pytest.mark.parametrize("n,h,w", [(1, 7, 11), (3, 16, 9)])
def test_any_batch_and_size(n: int, h: int, w: int) -> None:
    logits, image = _inputs(n=n, h=h, w=w)
    for method in ("exact", "window"):
        q = dense_crf(logits, image, CRFASRNN_CRF.scaled(w), method=method, window=5)
        assert q.shape == (n, 3, h, w)
        torch.testing.assert_close(q.sum(1), torch.ones(n, h, w))


def test_bad_input_raises() -> None:
    logits, image = _inputs()
    with pytest.raises(ValueError, match="differ"):
        dense_crf(logits, image[:, :, :7])
    with pytest.raises(ValueError, match="method"):
        dense_crf(logits, image, method="lattice")
    with pytest.raises(ValueError, match="window"):
        dense_crf(logits, image, window=4)


def test_crf_as_rnn_gradcheck_float64() -> None:
    logits, image = _inputs(n=2, k=3, h=4, w=5, dtype=torch.float64)
    k = 3
    g = torch.Generator().manual_seed(3)
    w_g = (torch.eye(k) + 0.1 * torch.rand(k, k, generator=g)).double()
    w_b = (2 * torch.eye(k) + 0.1 * torch.rand(k, k, generator=g)).double()
    compat = (1 - torch.eye(k) + 0.1 * torch.rand(k, k, generator=g)).double()
    tensors = [t.clone().requires_grad_(True) for t in (logits, image, w_g, w_b, compat)]

    def layer(u, img, wg, wb, mu):
        return mean_field(u, img, wg, wb, mu, iterations=3, theta_alpha=3.0, theta_beta=60.0,
                          theta_gamma=1.0, window=3)

    assert torch.autograd.gradcheck(layer, tensors)


def test_crf_as_rnn_starts_as_dense_crf_and_learns() -> None:
    logits, image = _inputs(n=2, h=10, w=10)
    params = SMALL
    layer = CRFasRNN(3, params, window=5)
    q = torch.softmax(layer(logits, image), 1)
    torch.testing.assert_close(q, dense_crf(logits, image, params, window=5))
    target = torch.randint(0, 3, (2, 10, 10))
    torch.nn.functional.cross_entropy(layer(logits, image), target).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_crfrnn_model_is_on_fcn8s_by_default() -> None:
    model = build_model("crfrnn", num_classes=4, width=4, fc_channels=16, window=5).eval()
    assert model.fcn_variant == "8s" and model.fcn.variant == "8s"
    with torch.no_grad():
        assert model(torch.rand(2, 3, 33, 40)).shape == (2, 4, 33, 40)
    with pytest.raises(ValueError, match=r"fcn_variant must be one of .*'4s'"):
        build_model("crfrnn", fcn_variant="4s")


def test_crf_on_fcn32s_with_own_params() -> None:
    params = CRFParams(iterations=2, theta_alpha=5.0, theta_beta=20.0)
    model = build_model("crfrnn", num_classes=3, fcn_variant="32s", width=4, fc_channels=16,
                        crf_params=params, window=3, blur=2).eval()
    assert model.fcn.variant == "32s" and model.crf.params == params
    fcn32 = build_model("fcn32s", num_classes=3, width=4, fc_channels=16)
    assert model.fcn.state_dict().keys() == fcn32.state_dict().keys()  # exactly an FCN-32s
    with torch.no_grad():
        assert model(torch.rand(2, 3, 45, 45)).shape == (2, 3, 45, 45)


def test_refine_is_deeplab_v1s_post_processing() -> None:
    """refine(model, x): the model's eval-mode scores through the dense CRF, modes restored."""
    torch.manual_seed(0)
    model = build_model("deeplabv1", num_classes=3, width=4, fc_channels=16).train()
    x = torch.rand(2, 3, 24, 20)
    probs = refine(model, x, method="exact")
    assert model.training  # mode restored
    assert probs.shape == (2, 3, 24, 20)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 24, 20))
    with torch.no_grad():
        logits = model.eval()(x)["out"]
    torch.testing.assert_close(probs, dense_crf(logits, x, DEEPLAB_CRF.scaled(24), method="exact"))
    assert not torch.allclose(probs, logits.softmax(1), atol=1e-3)  # the CRF changed something


def test_full_crf_as_rnn_is_the_papers_fcn8s_plus_three_class_matrices() -> None:
    """full=True reaches the FCN (it used to build VGG16 at width 16: 43,452,836 parameters)."""
    with torch.device("meta"):
        model = build_model("crfrnn", full=True)
        fcn8s = build_model("fcn8s", full=True)
    count = sum(p.numel() for p in model.parameters())
    assert count == sum(p.numel() for p in fcn8s.parameters()) + 3 * 12 * 12  # w_g, w_b, μ
    assert model.fcn.backbone.channels["c5"] == 512 and model.fcn.fc[0].out_channels == 4096
    with torch.device("meta"):
        assert build_model("crfrnn", full=True, width=8).fcn.backbone.channels["c5"] == 64
