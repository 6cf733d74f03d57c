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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data.referring import PAD, VOCABULARY
from course_lib.runtime import evaluating, model_device

from . import register_model
from .backbones import build_backbone
from .blocks import ConvBNReLU, check_channels, check_input, resize_to
from .contract import SizeTable

RNN_CELLS: dict[str, type[nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM}
CONTEXTS = ("renet", "conv", "none")


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])


# ------------------------------------------------------------------------------------------
# ReNet: four sweeps
# ------------------------------------------------------------------------------------------
def sweep_rows(x: torch.Tensor, rnn: nn.RNNBase) -> torch.Tensor:
    """Run a bidirectional, ``batch_first`` RNN along every row of ``x`` [N, C, H, W].

    Each row is a sequence of W steps and the N x H rows form one batch, so both sweeps
    (left→right and right→left) of all rows run at once. Returns [N, D, H, W], D the RNN's
    output size (both directions' states, concatenated).
    """
    n, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(n * h, w, c)
    out, _ = rnn(rows)
    return out.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def sweep_columns(x: torch.Tensor, rnn: nn.RNNBase) -> torch.Tensor:
    """:func:`sweep_rows` along every column (top→bottom and bottom→top)."""
    return sweep_rows(x.transpose(2, 3), rnn).transpose(2, 3)


def to_patches(x: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """Non-overlapping ``patch`` blocks of ``x`` flattened into channels [N, C*ph*pw, H/ph, W/pw];
    the bottom and right borders are zero-padded up to a multiple of the patch."""
    ph, pw = patch
    pad_h, pad_w = -x.shape[2] % ph, -x.shape[3] % pw
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    if ph == pw:
        return F.pixel_unshuffle(x, ph)
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // ph, ph, w // pw, pw).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, c * ph * pw, h // ph, w // pw)


class ReNetLayer(nn.Module):
    """One ReNet layer (Visin et al. 2015, Fig. 1): four RNNs sweep the patches of the image.

    The cells start by remembering: ``remember_bias`` is added to the bias of the gate that
    keeps the previous state (the GRU's update gate, the LSTM's forget gate), as notebook
    02's LSTM adds 1 to its forget gate (Jozefowicz et al. 2015). With PyTorch's
    initialisation a cell keeps about half of its state per step; ReSeg trained for 400
    steps on the context world then never learned to carry the far road to the object
    (pair accuracy 0.50, measured at 48 px), with ``remember_bias=2`` it did (0.99).

    Deviation: the two RNNs of one axis are one bidirectional ``nn.GRU``/``nn.LSTM`` (the
    same computation as two separate RNNs, one per direction, whose outputs are concatenated).
    """

    def __init__(self, in_channels: int, hidden: int, patch: int | Sequence[int] = 1,
                 cell: str = "gru", remember_bias: float = 2.0) -> None:
        super().__init__()
        if cell not in RNN_CELLS:
            raise ValueError(f"cell must be one of {', '.join(RNN_CELLS)}, got {cell!r}")
        if in_channels < 1 or hidden < 1:
            raise ValueError(f"ReNetLayer: in_channels and hidden must be >= 1, got "
                             f"{in_channels}, {hidden}")
        self.patch = _pair(patch, "patch")
        rnn = RNN_CELLS[cell]
        self.horizontal = rnn(in_channels * self.patch[0] * self.patch[1], hidden,
                              batch_first=True, bidirectional=True)
        self.vertical = rnn(2 * hidden, hidden, batch_first=True, bidirectional=True)
        self.out_channels = 2 * hidden
        gates = 3 if cell == "gru" else 4  # PyTorch's order: (r, z, n) and (i, f, g, o)
        with torch.no_grad():
            for name, bias in [*self.horizontal.named_parameters(),
                               *self.vertical.named_parameters()]:
                if name.startswith("bias_hh"):
                    bias.chunk(gates)[1].add_(remember_bias)  # z or f: keep the old state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_patches(x, self.patch)  # each patch becomes one vector
        x = sweep_rows(x, self.horizontal)  # the two horizontal RNNs, all rows at once
        return sweep_columns(x, self.vertical)  # the two vertical RNNs over their outputs


def _matched_conv(in_ch: int, out_ch: int, params: int, stride: int) -> nn.Sequential:
    """Two 3x3 ConvBNReLU (in_ch → mid → out_ch) whose weights number about ``params``."""
    mid = max(1, round(params / (9 * (in_ch + out_ch) + 2)))
    return nn.Sequential(ConvBNReLU(in_ch, mid, 3, stride=stride), ConvBNReLU(mid, out_ch, 3))


# ------------------------------------------------------------------------------------------
# ReSeg
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReSegSizes:
    width: int  # the VGG trunk's base width (64 in VGG-16)
    backbone: str  # a VGG of course_lib.models.backbones
    feature_stride: int  # 4: up to conv3_3 (the paper's CamVid model), 8: up to pool3
    hidden: tuple[int, ...]  # units per direction of each ReNet layer
    patch: tuple[int, ...]  # patch side of each ReNet layer
    up_channels: tuple[int, ...]  # filters of each x2 transposed convolution


RESEG_SIZES = SizeTable(
    small=ReSegSizes(width=16, backbone="vgg_tiny", feature_stride=8, hidden=(32, 32),
                     patch=(1, 1), up_channels=(32, 16, 16)),
    # ReSeg's CamVid configuration (fvisin/reseg: evaluate_camvid.py): VGG-16 up to conv3_3,
    # two ReNet layers of 100 GRU units per direction on 1x1 patches, two 2x2/2 transposed
    # convolutions of 50 filters
    paper=ReSegSizes(width=64, backbone="vgg16", feature_stride=4, hidden=(100, 100),
                     patch=(1, 1), up_channels=(50, 50)),
)


@register_model("reseg", family="rnn", paper="Visin et al., CVPR Workshops 2016", year=2016,
                test_kwargs={"width": 4, "hidden": (6, 6), "up_channels": (8, 8, 8)},
                full_params=2_544_600)
class ReSeg(nn.Module):
    """ReSeg (Visin et al. 2016, Fig. 1): VGG features → ReNet layers → upsampling → classes.

    The paper's figure: a pre-trained VGG-16 up to conv3_3 extracts local features (stride
    4); ReNet layers sweep them (each output sees the whole image); transposed convolutions
    bring the map back to full resolution; a softmax classifies every pixel.

    Args:
        context: ``"renet"`` (the paper), ``"none"`` (the same network without the ReNet
            layers: the CNN twin of the context lesson) or ``"conv"`` (each ReNet layer
            replaced by two 3x3 convolutions with about as many parameters: the CNN of equal
            size for the speed lesson).
        cell: ``"gru"`` (the paper) or ``"lstm"``.
        backbone, feature_stride, hidden, patch, up_channels: see :class:`ReSegSizes`.

    Deviations: trained from scratch (the paper started from ImageNet weights); batch-norm
    in the VGG trunk (``full=True`` removes it); a 1x1 classifier after the upsampling and a
    final bilinear resize, so any input size gives logits of its own size.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 full: bool = False, context: str = "renet", cell: str = "gru",
                 backbone: str | None = None, feature_stride: int | None = None,
                 hidden: Sequence[int] | None = None, patch: Sequence[int] | None = None,
                 up_channels: Sequence[int] | None = None) -> None:
        super().__init__()
        check_channels("ReSeg", in_channels, num_classes)
        sizes = RESEG_SIZES.resolve(
            "ReSeg", full, width=width, backbone=backbone, feature_stride=feature_stride,
            hidden=None if hidden is None else tuple(hidden),
            patch=None if patch is None else tuple(patch),
            up_channels=None if up_channels is None else tuple(up_channels))
        if context not in CONTEXTS:
            raise ValueError(f"ReSeg: context must be one of {', '.join(CONTEXTS)}, "
                             f"got {context!r}")
        if sizes.feature_stride not in (4, 8) or not sizes.backbone.startswith("vgg"):
            raise ValueError(f"ReSeg: needs a VGG backbone at feature_stride 4 or 8, got "
                             f"{sizes.backbone!r} at {sizes.feature_stride}")
        if len(sizes.patch) != len(sizes.hidden):
            raise ValueError(f"ReSeg: one patch size per ReNet layer, got hidden={sizes.hidden} "
                             f"and patch={sizes.patch}")
        self.in_channels, self.context_kind = in_channels, context
        vgg = build_backbone(sizes.backbone, in_channels, width=sizes.width, full=full)
        last = vgg.stage3 if sizes.feature_stride == 8 else vgg.stage3[:-1]  # conv3_3, no pool
        self.features = nn.Sequential(vgg.stage1, vgg.stage2, last)
        channels = 4 * sizes.width
        layers: list[nn.Module] = []
        for hid, p in zip(sizes.hidden, sizes.patch, strict=True):
            renet = ReNetLayer(channels, hid, p, cell)
            if context == "renet":
                layers.append(renet)
            elif context == "conv":
                size = sum(t.numel() for t in renet.parameters())
                layers.append(_matched_conv(channels, renet.out_channels, size, stride=p))
            channels = renet.out_channels if context != "none" else channels
        self.context = nn.Sequential(*layers)
        ups: list[nn.Module] = []
        for ch in sizes.up_channels:
            ups += [nn.ConvTranspose2d(channels, ch, 2, stride=2), nn.ReLU(inplace=True)]
            channels = ch
        self.upsample = nn.Sequential(*ups)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("ReSeg", x, self.in_channels)
        f = self.features(x)  # local features: VGG up to conv3_3 (stride 4) or pool3 (8)
        f = self.context(f)  # ReNet layers: every position now sees the whole image
        f = self.upsample(f)  # transposed convolutions, x2 each
        return resize_to(self.classifier(f), x)  # per-pixel class scores at the input size


# ------------------------------------------------------------------------------------------
# 2D LSTM (a custom recurrence: computed along anti-diagonals)
# ------------------------------------------------------------------------------------------
class LSTM2d(nn.Module):
    """One direction (top-left → bottom-right) of a 2D LSTM (Graves et al. 2007).

    The state at pixel (i, j) comes from the input there and the states (h, c) of its upper
    neighbour (i-1, j) and left neighbour (i, j-1), with one forget gate for each::

        [a_i, a_ft, a_fl, a_g, a_o] = W x + U_top h_top + U_left h_left + b
        c = σ(a_ft) ⊙ c_top + σ(a_fl) ⊙ c_left + σ(a_i) ⊙ tanh(a_g)
        h = σ(a_o) ⊙ tanh(c)

    Pixels on one anti-diagonal (i + j = d) do not depend on each other, so the image is
    computed in H + W - 1 steps, one diagonal at a time (the "wavefront"). Byeon et al.
    (2015) run four such LSTMs, one from each corner, so every pixel sees the whole image.
    ``forward`` maps [N, C, H, W] to the hidden states [N, hidden, H, W].
    """

    GATES = ("input", "forget_top", "forget_left", "cell", "output")

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"LSTM2d: sizes must be >= 1, got {input_size}, {hidden_size}")
        self.hidden_size = hidden_size
        self.x_to = nn.Linear(input_size, 5 * hidden_size)
        self.top_to = nn.Linear(hidden_size, 5 * hidden_size, bias=False)
        self.left_to = nn.Linear(hidden_size, 5 * hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        pre = self.x_to(x.permute(0, 2, 3, 1))  # [N, H, W, 5 hidden]: the input's share
        # states with a zero border row (top) and column (left): pixel (i, j) at [i+1, j+1]
        h = x.new_zeros(n, height + 1, width + 1, self.hidden_size)
        c = torch.zeros_like(h)
        for d in range(height + width - 1):  # one anti-diagonal per step
            i = torch.arange(max(0, d - width + 1), min(d, height - 1) + 1, device=x.device)
            j = d - i
            a = pre[:, i, j] + self.top_to(h[:, i, j + 1]) + self.left_to(h[:, i + 1, j])
            a_i, a_ft, a_fl, a_g, a_o = a.chunk(5, dim=-1)
            c_new = (torch.sigmoid(a_ft) * c[:, i, j + 1] + torch.sigmoid(a_fl) * c[:, i + 1, j]
                     + torch.sigmoid(a_i) * torch.tanh(a_g))
            h = h.index_put((torch.arange(n, device=x.device)[:, None], i[None] + 1, j[None] + 1),
                            torch.sigmoid(a_o) * torch.tanh(c_new))
            c = c.index_put((torch.arange(n, device=x.device)[:, None], i[None] + 1, j[None] + 1),
                            c_new)
        return h[:, 1:, 1:].permute(0, 3, 1, 2)

    @torch.no_grad()
    def load_lstm(self, lstm: nn.LSTM | nn.LSTMCell, along: str = "rows") -> LSTM2d:
        """Copy a one-layer ``nn.LSTM``'s weights: along ``"rows"`` as the left recurrence,
        along ``"columns"`` as the top one. On a single row (or column) the 2D LSTM then
        computes exactly what ``nn.LSTM`` computes along it (the other neighbour is the zero
        border)."""
        if along not in ("rows", "columns"):
            raise ValueError(f"along must be 'rows' or 'columns', got {along!r}")
        suffix = "_l0" if isinstance(lstm, nn.LSTM) else ""
        w_i, w_f, w_g, w_o = getattr(lstm, "weight_ih" + suffix).chunk(4)
        u_i, u_f, u_g, u_o = getattr(lstm, "weight_hh" + suffix).chunk(4)
        b_i, b_f, b_g, b_o = (getattr(lstm, "bias_ih" + suffix)
                              + getattr(lstm, "bias_hh" + suffix)).chunk(4)
        zero = torch.zeros_like(u_f)
        # gate order: input, forget_top, forget_left, cell, output
        self.x_to.weight.copy_(torch.cat([w_i, w_f, w_f, w_g, w_o]))
        self.x_to.bias.copy_(torch.cat([b_i, b_f, b_f, b_g, b_o]))
        if along == "rows":  # the left neighbour is the previous step
            used, unused, recurrent = self.left_to, self.top_to, [u_i, zero, u_f, u_g, u_o]
        else:  # the upper neighbour is the previous step
            used, unused, recurrent = self.top_to, self.left_to, [u_i, u_f, zero, u_g, u_o]
        used.weight.copy_(torch.cat(recurrent))
        unused.weight.zero_()
        return self


# ------------------------------------------------------------------------------------------
# Referring segmentation: CNN + LSTM (Hu et al. 2016)
# ------------------------------------------------------------------------------------------
def spatial_map(height: int, width: int, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Hu et al.'s 8-d spatial map [8, H, W] of an H x W feature map: each cell's
    ``x_min, y_min, x_max, y_max, x_centre, y_centre`` in [-1, 1] and ``1/W, 1/H``."""
    xs = torch.arange(width + 1, device=device, dtype=dtype) / width * 2 - 1  # cell edges
    ys = torch.arange(height + 1, device=device, dtype=dtype) / height * 2 - 1
    x0, x1 = xs[:-1].expand(height, width), xs[1:].expand(height, width)
    y0, y1 = ys[:-1, None].expand(height, width), ys[1:, None].expand(height, width)
    return torch.stack([x0, y0, x1, y1, (x0 + x1) / 2, (y0 + y1) / 2,
                        torch.full_like(x0, 1 / width), torch.full_like(x0, 1 / height)])


@dataclass(frozen=True)
class ReferringSizes:
    width: int  # the CNN's base width
    backbone: str  # any backbone of course_lib.models.backbones, or "none" (see the model)
    output_stride: int  # stride of the visual map (32 in the paper)
    visual_dim: int  # channels of the visual map (the paper: VGG-16's fc8, 1000)
    embed_dim: int  # word embedding size
    hidden: int  # LSTM units (the sentence vector's size)
    mlp_hidden: int  # the 1x1-convolution MLP's hidden channels


REFERRING_SIZES = SizeTable(
    small=ReferringSizes(width=16, backbone="vgg_tiny", output_stride=8, visual_dim=64,
                         embed_dim=32, hidden=64, mlp_hidden=128),
    # ronghanghu/text_objseg (exp_train_referit_seg_highres.py): VGG-16 fc8 at stride 32,
    # 1000-d embedding and LSTM, a 500-unit MLP
    paper=ReferringSizes(width=64, backbone="vgg16", output_stride=32, visual_dim=1000,
                         embed_dim=1000, hidden=1000, mlp_hidden=500),
)


@register_model("cnn_lstm_referring", family="rnn", paper="Hu, Rohrbach & Darrell, ECCV 2016",
                year=2016, test_kwargs={"width": 4, "visual_dim": 8, "embed_dim": 8,
                                        "hidden": 8, "mlp_hidden": 16},
                full_params=24_272_190)
class ReferringSegmenter(nn.Module):
    """Segmentation from a natural-language expression (Hu et al. 2016, Fig. 2).

    ``forward(image, tokens)``: ``image`` [N, C, H, W]; ``tokens`` int64 [N, T], each row
    the word ids of one expression (:func:`course_lib.data.referring.encode`) followed by
    padding (id 0). Returns logits [N, K, H, W]; with ``num_classes=2`` (the default) class
    1 is "the object meant". :meth:`extra_inputs` builds valid tokens for a batch of images
    (for generic tests: ``model(x, *model.extra_inputs(x))``).

    The figure, line by line in ``forward``: the LSTM reads the words and its last hidden
    state is the sentence vector; the CNN's last map, projected to ``visual_dim`` channels
    (the paper's fc8 as a 1x1 convolution), is the visual map; both are L2-normalised (the
    visual map at every position), the sentence vector is tiled over the map and
    concatenated with it and with the 8-d spatial map; two 1x1 convolutions (the MLP) score
    every position; the scores are upsampled to the image.

    Deviations: two classes with softmax cross-entropy instead of one logit with a logistic
    loss (the same model: the difference of the two logits is that logit), bilinear
    upsampling instead of a learned deconvolution, a backbone trained from scratch with
    batch-norm at output stride 8 (``full=True``: VGG-16 without batch-norm at stride 32);
    ``backbone="none"`` drops the CNN for inputs that are feature maps already (such as
    :func:`course_lib.data.referring.scene_maps`, the scene's true classes and colours): the
    visual map is then the input averaged over ``output_stride`` x ``output_stride`` cells.
    ``forget_bias`` (Jozefowicz et al. 2015) added to the LSTM's forget gate, so that the
    first words of an expression reach its end at the start of training. ``vocab_size``
    defaults to the course vocabulary (:data:`course_lib.data.referring.VOCABULARY`).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int | None = None,
                 full: bool = False, vocab_size: int = len(VOCABULARY),
                 backbone: str | None = None, output_stride: int | None = None,
                 visual_dim: int | None = None, embed_dim: int | None = None,
                 hidden: int | None = None, mlp_hidden: int | None = None,
                 forget_bias: float = 1.0) -> None:
        super().__init__()
        check_channels("ReferringSegmenter", in_channels, num_classes)
        sizes = REFERRING_SIZES.resolve(
            "ReferringSegmenter", full, width=width, backbone=backbone,
            output_stride=output_stride, visual_dim=visual_dim, embed_dim=embed_dim,
            hidden=hidden, mlp_hidden=mlp_hidden)
        if vocab_size < 2:
            raise ValueError(f"ReferringSegmenter: vocab_size must be >= 2, got {vocab_size}")
        self.in_channels, self.vocab_size = in_channels, vocab_size
        self.output_stride = sizes.output_stride
        if sizes.backbone == "none":  # the input is a feature map already: no CNN
            self.backbone, channels = None, in_channels
        else:
            self.backbone = build_backbone(sizes.backbone, in_channels, width=sizes.width,
                                           output_stride=sizes.output_stride, full=full)
            channels = self.backbone.channels["c5"]
        self.visual = nn.Conv2d(channels, sizes.visual_dim, 1)
        self.embed = nn.Embedding(vocab_size, sizes.embed_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(sizes.embed_dim, sizes.hidden, batch_first=True)
        with torch.no_grad():  # start by remembering the first words (as ReNetLayer does)
            self.lstm.bias_hh_l0.chunk(4)[1].add_(forget_bias)
        self.mlp = nn.Sequential(
            nn.Conv2d(sizes.hidden + sizes.visual_dim + 8, sizes.mlp_hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(sizes.mlp_hidden, num_classes, 1),
        )

    def check_tokens(self, tokens: torch.Tensor, batch: int) -> torch.Tensor:
        """The number of words of each expression, after checking ``tokens``."""
        if tokens.dim() != 2 or tokens.shape[0] != batch or tokens.dtype != torch.int64:
            raise ValueError(f"ReferringSegmenter: expected tokens int64 [{batch}, T], got "
                             f"{tuple(tokens.shape)} {tokens.dtype}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"ReferringSegmenter: token ids must lie in 0..{self.vocab_size - 1}"
                             f", got {tokens.min().item()}..{tokens.max().item()}")
        words = tokens != PAD
        lengths = words.sum(1)
        if (lengths == 0).any() or (words.int().diff(dim=1) > 0).any():
            raise ValueError("ReferringSegmenter: every expression needs at least one word, "
                             "and padding (id 0) only after its last word")
        return lengths

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """The sentence vectors [N, hidden]: the LSTM's state after each expression's last
        word (padding is never read)."""
        lengths = self.check_tokens(tokens, tokens.shape[0])
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return h[-1]

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        check_input("ReferringSegmenter", image, self.in_channels)
        self.check_tokens(tokens, image.shape[0])
        sentence = F.normalize(self.encode_text(tokens), dim=1)  # LSTM, then L2
        visual = F.normalize(self.visual(self.visual_features(image)), dim=1)  # CNN, L2 per cell
        n, _, h, w = visual.shape
        grid = spatial_map(h, w, visual.device, visual.dtype).expand(n, -1, -1, -1)
        tiled = sentence[:, :, None, None].expand(-1, -1, h, w)  # the sentence at every cell
        scores = self.mlp(torch.cat([tiled, visual, grid], dim=1))  # 1x1-conv MLP
        return resize_to(scores, image)  # upsampled to the image

    def visual_features(self, image: torch.Tensor) -> torch.Tensor:
        """The CNN's last map (``"c5"``); without a backbone, the input averaged over cells of
        ``output_stride`` pixels (partial cells at the border included)."""
        if self.backbone is None:
            return F.avg_pool2d(image, self.output_stride, ceil_mode=True)
        return self.backbone(image)["c5"]

    def extra_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        """Valid ``tokens`` for a batch of ``images`` (fixed words of 1..4 tokens, padded):
        what a generic test passes after the images."""
        n = images.shape[0]
        lengths = torch.arange(n) % 4 + 1
        ids = torch.arange(4)[None] + torch.arange(n)[:, None] * 3
        tokens = ids % (self.vocab_size - 1) + 1
        tokens[torch.arange(4)[None] >= lengths[:, None]] = PAD
        return (tokens.to(images.device),)


def _referring_batch(batch: dict, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(batch[k].to(device) for k in ("image", "tokens", "mask"))


def train_referring(model: ReferringSegmenter, loader: Iterable[dict], epochs: int,
                    lr: float = 3e-3, object_weight: float = 3.0, progress: bool = True,
                    device: torch.device | str | None = None) -> list[float]:
    """Train the referring model on batches of ``{"image", "tokens", "mask"}`` (a DataLoader
    over :class:`~course_lib.data.referring.ReferringShapes`); returns the mean loss of each
    epoch. AdamW with a poly schedule, cross-entropy in which the object's pixels weigh
    ``object_weight`` times the rest (Hu et al.: 1 vs 1/3), AMP on CUDA, a progress bar;
    stops after :func:`course_lib.config.cap_steps` steps in a smoke run."""
    from course_lib import config

    device = config.get_device() if device is None else torch.device(device)
    model.to(device).train()
    total = config.cap_steps(epochs * len(loader))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: (1 - t / total) ** 0.9)
    scaler = config.grad_scaler(device)
    weight = torch.tensor([1.0, object_weight], device=device)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc="referring model", leave=False)
    losses, step = [], 0
    for _ in range(epochs):
        running, seen = 0.0, 0
        for batch in loader:
            if step == total:
                break
            image, tokens, mask = _referring_batch(batch, device)
            with config.autocast(device):
                loss = F.cross_entropy(model(image, tokens).float(), mask, weight=weight)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"train_referring: loss {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            step += 1
            running, seen = running + loss.item(), seen + 1
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if seen:
            losses.append(running / seen)
    if bar is not None:
        bar.close()
    return losses


def predict_referring(model: ReferringSegmenter, images: torch.Tensor, tokens: torch.Tensor,
                      batch_size: int = 32, probabilities: bool = False) -> torch.Tensor:
    """The masks (bool [N, H, W]) the model predicts for each image and its expression, or
    with ``probabilities=True`` its probability of "the object meant" (float [N, H, W])."""
    if len(images) != len(tokens):
        raise ValueError(f"one expression per image: got {len(images)} images and "
                         f"{len(tokens)} expressions")
    device = model_device(model)
    with evaluating(model):
        logits = torch.cat([model(images[i:i + batch_size].to(device),
                                  tokens[i:i + batch_size].to(device)).float().cpu()
                            for i in range(0, len(images), batch_size)])
    return logits.softmax(1)[:, 1] if probabilities else logits.argmax(1) == 1


# ------------------------------------------------------------------------------------------
# Dependency maps (which input pixels can change one output pixel)
# ------------------------------------------------------------------------------------------
def input_dependency(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     row: int, col: int) -> torch.Tensor:
    """Bool [H, W]: the input pixels of ``x`` [1, C, H, W] on which ``fn(x)[0, :, row, col]``
    depends (non-zero gradient; ``fn`` should be in eval mode, as batch statistics would
    connect every pixel)."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image [1, C, H, W], got {tuple(x.shape)}")
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    if not (0 <= row < out.shape[2] and 0 <= col < out.shape[3]):
        raise ValueError(f"output pixel ({row}, {col}) outside the output {tuple(out.shape[2:])}")
    (grad,) = torch.autograd.grad(out[0, :, row, col].sum(), x)
    return grad[0].abs().sum(0) > 0
