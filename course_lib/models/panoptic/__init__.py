"""Panoptic segmentation (the survey's §3.11, 全景分割): things and stuff in one map.

Panoptic-DeepLab (Cheng et al., CVPR 2020) in :mod:`.deeplab`: a semantic head plus a
class-agnostic centre heat-map and offset heads; :mod:`.grouping` makes its targets and groups
its thing pixels to the predicted centres, merges them with the stuff, and holds the baseline
(semantic map + connected components); :mod:`.training` its three losses and a training loop.
Panoptic FPN (Kirillov et al., CVPR 2019) in :mod:`.fpn`: Mask R-CNN plus the FPN semantic
branch on one pyramid, a joint loss, and the paper's merge heuristics.
Panoptic quality is :mod:`course_lib.metrics.panoptic`.
"""

from __future__ import annotations

from . import deeplab, fpn, grouping, training
from .deeplab import PanopticDecoder, PanopticDeepLab, PredictionHead
from .fpn import PanopticFPN, merge_instances_and_stuff, panoptic_fpn_prediction
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
    "PanopticFPN",
    "PredictionHead",
    "components_panoptic",
    "deeplab",
    "find_centers",
    "fpn",
    "group_pixels",
    "grouping",
    "merge_instances_and_stuff",
    "merge_semantic_and_instance",
    "panoptic_fpn_prediction",
    "panoptic_from_instances",
    "panoptic_loss",
    "panoptic_prediction",
    "panoptic_targets",
    "predict_outputs",
    "train_panoptic",
    "training",
]
