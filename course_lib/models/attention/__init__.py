"""Attention-based models (the survey's 基于注意力的模型): scale attention, DANet, CCNet, OCR.

Attention lets a pixel choose *what to read*: other scales of the image (Chen et al. 2016,
:mod:`.scales`), every other pixel by similarity (DANet's position attention, OCNet's object
context), only its row and column, twice (CCNet), or a few soft object regions (OCR)
(:mod:`.context`). The blocks themselves, each with its weights exposed as a dense matrix,
are in :mod:`.blocks`.
"""

from __future__ import annotations

from . import blocks, context, scales
from .blocks import (
    ChannelAttention,
    CrissCrossAttention,
    ObjectAttention,
    ObjectContextPooling,
    PositionAttention,
    RecurrentCrissCross,
    SpatialGather,
    attend,
    channel_attention_weights,
    criss_cross_aggregate,
    criss_cross_dense,
    criss_cross_mask,
    criss_cross_weights,
    dot_product_attention,
    soft_object_regions,
)
from .context import (
    CCNet,
    DANet,
    DilatedFCN,
    HeadsOnFeatures,
    OCNet,
    OCRNet,
    backbone_features,
)
from .scales import ScaleAttention

__all__ = [
    "CCNet",
    "ChannelAttention",
    "CrissCrossAttention",
    "DANet",
    "DilatedFCN",
    "HeadsOnFeatures",
    "OCNet",
    "OCRNet",
    "ObjectAttention",
    "ObjectContextPooling",
    "PositionAttention",
    "RecurrentCrissCross",
    "ScaleAttention",
    "SpatialGather",
    "attend",
    "backbone_features",
    "blocks",
    "channel_attention_weights",
    "context",
    "criss_cross_aggregate",
    "criss_cross_dense",
    "criss_cross_mask",
    "criss_cross_weights",
    "dot_product_attention",
    "scales",
    "soft_object_regions",
]
