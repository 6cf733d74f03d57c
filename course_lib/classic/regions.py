"""Region growing: one region from seeds, or competing regions from labelled seeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .morphology import check_connectivity, dilate, neighbour_max
from .pixels import as_chw_image, as_tensor


def _seed_mask(
    seeds: torch.Tensor | np.ndarray | Sequence[tuple[int, int]], h: int, w: int
) -> torch.Tensor:
    """A bool ``[H, W]`` seed mask from a mask or a list of ``(row, col)`` pixels."""
    if isinstance(seeds, (torch.Tensor, np.ndarray)) and seeds.dtype in (torch.bool, np.bool_):
        t = as_tensor(seeds, "seeds")
        if tuple(t.shape) != (h, w):
            raise ValueError(f"a seed mask must be {h}x{w} like the image, got {tuple(t.shape)}")
        return t
    coords = torch.as_tensor(np.asarray(seeds, dtype=np.int64)).reshape(-1, 2)
    if len(coords) == 0:
        raise ValueError("region_growing needs at least one seed")
    rows, cols = coords[:, 0], coords[:, 1]
    if bool(((rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)).any()):
        raise ValueError(
            f"seed coordinates must lie inside the {h}x{w} image, got {coords.tolist()}"
        )
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[rows, cols] = True
    return mask


def region_growing(
    image: torch.Tensor | np.ndarray,
    seeds: torch.Tensor | np.ndarray | Sequence[tuple[int, int]],
    tol: float = 0.1,
    criterion: str = "mean",
    connectivity: int = 4,
    max_iters: int | None = None,
) -> torch.Tensor:
    """Seeded region growing by iterated dilation: a bool mask ``[H, W]``.

    Adams & Bischof, "Seeded region growing", IEEE TPAMI 1994 (the idea goes back to
    Zucker, "Region growing: childhood and adolescence", CGIP 1976). Starting from the
    seeds, every iteration dilates the region by one pixel and keeps the new pixels whose
    colour passes the homogeneity test; growth stops when an iteration adds nothing, so a
    strong edge (a colour jump larger than ``tol``) stops it.

    Args:
        image: float ``[C, H, W]`` / ``[H, W]`` in [0, 1] (integers are divided by 255).
        seeds: a bool mask ``[H, W]`` or a list of ``(row, col)`` pixels.
        tol: largest allowed colour distance (Euclidean, in [0, 1] units).
        criterion: ``"mean"`` compares a candidate with the mean colour of the region so
            far (recomputed each iteration, as in Adams & Bischof); ``"neighbour"``
            compares it with an adjacent pixel already in the region ("flood fill with
            tolerance": follows slow colour gradients).
        connectivity: 4 or 8 neighbours.
        max_iters: at most this many growth steps (default ``H + W`` times a few).
    """
    if criterion not in ("mean", "neighbour"):
        raise ValueError(f"criterion must be 'mean' or 'neighbour', got {criterion!r}")
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    check_connectivity(connectivity)
    img = as_chw_image(image)
    _, h, w = img.shape
    region = _seed_mask(seeds, h, w)
    if not bool(region.any()):
        raise ValueError("region_growing needs at least one seed pixel")
    limit = max_iters if max_iters is not None else 4 * (h + w)
    if criterion == "neighbour":
        # for each of the neighbour offsets, colour distance of a pixel to that neighbour
        offsets = [(-1, 0), (1, 0), (0, -1), (0, 1)]
        if connectivity == 8:
            offsets += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
        pad = F.pad(img[None], (1, 1, 1, 1), mode="replicate")[0]
        close = torch.stack([
            (img - pad[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]).norm(dim=0) <= tol
            for dy, dx in offsets
        ])  # [O, H, W]: pixel is close to its neighbour at offset o
        for _ in range(limit):
            rp = F.pad(region[None, None].float(), (1, 1, 1, 1))[0, 0] > 0
            neighbour_in = torch.stack([rp[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                                        for dy, dx in offsets])
            grown = region | (neighbour_in & close).any(dim=0)
            if torch.equal(grown, region):
                break
            region = grown
        return region
    flat = img.reshape(img.shape[0], -1)
    for _ in range(limit):
        mean = flat[:, region.flatten()].mean(dim=1).view(-1, 1, 1)
        ok = (img - mean).norm(dim=0) <= tol
        grown = region | (dilate(region, connectivity) & ok)
        if torch.equal(grown, region):
            break
        region = grown
    return region


def seeded_region_growing(
    image: torch.Tensor | np.ndarray,
    seed_labels: torch.Tensor | np.ndarray,
    tol: float = 0.1,
    connectivity: int = 4,
    max_iters: int | None = None,
) -> torch.Tensor:
    """Grow several labelled seed regions at once: an int64 label map ``[H, W]`` (0 = unreached).

    Adams & Bischof, "Seeded region growing", IEEE TPAMI 1994. Every iteration, each region
    ``l`` proposes the unlabelled pixels next to it (a dilation of its one-hot mask, all
    regions in one max-pool); a proposed pixel joins the region whose mean colour is nearest,
    if that distance is at most ``tol``; then the region means are updated (one
    ``index_add_``). Growth stops when no pixel joins.

    Args:
        image: float ``[C, H, W]`` / ``[H, W]`` in [0, 1] (integers are divided by 255).
        seed_labels: int ``[H, W]``: 0 = no seed, ``1..L`` = the seed regions.
        tol: largest allowed Euclidean colour distance to a region's mean.
        connectivity: 4 or 8 neighbours.
        max_iters: at most this many growth steps (default ``4 (H + W)``).
    """
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    check_connectivity(connectivity)
    img = as_chw_image(image)
    c, h, w = img.shape
    labels = as_tensor(seed_labels, "seed_labels")
    if labels.is_floating_point() or labels.dtype == torch.bool or tuple(labels.shape) != (h, w):
        raise ValueError(
            f"seed_labels must be an integer label map of shape {(h, w)}, got "
            f"{labels.dtype} {tuple(labels.shape)}"
        )
    labels = labels.long()
    if int(labels.min()) < 0:
        raise ValueError("seed_labels must be >= 0 (0 = no seed)")
    num = int(labels.max())
    if num == 0:
        raise ValueError("seeded_region_growing needs at least one seed pixel (label >= 1)")
    flat = img.reshape(c, -1).T  # [H*W, C]
    limit = max_iters if max_iters is not None else 4 * (h + w)
    big = float(num + 1)
    for _ in range(limit):
        idx = labels.flatten()
        sums = torch.zeros(num + 1, c).index_add_(0, idx, flat)
        counts = torch.bincount(idx, minlength=num + 1).clamp_min(1)[:, None]
        means = sums / counts  # [L + 1, C]; row 0 is unused
        # the highest and the lowest label next to each pixel (two max-pools of one map)
        x = labels[None, None].float()
        hi = neighbour_max(x, connectivity)
        lo = -neighbour_max(-torch.where(x > 0, x, big), connectivity)
        lo = torch.where(lo >= big, 0.0, lo)
        best_d = torch.full((h * w,), torch.inf)
        best_l = torch.zeros(h * w, dtype=torch.long)
        for cand in (hi, lo):  # two candidates: a pixel between two regions picks the nearer
            cl = cand.flatten().long()
            d = (flat - means[cl]).norm(dim=1)
            d = torch.where(cl > 0, d, torch.inf)
            better = d < best_d
            best_d = torch.where(better, d, best_d)
            best_l = torch.where(better, cl, best_l)
        join = (idx == 0) & (best_d <= tol)
        if not bool(join.any()):
            break
        labels = torch.where(join, best_l, idx).reshape(h, w)
    return labels


def border_seeds(height: int, width: int, spacing: int = 8) -> torch.Tensor:
    """Seed label map for background growing: one seed every ``spacing`` pixels along the
    top, left and right image borders, each with its own label (int64 ``[H, W]``).

    The classic assumption behind it: the background ("stuff") reaches the image border
    while objects mostly do not. The bottom border is left out so that each stuff band
    (sky, ground bands) is reached from the sides and the top.
    """
    if height < 1 or width < 1 or spacing < 1:
        raise ValueError(f"need height, width, spacing >= 1, got {height}, {width}, {spacing}")
    seeds = torch.zeros(height, width, dtype=torch.long)
    rows = torch.arange(spacing // 2, height, spacing)
    cols = torch.arange(spacing // 2, width, spacing)
    n_r, n_c = len(rows), len(cols)
    seeds[rows, 0] = torch.arange(1, n_r + 1)
    seeds[rows, width - 1] = torch.arange(n_r + 1, 2 * n_r + 1)
    seeds[0, cols] = torch.arange(2 * n_r + 1, 2 * n_r + n_c + 1)
    return seeds
