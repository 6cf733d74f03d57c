"""CNN + graphical models: the fully connected (dense) CRF and CRF-as-RNN.

Chen et al., "Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected
CRFs", ICLR 2015 (DeepLab v1, the survey's 带有图形模型的卷积神经网络, Fig. 10 of the survey):
the CNN's per-pixel class scores are the *unary* potentials of a CRF in which every pixel is
connected to every other one (Krähenbühl & Koltun, NIPS 2011). The energy of a labelling x is

    E(x) = Σ_i ψ_u(x_i) + Σ_{i<j} μ(x_i, x_j) Σ_m w_m k_m(f_i, f_j),

with ψ_u = -logits, two Gaussian kernels on per-pixel features f,

    k_gauss(i, j) = exp(-|p_i - p_j|² / 2θ_γ²)                          (smoothness)
    k_bilat(i, j) = exp(-|p_i - p_j|² / 2θ_α² - |I_i - I_j|² / 2θ_β²)  (appearance)

and the Potts compatibility μ(l, l') = [l ≠ l'] (or a learned K x K matrix). Mean-field
inference replaces the exact posterior by a product Q of per-pixel distributions and
iterates (Krähenbühl & Koltun, Algorithm 1)::

    Q ← softmax(logits)
    repeat:  m_k(i, l) = Σ_{j≠i} k_m(f_i, f_j) Q_j(l)           message passing (filtering)
             p(i, l)   = Σ_l' μ(l, l') Σ_m w_m m_m(i, l')      weighting + compatibility
             Q ← softmax(logits - p)                           unary addition + normalisation

Message passing is the only expensive step. Two implementations:

- ``method="exact"``: every pair of pixels, O(P²) time for P pixels (memory bounded by
  chunking) — the reference for small images;
- ``method="window"`` (Teichmann & Cipolla, "Convolutional CRFs", 2018): the sum over j is
  truncated to a ``window x window`` neighbourhood of i, computed with ``F.unfold`` (a
  convolution whose filter is different at every pixel), optionally on a grid downsampled by
  ``blur`` (features and Q average-pooled, messages scaled by blur² and upsampled
  bilinearly). The approximation drops every pair farther apart than ``window // 2`` grid
  cells; it is exact when the window covers the whole image and ``blur = 1`` (tested), and
  its error for smaller windows is measured in ``tests/test_crf.py`` and notebook 06.
  (Krähenbühl & Koltun used the permutohedral lattice instead; no pure-PyTorch version is
  fast enough to be worth it here.)

Zheng et al., "Conditional Random Fields as Recurrent Neural Networks", ICCV 2015 (Fig. 1–2):
the same mean-field iterations unrolled as layers of a network, with the kernel weights and the
compatibility matrix learned by back-propagation, end to end with the FCN beneath
(:class:`CRFasRNN`, :class:`FCNCRFasRNN`, registered as ``"crfrnn"``).

Hyper-parameters (MODEL_REFERENCE.md): DeepLab (kazuto1011/deeplab-pytorch) uses 10
iterations, w_gauss 3 with θ_γ 1, w_bilat 4 with θ_α 67 and θ_β 3; CRF-as-RNN uses 5
iterations, w_gauss 3, w_bilat 5, θ_α 160, θ_β 3, θ_γ 3. Positions are in pixels and colours
in 0..255 (images in [0, 1] are multiplied by ``image_scale=255``). Those values were chosen
for ~500-pixel PASCAL images: :meth:`CRFParams.scaled` rescales the position stds for
smaller images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import evaluating
from . import build_model, register_model

METHODS = ("exact", "window")
_CACHE_LIMIT = 2**25  # kernel-matrix elements kept in memory by the exact method


@dataclass(frozen=True)
class CRFParams:
    """Hyper-parameters of the dense CRF (position stds in pixels, colour std in 0..255)."""

    iterations: int = 10
    w_gauss: float = 3.0  # weight of the smoothness kernel
    theta_gamma: float = 1.0  # its position std
    w_bilateral: float = 4.0  # weight of the appearance kernel
    theta_alpha: float = 67.0  # its position std
    theta_beta: float = 3.0  # its colour std

    def replace(self, **changes: float) -> CRFParams:
        return dataclasses.replace(self, **changes)

    def scaled(self, image_size: int, reference_size: int = 500) -> CRFParams:
        """Position stds rescaled from ``reference_size``-pixel images to ``image_size``."""
        r = image_size / reference_size
        return self.replace(theta_alpha=self.theta_alpha * r, theta_gamma=self.theta_gamma * r)


DEEPLAB_CRF = CRFParams()  # Chen et al. 2015 as in kazuto1011/deeplab-pytorch
CRFASRNN_CRF = CRFParams(iterations=5, w_gauss=3.0, theta_gamma=3.0, w_bilateral=5.0,
                         theta_alpha=160.0, theta_beta=3.0)  # Zheng et al. 2015


# --------------------------------------------------------------------------------------------
# Features of the two kernels
# --------------------------------------------------------------------------------------------
def _positions(n: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates [n, 2, h, w] (row, column)."""
    ys = torch.arange(h, device=like.device, dtype=like.dtype)
    xs = torch.arange(w, device=like.device, dtype=like.dtype)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))
    return grid.unsqueeze(0).expand(n, -1, -1, -1)


def kernel_features(
    image: torch.Tensor, theta_alpha: float, theta_beta: float, theta_gamma: float,
    image_scale: float = 255.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled features [N, D, H, W] of the smoothness (p/θγ) and appearance ([p/θα, I/θβ]) kernels.

    A kernel is then ``exp(-|f_i - f_j|² / 2)`` of these features.
    """
    if image.dim() != 4:
        raise ValueError(f"image must be [N, C, H, W], got shape {tuple(image.shape)}")
    for name, theta in (("theta_alpha", theta_alpha), ("theta_beta", theta_beta),
                        ("theta_gamma", theta_gamma)):
        if not theta > 0:
            raise ValueError(f"{name} must be > 0, got {theta}")
    n, _, h, w = image.shape
    pos = _positions(n, h, w, image)
    gauss = pos / theta_gamma
    bilateral = torch.cat([pos / theta_alpha, image * (image_scale / theta_beta)], dim=1)
    return gauss, bilateral


# --------------------------------------------------------------------------------------------
# Message passing: Σ_j k(f_i, f_j) Q_j, exactly or in a truncated window
# --------------------------------------------------------------------------------------------
class ExactFilter:
    """All-pairs Gaussian filtering, O(P²): the definition, for small images."""

    def __init__(self, features: torch.Tensor, chunk: int = 2**22) -> None:
        n, d, h, w = features.shape
        self.size = (h, w)
        self.f = features.reshape(n, d, h * w).transpose(1, 2)  # [N, P, D]
        p = h * w
        self.rows = max(1, chunk // (p * d))  # rows per chunk of the pairwise differences
        self.matrix = self._kernel_rows(0, p) if n * p * p <= _CACHE_LIMIT else None

    def _kernel_rows(self, start: int, stop: int) -> torch.Tensor:
        """k(f_i, f_j) for i in [start, stop) and all j: [N, stop - start, P]."""
        blocks = []
        for s in range(start, stop, self.rows):
            diff = self.f[:, s:min(stop, s + self.rows), None, :] - self.f[:, None, :, :]
            blocks.append(torch.exp(-0.5 * diff.pow(2).sum(-1)))
        return torch.cat(blocks, dim=1)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        n, k, h, w = q.shape
        qf = q.reshape(n, k, h * w)
        if self.matrix is not None:
            m = torch.einsum("nij,nkj->nki", self.matrix, qf)
        else:
            p = h * w
            step = max(1, _CACHE_LIMIT // (n * p))
            m = torch.cat([torch.einsum("nij,nkj->nki", self._kernel_rows(s, min(p, s + step)), qf)
                           for s in range(0, p, step)], dim=2)
        return m.reshape(n, k, h, w) - q  # Σ over all j, minus the j = i term (k(f_i, f_i) = 1)


class WindowFilter:
    """ConvCRF filtering: Σ over the ``window x window`` neighbours only, on a coarser grid.

    The kernel values of every pixel's neighbours are computed once with ``F.unfold``
    ([N, window², P]); each mean-field iteration unfolds Q the same way and takes the weighted
    sum over the window — no Python loop over pixels (memory N·K·window²·P per iteration).
    Neighbours outside the image count zero.
    """

    def __init__(self, features: torch.Tensor, window: int = 11, blur: int = 1) -> None:
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be an odd integer >= 1, got {window}")
        if blur < 1:
            raise ValueError(f"blur must be >= 1, got {blur}")
        self.window, self.blur = window, blur
        self.size = tuple(features.shape[-2:])
        f = self._down(features)
        n, d, h, w = f.shape
        self.grid = (h, w)
        pad = window // 2
        neigh = F.unfold(f, window, padding=pad).view(n, d, window * window, h * w)
        inside = F.unfold(torch.ones(1, 1, h, w, dtype=f.dtype, device=f.device), window,
                          padding=pad)  # [1, window², P]: 0 where the neighbour is padding
        d2 = (neigh - f.reshape(n, d, 1, h * w)).pow(2).sum(1)
        self.kernel = torch.exp(-0.5 * d2) * inside  # [N, window², P]

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur == 1:
            return x
        return F.avg_pool2d(x, self.blur, ceil_mode=True, count_include_pad=False)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        n, k = q.shape[:2]
        h, w = self.grid
        # every pixel's window of Q: [N, K, window², P] (im2col; its backward is cheap)
        neigh = F.unfold(self._down(q), self.window, padding=self.window // 2)
        neigh = neigh.view(n, k, self.window * self.window, h * w)
        m = (neigh * self.kernel.unsqueeze(1)).sum(2).view(n, k, h, w)
        if self.blur > 1:  # each coarse cell stands for blur² pixels
            m = F.interpolate(m * self.blur**2, size=self.size, mode="bilinear",
                              align_corners=False)
        return m - q  # remove the j = i term


def make_filter(features: torch.Tensor, method: str = "window", window: int = 11,
                blur: int = 1) -> ExactFilter | WindowFilter:
    """The message-passing operator for ``features`` [N, D, H, W]: ``"exact"`` or ``"window"``."""
    if method == "exact":
        return ExactFilter(features)
    if method == "window":
        return WindowFilter(features, window, blur)
    raise ValueError(f"unknown CRF method {method!r}; valid methods are: {', '.join(METHODS)}")


# --------------------------------------------------------------------------------------------
# Mean-field inference
# --------------------------------------------------------------------------------------------
def potts(num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Potts compatibility μ(l, l') = [l ≠ l'] as a K x K matrix."""
    return 1 - torch.eye(num_classes, dtype=dtype)


def _apply(weight: torch.Tensor | float, m: torch.Tensor) -> torch.Tensor:
    """A scalar weight, or a K x K matrix mixing the class channels of m [N, K, H, W]."""
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return F.conv2d(m, weight[:, :, None, None])  # Σ_k W[l, k] m[k]: a 1x1 convolution
    return weight * m


def mean_field(
    logits: torch.Tensor,
    image: torch.Tensor,
    w_gauss: torch.Tensor | float,
    w_bilateral: torch.Tensor | float,
    compat: torch.Tensor | None = None,
    *,
    iterations: int = 10,
    theta_alpha: float = 67.0,
    theta_beta: float = 3.0,
    theta_gamma: float = 1.0,
    method: str = "window",
    window: int = 11,
    blur: int = 1,
    image_scale: float = 255.0,
    return_history: bool = False,
) -> torch.Tensor | list[torch.Tensor]:
    """Mean-field inference of the dense CRF; returns the final *logits* ``logits - p``.

    ``softmax`` of the result is Q. Weights are scalars (DeepLab) or K x K matrices
    (CRF-as-RNN's learned per-class weights); ``compat`` is a K x K matrix (default Potts).
    With ``return_history`` the list of logits after 0, 1, ..., ``iterations`` updates.
    Works for any batch size and image size; differentiable in every tensor argument.
    """
    if logits.dim() != 4 or image.dim() != 4:
        raise ValueError(f"logits and image must be [N, *, H, W], got {tuple(logits.shape)} "
                         f"and {tuple(image.shape)}")
    if logits.shape[0] != image.shape[0] or logits.shape[2:] != image.shape[2:]:
        raise ValueError(f"logits {tuple(logits.shape)} and image {tuple(image.shape)} differ "
                         "in batch or size")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    image = image.to(logits.dtype)
    k = logits.shape[1]
    compat = potts(k, logits.dtype).to(logits.device) if compat is None else compat
    gauss_f, bilat_f = kernel_features(image, theta_alpha, theta_beta, theta_gamma, image_scale)
    smooth = make_filter(gauss_f, method, window, blur)  # message passing, kernel 1
    appear = make_filter(bilat_f, method, window, blur)  # message passing, kernel 2
    out = logits
    history = [out]
    for _ in range(iterations):
        q = torch.softmax(out, dim=1)  # normalisation
        pairwise = _apply(w_gauss, smooth(q)) + _apply(w_bilateral, appear(q))  # weighting
        pairwise = _apply(compat, pairwise)  # compatibility transform
        out = logits - pairwise  # adding the unary
        history.append(out)
    return history if return_history else out


def dense_crf(
    logits: torch.Tensor,
    image: torch.Tensor,
    params: CRFParams = DEEPLAB_CRF,
    *,
    method: str = "window",
    window: int = 11,
    blur: int = 1,
    compat: torch.Tensor | None = None,
    image_scale: float = 255.0,
    return_history: bool = False,
) -> torch.Tensor | list[torch.Tensor]:
    """DeepLab's post-processing: the dense CRF with fixed ``params``; returns Q [N, K, H, W].

    ``logits`` [N, K, H, W] are the network's scores, ``image`` [N, C, H, W] in [0, 1].
    With ``return_history``, the list of Q after 0..iterations mean-field updates.
    """
    with torch.no_grad():
        result = mean_field(
            logits, image, params.w_gauss, params.w_bilateral, compat,
            iterations=params.iterations, theta_alpha=params.theta_alpha,
            theta_beta=params.theta_beta, theta_gamma=params.theta_gamma, method=method,
            window=window, blur=blur, image_scale=image_scale, return_history=return_history,
        )
    if return_history:
        return [torch.softmax(r, dim=1) for r in result]
    return torch.softmax(result, dim=1)


def refine(
    model: nn.Module, image: torch.Tensor, params: CRFParams | None = None, **crf_kwargs: Any
) -> torch.Tensor:
    """DeepLab v1's post-processing, for any segmentation model: the model's eval-mode scores
    for ``image`` refined by the dense CRF; class probabilities [N, K, H, W].

    ``params`` defaults to DeepLab's CRF (10 iterations, w 3 / θγ 1, w 4 / θα 67 / θβ 3)
    with the position stds rescaled from 500-pixel images to the input size; ``crf_kwargs``
    go to :func:`dense_crf` (``method``, ``window``, ...). A dict output uses ``"out"``.
    The model's modes are restored afterwards.
    """
    with evaluating(model):
        out = model(image)
    logits = out["out"] if isinstance(out, dict) else out
    params = DEEPLAB_CRF.scaled(max(image.shape[-2:])) if params is None else params
    return dense_crf(logits.float(), image.float(), params, **crf_kwargs)


# --------------------------------------------------------------------------------------------
# CRF-as-RNN (Zheng et al. 2015)
# --------------------------------------------------------------------------------------------
class CRFasRNN(nn.Module):
    """Mean-field iterations as a recurrent layer with learned weights (Zheng et al., Fig. 2).

    One iteration = message passing (two filters) → weighting filter outputs (learned K x K
    matrices, initialised to ``w * I``) → compatibility transform (learned K x K, initialised to
    Potts) → adding unary potentials → normalisation (softmax, taken at the start of the next
    iteration). The kernel stds stay fixed, as in the paper. ``forward(logits, image)`` returns
    logits of the same shape (``softmax`` gives the final Q).
    """

    def __init__(
        self,
        num_classes: int,
        params: CRFParams = CRFASRNN_CRF,
        method: str = "window",
        window: int = 11,
        blur: int = 1,
        image_scale: float = 255.0,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown CRF method {method!r}; valid methods are: {METHODS}")
        eye = torch.eye(num_classes)
        self.params, self.method, self.window, self.blur = params, method, window, blur
        self.image_scale = image_scale
        self.w_gauss = nn.Parameter(params.w_gauss * eye)  # "spatial kernel weights"
        self.w_bilateral = nn.Parameter(params.w_bilateral * eye)  # "bilateral kernel weights"
        self.compat = nn.Parameter(potts(num_classes))  # "compatibility matrix"

    def forward(self, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        p = self.params
        return mean_field(
            logits, image, self.w_gauss, self.w_bilateral, self.compat,
            iterations=p.iterations, theta_alpha=p.theta_alpha, theta_beta=p.theta_beta,
            theta_gamma=p.theta_gamma, method=self.method, window=self.window, blur=self.blur,
            image_scale=self.image_scale,
        )


FCN_VARIANTS = ("8s", "16s", "32s")  # the FCNs a CRF-as-RNN layer can sit on


@register_model(
    "crfrnn", family="crf", paper="Zheng et al., ICCV 2015 (CRF-as-RNN)", year=2015,
    test_kwargs={"width": 4, "fc_channels": 16, "window": 5}, full_params=134_323_988,
)
class FCNCRFasRNN(nn.Module):
    """An FCN with a CRF-as-RNN layer on its scores, trained end to end (Zheng et al., Fig. 4).

    The paper puts the layer on FCN-8s (``fcn_variant="8s"``, the default); notebook 06 puts it
    on FCN-32s (``fcn_variant="32s"``), whose blobby scores leave the CRF the most to do.
    The image itself gives the bilateral kernel's colours (all ``in_channels`` of it). The
    position stds default to CRF-as-RNN's values rescaled from 500-pixel images to
    ``image_size`` (deviation: the paper's ~500-pixel PASCAL images would need a window far
    larger than our images); ``crf_params`` replaces the CRF hyper-parameters altogether.

    Args:
        in_channels, num_classes, width, full, backbone, fc_channels, fc_kernel, dropout,
            output_stride: the FCN's (:class:`course_lib.models.fcn.FCN`, built through the
            registry as ``"fcn<fcn_variant>"``); its sizes come from the FCN's size table, so
            ``full=True`` is the paper's VGG16 FCN-8s.
        fcn_variant: the FCN under the CRF: ``"8s"`` (the paper), ``"16s"`` or ``"32s"``.
        iterations: mean-field iterations (5, the paper's training setting).
        window, blur, method: the message-passing approximation (:func:`make_filter`).
        image_size: the side the position stds are scaled to. crf_params: all CRF
            hyper-parameters at once (then ``iterations`` and ``image_size`` are not used).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 12,
        width: int | None = None,
        full: bool = False,
        fcn_variant: str = "8s",
        backbone: str | None = None,
        fc_channels: int | None = None,
        fc_kernel: int | None = None,
        dropout: float | None = None,
        output_stride: int = 32,
        iterations: int = 5,
        window: int = 11,
        blur: int = 1,
        method: str = "window",
        image_size: int = 96,
        crf_params: CRFParams | None = None,
    ) -> None:
        super().__init__()
        if fcn_variant not in FCN_VARIANTS:
            raise ValueError(f"FCNCRFasRNN: fcn_variant must be one of {FCN_VARIANTS}, got "
                             f"{fcn_variant!r}")
        self.fcn_variant = fcn_variant
        self.fcn = build_model(f"fcn{fcn_variant}", in_channels=in_channels,
                               num_classes=num_classes, width=width, full=full,
                               backbone=backbone, fc_channels=fc_channels,
                               fc_kernel=fc_kernel, dropout=dropout,
                               output_stride=output_stride)
        params = crf_params or CRFASRNN_CRF.scaled(image_size).replace(iterations=iterations)
        self.crf = CRFasRNN(num_classes, params, method=method, window=window, blur=blur)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unary = self.fcn(x)  # the FCN's scores = unary potentials
        return self.crf(unary, x)  # T mean-field iterations


__all__ = [
    "CRFParams",
    "DEEPLAB_CRF",
    "CRFASRNN_CRF",
    "METHODS",
    "kernel_features",
    "ExactFilter",
    "WindowFilter",
    "make_filter",
    "potts",
    "mean_field",
    "dense_crf",
    "refine",
    "CRFasRNN",
    "FCN_VARIANTS",
    "FCNCRFasRNN",
]
