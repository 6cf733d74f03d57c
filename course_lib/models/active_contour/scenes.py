"""The shapes world repainted flat: the one picture Chan–Vese's model describes exactly.

Chan & Vese model an image as two regions of constant colour plus noise. :func:`flat_world`
keeps the *geometry* of shapes-world scenes (their objects, by the foreground mask) and
repaints them in that model: a dark flat background, every object one flat brighter grey,
Gaussian noise on top. Against it the textured original (same objects) and the microscopy
world's touching cells show where the model stops fitting.
"""

from __future__ import annotations

import torch
from torch import Tensor


def flat_world(foreground: Tensor, noise: float = 0.1, seed: int = 0,
               background: tuple[float, float] = (0.15, 0.35),
               objects: tuple[float, float] = (0.6, 0.85)) -> Tensor:
    """Grey images ``[N, 1, H, W]``: each image's background one grey drawn from
    ``background``, its foreground one grey drawn from ``objects``, plus noise of std
    ``noise``; values clipped to [0, 1].

    Args:
        foreground: bool masks ``[N, H, W]`` (e.g. ``synthetic.foreground(mask)``).
        noise: standard deviation of the Gaussian noise. seed: of the greys and the noise.
    """
    if foreground.dim() != 3 or foreground.dtype != torch.bool:
        raise ValueError(f"foreground must be bool [N, H, W], got {foreground.dtype} "
                         f"{tuple(foreground.shape)}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    g = torch.Generator().manual_seed(seed)
    n = foreground.shape[0]
    low = background[0] + (background[1] - background[0]) * torch.rand(n, 1, 1, generator=g)
    high = objects[0] + (objects[1] - objects[0]) * torch.rand(n, 1, 1, generator=g)
    image = torch.where(foreground, high, low)
    image = image + noise * torch.randn(image.shape, generator=g)
    return image.clamp(0, 1)[:, None]


__all__ = ["flat_world"]
