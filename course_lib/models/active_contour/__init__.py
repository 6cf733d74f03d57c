"""CNN models with active contour models (the survey's section 3.10,
带有活动轮廓模型的卷积神经网络模型): the classic level sets, active-contour losses, and a
level-set layer that refines an FCN.

* **Chan–Vese** (Chan & Vese, IEEE TIP 2001) and its fast **morphological** variant
  (Márquez-Neila et al., TPAMI 2014), no learning: :mod:`.levelset`.
* **Losses from active-contour energies**: the supervised length + region loss of Chen et
  al. (CVPR 2019) and the unsupervised Mumford–Shah loss of Kim & Ye (TIP 2019), which
  trains a CNN without masks (Gur et al. 2019 build on the same energy): :mod:`.losses`.
* **A level-set layer** unrolled as a recurrent network on an FCN's output (Le et al., TIP
  2018; TDAC's end-to-end training, Hatamizadeh et al. 2020), registered as
  ``"levelset_fcn"``: :mod:`.layers`.
* :mod:`.scenes`: the shapes world repainted flat (Chan–Vese's own image model).
"""

from __future__ import annotations

from . import layers, levelset, losses, scenes
from .layers import LevelSetFCN, LevelSetLayer, SmallFCN, log_odds
from .levelset import (
    Evolution,
    chan_vese,
    chan_vese_energy,
    checkerboard,
    curvature,
    morphological_chan_vese,
    region_force,
    region_means,
)
from .losses import active_contour_loss, contour_length, mumford_shah_loss
from .scenes import flat_world

__all__ = [
    "Evolution", "LevelSetFCN", "LevelSetLayer", "SmallFCN", "active_contour_loss", "chan_vese",
    "chan_vese_energy", "checkerboard", "contour_length", "curvature", "flat_world", "layers",
    "levelset", "log_odds", "losses", "morphological_chan_vese", "mumford_shah_loss",
    "region_force", "region_means", "scenes",
]
