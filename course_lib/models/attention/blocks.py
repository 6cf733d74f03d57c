"""The attention blocks of the family, each a small module with its attention weights exposed.

Every block here maps a feature map ``x`` [N, C, H, W] to a map of the same shape (or, for
OCR, pixel features plus region features to pixel features), and can return the attention
it used as a dense matrix ``[N, H*W, H*W]`` (row ``i``: how much pixel ``i`` takes from each
pixel ``j``) through ``attention(x)`` — what the notebook's widget draws.

- :class:`PositionAttention` — DANet's position attention module (Fu et al. 2019, Fig. 3A):
  full self-attention over all ``H*W`` positions, query/key at ``C/8`` channels,
  ``out = gamma * V A^T + x`` with ``gamma`` initialised to 0.
- :class:`ChannelAttention` — DANet's channel attention module (Fig. 3B): a ``C x C``
  attention between channels, with the reference's ``max(energy) - energy`` before the
  softmax; ``gamma`` initialised to 0.
- :class:`CrissCrossAttention` — CCNet (Huang et al. 2019, Fig. 3): each pixel attends only to
  the ``H + W - 1`` pixels of its row and column (itself counted once), query/key at ``C/8``,
  ``gamma`` 0; :class:`RecurrentCrissCross` applies it ``R`` times with shared weights.
- :class:`ObjectContextPooling` — OCNet's object context (Yuan & Wang 2018, base-OC):
  scaled dot-product self-attention pooling, concatenated with the input.
- :class:`SpatialGather` and :class:`ObjectAttention` — OCR (Yuan et al. 2020, Fig. 3):
  soft object regions → one representation per region → pixel-region relation → the
  object-contextual representation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import ConvBNReLU


def _reduced(channels: int, reduction: int) -> int:
    return max(channels // reduction, 1)


def _check_map(name: str, x: torch.Tensor, channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{name}: expected a feature map [N, {channels}, H, W], "
                         f"got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------
# Dot-product attention over positions (DANet's PAM, the non-local block) and its masked form
# --------------------------------------------------------------------------------------------
def dot_product_attention(query: torch.Tensor, key: torch.Tensor,
                          mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention weights between all positions: ``softmax_j(q_i . k_j)``, [N, H*W, H*W].

    ``query`` and ``key`` are [N, C', H, W]. ``mask`` (bool [H*W, H*W], True = may attend)
    restricts each row to some positions: a pixel's row and column
    (:func:`criss_cross_mask`) turns this into criss-cross attention, exactly (tested).
    """
    if query.shape != key.shape or query.dim() != 4:
        raise ValueError(f"query and key must be [N, C, H, W] of one shape, got "
                         f"{tuple(query.shape)} and {tuple(key.shape)}")
    energy = query.flatten(2).transpose(1, 2) @ key.flatten(2)  # [N, HW, HW]: q_i . k_j
    if mask is not None:
        positions = energy.shape[-1]
        if mask.shape != (positions, positions) or mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool [{positions}, {positions}], got "
                             f"{mask.dtype} {tuple(mask.shape)}")
        energy = energy.masked_fill(~mask.to(energy.device), float("-inf"))
    return energy.softmax(dim=-1)


def attend(weights: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Each position's weighted sum of the values: ``out_i = sum_j A_ij v_j``, [N, C, H, W]."""
    return (value.flatten(2) @ weights.transpose(1, 2)).view_as(value)


class PositionAttention(nn.Module):
    """DANet's position attention module (Fu et al., CVPR 2019, Fig. 3A).

    ``B = W_q x``, ``C = W_k x`` (1x1 convolutions to ``C/8`` channels), ``D = W_v x``
    (``C`` channels); ``S = softmax(B^T C)`` over all ``H*W`` positions;
    ``E = gamma * D S^T + x``. ``gamma`` starts at 0, so the module starts as the identity
    and learns how much context to add (tested). The attention matrix is ``(H*W)^2``: it is
    the "full attention" that criss-cross attention replaces.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.channels = channels
        self.query = nn.Conv2d(channels, _reduced(channels, reduction), 1)
        self.key = nn.Conv2d(channels, _reduced(channels, reduction), 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The weights ``S`` [N, H*W, H*W] (row ``i``: where pixel ``i`` looks)."""
        _check_map("PositionAttention", x, self.channels)
        return dot_product_attention(self.query(x), self.key(x), mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.attention(x)  # S = softmax(B^T C), every pixel to every pixel
        return self.gamma * attend(weights, self.value(x)) + x  # E = gamma * D S^T + x


def channel_attention_weights(x: torch.Tensor) -> torch.Tensor:
    """DANet's channel attention [N, C, C]: ``softmax(max(energy) - energy)``, energy = X X^T.

    The reference subtracts each energy from its row's maximum before the softmax. A softmax
    does not change when a constant is added to its row, so this equals ``softmax(-energy)``:
    a channel attends most to the channels it is *least* similar to.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a feature map [N, C, H, W], got shape {tuple(x.shape)}")
    features = x.flatten(2)  # [N, C, HW]
    energy = features @ features.transpose(1, 2)  # [N, C, C]: x_i . x_j over all positions
    energy = energy.amax(dim=-1, keepdim=True) - energy
    return energy.softmax(dim=-1)


class ChannelAttention(nn.Module):
    """DANet's channel attention module (Fig. 3B): ``E = gamma * X^T softmax(...) + A``.

    No convolution before the attention: the channel-to-channel similarities are taken on the
    input itself (:func:`channel_attention_weights`). ``gamma`` starts at 0 (identity).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_map("ChannelAttention", x, self.channels)
        weights = channel_attention_weights(x)  # X: C x C channel affinities
        out = (weights @ x.flatten(2)).view_as(x)  # each channel: a mix of all channels
        return self.gamma * out + x


# --------------------------------------------------------------------------------------------
# Criss-cross attention (CCNet, Huang et al. ICCV 2019)
# --------------------------------------------------------------------------------------------
def criss_cross_mask(height: int, width: int) -> torch.Tensor:
    """Bool [H*W, H*W]: ``True`` where pixel ``j`` is in pixel ``i``'s row or column."""
    rows = torch.arange(height).repeat_interleave(width)
    cols = torch.arange(width).repeat(height)
    return (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])


def criss_cross_weights(query: torch.Tensor, key: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Criss-cross attention weights: ``(column [N, H, W, H], row [N, H, W, W])``.

    For pixel ``u = (h, w)`` the energies are ``q_u . k`` for the ``H`` pixels of its column
    and the ``W`` pixels of its row; one softmax runs over all ``H + W`` of them. ``u`` itself
    is in both lists, so its column entry is masked (``-inf``, as the reference does) and it
    is counted once: the weights sum to 1 over the ``H + W - 1`` pixels of the cross.
    """
    if query.shape != key.shape or query.dim() != 4:
        raise ValueError(f"query and key must be [N, C, H, W] of one shape, got "
                         f"{tuple(query.shape)} and {tuple(key.shape)}")
    height = query.shape[2]
    column = torch.einsum("nchw,ncgw->nhwg", query, key)  # u=(h, w) with (g, w)
    itself = torch.eye(height, dtype=torch.bool, device=query.device)[:, None, :]  # g == h
    column = column.masked_fill(itself, float("-inf"))
    row = torch.einsum("nchw,nchv->nhwv", query, key)  # u=(h, w) with (h, v)
    weights = torch.cat([column, row], dim=-1).softmax(dim=-1)  # one softmax over the cross
    return weights[..., :height], weights[..., height:]


def criss_cross_aggregate(column: torch.Tensor, row: torch.Tensor, value: torch.Tensor
                          ) -> torch.Tensor:
    """``out_u = sum over the cross of A_u,j v_j``: the column part plus the row part."""
    return (torch.einsum("nhwg,ncgw->nchw", column, value)
            + torch.einsum("nhwv,nchv->nchw", row, value))


def criss_cross_dense(column: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """The criss-cross weights as a dense [N, H*W, H*W] matrix (zeros off the cross)."""
    n, height, width = column.shape[:3]
    same_column = torch.eye(width, device=column.device)[:, None, :]  # [w, 1, v]: v == w
    same_row = torch.eye(height, device=row.device)[:, None, :, None]  # [h, 1, g, 1]: g == h
    dense = column[..., None] * same_column + row[:, :, :, None, :] * same_row  # [N,H,W,H,W]
    return dense.view(n, height * width, height * width)


class CrissCrossAttention(nn.Module):
    """One criss-cross attention module (CCNet, Fig. 3): ``H' = gamma * A(V) + H``.

    Query and key are 1x1 convolutions to ``C/8`` channels, the value keeps ``C``; each pixel
    gathers the values of its row and column (:func:`criss_cross_weights`). Memory and
    compute grow with ``H*W*(H+W)`` instead of full attention's ``(H*W)^2``. ``gamma``
    starts at 0 (identity).
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.channels = channels
        self.query = nn.Conv2d(channels, _reduced(channels, reduction), 1)
        self.key = nn.Conv2d(channels, _reduced(channels, reduction), 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_map("CrissCrossAttention", x, self.channels)
        return criss_cross_weights(self.query(x), self.key(x))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The weights as a dense [N, H*W, H*W] matrix (non-zero on each pixel's cross only)."""
        return criss_cross_dense(*self.weights(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        column, row = self.weights(x)  # affinity of u with its column and its row
        return self.gamma * criss_cross_aggregate(column, row, self.value(x)) + x


class RecurrentCrissCross(nn.Module):
    """RCCA: the same criss-cross module applied ``recurrence`` times (CCNet, Fig. 2, R = 2).

    After one loop a pixel has seen its row and column; after two, every pixel (the path
    ``u -> (u_row, v_col) -> v``), so two loops give full-image context at criss-cross cost.
    """

    def __init__(self, channels: int, recurrence: int = 2, reduction: int = 8) -> None:
        super().__init__()
        if recurrence < 1:
            raise ValueError(f"recurrence must be >= 1, got {recurrence}")
        self.recurrence = recurrence
        self.cca = CrissCrossAttention(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.recurrence):  # weights shared between the loops
            x = self.cca(x)
        return x

    def attention(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The dense weights of every loop, [N, H*W, H*W] each, on the inputs each loop saw."""
        maps = []
        for _ in range(self.recurrence):
            maps.append(self.cca.attention(x))
            x = self.cca(x)
        return maps


# --------------------------------------------------------------------------------------------
# Object context: OCNet's self-attention pooling and OCR's object regions
# --------------------------------------------------------------------------------------------
class ObjectContextPooling(nn.Module):
    """OCNet's base object context (Yuan & Wang 2018, Sec. 3.2): the context of pixel ``i`` is
    the average of all pixels weighted by ``softmax_j(q_i . k_j / sqrt(d))`` — pixels of the
    same object weigh most — concatenated with the input and fused by a 1x1 convolution.

    Key and query share one 1x1 conv + BN + ReLU to ``C/2`` channels; the value is a 1x1 conv
    to ``C/2``; a 1x1 conv brings the context back to ``C`` channels and is initialised to 0,
    as in the reference, so the context starts empty.
    """

    def __init__(self, channels: int, dropout: float = 0.05) -> None:
        super().__init__()
        inner = _reduced(channels, 2)
        self.channels, self.inner = channels, inner
        self.key_query = ConvBNReLU(channels, inner, 1)
        self.value = nn.Conv2d(channels, inner, 1)
        self.out = nn.Conv2d(inner, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.fuse = nn.Sequential(ConvBNReLU(2 * channels, channels, 1), nn.Dropout2d(dropout))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        _check_map("ObjectContextPooling", x, self.channels)
        shared = self.key_query(x) * self.inner ** -0.25  # q . k / sqrt(d), split over both
        return dot_product_attention(shared, shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.out(attend(self.attention(x), self.value(x)))  # object context
        return self.fuse(torch.cat([context, x], dim=1))  # [context, x] -> 1x1 conv


def soft_object_regions(region_logits: torch.Tensor) -> torch.Tensor:
    """OCR's soft object regions: each class map normalised over the pixels, [N, K, H*W]."""
    return region_logits.flatten(2).softmax(dim=-1)


class SpatialGather(nn.Module):
    """OCR's object region representations (Eq. 2): ``f_k = sum_i m_ki x_i`` with ``m_k`` the
    ``k``-th soft object region (a softmax over the pixels). Returns [N, C, K]."""

    def forward(self, features: torch.Tensor, region_logits: torch.Tensor) -> torch.Tensor:
        if region_logits.shape[-2:] != features.shape[-2:]:
            region_logits = F.interpolate(region_logits, size=features.shape[-2:],
                                          mode="bilinear", align_corners=False)
        regions = soft_object_regions(region_logits)  # [N, K, HW]
        return features.flatten(2) @ regions.transpose(1, 2)  # [N, C, K]


class ObjectAttention(nn.Module):
    """OCR's pixel-region relation and object-contextual representation (Eqs. 3-5).

    ``w_ik = softmax_k(phi(x_i) . psi(f_k) / sqrt(d))`` (``phi``, ``psi``: two 1x1 conv + BN +
    ReLU each, to ``key_channels``); ``y_i = rho(sum_k w_ik delta(f_k))``; the augmented
    representation ``z_i = g([x_i, y_i])`` (1x1 conv + BN + ReLU). mmseg's ``ObjectAttentionBlock``
    with ``scale = 1``.
    """

    def __init__(self, channels: int, key_channels: int) -> None:
        super().__init__()
        self.channels, self.key_channels = channels, key_channels
        self.phi = nn.Sequential(ConvBNReLU(channels, key_channels, 1),
                                 ConvBNReLU(key_channels, key_channels, 1))
        self.psi = nn.Sequential(ConvBNReLU(channels, key_channels, 1),
                                 ConvBNReLU(key_channels, key_channels, 1))
        self.delta = ConvBNReLU(channels, key_channels, 1)
        self.rho = ConvBNReLU(key_channels, channels, 1)
        self.g = ConvBNReLU(2 * channels, channels, 1)

    def relation(self, features: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        """Pixel-region relation ``w`` [N, H*W, K] (each row sums to 1 over the K regions)."""
        _check_map("ObjectAttention", features, self.channels)
        query = self.phi(features).flatten(2).transpose(1, 2)  # [N, HW, d]
        key = self.psi(regions[..., None]).flatten(2)  # [N, d, K]
        return (query @ key * self.key_channels ** -0.5).softmax(dim=-1)

    def forward(self, features: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        weights = self.relation(features, regions)  # w_ik, pixel i to region k
        values = self.delta(regions[..., None]).flatten(2)  # delta(f_k): [N, d, K]
        context = (values @ weights.transpose(1, 2)).view(
            features.shape[0], -1, *features.shape[-2:])  # sum_k w_ik delta(f_k)
        context = self.rho(context)  # y_i
        return self.g(torch.cat([context, features], dim=1))  # z_i = g([x_i, y_i])


__all__ = [
    "ChannelAttention",
    "CrissCrossAttention",
    "ObjectAttention",
    "ObjectContextPooling",
    "PositionAttention",
    "RecurrentCrissCross",
    "SpatialGather",
    "attend",
    "channel_attention_weights",
    "criss_cross_aggregate",
    "criss_cross_dense",
    "criss_cross_mask",
    "criss_cross_weights",
    "dot_product_attention",
    "soft_object_regions",
]
