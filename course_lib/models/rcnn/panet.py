"""PANet's bottom-up path augmentation (Liu et al., "Path Aggregation Network for Instance
Segmentation", CVPR 2018, Sec. 3.1, Fig. 1b and Fig. 2).

FPN's top-down path carries the deep, semantic levels down to the fine ones; but the way
from a *fine* level (P2, where the edges and small objects are) up to P5 still runs through
the whole backbone — "more than 100 layers" in ResNet-50 (the red dashed line of Fig. 1).
PANet adds a short cut the other way, *bottom-up*: ``N2 = P2`` and

    ``N_{i+1} = ReLU(conv3x3( ReLU(conv3x3_stride2(N_i)) + P_{i+1} ))``   (Fig. 2)

so fewer than ten layers separate P2 from N5 (the green dashed line). The RPN and the
RoI heads then read ``N2..N5`` instead of ``P2..P5``. The second half of PANet, *adaptive
feature pooling* (each RoI pooled from every level, fused by max), lives in
:mod:`course_lib.models.rcnn.roi_heads` (``levels > 1`` of the heads).

Deviation: every downsampled map is brought to the size of ``P_{i+1}`` (they agree for
inputs padded to a multiple of 32, which :class:`~course_lib.models.rcnn.MaskRCNN` does).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import resize_to


class BottomUpPath(nn.Module):
    """N2..N5 from P2..P5: a 3x3 stride-2 conv down, add the lateral P, a 3x3 conv (Fig. 2).

    ``levels`` is the number of pyramid levels (4 for P2..P5); all have ``channels``.
    """

    def __init__(self, channels: int, levels: int = 4) -> None:
        super().__init__()
        if levels < 2 or channels < 1:
            raise ValueError(f"the bottom-up path needs >= 2 levels and >= 1 channel, got "
                             f"levels={levels}, channels={channels}")
        self.down = nn.ModuleList(nn.Conv2d(channels, channels, 3, stride=2, padding=1)
                                  for _ in range(levels - 1))
        self.fuse = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1)
                                  for _ in range(levels - 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)  # as FPN's convolutions
                nn.init.zeros_(m.bias)

    def forward(self, pyramid: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(pyramid) != len(self.down) + 1:
            raise ValueError(f"BottomUpPath expects {len(self.down) + 1} levels, got "
                             f"{len(pyramid)}")
        outputs = [pyramid[0]]  # N2 = P2
        for down, fuse, lateral in zip(self.down, self.fuse, pyramid[1:], strict=True):
            smaller = F.relu(down(outputs[-1]))  # N_i, 3x3 stride 2
            outputs.append(F.relu(fuse(resize_to(smaller, lateral) + lateral)))  # + P_{i+1}
        return outputs


__all__ = ["BottomUpPath"]
