"""Panoptic segmentation (the survey's §3.11, 全景分割): things and stuff in one map.

Panoptic-DeepLab (Cheng et al., CVPR 2020) in :mod:`.deeplab`: a semantic head plus a
class-agnostic centre heat-map and offset heads; :mod:`.grouping` makes its targets and groups
its thing pixels to the predicted centres, merges them with the stuff, and holds the baseline
(semantic map + connected components); :mod:`.training` its three losses and a training loop.
Panoptic quality is :mod:`course_lib.metrics.panoptic`.
"""

from __future__ import annotations

from . import deeplab, grouping, training
from .deeplab import PanopticDecoder, PanopticDeepLab, PredictionHead
from .grouping import (
    LABEL_DIVISOR,
    components_panoptic,
    find_centers,
    group_pixels,
    merge_semantic_and_instance,
    panoptic_from_instances,
    panoptic_prediction,
    panoptic_targets,
)
from .training import LOSS_WEIGHTS, panoptic_loss, predict_outputs, train_panoptic

__all__ = [
    "LABEL_DIVISOR",
    "LOSS_WEIGHTS",
    "PanopticDecoder",
    "PanopticDeepLab",
    "PredictionHead",
    "components_panoptic",
    "deeplab",
    "find_centers",
    "group_pixels",
    "grouping",
    "merge_semantic_and_instance",
    "panoptic_from_instances",
    "panoptic_loss",
    "panoptic_prediction",
    "panoptic_targets",
    "predict_outputs",
    "train_panoptic",
    "training",
]
