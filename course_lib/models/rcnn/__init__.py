"""R-CNN based instance segmentation: Mask R-CNN from its parts, and PANet (survey Sec. 3.6).

The survey's section 基于 R-CNN 模型: Faster R-CNN (Ren et al. 2015) proposes regions with a
region proposal network and classifies and refines each region; Mask R-CNN (He et al. 2017)
adds a third branch that predicts a binary mask per region, trained with one summed loss;
PANet (Liu et al. 2018) adds a bottom-up path to the FPN and pools every region from all
levels. One module per part, in the order of the paper's figure:

- :mod:`.boxes` — anchors, the box coder, IoU matching, balanced sampling;
- :mod:`.rpn` — the region proposal network;
- :mod:`.roi_heads` — RoIAlign / RoIPool on the pyramid, the box, class and mask heads;
- :mod:`.panet` — PANet's bottom-up path;
- :mod:`.mask_rcnn` — the whole model (registered as ``mask_rcnn`` and ``panet``) and the
  key map that loads torchvision's weights.

``torchvision.ops`` supplies the well-kept primitives: ``roi_align``, ``roi_pool``, ``nms`` /
``batched_nms``, ``box_iou``, ``clip_boxes_to_image``, ``FrozenBatchNorm2d``.
"""

from __future__ import annotations

from .boxes import AnchorGenerator, BoxCoder, Matcher, sample_balanced
from .mask_rcnn import (
    MASK_RCNN_SIZES,
    TORCHVISION_KEY_MAP,
    MaskRCNN,
    MaskRCNNSizes,
    PANet,
    freeze_batchnorm,
    load_torchvision_state_dict,
    prepare_batch,
    torchvision_key,
)
from .panet import BottomUpPath
from .roi_heads import (
    BoxHead,
    BoxPredictor,
    MaskHead,
    MaskPredictor,
    MultiScaleRoIPool,
    RoIHeads,
    mask_round_trip,
    paste_masks,
    pool_rois,
    round_trip_iou,
)
from .rpn import RegionProposalNetwork, RPNHead

__all__ = [
    "AnchorGenerator", "BoxCoder", "Matcher", "sample_balanced", "RPNHead",
    "RegionProposalNetwork", "MultiScaleRoIPool", "BoxHead", "BoxPredictor", "MaskHead",
    "MaskPredictor", "RoIHeads", "pool_rois", "mask_round_trip", "round_trip_iou", "BottomUpPath",
    "MaskRCNN", "PANet",
    "MaskRCNNSizes", "MASK_RCNN_SIZES", "TORCHVISION_KEY_MAP", "freeze_batchnorm",
    "load_torchvision_state_dict", "paste_masks", "prepare_batch", "torchvision_key",
]
