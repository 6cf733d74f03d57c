"""Classic (pre-deep-learning) segmentation methods, the survey's starting point.

The survey's introduction lists the early methods deep learning replaced: thresholding,
histogram-based grouping, region growing, k-means clustering and watershed methods.
Notebook 00 runs each one on the shapes world and scores it against a small CNN.

Every function here is vectorised with torch: whole-image tensor operations, with Python
loops only over *iterations* of an iterative algorithm (Lloyd steps, dilation steps,
erosion steps), never over pixels. Morphology is done with max-pooling: a 3x3 max-pool
is a dilation with a 3x3 square, and ``-maxpool(-x)`` is an erosion.

Conventions: images are float tensors ``[3, H, W]`` (or ``[H, W]`` grey) with values in
[0, 1], or integer tensors with values 0..255; numpy arrays are accepted too. Masks are
bool ``[H, W]``; label maps are int64 ``[H, W]`` with 0 meaning "no object".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "to_gray",
    "gray_histogram",
    "otsu_threshold",
    "threshold_segment",
    "kmeans_segment",
    "region_growing",
    "seeded_region_growing",
    "border_seeds",
    "best_polarity",
    "majority_foreground",
    "label_components",
    "distance_transform",
    "watershed_split",
]

NUM_BINS = 256
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights, as in PIL's "L" mode


def _as_tensor(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, torch.Tensor):
        return x.as_subclass(torch.Tensor)  # drop tv_tensors wrappers
    raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def _as_float_image(image: torch.Tensor | np.ndarray, name: str = "image") -> torch.Tensor:
    """A float tensor in [0, 1]: integer inputs are divided by 255."""
    t = _as_tensor(image, name)
    if t.is_floating_point():
        return t.float()
    if t.dtype == torch.bool:
        return t.float()
    return t.float() / 255.0


def _as_chw_image(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A float ``[C, H, W]`` image in [0, 1] from ``[H, W]`` or ``[C, H, W]`` input."""
    t = _as_float_image(image)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"image must be [H, W] or [C, H, W], got shape {tuple(t.shape)}")
    return t


def to_gray(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Grey levels ``[H, W]`` in [0, 1] from an RGB ``[3, H, W]`` or grey ``[H, W]``/``[1, H, W]``.

    Extra channels beyond the first three (e.g. a depth channel) are ignored.
    """
    t = _as_float_image(image)
    if t.ndim == 2:
        return t
    if t.ndim != 3:
        raise ValueError(f"image must be [H, W] or [C, H, W], got shape {tuple(t.shape)}")
    if t.shape[0] == 1:
        return t[0]
    if t.shape[0] < 3:
        raise ValueError(f"image must have 1 or >= 3 channels, got {t.shape[0]}")
    w = torch.tensor(_LUMA, dtype=t.dtype, device=t.device).view(3, 1, 1)
    return (t[:3] * w).sum(0)


def _bin_indices(gray: torch.Tensor) -> torch.Tensor:
    """Bin index 0..255 of each grey value: floats in [0,1] → floor(256 x), ints as they are."""
    if gray.is_floating_point():
        return (gray * NUM_BINS).floor().clamp(0, NUM_BINS - 1).long()
    return gray.long().clamp(0, NUM_BINS - 1)


def gray_histogram(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The 256-bin grey-level histogram (float64 counts) of an image.

    Float images in [0, 1] fall in bin ``floor(256 x)`` (so ``j/255`` lands in bin ``j``);
    integer images use their value 0..255 as the bin.
    """
    t = _as_tensor(image, "image")
    gray = to_gray(t) if t.is_floating_point() or t.ndim == 3 else t
    idx = _bin_indices(gray).flatten()
    return torch.bincount(idx, minlength=NUM_BINS).double()


def _otsu_bin(hist: torch.Tensor) -> int:
    """Index k of the best split of a histogram: class 0 = bins 0..k, class 1 = bins k+1.."""
    p = hist.double() / hist.sum()
    levels = torch.arange(len(p), dtype=torch.float64)
    w0 = torch.cumsum(p, 0)  # weight of class 0 for every split k
    mu_k = torch.cumsum(p * levels, 0)  # first moment of class 0
    mu_t = mu_k[-1]
    w1 = 1.0 - w0
    valid = (w0 > 1e-12) & (w1 > 1e-12)
    # between-class variance sigma_B^2(k) = (mu_T w0 - mu_k)^2 / (w0 w1), Otsu's eq. (18)
    sigma_b = torch.where(valid, (mu_t * w0 - mu_k) ** 2 / (w0 * w1).clamp_min(1e-300), -1.0)
    if not bool(valid.any()):  # a single grey level: nothing to split, nothing is foreground
        return int(torch.nonzero(hist > 0)[-1])
    return int(torch.argmax(sigma_b))  # first maximum on ties


def otsu_threshold(gray_or_hist: torch.Tensor | np.ndarray) -> float:
    """Otsu's threshold: the split maximising the between-class variance of a histogram.

    Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. SMC 1979.

    For every candidate split ``k`` of the 256-bin histogram the class weights
    ``w0(k) = sum_{i<=k} p_i``, ``w1 = 1 - w0`` and the class-0 moment
    ``mu(k) = sum_{i<=k} i p_i`` come from cumulative sums, so all 256 candidates are
    scored at once: ``sigma_B^2(k) = (mu_T w0(k) - mu(k))^2 / (w0(k) w1(k))``.

    Args:
        gray_or_hist: a 1-D histogram of length 256 (counts), or an image: float in [0, 1]
            (RGB ``[3, H, W]`` is converted to grey) or integer 0..255.

    Returns:
        For a histogram, the bin index ``k`` (class 0 is bins ``0..k``). For an integer
        image, the same ``k`` in grey levels. For a float image, the upper edge of bin
        ``k``, ``(k + 1) / 256``. In every case the foreground is ``value > threshold``.
        Ties between splits go to the lowest ``k``.
    """
    t = _as_tensor(gray_or_hist, "gray_or_hist")
    if t.ndim == 1:
        if len(t) != NUM_BINS:
            raise ValueError(f"a histogram must have {NUM_BINS} bins, got {len(t)}")
        if bool((t < 0).any()) or float(t.sum()) <= 0:
            raise ValueError("a histogram must hold non-negative counts with a positive sum")
        return float(_otsu_bin(t))
    if t.numel() == 0:
        raise ValueError("otsu_threshold got an empty image")
    k = _otsu_bin(gray_histogram(t))
    if t.is_floating_point():
        return (k + 1) / NUM_BINS
    return float(k)


def threshold_segment(
    image: torch.Tensor | np.ndarray, threshold: float | None = None, invert: bool = False
) -> torch.Tensor:
    """Global thresholding: bool mask ``gray > threshold`` (Otsu's threshold when None).

    The classic single-threshold segmentation (see Sezgin & Sankur, "Survey over image
    thresholding techniques", J. Electronic Imaging 2004). ``invert=True`` returns the dark
    side instead: thresholding alone cannot know whether objects are brighter or darker
    than the background.
    """
    t = _as_tensor(image, "image")
    if threshold is None:
        threshold = otsu_threshold(t)
    if t.is_floating_point() or t.ndim == 3:
        gray = to_gray(t)
        if not t.is_floating_point():  # integer RGB: compare in grey levels 0..255
            gray = gray * 255.0
    else:
        gray = t.float()
    mask = gray > threshold
    return ~mask if invert else mask


def _features(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-pixel colour features ``[H*W, C]`` from ``[C, H, W]`` or ``[H, W]``."""
    t = _as_chw_image(image)
    return t.reshape(t.shape[0], -1).T.contiguous()


def kmeans_segment(
    image: torch.Tensor | np.ndarray, k: int = 2, iters: int = 20, seed: int = 0
) -> torch.Tensor:
    """k-means colour clustering: a label map ``[H, W]`` with values 0..k-1.

    Lloyd, "Least squares quantization in PCM", IEEE Trans. IT 1982 (written 1957);
    MacQueen, "Some methods for classification and analysis of multivariate observations",
    1967. Initialised with k-means++ (Arthur & Vassilvitskii, SODA 2007) from a seeded
    generator, so the result is reproducible. Each Lloyd step assigns every pixel to its
    nearest centre (one ``torch.cdist``) and moves each centre to the mean of its pixels
    (one ``index_add_``); it stops early when no assignment changes. Cluster labels are
    sorted by centre brightness (label 0 = darkest), so they do not depend on the seed's
    order. Clusters carry no meaning: deciding which are "object" is a separate step.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    feats = _features(image)
    h, w = _as_tensor(image, "image").shape[-2:]
    n = feats.shape[0]
    if k > n:
        raise ValueError(f"k={k} is larger than the number of pixels ({n})")
    gen = torch.Generator().manual_seed(seed)
    # k-means++: each new centre drawn with probability proportional to squared distance
    centres = feats[torch.randint(n, (1,), generator=gen)]
    for _ in range(1, k):
        d2 = torch.cdist(feats, centres).min(dim=1).values ** 2
        if float(d2.sum()) <= 0:  # fewer distinct colours than k: duplicate a centre
            centres = torch.cat([centres, centres[:1]])
            continue
        centres = torch.cat([centres, feats[torch.multinomial(d2, 1, generator=gen)]])
    assign = torch.full((n,), -1, dtype=torch.long)
    for _ in range(iters):
        new_assign = torch.cdist(feats, centres).argmin(dim=1)
        if torch.equal(new_assign, assign):
            break
        assign = new_assign
        sums = torch.zeros_like(centres).index_add_(0, assign, feats)
        counts = torch.bincount(assign, minlength=k).to(feats.dtype)
        filled = counts > 0  # an empty cluster keeps its old centre
        centres = torch.where(filled[:, None], sums / counts.clamp_min(1)[:, None], centres)
    order = torch.argsort(centres.sum(dim=1), stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k)
    return rank[assign].reshape(h, w)


def _dilate(mask: torch.Tensor, connectivity: int = 8) -> torch.Tensor:
    """Binary dilation of a bool ``[H, W]`` mask with a 3x3 square (8) or a cross (4)."""
    return _neighbour_max(mask[None, None].float(), connectivity) > 0


def _neighbour_max(x: torch.Tensor, connectivity: int) -> torch.Tensor:
    """Max over each pixel's 3x3 square (8) or cross (4) neighbourhood of ``x [1, 1, H, W]``."""
    if connectivity == 8:
        out = F.max_pool2d(x, 3, stride=1, padding=1)
    else:
        out = torch.maximum(
            F.max_pool2d(x, (3, 1), stride=1, padding=(1, 0)),
            F.max_pool2d(x, (1, 3), stride=1, padding=(0, 1)),
        )
    return out[0, 0]


def _check_connectivity(connectivity: int) -> None:
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")


def _seed_mask(
    seeds: torch.Tensor | np.ndarray | Sequence[tuple[int, int]], h: int, w: int
) -> torch.Tensor:
    """A bool ``[H, W]`` seed mask from a mask or a list of ``(row, col)`` pixels."""
    if isinstance(seeds, (torch.Tensor, np.ndarray)) and seeds.dtype in (torch.bool, np.bool_):
        t = _as_tensor(seeds, "seeds")
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
    _check_connectivity(connectivity)
    img = _as_chw_image(image)
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
        grown = region | (_dilate(region, connectivity) & ok)
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
    _check_connectivity(connectivity)
    img = _as_chw_image(image)
    c, h, w = img.shape
    labels = _as_tensor(seed_labels, "seed_labels")
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
        hi = _neighbour_max(x, connectivity)
        lo = -_neighbour_max(-torch.where(x > 0, x, big), connectivity)
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


def best_polarity(mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mask`` or its complement, whichever agrees with the bool ``target`` on more pixels.

    An *oracle* step (it looks at the ground truth): a threshold or a 2-cluster split
    separates the image in two but cannot say which side is the object. Giving the classic
    method the better side per image makes its score an upper bound.
    """
    mask, target = _as_tensor(mask, "mask").bool(), _as_tensor(target, "target").bool()
    if mask.shape != target.shape:
        raise ValueError(f"mask {tuple(mask.shape)} and target {tuple(target.shape)} differ")
    agree = (mask == target).sum()
    return mask if 2 * int(agree) >= target.numel() else ~mask


def majority_foreground(labels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Foreground mask from a label map: a cluster/region is foreground when most of its
    pixels are foreground in the bool ``target`` (an *oracle* assignment, per image).

    Clusters and regions carry no class; this maps them to the task's labels as well as
    any assignment can on that image, so the score is an upper bound for the method.
    """
    labels, target = _as_tensor(labels, "labels").long(), _as_tensor(target, "target").bool()
    if labels.shape != target.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and target {tuple(target.shape)} differ")
    if int(labels.min()) < 0:
        raise ValueError("labels must be >= 0")
    k = int(labels.max()) + 1
    counts = torch.bincount(labels.flatten() * 2 + target.flatten().long(), minlength=2 * k)
    counts = counts.view(k, 2)
    return (counts[:, 1] > counts[:, 0])[labels]


def label_components(mask: torch.Tensor | np.ndarray, connectivity: int = 8) -> torch.Tensor:
    """Connected components of a bool mask: int64 ``[H, W]``, 0 = background, 1..n.

    Vectorised label propagation: every foreground pixel starts with its own id and each
    iteration takes the maximum id in its neighbourhood (inside the mask) until nothing
    changes; the surviving ids are renumbered 1..n in raster order of their first pixel.
    """
    _check_connectivity(connectivity)
    m = _as_tensor(mask, "mask").bool()
    if m.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {tuple(m.shape)}")
    h, w = m.shape
    ids = torch.arange(1, h * w + 1, dtype=torch.float64).reshape(h, w) * m
    while True:
        x = ids[None, None]
        if connectivity == 8:
            grown = F.max_pool2d(x, 3, stride=1, padding=1)[0, 0]
        else:
            grown = torch.maximum(
                F.max_pool2d(x, (3, 1), stride=1, padding=(1, 0)),
                F.max_pool2d(x, (1, 3), stride=1, padding=(0, 1)),
            )[0, 0]
        grown = grown * m
        if torch.equal(grown, ids):
            break
        ids = grown
    return _renumber(ids.long())


def _renumber(labels: torch.Tensor) -> torch.Tensor:
    """Map the non-zero values of a label map to 1..n, ordered by their first raster pixel."""
    flat = labels.flatten()
    values = torch.unique(flat[flat > 0])
    if len(values) == 0:
        return torch.zeros_like(labels)
    positions = torch.arange(len(flat))
    first = torch.full((len(values),), len(flat), dtype=torch.long)
    idx = torch.searchsorted(values, flat[flat > 0])
    first = first.scatter_reduce(0, idx, positions[flat > 0], reduce="amin")
    order = torch.argsort(first)
    new_id = torch.empty_like(order)
    new_id[order] = torch.arange(1, len(values) + 1)
    out = torch.zeros_like(flat)
    out[flat > 0] = new_id[idx]
    return out.reshape(labels.shape)


def distance_transform(mask: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Distance of each mask pixel to the background by iterated erosion: float ``[H, W]``.

    A pixel's value is the number of erosions it survives (plus one). Erosions alternate a
    3x3 square and a cross, which approximates the Euclidean distance by an octagon
    (Rosenfeld & Pfaltz, "Distance functions on digital pictures", Pattern Recognition
    1968). Pixels outside the image count as background.
    """
    m = _as_tensor(mask, "mask").bool()
    if m.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {tuple(m.shape)}")
    dist = torch.zeros(m.shape, dtype=torch.float32)
    current = m
    step = 0
    while bool(current.any()):
        dist += current.float()
        # erosion = complement of the dilation of the complement (border counts as background)
        bg = F.pad((~current)[None, None].float(), (1, 1, 1, 1), value=1.0)
        if step % 2 == 0:
            grown = F.max_pool2d(bg, 3, stride=1)
        else:
            grown = torch.maximum(
                F.max_pool2d(bg, (3, 1), stride=1)[..., :, 1:-1],
                F.max_pool2d(bg, (1, 3), stride=1)[..., 1:-1, :],
            )
        current = current & (grown[0, 0] == 0)
        step += 1
    return dist


def _reconstruct_by_dilation(marker: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Grey-level reconstruction: dilate ``marker`` under ``mask`` until it stops changing."""
    current = torch.minimum(marker, mask)
    while True:
        grown = torch.minimum(F.max_pool2d(current[None, None], 3, stride=1, padding=1)[0, 0],
                              mask)
        if torch.equal(grown, current):
            return current
        current = grown


def watershed_split(
    binary_mask: torch.Tensor | np.ndarray, h: float = 2.0, smooth: int = 0
) -> torch.Tensor:
    """Split touching objects of a binary mask with a marker-based watershed: int64 ``[H, W]``.

    Beucher & Lantuéjoul, "Use of watersheds in contour detection", 1979; flooding as in
    Vincent & Soille, "Watersheds in digital spaces", IEEE TPAMI 1991; markers from the
    distance transform as in Beucher & Meyer (1993). Three steps, all tensor ops:

    1. distance transform by iterated erosion (:func:`distance_transform`): the centre of
       each blob is a hill, the neck between two touching blobs a saddle; optionally
       smoothed by a ``(2 smooth + 1)`` box filter;
    2. markers: the *h-maxima* (Soille, "Morphological Image Analysis", 1999) — hills that
       rise at least ``h`` above the saddle joining them to any higher hill. They are the
       tops where ``dist - R(dist - h) >= h``, with ``R`` the reconstruction by dilation
       (iterated 3x3 max-pool capped by ``dist``); plateaus and shallow bumps on a ridge
       (common with a digital distance) therefore give no extra marker;
    3. flooding from the highest level down: at each level the labelled region grows by
       iterated dilation into the mask pixels at that level or above, so two markers'
       floods meet at the neck. Mask pixels no flood reaches get labels of their own.

    Returns 0 for background and 1..n for the objects (numbered in raster order).
    """
    if h <= 0:
        raise ValueError(f"h must be > 0, got {h}")
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0, got {smooth}")
    m = _as_tensor(binary_mask, "binary_mask").bool()
    if m.ndim != 2:
        raise ValueError(f"binary_mask must be [H, W], got shape {tuple(m.shape)}")
    dist = distance_transform(m)
    if smooth > 0:
        k = 2 * smooth + 1
        dist = F.avg_pool2d(dist[None, None], k, stride=1, padding=smooth,
                            count_include_pad=False)[0, 0] * m
    dome = dist - _reconstruct_by_dilation(dist - h, dist)
    markers = label_components(m & (dome >= h - 1e-4))
    labels = markers.clone()
    levels = torch.unique(dist[m]).flip(0)  # from the top of the relief down
    for level in levels:
        allowed = m & (dist >= level)
        while True:
            grown = F.max_pool2d(labels[None, None].float(), 3, stride=1, padding=1)[0, 0]
            new = (labels == 0) & allowed & (grown > 0)
            if not bool(new.any()):
                break
            labels = torch.where(new, grown.long(), labels)
    orphans = m & (labels == 0)
    if bool(orphans.any()):
        extra = label_components(orphans)
        labels = torch.where(extra > 0, extra + labels.max(), labels)
    return _renumber(labels)
