"""Classic level-set active contours without learning: Chan–Vese and morphological ACWE.

* **Chan & Vese**, "Active contours without edges" (IEEE TIP 2001): the contour is the zero
  level of a function φ; inside (φ > 0) and outside are each modelled by one mean colour
  c₁, c₂, and φ descends the energy

      E(c₁, c₂, φ) = μ·Length{φ = 0} + ν·Area{φ > 0}
                     + λ₁ Σ_inside |I − c₁|² + λ₂ Σ_outside |I − c₂|²

  with the smoothed Heaviside H_ε and Dirac δ_ε of the paper (eq. 9-10)::

      ∂φ/∂t = δ_ε(φ) [ μ div(∇φ/|∇φ|) − ν − λ₁ |I − c₁|² + λ₂ |I − c₂|² ].

  :func:`chan_vese` runs this explicit scheme on a whole batch at once (tensor operations
  over all pixels; the only Python loop is over iterations).
* **Márquez-Neila, Baumela & Álvarez**, "A morphological approach to curvature-based
  evolution of curves and surfaces" (IEEE TPAMI 2014): the same region force applied to a
  *binary* level set, and the curvature term replaced by the morphological operator SI∘IS
  (sup of erosions along four line segments, inf of dilations) — no PDE, no time step, fast
  (:func:`morphological_chan_vese`).

Images are ``[H, W]``, ``[C, H, W]`` or ``[N, C, H, W]`` (C channels: the vector-valued
Chan–Vese of Chan, Sandberg & Vese 2000 sums the region terms over channels); level sets
have the same leading shape without the channel axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

EPSILON = 1.0  # width of the smoothed Heaviside / Dirac (Chan & Vese use ε = h = 1)


# --------------------------------------------------------------------------- shapes


def as_batch(image: Tensor) -> tuple[Tensor, int]:
    """``image`` as float ``[N, C, H, W]`` and the number of axes it had (2, 3 or 4)."""
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.dim() not in (2, 3, 4):
        raise ValueError("image must be [H, W], [C, H, W] or [N, C, H, W], got "
                         f"{tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor (e.g. in [0, 1]), got {image.dtype}")
    dims = image.dim()
    batch = image[None, None] if dims == 2 else image[None] if dims == 3 else image
    return batch, dims


def from_batch(phi: Tensor, dims: int) -> Tensor:
    """A level set ``[N, H, W]`` back to the caller's shape (``[H, W]`` for a 2-D/3-D image)."""
    return phi[0] if dims < 4 else phi


def checkerboard(shape: tuple[int, int], square: int = 5, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> Tensor:
    """The usual initial level set: sin(πx/square)·sin(πy/square) — many small contours
    everywhere, so objects anywhere in the image are found (no initial curve to place)."""
    h, w = shape
    y = torch.arange(h, dtype=dtype, device=device)[:, None]
    x = torch.arange(w, dtype=dtype, device=device)[None, :]
    return torch.sin(math.pi / square * y) * torch.sin(math.pi / square * x)


# --------------------------------------------------------------------------- the calculus


def heaviside(phi: Tensor, eps: float = EPSILON) -> Tensor:
    """Chan & Vese's smoothed Heaviside H_ε(z) = ½(1 + (2/π) arctan(z/ε)) (their eq. 9)."""
    return 0.5 * (1 + (2 / math.pi) * torch.atan(phi / eps))


def dirac(phi: Tensor, eps: float = EPSILON) -> Tensor:
    """Its derivative δ_ε(z) = ε / (π(ε² + z²)): non-zero everywhere, largest on the contour."""
    return eps / (math.pi * (eps**2 + phi**2))


def gradient(u: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences (∂y, ∂x) of ``u`` [..., H, W], one-sided at the border
    (replicate padding: no flux through the image border)."""
    flat = u.reshape(-1, 1, *u.shape[-2:])
    padded = F.pad(flat, (1, 1, 1, 1), mode="replicate")
    dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    return dy.reshape(u.shape), dx.reshape(u.shape)


def curvature(phi: Tensor, eta: float = 1e-8) -> Tensor:
    """κ = div(∇φ / |∇φ|), the curvature of φ's level lines, for every pixel at once."""
    dy, dx = gradient(phi)
    norm = torch.sqrt(dx**2 + dy**2 + eta)
    ddy, _ = gradient(dy / norm)
    _, ddx = gradient(dx / norm)
    return ddx + ddy


def region_means(image: Tensor, weight: Tensor, eta: float = 1e-8) -> tuple[Tensor, Tensor]:
    """(c₁, c₂) ``[N, C]``: the mean colour inside and outside, weighted by ``weight`` =
    H_ε(φ) ``[N, H, W]`` (the paper's eq. 6 with the smoothed Heaviside)."""
    w = weight[:, None]
    inside = (image * w).sum((-2, -1)) / (w.sum((-2, -1)) + eta)
    outside = (image * (1 - w)).sum((-2, -1)) / ((1 - w).sum((-2, -1)) + eta)
    return inside, outside


def region_force(image: Tensor, c_in: Tensor, c_out: Tensor, lambda_in: float = 1.0,
                 lambda_out: float = 1.0) -> Tensor:
    """−λ₁|I − c₁|² + λ₂|I − c₂|² ``[N, H, W]``: positive where a pixel fits the inside better."""
    fit_in = ((image - c_in[..., None, None]) ** 2).sum(1)
    fit_out = ((image - c_out[..., None, None]) ** 2).sum(1)
    return -lambda_in * fit_in + lambda_out * fit_out


def chan_vese_energy(image: Tensor, phi: Tensor, mu: float = 0.1, nu: float = 0.0,
                     lambda_in: float = 1.0, lambda_out: float = 1.0,
                     eps: float = EPSILON) -> Tensor:
    """The smoothed Chan–Vese energy of each image ``[N]`` (a scalar for one image).

    Length = Σ|∇H_ε(φ)|, area = Σ H_ε(φ), the fits weighted by H_ε(φ) and 1 − H_ε(φ), with
    c₁, c₂ the optimal means for this φ. Every term is summed over pixels (per image).
    """
    batch, dims = as_batch(image)
    phi_b = phi.reshape(batch.shape[0], *batch.shape[-2:])
    h = heaviside(phi_b, eps)
    c_in, c_out = region_means(batch, h)
    dy, dx = gradient(h)
    length = torch.sqrt(dx**2 + dy**2 + 1e-12).sum((-2, -1))
    fit_in = ((batch - c_in[..., None, None]) ** 2).sum(1)
    fit_out = ((batch - c_out[..., None, None]) ** 2).sum(1)
    energy = (mu * length + nu * h.sum((-2, -1)) + lambda_in * (fit_in * h).sum((-2, -1))
              + lambda_out * (fit_out * (1 - h)).sum((-2, -1)))
    return energy[0] if dims < 4 else energy


@dataclass
class Evolution:
    """What :func:`chan_vese` / :func:`morphological_chan_vese` return.

    ``phi``: the final level set (inside = ``phi > 0``); ``mask``: that inside, bool;
    ``snapshots``: the level sets at ``steps`` (with ``return_history``), ``[T, *phi.shape]``;
    ``energy``: the energy at each snapshot ``[T, N]`` (``[T]`` for one image).
    """

    phi: Tensor
    mask: Tensor
    steps: list[int]
    snapshots: Tensor | None = None
    energy: Tensor | None = None


def _check_params(iterations: int, **weights: float) -> None:
    if not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be an int >= 0, got {iterations!r}")
    for name, value in weights.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def _initial(batch: Tensor, init: Tensor | None) -> Tensor:
    n, _, h, w = batch.shape
    if init is None:
        return checkerboard((h, w), dtype=batch.dtype, device=batch.device).expand(n, h, w).clone()
    init = init.to(batch.dtype)
    if init.shape[-2:] != (h, w):
        raise ValueError(f"init must have the image's size {(h, w)}, got {tuple(init.shape)}")
    return init.expand(n, h, w).clone()



def _evolution(out: torch.Tensor, level: float, dims: int, steps: list[int],
               snapshots: list[torch.Tensor], energies: list[torch.Tensor]) -> Evolution:
    """The :class:`Evolution` both evolutions return: the final function, its region
    (``out > level``), and the recorded history (energies squeezed for a single image)."""
    energy = torch.stack(energies) if energies else None
    if energy is not None and dims < 4:
        energy = energy[:, 0]
    return Evolution(out, out > level, steps, torch.stack(snapshots) if snapshots else None, energy)


def chan_vese(image: Tensor, iterations: int = 100, mu: float = 0.3, nu: float = 0.0,
              lambda_in: float = 1.0, lambda_out: float = 1.0, dt: float = 2.0,
              eps: float = EPSILON, init: Tensor | None = None, history_every: int = 0,
              normalise: bool = True) -> Evolution:
    """Chan–Vese segmentation (Chan & Vese 2001) by the explicit gradient flow of its energy.

    Each iteration updates c₁, c₂ from the current φ, then every pixel at once::

        φ ← φ + dt · δ_ε(φ) · [ μ κ(φ) − ν + R / max|R| ],   R = −λ₁|I − c₁|² + λ₂|I − c₂|²

    Dividing the region force R by its largest magnitude in the image (``normalise``, as
    in Lankton's widely used implementation; the paper does not) makes μ, ν and dt
    independent of the image's contrast and breaks the checkerboard's symmetric start
    (c₁ ≈ c₂, so R ≈ 0) in a few steps instead of hundreds. It is a positive rescaling of
    the region part of the gradient: with ``normalise=False`` the step is the paper's
    plain gradient flow, whose energy (:func:`chan_vese_energy`) decreases step by step.

    Args:
        image: ``[H, W]``, ``[C, H, W]`` or ``[N, C, H, W]`` floats.
        iterations: gradient steps (0 returns the initial level set).
        mu: weight of the length (curvature) term; nu: of the area term (both relative to
            the normalised region force, or to squared colour differences without it).
        lambda_in, lambda_out: weights of the inside and outside fits (λ₁, λ₂).
        dt: time step. eps: width ε of H_ε and δ_ε.
        init: initial level set ``[H, W]`` or ``[N, H, W]``; default :func:`checkerboard`.
        history_every: > 0 keeps φ and the energy every this many steps (and the last).
        normalise: divide the region force by its maximum magnitude (see above).
    """
    _check_params(iterations, mu=mu, nu=nu, lambda_in=lambda_in, lambda_out=lambda_out, dt=dt)
    batch, dims = as_batch(image)
    phi = _initial(batch, init)
    steps, snapshots, energies = [], [], []

    def keep(step: int) -> None:
        steps.append(step)
        snapshots.append(from_batch(phi, dims).clone())
        energies.append(chan_vese_energy(batch, phi, mu, nu, lambda_in, lambda_out, eps))

    for step in range(iterations):
        if history_every and step % history_every == 0:
            keep(step)
        c_in, c_out = region_means(batch, heaviside(phi, eps))
        region = region_force(batch, c_in, c_out, lambda_in, lambda_out)
        if normalise:
            region = region / region.abs().amax((-2, -1), keepdim=True).clamp_min(1e-12)
        force = mu * curvature(phi) - nu + region
        phi = phi + dt * dirac(phi, eps) * force
    if history_every:
        keep(iterations)
    return _evolution(from_batch(phi, dims), 0.0, dims, steps, snapshots, energies)


# --------------------------------------------------------------------------- morphological

# The four 3x3 line segments of Márquez-Neila et al. (horizontal, vertical, two diagonals),
# each as the three (dy, dx) offsets it covers.
_LINES = (((0, -1), (0, 0), (0, 1)), ((-1, 0), (0, 0), (1, 0)),
          ((-1, -1), (0, 0), (1, 1)), ((-1, 1), (0, 0), (1, -1)))


def _shifted(u: Tensor, pad_value: float) -> dict[tuple[int, int], Tensor]:
    """The 3x3 neighbours of every pixel of ``u`` [N, H, W] by offset (border: ``pad_value``)."""
    h, w = u.shape[-2:]
    padded = F.pad(u, (1, 1, 1, 1), value=pad_value)
    return {(dy, dx): padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            for dy in (-1, 0, 1) for dx in (-1, 0, 1)}


def sup_inf(u: Tensor) -> Tensor:
    """SI: the maximum over the four line segments of the erosion (minimum) along each."""
    near = _shifted(u, 1.0)
    return torch.stack([torch.stack([near[o] for o in line]).amin(0) for line in _LINES]).amax(0)


def inf_sup(u: Tensor) -> Tensor:
    """IS: the minimum over the four line segments of the dilation (maximum) along each."""
    near = _shifted(u, 0.0)
    return torch.stack([torch.stack([near[o] for o in line]).amax(0) for line in _LINES]).amin(0)


def curvature_smoothing(u: Tensor, times: int = 1, first: int = 0) -> Tensor:
    """``times`` applications of the morphological curvature operator, alternating SI∘IS and
    IS∘SI (as the authors' code does, so neither dark nor bright structures are favoured)."""
    for k in range(times):
        u = sup_inf(inf_sup(u)) if (first + k) % 2 == 0 else inf_sup(sup_inf(u))
    return u


def morphological_chan_vese(image: Tensor, iterations: int = 50, smoothing: int = 1,
                            lambda_in: float = 1.0, lambda_out: float = 1.0,
                            init: Tensor | None = None, history_every: int = 0) -> Evolution:
    """Morphological active contours without edges (MorphACWE, Márquez-Neila et al. 2014).

    The level set ``u`` is binary. Each iteration: the means c₁ (inside, u = 1) and c₂;
    the *balloon-free* image force ``|∇u| (λ₁|I − c₁|² − λ₂|I − c₂|²)`` sets ``u = 1`` where
    it is negative and ``u = 0`` where it is positive (only on the contour, where ∇u ≠ 0);
    then ``smoothing`` passes of the curvature operator (:func:`curvature_smoothing`).
    ``Evolution.phi`` is ``u`` (float 0/1) and the energy that of Chan–Vese with μ = 0 on
    H = u (the fit terms), so its history shows the region fit improving.
    """
    _check_params(iterations, smoothing=smoothing, lambda_in=lambda_in, lambda_out=lambda_out)
    batch, dims = as_batch(image)
    u = (_initial(batch, init) > 0).to(batch.dtype)
    steps, snapshots, energies = [], [], []

    def keep(step: int) -> None:
        steps.append(step)
        snapshots.append(from_batch(u, dims).clone())
        c_in, c_out = region_means(batch, u)
        fit = -region_force(batch, c_in, c_out, lambda_in, 0.0) * u \
            + region_force(batch, c_in, c_out, 0.0, lambda_out) * (1 - u)
        energies.append(fit.sum((-2, -1)))

    for step in range(iterations):
        if history_every and step % history_every == 0:
            keep(step)
        c_in, c_out = region_means(batch, u)
        dy, dx = gradient(u)
        on_contour = (dy.abs() + dx.abs()) > 0
        force = -region_force(batch, c_in, c_out, lambda_in, lambda_out)  # λ₁fit₁ − λ₂fit₂
        u = torch.where(on_contour & (force < 0), torch.ones_like(u), u)
        u = torch.where(on_contour & (force > 0), torch.zeros_like(u), u)
        u = curvature_smoothing(u, smoothing, first=step * smoothing)
    if history_every:
        keep(iterations)
    return _evolution(from_batch(u, dims), 0.5, dims, steps, snapshots, energies)


__all__ = ["EPSILON", "Evolution", "as_batch", "chan_vese", "chan_vese_energy", "checkerboard",
           "curvature", "curvature_smoothing", "dirac", "from_batch", "gradient", "heaviside",
           "inf_sup", "morphological_chan_vese", "region_force", "region_means", "sup_inf"]
