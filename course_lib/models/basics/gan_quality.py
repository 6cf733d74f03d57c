"""A sample-quality number for notebook 04's GANs: the Fréchet distance between real and
generated images in the feature space of a small shape classifier (an FID analogue).

FID (Heusel et al., NeurIPS 2017) fits a Gaussian to Inception-v3 features of real and of
generated images and reports the Fréchet (2-Wasserstein) distance between the two Gaussians,
``‖μ₁ - μ₂‖² + Tr(Σ₁ + Σ₂ - 2 (Σ₁^½ Σ₂ Σ₁^½)^½)``. Inception knows nothing of the shapes world,
so here the features are the 84 F6 activations of notebook 01's LeNet, trained on real crops:
they separate the six shapes, so a generator whose shapes are wrong, blurred or missing a
class moves the mean and the covariance. The number is comparable only between models judged
by the same classifier and the same number of samples (the covariance estimate is biased).
"""

from __future__ import annotations

import torch

from ...runtime import evaluating
from .cnn import LeNet


def gaussian_frechet_distance(
    mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor,
) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2) (means [D], covariances [D, D]).

    ``Tr((Σ₁ Σ₂)^½)`` is computed as the sum of the square roots of the eigenvalues of the
    symmetric matrix ``Σ₁^½ Σ₂ Σ₁^½`` (same eigenvalues as ``Σ₁ Σ₂``), in float64; tiny
    negative eigenvalues from rounding are clipped to 0.
    """
    d = mu1.shape[-1]
    for name, t, shape in (("mu1", mu1, (d,)), ("mu2", mu2, (d,)), ("cov1", cov1, (d, d)),
                           ("cov2", cov2, (d, d))):
        if tuple(t.shape) != shape:
            raise ValueError(f"gaussian_frechet_distance: {name} must have shape {shape}, "
                             f"got {tuple(t.shape)}")
    mu1, cov1, mu2, cov2 = (t.double() for t in (mu1, cov1, mu2, cov2))
    values, vectors = torch.linalg.eigh(cov1)
    root1 = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root1 @ cov2 @ root1).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + cov1.trace() + cov2.trace() - 2 * cross)


def frechet_distance(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N₁, D] and [N₂, D]
    (sample means and unbiased sample covariances, as FID)."""
    if features1.dim() != 2 or features2.dim() != 2 or features1.shape[1] != features2.shape[1]:
        raise ValueError("frechet_distance: expects features [N1, D] and [N2, D], got "
                         f"{tuple(features1.shape)} and {tuple(features2.shape)}")
    if min(len(features1), len(features2)) < 2:
        raise ValueError("frechet_distance: needs at least 2 samples per set, got "
                         f"{len(features1)} and {len(features2)}")
    f1, f2 = features1.double(), features2.double()
    return gaussian_frechet_distance(f1.mean(0), torch.cov(f1.T), f2.mean(0), torch.cov(f2.T))


def lenet_features(classifier: LeNet, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The F6 activations [N, 84] of a trained :class:`LeNet` for ``images`` [N, C, S, S] in
    [0, 1] (the classifier's input range), in eval mode without gradients."""
    if not isinstance(classifier, LeNet):
        raise TypeError(f"lenet_features: expects a LeNet, got {type(classifier).__name__}")
    device = next(classifier.parameters()).device
    with evaluating(classifier):
        chunks = [classifier.classifier[:-1](classifier.features(batch.to(device))).cpu()
                  for batch in images.split(batch_size)]
    return torch.cat(chunks)


class FrechetShapeDistance:
    """Callable quality number: the Fréchet distance between the LeNet features of fixed real
    images and of generated ones, both given in the GAN's range [-1, 1]. Lower is better; 0
    for the same distribution (up to sampling noise). Pass it as ``train_gan(quality_fn=)``.
    """

    def __init__(self, classifier: LeNet, real: torch.Tensor) -> None:
        self.classifier = classifier
        self.real_features = lenet_features(classifier, (real + 1) / 2)

    def __call__(self, fake: torch.Tensor) -> float:
        return frechet_distance(self.real_features, lenet_features(self.classifier,
                                                                   (fake + 1) / 2))


__all__ = ["gaussian_frechet_distance", "frechet_distance", "lenet_features",
           "FrechetShapeDistance"]
