"""Notebook 04's sample-quality number (Fréchet distance in LeNet feature space) and the
per-epoch records of train_gan that the WGAN-GP lesson reads."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from course_lib.models import basics as B


def _scipy_frechet(mu1, cov1, mu2, cov2) -> float:
    """The oracle: FID's formula with scipy's general matrix square root of cov1 @ cov2."""
    root = scipy.linalg.sqrtm(cov1 @ cov2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * root))


def _random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_gaussian_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    for d in (1, 3, 10):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        cov1, cov2 = _random_cov(rng, d), _random_cov(rng, d)
        ours = B.gaussian_frechet_distance(*(torch.from_numpy(t) for t in (mu1, cov1, mu2, cov2)))
        assert math.isclose(ours, _scipy_frechet(mu1, cov1, mu2, cov2), rel_tol=1e-6)


def test_gaussian_frechet_distance_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2; same Gaussian: 0; commuting (diagonal) covariances:
    # sum over dimensions of the 1-D formula.
    one = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    assert math.isclose(B.gaussian_frechet_distance(one(1.0), one(4.0)[None], one(-2.0),
                                                    one(9.0)[None]), 9 + 1, rel_tol=1e-9)
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    assert abs(B.gaussian_frechet_distance(torch.zeros(2), cov, torch.zeros(2), cov)) < 1e-9
    s1, s2 = torch.tensor([1.0, 4.0]), torch.tensor([9.0, 1.0])
    fd = B.gaussian_frechet_distance(torch.zeros(2), torch.diag(s1), torch.ones(2), torch.diag(s2))
    assert math.isclose(fd, 2 + float(((s1.sqrt() - s2.sqrt()) ** 2).sum()), rel_tol=1e-9)


def test_frechet_distance_of_samples_is_the_gaussian_formula():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(400, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(300, 3, generator=gen, dtype=torch.float64) * 2 + 1
    expected = _scipy_frechet(a.mean(0).numpy(), np.cov(a.numpy().T), b.mean(0).numpy(),
                              np.cov(b.numpy().T))
    assert math.isclose(B.frechet_distance(a, b), expected, rel_tol=1e-6)
    assert B.frechet_distance(a, a) < 1e-6
    # Large samples of N(0, I) and N(1, 4I) in 3-D: 3 * 1 + 3 * (2 - 1)^2 = 6.
    big = torch.randn(20000, 3, generator=gen, dtype=torch.float64)
    other = torch.randn(20000, 3, generator=gen, dtype=torch.float64) * 2 + 1
    assert abs(B.frechet_distance(big, other) - 6.0) < 0.2


def test_frechet_distance_bad_input_raises():
    with pytest.raises(ValueError, match=r"\[N1, D\]"):
        B.frechet_distance(torch.rand(5, 3), torch.rand(5, 4))
    with pytest.raises(ValueError, match="at least 2"):
        B.frechet_distance(torch.rand(1, 3), torch.rand(5, 3))
    with pytest.raises(ValueError, match="cov2"):
        B.gaussian_frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(2), torch.eye(3))
    with pytest.raises(TypeError, match="LeNet"):
        B.lenet_features(torch.nn.Identity(), torch.rand(2, 3, 32, 32))


def test_frechet_shape_distance_ranks_noise_below_real_images():
    torch.manual_seed(0)
    lenet = B.LeNet(num_classes=6, image_size=16)
    real = torch.rand(64, 3, 16, 16) * 2 - 1
    assert B.lenet_features(lenet, (real + 1) / 2).shape == (64, 84)
    judge = B.FrechetShapeDistance(lenet, real)
    assert judge(real) < 1e-9
    same_kind = judge(torch.rand(64, 3, 16, 16) * 2 - 1)
    assert same_kind < judge(torch.full((64, 3, 16, 16), -1.0) + 0.05 * torch.randn(64, 3, 16, 16))


def test_train_gan_records_per_epoch_gap_loss_and_quality():
    torch.manual_seed(0)
    g = B.DCGANGenerator(latent_dim=4, width=4, image_size=8)
    d = B.DCGANDiscriminator(width=4, image_size=8, norm="ln")
    images = torch.rand(16, 3, 8, 8) * 2 - 1
    seen = []

    def quality(fake: torch.Tensor) -> float:
        seen.append(fake.shape)
        return float(fake.mean())

    torch.manual_seed(1)  # the gradient penalty's interpolation weights use the global RNG
    hist = B.train_gan(g, d, images, epochs=2, batch_size=4, loss="wgan-gp", n_critic=2,
                       device="cpu", progress=False, quality_fn=quality, quality_samples=6)
    assert seen == [(6, 3, 8, 8)] * 2 and len(hist.quality) == 2
    steps = hist.steps_per_epoch
    assert len(hist.d_loss) == 2 * steps and len(hist.g_loss) == steps  # n_critic = 2
    for epoch in range(2):
        part = slice(epoch * steps, (epoch + 1) * steps)
        gap = np.mean(hist.d_real[part]) - np.mean(hist.d_fake[part])
        assert math.isclose(hist.epoch_gap[epoch], gap, rel_tol=1e-6, abs_tol=1e-9)
        assert math.isclose(hist.epoch_d_loss[epoch], np.mean(hist.d_loss[part]), rel_tol=1e-6)
    # Asking for a quality number leaves the training draws unchanged.
    torch.manual_seed(0)
    g2 = B.DCGANGenerator(latent_dim=4, width=4, image_size=8)
    d2 = B.DCGANDiscriminator(width=4, image_size=8, norm="ln")
    torch.manual_seed(1)
    plain = B.train_gan(g2, d2, images, epochs=2, batch_size=4, loss="wgan-gp", n_critic=2,
                        device="cpu", progress=False)
    assert plain.d_loss == hist.d_loss and plain.quality == []


def test_gan_figures_draw_every_panel():
    from course_lib.viz import gan as V
    from course_lib.viz.figures import figure_to_png

    torch.manual_seed(0)
    g = B.DCGANGenerator(latent_dim=4, width=4, image_size=8)
    d = B.DCGANDiscriminator(width=4, image_size=8)
    images = torch.rand(16, 3, 8, 8) * 2 - 1
    hist = B.train_gan(g, d, images, epochs=3, batch_size=8, num_samples=5, device="cpu",
                       progress=False, quality_fn=lambda fake: float(fake.std()),
                       quality_samples=4)
    fig = V.plot_samples_per_epoch(hist, "t", rows=2, columns=4)
    assert len(fig.axes) == 2 * 4  # the first and last epoch, 4 of the 5 samples
    fig = V.plot_samples_side_by_side({"a": hist.samples[-1]}, images, n=6, columns=3)
    assert len(fig.axes) == 2 * 2 * 3 and sum(len(ax.images) for ax in fig.axes) == 6 + 5
    fig = V.plot_quality_vs_estimate({"DCGAN": hist, "WGAN-GP": hist}, "q")
    assert [ax.get_xlabel() for ax in fig.axes[1:3]] == [
        "discriminator loss", "critic's Wasserstein estimate"]
    assert figure_to_png(V.plot_gan_history(hist, "t")).startswith(b"\x89PNG")
