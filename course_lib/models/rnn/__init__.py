"""RNN-based models (survey section 3.7, "基于 RNN 的模型"): sweeps, 2D-LSTM, CNN + LSTM.

The survey's point: an RNN links pixels into sequences, so a prediction can depend on
pixels far away (global context), but a 2D image is no sequence, and the steps of an RNN
run one after the other, which makes these models slower than CNNs of the same size.

* :class:`ReNetLayer` (Visin et al. 2015, ReNet's Fig. 1): the image is cut into patches;
  two RNNs sweep every row of patches (left→right, right→left), two more sweep every column
  of *their* outputs (top→bottom, bottom→top). After one layer every output position
  depends on every input position: a global receptive field in two sweeps.
* :class:`ReSeg` (Visin et al., CVPR-W 2016, Fig. 1): ReNet layers on the local features of
  a VGG trunk, then transposed convolutions back to full resolution. ``context="none"``
  removes the ReNet layers (the same CNN without them), ``context="conv"`` puts 3x3
  convolutions with (almost) as many parameters in their place.
* :class:`LSTM2d` (Graves et al. 2007; Byeon et al. CVPR 2015): a 2D LSTM whose state at a
  pixel comes from its upper and left neighbours; computed along anti-diagonals.
* :class:`ReferringSegmenter` (Hu, Rohrbach & Darrell, ECCV 2016, Fig. 2): an LSTM encodes
  the expression, a CNN the image; the sentence vector, L2-normalised, is tiled over the
  L2-normalised visual map with an 8-d spatial map, and a 1x1-convolution MLP scores every
  position: the mask of the one object the expression names. ``forward(image, tokens)``.

Graph LSTM (Liang et al., ECCV 2016) generalises the 2D LSTM from the pixel grid to a graph
of superpixels (each node updated from its neighbours' states, in an order set by a
confidence map); it is explained in notebook 12, not built.
"""

from __future__ import annotations

from . import lstm2d, referring, renet, reseg
from .lstm2d import LSTM2d
from .referring import (
    NO_WORDS,
    REFERRING_SIZES,
    ReferringSegmenter,
    ReferringSizes,
    predict_referring,
    spatial_map,
    train_referring,
    unit_channels,
    without_words,
)
from .renet import (
    RNN_CELLS,
    ReNetLayer,
    input_dependency,
    sweep_columns,
    sweep_rows,
    to_patches,
)
from .reseg import CONTEXTS, RESEG_SIZES, ReSeg, ReSegSizes

__all__ = [
    "CONTEXTS",
    "LSTM2d",
    "NO_WORDS",
    "REFERRING_SIZES",
    "RESEG_SIZES",
    "RNN_CELLS",
    "ReNetLayer",
    "ReSeg",
    "ReSegSizes",
    "ReferringSegmenter",
    "ReferringSizes",
    "input_dependency",
    "lstm2d",
    "predict_referring",
    "referring",
    "renet",
    "reseg",
    "spatial_map",
    "sweep_columns",
    "sweep_rows",
    "to_patches",
    "train_referring",
    "unit_channels",
    "without_words",
]
