"""The 2D LSTM (Graves et al. 2007; Byeon et al. CVPR 2015): a recurrence over the pixel grid,
computed along anti-diagonals (one "wavefront" per step)."""

from __future__ import annotations

import torch
from torch import nn


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
