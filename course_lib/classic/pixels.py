"""Segmentation from pixel values alone: grey levels, Otsu's threshold and k-means clustering
(and the input checks every classic method shares)."""

from __future__ import annotations

import numpy as np
import torch

NUM_BINS = 256
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights, as in PIL's "L" mode


def as_tensor(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, torch.Tensor):
        return x.as_subclass(torch.Tensor)  # drop tv_tensors wrappers
    raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def as_float_image(image: torch.Tensor | np.ndarray, name: str = "image") -> torch.Tensor:
    """A float tensor in [0, 1]: integer inputs are divided by 255."""
    t = as_tensor(image, name)
    if t.is_floating_point():
        return t.float()
    if t.dtype == torch.bool:
        return t.float()
    return t.float() / 255.0


def as_chw_image(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A float ``[C, H, W]`` image in [0, 1] from ``[H, W]`` or ``[C, H, W]`` input."""
    t = as_float_image(image)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"image must be [H, W] or [C, H, W], got shape {tuple(t.shape)}")
    return t


def to_gray(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Grey levels ``[H, W]`` in [0, 1] from an RGB ``[3, H, W]`` or grey ``[H, W]``/``[1, H, W]``.

    Extra channels beyond the first three (e.g. a depth channel) are ignored.
    """
    t = as_float_image(image)
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
    t = as_tensor(image, "image")
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
    t = as_tensor(gray_or_hist, "gray_or_hist")
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
    t = as_tensor(image, "image")
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
    t = as_chw_image(image)
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
    h, w = as_tensor(image, "image").shape[-2:]
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
