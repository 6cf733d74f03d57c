"""Receptive fields: how much of the image one output pixel can see, by formula and by gradient.

Every tool the course uses to reason about receptive fields, in one place:

- :func:`conv_output_size` and :func:`receptive_field`: the arithmetic of a convolution
  stack (notebook 01, survey section 2.1);
- :func:`dilated_receptive_field`: the same with dilation (DeepLab's atrous convolution,
  notebook 11), and :func:`module_receptive_field`: the same read from a module's layers
  (:func:`main_path` lists them);
- :func:`conv_stack`: plain stacks of dilated convolutions with the same parameters whatever
  their rates (the gridding experiment);
- :func:`effective_receptive_field` and :func:`receptive_field_stats`: the *effective*
  receptive field of Luo et al. (NeurIPS 2016), measured as a gradient map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .runtime import evaluating, model_device


def conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Output side of a convolution or pooling: ``floor((n + 2p - d(k-1) - 1) / s) + 1``."""
    for name, value in (("kernel_size", kernel_size), ("stride", stride),
                        ("dilation", dilation)):
        if value <= 0:
            raise ValueError(f"conv_output_size: {name} must be > 0, got {value}")
    out = (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(
            f"conv_output_size: input size {size} is too small for kernel {kernel_size}, "
            f"padding {padding}, dilation {dilation} (output would be {out})"
        )
    return out


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    """Receptive field of a stack of ``(kernel_size, stride)`` layers, in input pixels.

    Each layer adds ``(k - 1)`` times the product of the strides before it:
    ``r = 1 + sum_l (k_l - 1) * prod_{j<l} s_j``.
    """
    r, jump = 1, 1
    for k, s in layers:
        r += (k - 1) * jump
        jump *= s
    return r


def dilated_receptive_field(layers: Sequence[tuple[int, int, int]]) -> int:
    """Theoretical receptive field of a chain of ``(kernel_size, stride, dilation)`` layers.

    A dilated kernel of size ``k`` and rate ``d`` spans ``d (k - 1) + 1`` pixels, so it adds
    ``d (k - 1)`` times the product of the strides before it:
    ``r = 1 + sum_l d_l (k_l - 1) prod_{j<l} s_j`` (:func:`receptive_field` with
    ``d = 1``). Three 3x3 convolutions of rate 1 see 7 pixels, of rates 1, 2, 4 see 15.
    """
    checked = []
    for layer in layers:
        if len(layer) != 3 or min(int(v) for v in layer) < 1:
            raise ValueError(
                f"each layer must be (kernel_size, stride, dilation) >= 1, got {layer!r}"
            )
        k, s, d = (int(v) for v in layer)
        checked.append((d * (k - 1) + 1, s))
    return receptive_field(checked)


def main_path(
    module: nn.Module, skip: Sequence[str] = ("downsample",)
) -> list[tuple[int, int, int]]:
    """``(kernel_size, stride, dilation)`` of every convolution and max-pooling of ``module``,
    in the order they were registered, leaving out those whose qualified name contains one of
    ``skip`` (by default a ResNet's 1x1 shortcut convolutions ``downsample``, which sit beside
    the main path, not on it): the input of :func:`dilated_receptive_field`."""
    if isinstance(skip, str):
        raise ValueError(f"skip must be a sequence of name parts, got the string {skip!r}")
    layers = []
    for name, layer in module.named_modules():
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)) and not any(part in name for part in skip):
            k, s, d = (v if isinstance(v, int) else v[0]
                       for v in (layer.kernel_size, layer.stride, layer.dilation))
            layers.append((k, s, d))
    return layers


def module_receptive_field(module: nn.Module) -> int:
    """Theoretical receptive field, in input pixels, of one output pixel of ``module``.

    Walks the convolutions and max-poolings of ``module`` in the order they were registered
    (the order a plain feed-forward ``forward`` applies them) and applies
    :func:`dilated_receptive_field`; a module with branches or skips is outside its scope.
    """
    layers = main_path(module, skip=())
    if not layers:
        raise ValueError(f"module_receptive_field: {type(module).__name__} has no convolution")
    return dilated_receptive_field(layers)


def conv_stack(
    rates: Sequence[int],
    channels: int = 8,
    in_channels: int = 1,
    kernel_size: int = 3,
    strides: Sequence[int] | None = None,
    seed: int = 0,
) -> nn.Sequential:
    """A plain stack of ``len(rates)`` convolutions (``kernel_size``, dilation ``rates[i]``,
    "same" padding, bias-free) each followed by a ReLU — one child per layer, so
    ``stack[:k]`` is the first ``k`` layers. Every stack with as many layers has exactly the
    same parameters whatever its rates: only the spacing of the taps differs. Weights are
    Kaiming-normal from ``seed``.
    """
    if not rates or min(int(r) for r in rates) < 1:
        raise ValueError(f"rates must be a non-empty sequence of integers >= 1, got {rates!r}")
    strides = tuple(strides) if strides is not None else (1,) * len(rates)
    if len(strides) != len(rates):
        raise ValueError(f"strides ({len(strides)}) and rates ({len(rates)}) differ in length")
    generator = torch.Generator().manual_seed(seed)
    layers = []
    prev = in_channels
    for r, s in zip(rates, strides, strict=True):
        conv = nn.Conv2d(prev, channels, kernel_size, stride=int(s), dilation=int(r),
                         padding=int(r) * (kernel_size - 1) // 2, bias=False)
        with torch.no_grad():  # Kaiming normal (fan-in, ReLU gain) from our own generator
            std = (2.0 / (prev * kernel_size**2)) ** 0.5
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
        layers.append(nn.Sequential(conv, nn.ReLU()))
        prev = channels
    return nn.Sequential(*layers)


def _first_in_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ValueError("the model has no Conv2d: pass an input tensor instead of a size")


def effective_receptive_field(
    model: nn.Module,
    inputs: torch.Tensor | int | tuple[int, int],
    samples: int = 4,
    position: tuple[int, int] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """The effective receptive field (Luo et al., NeurIPS 2016) of one output pixel: [H, W].

    For each input image, the sum over channels of the output at ``position`` (default: the
    centre of the output) is differentiated with respect to the input; the result is
    ``|gradient|`` summed over the input channels and averaged over the images. Zero means
    "this input pixel cannot change that output"; the non-zero support is the theoretical
    receptive field (with holes if dilation leaves some pixels unvisited).

    Args:
        model: any network; it is run in eval mode (BatchNorm statistics would otherwise
            connect every pixel of the batch) and its mode is restored afterwards. A dict
            output uses ``"out"``.
        inputs: images [N, C, H, W] to average over, or a size ``H`` / ``(H, W)``: then
            ``samples`` uniform random images (``seed``) with the first convolution's channels.
        position: ``(row, col)`` of the output pixel.
    """
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() != 4:
            raise ValueError(f"inputs must be [N, C, H, W], got shape {tuple(inputs.shape)}")
        x = inputs.detach().float().clone()
    else:
        h, w = (inputs, inputs) if isinstance(inputs, int) else (int(v) for v in inputs)
        if h < 1 or w < 1 or samples < 1:
            raise ValueError(f"size and samples must be >= 1, got {inputs!r}, {samples}")
        generator = torch.Generator().manual_seed(seed)
        x = torch.rand(samples, _first_in_channels(model), h, w, generator=generator)
    x = x.to(model_device(model)).requires_grad_(True)
    with evaluating(model, no_grad=False), torch.enable_grad():
        out = model(x)
        out = out["out"] if isinstance(out, dict) else out
        r, c = position if position is not None else (out.shape[-2] // 2, out.shape[-1] // 2)
        if not (0 <= r < out.shape[-2] and 0 <= c < out.shape[-1]):
            raise ValueError(f"position {(r, c)} is outside the output {tuple(out.shape[-2:])}")
        (grad,) = torch.autograd.grad(out[:, :, r, c].sum(), x)
    return grad.abs().sum(1).mean(0).detach().cpu()


def receptive_field_stats(erf: torch.Tensor, mass: float = 0.9) -> dict[str, float]:
    """Numbers that describe an ERF map [H, W] (from :func:`effective_receptive_field`).

    ``extent``: side of the bounding box of the non-zero pixels (the measured theoretical RF,
    clipped by the image); ``holes``: share of that box whose gradient is exactly zero
    (dilation's "gridding"); ``mass_side``: side of the smallest square around the peak's
    centre of mass holding ``mass`` of the total gradient (Luo et al.: far smaller than the
    theoretical RF, and Gaussian-shaped).
    """
    if erf.dim() != 2:
        raise ValueError(f"erf must be a 2-D map [H, W], got shape {tuple(erf.shape)}")
    total = float(erf.sum())
    if total <= 0:
        raise ValueError("the ERF is zero everywhere: the output does not depend on the input")
    support = erf > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    box = support[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    ys, xs = torch.meshgrid(torch.arange(erf.shape[0]), torch.arange(erf.shape[1]),
                            indexing="ij")
    cy = float((erf * ys).sum() / total)
    cx = float((erf * xs).sum() / total)
    chebyshev = torch.maximum((ys - round(cy)).abs(), (xs - round(cx)).abs())
    by_ring = torch.bincount(chebyshev.flatten(), weights=erf.flatten().double())
    radius = int(torch.searchsorted(torch.cumsum(by_ring, 0) / by_ring.sum(),
                                    torch.tensor([mass], dtype=torch.float64)).item())
    return {
        "extent": int(max(box.shape)),
        "holes": float(1.0 - box.float().mean()),
        "mass_side": 2 * radius + 1,
    }


__all__ = [
    "conv_output_size",
    "receptive_field",
    "dilated_receptive_field",
    "conv_stack",
    "effective_receptive_field",
    "receptive_field_stats",
]
