"""Active contours (notebook 15): Chan–Vese, morphological ACWE, the AC losses, the level-set
layer. scikit-image is not installed, so the oracles are crafted cases with known answers
and brute-force loops over pixels."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.models.active_contour import (
    LevelSetFCN,
    LevelSetLayer,
    active_contour_loss,
    chan_vese,
    chan_vese_energy,
    curvature,
    flat_world,
    log_odds,
    morphological_chan_vese,
    mumford_shah_loss,
)
from course_lib.models.active_contour.levelset import dirac, heaviside, inf_sup, sup_inf


def two_level(noise: float = 0.1, seed: int = 0,
              size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright rectangle and a bright disk on a dark background, plus noise; and the truth."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    truth = ((y >= 8) & (y < 24) & (x >= 10) & (x < 36)) | ((y - 34) ** 2 + (x - 14) ** 2 < 64)
    g = torch.Generator().manual_seed(seed)
    image = torch.where(truth, 0.75, 0.25) + noise * torch.randn(size, size, generator=g)
    return image, truth


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum())


def best_side(mask: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    return mask if (mask == truth).float().mean() >= 0.5 else ~mask


# --------------------------------------------------------------------------- level sets


def test_dirac_is_the_derivative_of_the_heaviside() -> None:
    z = torch.linspace(-5, 5, 41, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(heaviside(z).sum(), z)
    assert torch.allclose(grad, dirac(z.detach()), atol=1e-12)
    assert heaviside(torch.tensor(0.0)) == 0.5 and heaviside(torch.tensor(1e6)) > 0.999


def test_curvature_of_a_circle_is_minus_one_over_its_radius() -> None:
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    r = torch.sqrt((y - 32) ** 2 + (x - 32) ** 2)
    kappa = curvature(20 - r)  # positive inside: the level lines are circles around the centre
    for radius in (8, 12, 16):
        ring = (r - radius).abs() < 0.5
        assert kappa[ring].mean().item() == pytest.approx(-1 / radius, rel=0.05)
    flat = curvature(y - 20.0)  # straight level lines: no curvature
    assert flat.abs().max() < 1e-6


def test_chan_vese_finds_the_two_regions() -> None:
    image, truth = two_level()
    result = chan_vese(image)
    assert result.mask.shape == truth.shape and result.phi.dtype == torch.float32
    assert iou(best_side(result.mask, truth), truth) > 0.95


def test_chan_vese_is_vectorised_over_a_batch() -> None:
    pairs = [two_level(seed=s) for s in range(3)]
    batch = torch.stack([p[0] for p in pairs])[:, None]  # [3, 1, H, W]
    together = chan_vese(batch, iterations=30).phi
    for k, (image, _) in enumerate(pairs):
        alone = chan_vese(image, iterations=30).phi
        assert torch.allclose(together[k], alone, atol=1e-5)


def test_chan_vese_energy_decreases_step_by_step() -> None:
    image, _ = two_level(noise=0.05)
    result = chan_vese(image.double(), iterations=120, mu=0.01, dt=5.0, normalise=False,
                       history_every=5)
    energy = result.energy
    assert energy.shape == (len(result.steps),) and result.snapshots.shape[0] == len(result.steps)
    assert bool((energy[1:] <= energy[:-1] + 1e-9).all()), energy
    assert energy[-1] < 0.7 * energy[0]


def test_chan_vese_energy_by_brute_force() -> None:
    g = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 4, generator=g, dtype=torch.float64)  # [C=2, H=3, W=4]
    phi = torch.randn(3, 4, generator=g, dtype=torch.float64)
    mu, nu, l1, l2 = 0.3, 0.2, 1.5, 0.7
    h = [[0.5 * (1 + 2 / math.pi * math.atan(phi[i, j].item())) for j in range(4)]
         for i in range(3)]
    c1 = [sum(image[c, i, j].item() * h[i][j] for i in range(3) for j in range(4))
          / sum(h[i][j] for i in range(3) for j in range(4)) for c in range(2)]
    c2 = [sum(image[c, i, j].item() * (1 - h[i][j]) for i in range(3) for j in range(4))
          / sum(1 - h[i][j] for i in range(3) for j in range(4)) for c in range(2)]

    def at(i: int, j: int) -> float:  # replicate border
        return h[min(max(i, 0), 2)][min(max(j, 0), 3)]

    energy = 0.0
    for i in range(3):
        for j in range(4):
            dy = (at(i + 1, j) - at(i - 1, j)) / 2
            dx = (at(i, j + 1) - at(i, j - 1)) / 2
            energy += mu * math.sqrt(dx * dx + dy * dy + 1e-12) + nu * h[i][j]
            fit1 = sum((image[c, i, j].item() - c1[c]) ** 2 for c in range(2))
            fit2 = sum((image[c, i, j].item() - c2[c]) ** 2 for c in range(2))
            energy += l1 * h[i][j] * fit1 + l2 * (1 - h[i][j]) * fit2
    got = chan_vese_energy(image, phi, mu=mu, nu=nu, lambda_in=l1, lambda_out=l2)
    assert got.item() == pytest.approx(energy, rel=1e-10)


def test_morphological_operators_on_known_cases() -> None:
    u = torch.zeros(1, 7, 7)
    u[0, 3, 3] = 1  # an isolated bright pixel: no line segment of 3 bright pixels holds it
    assert sup_inf(u).sum() == 0
    assert inf_sup(1 - u).sum() == 49  # and a one-pixel hole is filled
    half = torch.zeros(1, 7, 7)
    half[0, :, 4:] = 1  # a straight edge has zero curvature: unchanged
    assert torch.equal(sup_inf(half), half) and torch.equal(inf_sup(half), half)


def test_morphological_chan_vese_finds_the_two_regions() -> None:
    image, truth = two_level(noise=0.15)
    result = morphological_chan_vese(image, iterations=40, history_every=10)
    assert set(result.phi.unique().tolist()) <= {0.0, 1.0}
    assert iou(best_side(result.mask, truth), truth) > 0.95
    assert result.energy[-1] < 0.5 * result.energy[0]


def test_level_set_input_errors() -> None:
    with pytest.raises(ValueError, match="float"):
        chan_vese(torch.zeros(8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        chan_vese(torch.zeros(1, 1, 1, 8, 8))
    with pytest.raises(ValueError, match="iterations"):
        morphological_chan_vese(torch.zeros(8, 8), iterations=-1)
    with pytest.raises(ValueError, match="mu"):
        chan_vese(torch.zeros(8, 8), mu=-1.0)
    with pytest.raises(ValueError, match="init"):
        chan_vese(torch.zeros(8, 8), init=torch.zeros(4, 4))


# --------------------------------------------------------------------------- losses


def test_active_contour_loss_by_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 3, 4, generator=g, dtype=torch.float64)
    target = torch.randint(0, 2, (2, 3, 4), generator=g)
    target[1, 0, 0] = 255  # ignored in the region term
    u = logits.softmax(1)
    length, region_in, region_out, valid = 0.0, 0.0, 0.0, 0
    for n in range(2):
        for k in range(2):
            for i in range(2):
                for j in range(3):
                    dx = u[n, k, i, j + 1] - u[n, k, i, j]
                    dy = u[n, k, i + 1, j] - u[n, k, i, j]
                    length += math.sqrt(dx**2 + dy**2 + 1e-8) / (2 * 2 * 3)
        for i in range(3):
            for j in range(4):
                if target[n, i, j] == 255:
                    continue
                valid += 1
                for k in range(2):
                    v = float(target[n, i, j] == k)
                    region_in += u[n, k, i, j].item() * (v - 1) ** 2
                    region_out += (1 - u[n, k, i, j].item()) * v**2
    expected = length + 0.5 * (region_in / valid + region_out / valid)
    got = active_contour_loss(logits, target, weight=0.5)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_active_contour_loss_prefers_the_true_contour_and_has_gradients() -> None:
    _, truth = two_level()
    target = truth.long()[None]
    sharp = (torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).double() * 12 - 6)
    blurred = torch.nn.functional.avg_pool2d(sharp, 7, stride=1, padding=3)
    assert active_contour_loss(sharp, target) < active_contour_loss(blurred, target)
    logits = blurred.clone().requires_grad_()
    active_contour_loss(logits, target).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="labels"):
        active_contour_loss(sharp, target + 2)
    with pytest.raises(ValueError, match="target"):
        active_contour_loss(sharp, target[:, :4])


def test_mumford_shah_loss_by_brute_force_and_without_labels() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 3, 3, 3, generator=g, dtype=torch.float64)
    image = torch.rand(1, 2, 3, 3, generator=g, dtype=torch.float64)
    p = logits.softmax(1)
    fit, tv = 0.0, 0.0
    for k in range(3):
        weight = sum(p[0, k, i, j].item() for i in range(3) for j in range(3))
        c = [sum(image[0, ch, i, j].item() * p[0, k, i, j].item()
                 for i in range(3) for j in range(3)) / weight for ch in range(2)]
        for i in range(3):
            for j in range(3):
                misfit = sum((image[0, ch, i, j].item() - c[ch]) ** 2 for ch in range(2))
                fit += p[0, k, i, j].item() * misfit
                if i < 2:
                    tv += abs(p[0, k, i + 1, j].item() - p[0, k, i, j].item())
                if j < 2:
                    tv += abs(p[0, k, i, j + 1].item() - p[0, k, i, j].item())
    expected = fit / 9 + 0.1 * tv / 9
    assert mumford_shah_loss(logits, image, weight=0.1).item() == pytest.approx(expected, rel=1e-6)
    # the partition into the image's own two regions is the better one: no mask needed
    image2, truth = two_level(noise=0.05)
    right = torch.stack([~truth, truth]).double()[None] * 8 - 4
    shifted = torch.roll(right, 6, dims=-1)
    grey = image2[None, None].double()
    assert mumford_shah_loss(right, grey) < mumford_shah_loss(shifted, grey)
    logits.requires_grad_()
    mumford_shah_loss(logits, image).backward()
    assert logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="image"):
        mumford_shah_loss(logits, image[..., :2])


# --------------------------------------------------------------------------- the layer


def test_log_odds_is_the_one_vs_rest_level_set() -> None:
    logits = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    phi = log_odds(logits)
    assert torch.equal(phi > 0, logits.softmax(1) > 0.5)
    two = torch.randn(1, 2, 3, 3)
    assert torch.allclose(log_odds(two)[:, 1], two[:, 1] - two[:, 0], atol=1e-6)


def test_level_set_layer_gradcheck() -> None:
    torch.manual_seed(0)
    layer = LevelSetLayer(num_classes=2, image_channels=1, features=2, iterations=3).double()
    logits = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    image = torch.rand(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (logits, image), eps=1e-6, atol=1e-5)
    # and through the weights of the layer (μ, λ, Δt, the feature convolution)
    params = dict(layer.named_parameters())

    def by_weights(*values: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, dict(zip(params, values, strict=True)),
                                          (logits.detach(), image.detach()))

    weights = tuple(p.detach().clone().requires_grad_() for p in params.values())
    assert torch.autograd.gradcheck(by_weights, weights, eps=1e-6, atol=1e-5)


def test_level_set_layer_moves_a_misplaced_contour_onto_the_object() -> None:
    image, truth = two_level(noise=0.05)
    shifted = torch.roll(truth, shifts=(2, 2), dims=(0, 1))  # an FCN's boundary, 2 px off
    logits = torch.stack([~shifted, shifted]).float()[None] * 4 - 2
    layer = LevelSetLayer(2, 1, iterations=30)
    with torch.no_grad():
        layer.features.weight.fill_(1.0)
        layer.features.bias.zero_()
        refined = layer(logits, image[None, None])
    assert iou(refined.argmax(1)[0].bool(), truth) > iou(shifted, truth) + 0.1


def test_level_set_fcn_refines_the_fcn_scores() -> None:
    model = LevelSetFCN(in_channels=1, num_classes=2, width=4, iterations=2).eval()
    x = torch.rand(2, 1, 20, 24)
    with torch.no_grad():
        steps = model.levelset(model.coarse(x), x, return_steps=True)
        assert len(steps) == 3 and torch.equal(steps[-1], model(x))
    with pytest.raises(ValueError, match="iterations"):
        LevelSetLayer(2, 1, iterations=0)
    with pytest.raises(ValueError, match="same|size"):
        model.levelset(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 5, 5))


def test_flat_world() -> None:
    _, truth = two_level()
    images = flat_world(torch.stack([truth, ~truth]), noise=0.0, seed=1)
    assert images.shape == (2, 1, 48, 48) and 0 <= images.min() and images.max() <= 1
    for image, fg in zip(images[:, 0], (truth, ~truth), strict=True):
        assert image[fg].unique().numel() == 1 and image[~fg].unique().numel() == 1
        assert image[fg][0] > image[~fg][0]
    with pytest.raises(ValueError, match="bool"):
        flat_world(truth[None].long())
