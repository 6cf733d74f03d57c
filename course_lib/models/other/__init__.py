"""Other models of the survey (§3.11, 其他模型): one module each.

- :mod:`.bisenet`: BiSeNet (Yu et al. 2018), spatial path + context path, built for speed;
- :mod:`.encnet`: EncNet (Zhang et al. 2018), context encoding and the semantic-encoding loss;
- :mod:`.upernet`: UPerNet (Xiao et al. 2018), pyramid pooling on top of an FPN;
- :mod:`.refinenet`: RefineNet (Lin et al. 2017), multi-path refinement.

Panoptic-DeepLab, also of that section, is :mod:`course_lib.models.panoptic`.
"""

from __future__ import annotations

from . import bisenet, encnet, refinenet, upernet
from .bisenet import AttentionRefinement, BiSeNet, FeatureFusion
from .encnet import (
    SE_WEIGHT,
    ContextEncoding,
    EncNet,
    Encoding,
    class_presence,
    encnet_loss,
    presence_f1,
    se_loss,
    train_encnet,
)
from .refinenet import ChainedResidualPooling, RefineBlock, RefineNet, ResidualConvUnit
from .upernet import PoolingPyramid, UPerNet

__all__ = [
    "SE_WEIGHT",
    "AttentionRefinement",
    "BiSeNet",
    "ChainedResidualPooling",
    "ContextEncoding",
    "EncNet",
    "Encoding",
    "FeatureFusion",
    "PoolingPyramid",
    "RefineBlock",
    "RefineNet",
    "ResidualConvUnit",
    "UPerNet",
    "bisenet",
    "class_presence",
    "encnet",
    "encnet_loss",
    "presence_f1",
    "refinenet",
    "se_loss",
    "train_encnet",
    "upernet",
]
