"""What the decoder of an encoder-decoder keeps from its encoder, in bytes: pooling indices
(SegNet, DeconvNet), whole feature maps (LinkNet, U-Net) or parallel streams (HRNet) — the
lesson of notebook 07."""

from __future__ import annotations

import torch
from torch import nn

from ...runtime import evaluating


def decoder_memory_bytes(model: nn.Module, x: torch.Tensor) -> dict[str, object]:
    """Bytes the decoder of ``model`` keeps from its encoder for the input ``x``.

    Works for models with an ``encode(x) -> (bottom, kept)`` method (SegNet, DeconvNet,
    LinkNet, U-Net) and for HRNet, whose head reads all four ``streams(x)`` (kept, compact and
    feature bytes are then the streams' bytes). Returns a dict:

    - ``"kind"``: ``"indices"`` (pooling switches), ``"features"`` (skip feature maps) or
      ``"streams"`` (HRNet);
    - ``"kept_bytes"``: bytes of the kept tensors as PyTorch stores them (indices are int64);
    - ``"compact_bytes"``: the paper's storage — 2 bits per pooling window for indices
      (SegNet Sec. 3), the feature bytes themselves for features;
    - ``"feature_bytes"``: what keeping the pre-pool / skip *features* (in ``x``'s dtype)
      would cost instead — the comparison SegNet's paper makes with U-Net/FCN;
    - ``"tensors"``: ``[(shape, bytes), ...]`` per kept tensor.
    """
    if hasattr(model, "streams"):
        with evaluating(model):
            streams = model.streams(x)
        sizes = [(tuple(s.shape), s.numel() * s.element_size()) for s in streams]
        total = sum(nbytes for _, nbytes in sizes)
        return {"kind": "streams", "kept_bytes": total, "compact_bytes": total,
                "feature_bytes": total, "tensors": sizes}
    if not hasattr(model, "encode"):
        raise ValueError(
            f"{type(model).__name__} has no encode() or streams() method; decoder_memory_bytes "
            "supports SegNet, DeconvNet, LinkNet, U-Net and HRNet"
        )
    with evaluating(model):  # batch-norm in eval mode: a batch of 1 works at any size
        _, kept = model.encode(x)
    tensors = []
    kind = "features"
    kept_bytes = compact = feature_bytes = 0
    item = x.element_size()
    for entry in kept:
        if isinstance(entry, tuple):  # (indices, pre-pool size)
            kind = "indices"
            indices, size = entry
            n, c = indices.shape[:2]
            kept_bytes += indices.numel() * indices.element_size()
            compact += (indices.numel() * 2 + 7) // 8  # 2 bits select one of 4 positions
            feature_bytes += n * c * int(torch.Size(size).numel()) * item
            tensors.append((tuple(indices.shape), indices.numel() * indices.element_size()))
        else:
            nbytes = entry.numel() * entry.element_size()
            kept_bytes += nbytes
            compact += nbytes
            feature_bytes += nbytes
            tensors.append((tuple(entry.shape), nbytes))
    return {"kind": kind, "kept_bytes": kept_bytes, "compact_bytes": compact,
            "feature_bytes": feature_bytes, "tensors": tensors}


__all__ = ["decoder_memory_bytes"]
