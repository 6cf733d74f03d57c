"""Large (multispectral) images: segment them tile by tile, with overlap, as remote sensing does.

A satellite scene of 10 000 × 10 000 pixels and a dozen spectral bands does not fit through a
network in one pass. The survey's applications section (Minaee et al. 2021, Sec. 7) names
this challenge; the usual answer is U-Net's *overlap-tile* strategy (Ronneberger et al. 2015,
Fig. 2): run the network on overlapping tiles and keep, of each tile, only the part far from
its border, where the prediction saw enough context. Without overlap, pixels next to a tile's
border are predicted from zero padding instead of their real neighbours: *seams* appear.

* :func:`tile_starts` — where the tiles start along one axis (the last one flush with the end);
* :func:`predict_tiled` — the logits of a whole image assembled from tiles, each pixel taken
  from the tile whose centre is nearest (the border between two tiles sits in the middle of
  their overlap);
* :func:`mosaic` and :func:`spectral_bands` — a large scene made of many shapes-world images,
  and extra "spectral" bands in which each class has its own signature (its reflectance),
  as in multispectral remote sensing.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .runtime import evaluating

__all__ = ["mosaic", "predict_tiled", "spectral_bands", "tile_starts"]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start positions of tiles of side ``tile`` covering ``[0, length)``, consecutive tiles
    sharing at least ``overlap`` pixels; the last tile ends at ``length``."""
    if tile < 1 or length < 1:
        raise ValueError(f"tile and length must be >= 1, got tile={tile}, length={length}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile={tile}), got {overlap}")
    if tile >= length:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    stride = (tile - overlap)
    starts = [min(i * stride, length - tile) for i in range(count)]
    return sorted(set(starts))


def _owned(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """The range each tile is trusted for: between the midpoints of its overlaps."""
    middles = [(nxt + cur + tile) // 2 for cur, nxt in zip(starts, starts[1:], strict=False)]
    borders = [0, *middles, length]
    return list(zip(borders[:-1], borders[1:], strict=True))


def predict_tiled(model: nn.Module, image: torch.Tensor, tile: int, overlap: int,
                  batch_size: int = 8) -> torch.Tensor:
    """Logits ``[K, H, W]`` of ``image`` ``[C, H, W]`` computed on overlapping tiles.

    Each tile ``[C, tile, tile]`` goes through ``model`` (in eval mode, without gradients,
    ``batch_size`` tiles at a time); of each tile only the pixels it *owns* are kept: those
    nearer to its centre than to a neighbour's (half of each overlap to either side). With
    ``overlap`` at least twice the distance over which padding disturbs the model, the result
    equals the prediction on the whole image at once — provided every tile starts at a
    multiple of the model's total stride (choose ``tile``, ``overlap`` and the image side as
    multiples of it), so that its strided layers sample the same pixels as in one pass.
    """
    if image.dim() != 3:
        raise ValueError(f"image must be [C, H, W], got {tuple(image.shape)}")
    _, height, width = image.shape
    tile_h, tile_w = min(tile, height), min(tile, width)
    rows = tile_starts(height, tile_h, min(overlap, tile_h - 1))
    cols = tile_starts(width, tile_w, min(overlap, tile_w - 1))
    row_owned, col_owned = _owned(rows, tile_h, height), _owned(cols, tile_w, width)
    jobs = [(r, c, ro, co) for r, ro in zip(rows, row_owned, strict=True)
            for c, co in zip(cols, col_owned, strict=True)]
    result: torch.Tensor | None = None
    with evaluating(model):
        for first in range(0, len(jobs), batch_size):
            chunk = jobs[first:first + batch_size]
            tiles = torch.stack([image[:, r:r + tile_h, c:c + tile_w] for r, c, _, _ in chunk])
            out = model(tiles)
            logits = out["out"] if isinstance(out, dict) else out
            if result is None:
                result = logits.new_empty(logits.shape[1], height, width)
            for scores, (r, c, (r0, r1), (c0, c1)) in zip(logits, chunk, strict=True):
                result[:, r0:r1, c0:c1] = scores[:, r0 - r:r1 - r, c0 - c:c1 - c]
    assert result is not None  # at least one tile always exists
    return result


def mosaic(images: torch.Tensor, masks: torch.Tensor, grid: int) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
    """A large scene from ``grid * grid`` images ``[N, C, s, s]`` and masks ``[N, s, s]``
    laid out row by row: image ``[C, grid*s, grid*s]``, mask ``[grid*s, grid*s]``."""
    if images.dim() != 4 or masks.shape != images.shape[:1] + images.shape[2:]:
        raise ValueError(f"need images [N, C, s, s] and masks [N, s, s], got "
                         f"{tuple(images.shape)} and {tuple(masks.shape)}")
    if len(images) < grid * grid:
        raise ValueError(f"a {grid}x{grid} mosaic needs {grid * grid} images, got {len(images)}")
    n, c, h, w = images[: grid * grid].shape
    big = images[: grid * grid].reshape(grid, grid, c, h, w).permute(2, 0, 3, 1, 4)
    big_mask = masks[: grid * grid].reshape(grid, grid, h, w).permute(0, 2, 1, 3)
    return big.reshape(c, grid * h, grid * w), big_mask.reshape(grid * h, grid * w)


def spectral_bands(masks: torch.Tensor, num_classes: int, bands: int, noise: float = 0.1,
                   seed: int = 0) -> torch.Tensor:
    """Extra bands ``[N, bands, H, W]`` in [0, 1]: each class has a reflectance per band
    (drawn once from ``seed``), seen through Gaussian noise of standard deviation ``noise``.

    Concatenated to the RGB image, they make a multispectral image whose extra bands carry
    what colour does not: the material (here: the class). Labels outside
    ``[0, num_classes)`` (the ignore index) get reflectance 0.
    """
    if masks.dim() != 3:
        raise ValueError(f"masks must be [N, H, W], got {tuple(masks.shape)}")
    if bands < 1 or num_classes < 1:
        raise ValueError(f"bands and num_classes must be >= 1, got {bands}, {num_classes}")
    generator = torch.Generator().manual_seed(seed)
    signature = torch.rand(num_classes + 1, bands, generator=generator)
    signature[num_classes] = 0.0
    index = torch.where((masks >= 0) & (masks < num_classes), masks.long(), num_classes)
    clean = signature[index].permute(0, 3, 1, 2)  # [N, bands, H, W]
    noisy = clean + noise * torch.randn(clean.shape, generator=generator)
    return noisy.clamp(0, 1)
