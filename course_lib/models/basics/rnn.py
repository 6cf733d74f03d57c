"""Survey section 2.2, RNNs and the LSTM (Figs. 3 and 4): the plain recurrent cell and the LSTM
written gate by gate (weights compatible with ``torch.nn``), a cell unrolled over time, the
long-range recall task of notebook 02 and its training loop."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ... import config
from .common import progress_bar, require_positive


class RNNCell(nn.Module):
    """The plain recurrent cell of the survey's Fig. 3 (Elman 1990).

    At time t the cell takes the input ``x_t`` and the previous hidden state ``h_{t-1}``:
    ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``. The figure's output ``o_t`` is a
    read-out of ``h_t`` (a linear layer outside the cell). Parameter names and initialisation
    follow :class:`torch.nn.RNNCell`, so weights can be copied one to one.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        require_positive("RNNCell", input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size))
        bound = 1 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def initial_state(self, batch: int, device=None, dtype=None) -> torch.Tensor:
        """The zero hidden state ``h_0`` [N, H]."""
        return torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(F.linear(x, self.weight_ih, self.bias_ih)
                          + F.linear(h, self.weight_hh, self.bias_hh))

    @torch.no_grad()
    def copy_from(self, source: nn.RNN | nn.RNNCell, layer: int = 0) -> RNNCell:
        """Copy the weights of a tanh :class:`torch.nn.RNN` (layer ``layer``) or ``RNNCell``."""
        suffix = f"_l{layer}" if isinstance(source, nn.RNN) else ""
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(self, name).copy_(getattr(source, name + suffix))
        return self


# The four gates of the LSTM, in the order PyTorch stacks them in ``weight_ih_l0``.
LSTM_GATES: tuple[str, ...] = ("input", "forget", "cell", "output")


class LSTMCell(nn.Module):
    """The long short-term memory cell of the survey's Fig. 4 (Hochreiter & Schmidhuber 1997).

    Three gates regulate what flows in and out of the memory cell ``c`` (the forget gate is
    Gers et al. 2000's addition, as in every modern LSTM)::

        i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)     input gate
        f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)     forget gate
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)  cell candidate
        o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)     output gate
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t                    memory cell
        h_t = o_t ⊙ tanh(c_t)                              hidden state

    Because ``c_t`` is updated by *addition* gated by ``f_t``, the gradient along the cell
    is multiplied by ``f_t`` only, not by a weight matrix and a tanh slope at every step:
    this is why the LSTM remembers over long gaps where the plain RNN's gradient vanishes.

    Each gate has its own pair of linear maps (``x_to[gate]``, ``h_to[gate]``) so the code
    reads like the equations. Initialisation follows :class:`torch.nn.LSTM`, except that
    ``forget_bias`` (default 1, Jozefowicz et al. 2015) is added to the forget gate's bias so
    that the cell starts by remembering; :meth:`copy_from` loads ``nn.LSTM`` weights exactly.
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        require_positive("LSTMCell", input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.x_to = nn.ModuleDict({g: nn.Linear(input_size, hidden_size) for g in LSTM_GATES})
        self.h_to = nn.ModuleDict({g: nn.Linear(hidden_size, hidden_size) for g in LSTM_GATES})
        bound = 1 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        with torch.no_grad():
            self.x_to["forget"].bias.add_(forget_bias)

    def initial_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, ...]:
        """The zero state ``(h_0, c_0)``, each [N, H]."""
        zeros = torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def gate(self, name: str, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Pre-activation of one gate: ``W_x x + b_x + W_h h + b_h``."""
        return self.x_to[name](x) + self.h_to[name](h)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i = torch.sigmoid(self.gate("input", x, h))  # how much of the candidate to write
        f = torch.sigmoid(self.gate("forget", x, h))  # how much of the old memory to keep
        g = torch.tanh(self.gate("cell", x, h))  # the candidate content
        o = torch.sigmoid(self.gate("output", x, h))  # how much of the memory to show
        c = f * c + i * g
        h = o * torch.tanh(c)
        return h, c

    @torch.no_grad()
    def copy_from(self, source: nn.LSTM | nn.LSTMCell, layer: int = 0) -> LSTMCell:
        """Copy the weights of :class:`torch.nn.LSTM` (layer ``layer``) or ``nn.LSTMCell``.

        PyTorch stacks the four gates' weights in one matrix in the order input, forget,
        cell, output; they are split with ``chunk(4)``.
        """
        suffix = f"_l{layer}" if isinstance(source, nn.LSTM) else ""
        for kind, target in (("ih", self.x_to), ("hh", self.h_to)):
            weights = getattr(source, f"weight_{kind}{suffix}").chunk(4, dim=0)
            biases = getattr(source, f"bias_{kind}{suffix}").chunk(4, dim=0)
            for gate, w, b in zip(LSTM_GATES, weights, biases, strict=True):
                target[gate].weight.copy_(w)
                target[gate].bias.copy_(b)
        return self


class RecurrentLayer(nn.Module):
    """A cell unrolled over time (the right half of the survey's Fig. 3).

    ``forward(x)`` with ``x`` [N, T, D] (``batch_first=True``) or [T, N, D] applies the same
    cell — the same weights — at every step and returns ``(outputs, state)``: the hidden
    states of all steps ([N, T, H] or [T, N, H]) and the final state (``h`` [N, H] for the
    RNN, ``(h, c)`` for the LSTM).

    Args:
        input_size, hidden_size: sizes of ``x_t`` and ``h_t``.
        cell: ``"lstm"`` or ``"rnn"``.
        batch_first: layout of ``x`` as in :class:`torch.nn.LSTM`.
        forget_bias: added to the LSTM's forget-gate bias at initialisation (see LSTMCell).
    """

    CELLS: dict[str, type[nn.Module]] = {"lstm": LSTMCell, "rnn": RNNCell}

    def __init__(
        self, input_size: int, hidden_size: int, cell: str = "lstm", batch_first: bool = True,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        if cell not in self.CELLS:
            raise ValueError(f"RecurrentLayer: unknown cell {cell!r}; valid: {list(self.CELLS)}")
        self.kind = cell
        self.cell = (LSTMCell(input_size, hidden_size, forget_bias=forget_bias) if cell == "lstm"
                     else RNNCell(input_size, hidden_size))
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor, state=None):
        if x.dim() != 3:
            raise ValueError(f"RecurrentLayer expects [N, T, D] or [T, N, D], got {tuple(x.shape)}")
        if self.batch_first:
            x = x.transpose(0, 1)  # → [T, N, D]
        if state is None:
            state = self.cell.initial_state(x.shape[1], device=x.device, dtype=x.dtype)
        outputs = []
        for x_t in x:  # one step per time index: the same cell, the same weights
            state = self.cell(x_t, state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        out = torch.stack(outputs, dim=1 if self.batch_first else 0)
        return out, state


def make_recall_task(
    num_samples: int, seq_len: int, num_tokens: int = 4, num_noise: int = 1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The long-range task: read a sequence, then say which symbol came *first*.

    The first token is one of ``num_tokens`` symbols; the ``seq_len - 1`` tokens after it are
    distractors drawn from ``num_noise`` further tokens (``num_tokens … num_tokens +
    num_noise - 1``; with ``num_noise=0`` from the symbols themselves, a harder variant).
    Returns ``tokens`` int64 [N, T] and ``targets`` = ``tokens[:, 0]``. The answer must be
    carried across ``T - 1`` steps; chance accuracy is ``1 / num_tokens``. The input
    vocabulary has ``num_tokens + num_noise`` entries.
    """
    require_positive("make_recall_task", num_samples=num_samples, seq_len=seq_len)
    if num_tokens < 2:
        raise ValueError(f"make_recall_task: num_tokens must be >= 2, got {num_tokens}")
    if num_noise < 0:
        raise ValueError(f"make_recall_task: num_noise must be >= 0, got {num_noise}")
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(num_tokens, (num_samples, 1), generator=generator)
    low, high = (num_tokens, num_tokens + num_noise) if num_noise else (0, num_tokens)
    rest = torch.randint(low, high, (num_samples, seq_len - 1), generator=generator)
    return torch.cat([first, rest], dim=1), first[:, 0].clone()


class SequenceClassifier(nn.Module):
    """One-hot tokens → :class:`RecurrentLayer` → linear read-out of the last hidden state.

    ``num_tokens`` is the input vocabulary size; ``forget_bias`` is passed to the LSTM cell.
    """

    def __init__(
        self, num_tokens: int, hidden_size: int = 32, num_classes: int | None = None,
        cell: str = "lstm", forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.rnn = RecurrentLayer(num_tokens, hidden_size, cell=cell, forget_bias=forget_bias)
        self.readout = nn.Linear(hidden_size, num_classes or num_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: int64 tokens [N, T] or already-encoded float inputs [N, T, num_tokens]."""
        if not x.is_floating_point():
            x = F.one_hot(x, self.num_tokens).float()
        outputs, _ = self.rnn(x)
        return self.readout(outputs[:, -1])


def input_gradient_norms(
    model: SequenceClassifier, tokens: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """``‖∂loss/∂x_t‖`` for every time step t (mean over the batch): how much the final
    prediction can still learn from the input at step t. Vanishing gradients show as norms
    that fall exponentially towards t = 0."""
    x = F.one_hot(tokens, model.num_tokens).float().requires_grad_(True)
    loss = F.cross_entropy(model(x), targets)
    (grad,) = torch.autograd.grad(loss, x)
    return grad.norm(dim=2).mean(0).detach()


def train_sequence_classifier(
    model: SequenceClassifier,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-2,
    optimizer: str = "adam",
    clip: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train on random mini-batches with gradient-norm clipping; per-step loss and accuracy.

    ``optimizer="sgd"`` (momentum 0.9) follows the raw gradient, so a vanishing gradient
    stalls it; Adam rescales every parameter's step and hides part of the problem. A smoke
    run (``COURSE_SMOKE=1``) takes a couple of steps.
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: 'adam', 'sgd'")
    opt = (torch.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    model.train()
    for _ in progress_bar(range(config.cap_steps(steps)), progress, f"{model.rnn.kind} steps"):
        idx = torch.randint(len(targets), (batch_size,), generator=generator)
        logits = model(tokens[idx])
        loss = F.cross_entropy(logits, targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        history["loss"].append(loss.item())
        history["accuracy"].append((logits.argmax(1) == targets[idx]).float().mean().item())
    return history

__all__ = [
    "RNNCell", "LSTM_GATES", "LSTMCell", "RecurrentLayer", "make_recall_task",
    "SequenceClassifier", "input_gradient_norms", "train_sequence_classifier",
]
