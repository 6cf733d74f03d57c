"""ReNet (Visin et al. 2015, Fig. 1): four RNNs sweep the patches of an image.

Two RNNs read every row of patches (left→right, right→left), two more every column of
*their* outputs (top→bottom, bottom→top): after one layer every output position depends on
every input position (:func:`input_dependency` measures it with autograd).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

RNN_CELLS: dict[str, type[nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM}


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])



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
