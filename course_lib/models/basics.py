"""The survey's section 2: the four deep-network architectures every segmentation model reuses.

Minaee et al. (2021), "Image Segmentation Using Deep Learning: A Survey", section 2 reviews
four building blocks before any segmentation model appears:

* **CNNs** (Fig. 2, LeCun et al. 1998): convolution, non-linearity and pooling with weights
  shared across positions — :class:`LeNet` against a fully connected :class:`MLP`.
* **RNNs and LSTM** (Figs. 3 and 4; Hochreiter & Schmidhuber 1997): a recurrent cell that
  carries a hidden state over time — :class:`RNNCell`, :class:`LSTMCell` written gate by gate,
  and :class:`RecurrentLayer` that loops a cell over a sequence.
* **Encoder-decoders and autoencoders** (Fig. 5; Hinton & Salakhutdinov 2006, Vincent et al.
  2008): ``z = g(x)``, ``y = f(z)`` — :class:`ConvAutoencoder`, :class:`DenoisingAutoencoder`
  and the image→mask :class:`EncoderDecoder`, the step to segmentation.
* **GANs** (Fig. 6; Goodfellow et al. 2014, Radford et al. 2016, Mirza & Osindero 2014,
  Gulrajani et al. 2017): :class:`DCGANGenerator`, :class:`DCGANDiscriminator`, their
  class-conditional versions, the minimax losses and the WGAN-GP gradient penalty.

The small training loops for classification, sequences, autoencoders and GANs live here
too (segmentation models are trained with :func:`course_lib.train.fit`). The classification
data are crops of single objects from the shapes world: :class:`ShapeCrops`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..receptive_field import conv_output_size, receptive_field
from . import register_model
from .blocks import ConvBNReLU, resize_to
from .contract import SizeTable

# Shape classes of the shapes world used for classification (disk … wire); car and boat look
# identical and are told apart only by their surroundings, so they are left out by default.
SHAPE_CLASSES: tuple[int, ...] = (4, 5, 6, 7, 8, 9)


def _require_positive(owner: str, **values: int | float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{owner}: {name} must be > 0, got {value}")


def _progress(iterable, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


# ---------------------------------------------------------------------------------------------
# Data: single-object crops of the shapes world (classification, GANs)
# ---------------------------------------------------------------------------------------------


class ShapeCrops(torch.utils.data.Dataset):
    """Square crops of single thing instances of the shapes world, resized, labelled by shape.

    Each image of ``ShapesWorld(target="all")`` gives boxes, labels and visible masks of its
    objects; every object of a class in ``classes`` whose visible mask has at least
    ``min_area`` pixels becomes one crop: its box is made square (the longer side, plus
    ``margin`` of context on each side) and resampled to ``crop_size`` x ``crop_size`` with
    :func:`torchvision.ops.roi_align` (all crops of an image in one call, no Python loop over
    pixels). The label is the index of the class in ``classes`` (0 … len(classes) - 1).

    All crops are built once and kept in memory: ``.images`` float32 [N, 3, S, S] in [0, 1],
    ``.labels`` int64 [N], ``.class_names``.
    """

    def __init__(
        self,
        num_images: int,
        crop_size: int = 32,
        image_size: int | None = None,
        seed: int = 0,
        split: str = "train",
        classes: Sequence[int] = SHAPE_CLASSES,
        margin: float = 0.15,
        min_area: int = 24,
    ) -> None:
        from torchvision.ops import roi_align

        from ..data.synthetic import CLASS_NAMES, THING_CLASSES, ShapesWorld

        _require_positive("ShapeCrops", num_images=num_images, crop_size=crop_size)
        bad = [c for c in classes if c not in THING_CLASSES]
        if bad or not classes:
            raise ValueError(
                f"ShapeCrops: classes must be thing classes {THING_CLASSES}, got {tuple(classes)}"
            )
        self.classes = tuple(int(c) for c in classes)
        self.class_names = tuple(CLASS_NAMES[c] for c in self.classes)
        self.crop_size = crop_size
        lookup = torch.full((max(THING_CLASSES) + 1,), -1, dtype=torch.long)
        lookup[list(self.classes)] = torch.arange(len(self.classes))

        world = ShapesWorld(num_images, image_size=image_size, seed=seed, split=split,
                            target="all")
        crops, labels = [], []
        for index in range(len(world)):
            sample = world[index]
            boxes = torch.as_tensor(sample["boxes"], dtype=torch.float32).reshape(-1, 4)
            cls = torch.as_tensor(sample["labels"], dtype=torch.long).reshape(-1)
            if cls.numel() == 0:
                continue
            area = torch.as_tensor(sample["masks"]).flatten(1).sum(1)
            keep = (lookup[cls.clamp(max=len(lookup) - 1)] >= 0) & (area >= min_area)
            if not keep.any():
                continue
            boxes, cls = boxes[keep], cls[keep]
            # Square box around the object's centre, with a margin of context.
            centre = (boxes[:, :2] + boxes[:, 2:]) / 2
            half = (boxes[:, 2:] - boxes[:, :2]).amax(1, keepdim=True) * (0.5 + margin)
            square = torch.cat([centre - half, centre + half], dim=1)
            image = torch.as_tensor(sample["image"], dtype=torch.float32)[:3]
            crops.append(roi_align(image[None], [square], output_size=crop_size,
                                   spatial_scale=1.0, sampling_ratio=2, aligned=True))
            labels.append(lookup[cls])
        if not crops:
            raise ValueError(f"ShapeCrops: no object of classes {self.classes} in "
                             f"{num_images} images; use more images")
        self.images = torch.cat(crops).clamp(0, 1)
        self.labels = torch.cat(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


# ---------------------------------------------------------------------------------------------
# 2.1 Convolutional neural networks (survey Fig. 2)
# ---------------------------------------------------------------------------------------------


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al., Proc. IEEE 1998; the survey's Fig. 2): conv, pool, conv, pool, FC.

    The paper's figure shows a 32x32 input, C1 (6 maps 28x28, 5x5 conv), S2 (subsampling to
    14x14), C3 (16 maps 10x10), S4 (5x5), C5 (120 units), F6 (84 units) and the output.
    Every unit of a convolutional layer uses the *same* 5x5 weights at every position (weight
    sharing), so C1 has only 6 x (3·25 + 1) parameters whatever the image size.

    Deviations, said out loud: ReLU instead of the scaled tanh, max pooling instead of the
    trainable average subsampling, C3 connected to all S2 maps (the paper used a sparse
    table), C5 written as a linear layer on the flattened S4 maps (a 5x5 convolution on a
    5x5 map is exactly that), and the RBF output layer replaced by a linear one.

    Args:
        in_channels: input channels (3 for RGB crops).
        num_classes: output classes.
        image_size: input side; the flattened S4 size is computed from it.
        c1, c3, c5, f6: widths of the paper's layers (6, 16, 120, 84).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 6,
        image_size: int = 32,
        c1: int = 6,
        c3: int = 16,
        c5: int = 120,
        f6: int = 84,
    ) -> None:
        super().__init__()
        _require_positive("LeNet", in_channels=in_channels, num_classes=num_classes,
                          image_size=image_size, c1=c1, c3=c3, c5=c5, f6=f6)
        self.image_size = image_size
        # Side of S4 from the output-size formula: conv 5 → pool 2 → conv 5 → pool 2.
        side = image_size
        for k, s in ((5, 1), (2, 2), (5, 1), (2, 2)):
            side = conv_output_size(side, k, s)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=5),  # C1: 32 → 28
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # S2: 28 → 14
            nn.Conv2d(c1, c3, kernel_size=5),  # C3: 14 → 10
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # S4: 10 → 5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c3 * side * side, c5),  # C5
            nn.ReLU(inplace=True),
            nn.Linear(c5, f6),  # F6
            nn.ReLU(inplace=True),
            nn.Linear(f6, num_classes),  # output layer
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"LeNet expects input [N, C, {self.image_size}, {self.image_size}], "
                             f"got shape {tuple(x.shape)}")
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """A fully connected network (multilayer perceptron) on the flattened image.

    The comparison the survey makes in section 2.1: without weight sharing every hidden unit
    has its own weight for every input pixel, so the first layer alone has
    ``C·H·W x hidden`` parameters.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 6,
        image_size: int = 32,
        hidden: Sequence[int] = (256, 128),
    ) -> None:
        super().__init__()
        _require_positive("MLP", in_channels=in_channels, num_classes=num_classes,
                          image_size=image_size)
        self.image_size = image_size
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"MLP expects input [N, C, {self.image_size}, {self.image_size}], "
                             f"got shape {tuple(x.shape)}")
        return self.net(x)


@torch.no_grad()
def classification_accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256,
    device: torch.device | str | None = None,
) -> float:
    """Fraction of ``images`` [N, C, H, W] whose arg-max prediction equals ``labels`` [N]."""
    from ..config import get_device

    device = get_device() if device is None else torch.device(device)
    model.eval().to(device)
    correct = 0
    for start in range(0, len(labels), batch_size):
        x = images[start:start + batch_size].to(device)
        correct += (model(x).argmax(1).cpu() == labels[start:start + batch_size]).sum().item()
    return correct / max(len(labels), 1)


def train_classifier(
    model: nn.Module,
    train_set: ShapeCrops | torch.utils.data.TensorDataset,
    val_set: ShapeCrops | torch.utils.data.TensorDataset | None = None,
    *,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train an image classifier with Adam and cross-entropy; returns per-epoch history.

    History keys: ``"train_loss"``, ``"train_accuracy"``, ``"val_accuracy"`` (when given).
    """
    from ..config import get_device

    device = get_device() if device is None else torch.device(device)
    images, labels = _tensors_of(train_set)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"train_loss": [], "train_accuracy": [], "val_accuracy": []}
    for _ in _progress(range(epochs), progress, "epochs"):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        total, correct = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x, y = images[idx].to(device), labels[idx].to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
        history["train_loss"].append(total / len(labels))
        history["train_accuracy"].append(correct / len(labels))
        if val_set is not None:
            history["val_accuracy"].append(classification_accuracy(model, *_tensors_of(val_set),
                                                                   device=device))
    return history


def _tensors_of(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(dataset, ShapeCrops):
        return dataset.images, dataset.labels
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return dataset.tensors[0], dataset.tensors[1]
    raise ValueError(f"expected a ShapeCrops or TensorDataset, got {type(dataset).__name__}")


# ---------------------------------------------------------------------------------------------
# 2.2 RNNs and LSTM (survey Figs. 3 and 4)
# ---------------------------------------------------------------------------------------------


class RNNCell(nn.Module):
    """The plain recurrent cell of the survey's Fig. 3 (Elman 1990).

    At time t the cell takes the input ``x_t`` and the previous hidden state ``h_{t-1}``:
    ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``. The figure's output ``o_t`` is a
    read-out of ``h_t`` (a linear layer outside the cell). Parameter names and initialisation
    follow :class:`torch.nn.RNNCell`, so weights can be copied one to one.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        _require_positive("RNNCell", input_size=input_size, hidden_size=hidden_size)
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
        _require_positive("LSTMCell", input_size=input_size, hidden_size=hidden_size)
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
    _require_positive("make_recall_task", num_samples=num_samples, seq_len=seq_len)
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
    stalls it; Adam rescales every parameter's step and hides part of the problem.
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: 'adam', 'sgd'")
    opt = (torch.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    model.train()
    for _ in _progress(range(steps), progress, f"{model.rnn.kind} steps"):
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


# ---------------------------------------------------------------------------------------------
# 2.3 Encoder-decoder and autoencoder models (survey Fig. 5)
# ---------------------------------------------------------------------------------------------


def _down(in_ch: int, out_ch: int) -> nn.Sequential:
    """Encoder step: a stride-2 3x3 conv (halves H and W, rounding up), then a 3x3 conv."""
    return nn.Sequential(ConvBNReLU(in_ch, out_ch, stride=2), ConvBNReLU(out_ch, out_ch))


def _up(in_ch: int, out_ch: int) -> nn.Sequential:
    """Decoder step: a 2x2 stride-2 transposed conv (doubles H and W), BN, ReLU, a 3x3 conv."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2, bias=False),
        nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True), ConvBNReLU(out_ch, out_ch),
    )


class ConvAutoencoder(nn.Module):
    """A convolutional autoencoder (Hinton & Salakhutdinov, Science 2006; the survey's Fig. 5
    with output = input).

    The encoder ``z = g(x)`` halves the resolution ``depth`` times while widening, then a 1x1
    convolution squeezes the features to ``bottleneck`` channels: the code ``z`` has
    ``bottleneck x H/2^depth x W/2^depth`` numbers (:meth:`code_size`). The decoder
    ``x̂ = f(z)`` mirrors the encoder with transposed convolutions and ends in a sigmoid, since
    images are in [0, 1]. Trained to reconstruct its input, it must keep in ``z`` what
    matters for the whole image — the smaller ``z``, the blurrier ``x̂``.
    """

    def __init__(
        self, in_channels: int = 3, width: int = 16, bottleneck: int = 8, depth: int = 3
    ) -> None:
        super().__init__()
        _require_positive(type(self).__name__, in_channels=in_channels, width=width,
                          bottleneck=bottleneck, depth=depth)
        self.depth, self.bottleneck = depth, bottleneck
        chans = [width * 2**i for i in range(depth + 1)]  # w, 2w, 4w, ...
        # Encoder g: stem, `depth` stride-2 steps, 1x1 squeeze to the code.
        self.encoder = nn.Sequential(
            ConvBNReLU(in_channels, chans[0]),
            *[_down(chans[i], chans[i + 1]) for i in range(depth)],
            nn.Conv2d(chans[-1], bottleneck, kernel_size=1),
        )
        # Decoder f: 1x1 expand, `depth` upsampling steps, 1x1 to the image channels.
        self.decoder = nn.Sequential(
            ConvBNReLU(bottleneck, chans[-1], kernel_size=1),
            *[_up(chans[i + 1], chans[i]) for i in reversed(range(depth))],
            nn.Conv2d(chans[0], in_channels, kernel_size=1),
            nn.Sigmoid(),
        )

    def code_size(self, height: int, width: int | None = None) -> int:
        """Number of values in the code ``z`` for an input of that size."""
        width = height if width is None else width
        h, w = height, width
        for _ in range(self.depth):
            h, w = conv_output_size(h, 3, 2, 1), conv_output_size(w, 3, 2, 1)
        return self.bottleneck * h * w

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        out = self.decoder(z)
        return resize_to(out, size) if size is not None else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__} expects [N, C, H, W], got {tuple(x.shape)}")
        return self.decode(self.encode(x), x.shape[-2:])


class DenoisingAutoencoder(ConvAutoencoder):
    """A denoising autoencoder (Vincent et al., ICML 2008, Fig. 1): corrupt ``x`` to ``x̃``,
    encode and decode ``x̃``, and compare the result with the *clean* ``x``.

    In training mode :meth:`forward` adds Gaussian noise of standard deviation ``noise_std``
    before encoding (the paper masked random inputs to zero; Gaussian noise is its common
    image variant). In eval mode the input is used as given, so a noisy image can be passed
    in to be cleaned.
    """

    def __init__(
        self, in_channels: int = 3, width: int = 16, bottleneck: int = 8, depth: int = 3,
        noise_std: float = 0.2,
    ) -> None:
        super().__init__(in_channels, width, bottleneck, depth)
        self.noise_std = noise_std

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``x̃ = clip(x + N(0, noise_std²), 0, 1)``."""
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + self.noise_std * noise).clamp(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.corrupt(x) if self.training else x)


def train_autoencoder(
    model: ConvAutoencoder,
    images: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> list[float]:
    """Minimise the mean squared reconstruction error ``‖f(g(x)) - x‖²``; per-epoch losses."""
    from ..config import get_device

    device = get_device() if device is None else torch.device(device)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in _progress(range(epochs), progress, f"AE bottleneck {model.bottleneck}"):
        model.train()
        order, total = torch.randperm(len(images), generator=generator), 0.0
        for start in range(0, len(order), batch_size):
            x = images[order[start:start + batch_size]].to(device)
            loss = F.mse_loss(model(x), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        losses.append(total / len(images))
    return losses


@torch.no_grad()
def reconstruction_error(
    model: nn.Module, images: torch.Tensor, inputs: torch.Tensor | None = None,
    batch_size: int = 64,
) -> float:
    """Mean squared error between ``model(inputs)`` (default: the images) and ``images``."""
    model.eval()
    inputs = images if inputs is None else inputs
    device = next(model.parameters()).device
    total = 0.0
    for start in range(0, len(images), batch_size):
        x = inputs[start:start + batch_size].to(device)
        total += F.mse_loss(model(x), images[start:start + batch_size].to(device),
                            reduction="sum").item()
    return total / images.numel()


@dataclass(frozen=True)
class EncoderDecoderSizes:
    width: int  # channels of the stem, doubled at every encoder step
    depth: int  # encoder steps (stride-2 halvings)


ENCODER_DECODER_SIZES = SizeTable(small=EncoderDecoderSizes(width=16, depth=3))


@register_model(
    "encoder_decoder",
    family="basics",
    paper="Encoder-decoder (Minaee et al. survey, Fig. 5; Hinton & Salakhutdinov 2006)",
    year=2006,
    test_kwargs={"width": 8, "depth": 2},
)
class EncoderDecoder(nn.Module):
    """An image→mask encoder-decoder: the survey's Fig. 5 with a segmentation map as output.

    The autoencoder's skeleton with the output changed from the image to per-pixel class
    logits: the encoder ``z = g(x)`` halves the resolution ``depth`` times, the decoder
    ``y = f(z)`` doubles it back with transposed convolutions, and a 1x1 convolution gives
    ``num_classes`` logits per pixel. Nothing but ``z`` reaches the decoder — no skip
    connections yet — so fine detail lost by the encoder cannot come back (notebook 03 shows
    it; U-Net's skips in notebook 08 fix it). Any input size works: stride-2 convolutions
    round up and the logits are resized to the input at the end.

    Args:
        in_channels: image channels. num_classes: output classes ``K``.
        width: channels of the stem (16; doubled at every encoder step). depth: encoder
            steps (3).

    ``full`` does not apply: the survey's Fig. 5 is a scheme, not a network with published
    sizes, so there is no paper size to build.
    """

    def __init__(
        self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
        depth: int | None = None,
    ) -> None:
        super().__init__()
        _require_positive("EncoderDecoder", in_channels=in_channels, num_classes=num_classes)
        sizes = ENCODER_DECODER_SIZES.resolve("EncoderDecoder", False, width=width, depth=depth)
        width, depth = sizes.width, sizes.depth
        chans = [width * 2**i for i in range(depth + 1)]
        # Encoder g: full-resolution stem, then `depth` stride-2 steps (H → H / 2^depth).
        self.encoder = nn.Sequential(
            ConvBNReLU(in_channels, chans[0]),
            *[_down(chans[i], chans[i + 1]) for i in range(depth)],
        )
        # Decoder f: `depth` transposed-conv steps back to full resolution.
        self.decoder = nn.Sequential(*[_up(chans[i + 1], chans[i]) for i in reversed(range(depth))])
        # Per-pixel classifier.
        self.classifier = nn.Conv2d(chans[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"EncoderDecoder expects input [N, C, H, W], got {tuple(x.shape)}")
        z = self.encoder(x)
        y = self.decoder(z)
        # Odd sizes were rounded up by the encoder: bring the logits back to H x W.
        return resize_to(self.classifier(y), x)


# ---------------------------------------------------------------------------------------------
# 2.4 Generative adversarial networks (survey Fig. 6)
# ---------------------------------------------------------------------------------------------


def _check_gan_size(owner: str, image_size: int) -> int:
    """Number of stride-2 steps between 4x4 and ``image_size`` (a power of two >= 8)."""
    steps = int(round(math.log2(image_size / 4))) if image_size >= 4 else -1
    if image_size < 8 or 4 * 2**steps != image_size:
        raise ValueError(f"{owner}: image_size must be a power of two >= 8, got {image_size}")
    return steps


def _gan_norm(norm: str | None, channels: int) -> nn.Module:
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "ln":  # layer norm over (C, H, W), as WGAN-GP recommends for the critic
        return nn.GroupNorm(1, channels)
    if norm is None:
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; valid: 'bn', 'ln', None")


class DCGANGenerator(nn.Module):
    """The DCGAN generator (Radford et al., ICLR 2016, Fig. 1): noise ``z`` → image.

    The figure shows ``z`` projected to a small 4x4 stack of feature maps, then fractionally
    strided (transposed) convolutions that double the size and halve the channels, BatchNorm
    and ReLU everywhere except the output, which is ``tanh`` (images in [-1, 1]). No pooling
    and no fully connected hidden layers. The paper's 64x64 generator has 4 upsampling steps
    from 1024 channels; here ``image_size`` and ``width`` set both, small by default.

    With ``num_classes > 0`` it is the conditional generator of Mirza & Osindero (2014,
    Fig. 1): the one-hot class ``y`` is concatenated to ``z``, so ``G(z, y)`` draws class y.
    """

    def __init__(
        self, latent_dim: int = 32, out_channels: int = 3, width: int = 32,
        image_size: int = 32, num_classes: int = 0,
    ) -> None:
        super().__init__()
        _require_positive(type(self).__name__, latent_dim=latent_dim,
                          out_channels=out_channels, width=width)
        steps = _check_gan_size(type(self).__name__, image_size)
        self.latent_dim, self.num_classes, self.image_size = latent_dim, num_classes, image_size
        chans = [width * 2**i for i in reversed(range(steps))]  # e.g. 4w, 2w, w
        in_dim = latent_dim + num_classes
        # Project and reshape: z (as a 1x1 map) → 4x4 maps by a 4x4 transposed convolution.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, chans[0], kernel_size=4, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(chans[0]), nn.ReLU(inplace=True),
        ]
        # Fractionally strided convolutions: double the size, halve the channels.
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        # Output layer: to image channels, tanh, no BatchNorm.
        layers += [nn.ConvTranspose2d(chans[-1], out_channels, 4, stride=2, padding=1),
                   nn.Tanh()]
        self.net = nn.Sequential(*layers)
        for m in self.modules():  # the paper's initialisation: N(0, 0.02)
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device=None) -> torch.Tensor:
        """``n`` latent vectors from the prior N(0, I): [n, latent_dim]."""
        return torch.randn(n, self.latent_dim, generator=generator).to(device)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"{type(self).__name__} expects z [N, {self.latent_dim}], "
                             f"got {tuple(z.shape)}")
        if self.num_classes:
            if labels is None:
                raise ValueError(f"{type(self).__name__} is conditional: pass labels [N]")
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """The DCGAN discriminator (Radford et al., ICLR 2016): image → one real/fake logit.

    Mirror of the generator: strided 4x4 convolutions halve the size (no pooling), LeakyReLU
    with slope 0.2, BatchNorm on every layer but the first, and a final 4x4 convolution on
    the 4x4 maps gives one logit (the paper's sigmoid is inside the loss). With
    ``norm="ln"`` or ``None`` it is a WGAN-GP critic (Gulrajani et al. 2017 drop BatchNorm
    because the gradient penalty is per sample).

    With ``num_classes > 0`` it is conditional (Mirza & Osindero 2014): the one-hot class is
    broadcast to ``num_classes`` constant planes and concatenated to the image channels.
    """

    def __init__(
        self, in_channels: int = 3, width: int = 32, image_size: int = 32,
        num_classes: int = 0, norm: str | None = "bn",
    ) -> None:
        super().__init__()
        _require_positive(type(self).__name__, in_channels=in_channels, width=width)
        steps = _check_gan_size(type(self).__name__, image_size)
        self.num_classes, self.image_size, self.in_channels = num_classes, image_size, in_channels
        chans = [width * 2**i for i in range(steps)]  # w, 2w, 4w
        # First layer: strided conv + LeakyReLU, no normalisation.
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels + num_classes, chans[0], 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        # Strided convolutions: halve the size, double the channels, norm, LeakyReLU.
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=norm is None),
                       _gan_norm(norm, c_out), nn.LeakyReLU(0.2, inplace=True)]
        # 4x4 maps → one logit.
        layers.append(nn.Conv2d(chans[-1], 1, kernel_size=4, stride=1, padding=0))
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"{type(self).__name__} expects input [N, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}], got {tuple(x.shape)}")
        if self.num_classes:
            if labels is None:
                raise ValueError(f"{type(self).__name__} is conditional: pass labels [N]")
            planes = F.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)
        return self.net(x).flatten()


class ConditionalGenerator(DCGANGenerator):
    """Class-conditional DCGAN generator (Mirza & Osindero 2014): ``G(z, y)``."""

    def __init__(self, num_classes: int = 6, latent_dim: int = 32, out_channels: int = 3,
                 width: int = 32, image_size: int = 32) -> None:
        _require_positive("ConditionalGenerator", num_classes=num_classes)
        super().__init__(latent_dim, out_channels, width, image_size, num_classes)


class ConditionalDiscriminator(DCGANDiscriminator):
    """Class-conditional DCGAN discriminator (Mirza & Osindero 2014): ``D(x, y)``."""

    def __init__(self, num_classes: int = 6, in_channels: int = 3, width: int = 32,
                 image_size: int = 32, norm: str | None = "bn") -> None:
        _require_positive("ConditionalDiscriminator", num_classes=num_classes)
        super().__init__(in_channels, width, image_size, num_classes, norm)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's side of the minimax game (Goodfellow et al. 2014, Eq. 1):
    ``-[log D(x) + log(1 - D(G(z)))]``, averaged, with ``D = sigmoid(logit)``."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``-log D(G(z))`` (Goodfellow et al. 2014, section 3:
    it has the same fixed point as ``log(1 - D(G(z)))`` but strong gradients early on)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss (Arjovsky et al. 2017): ``E[D(G(z))] - E[D(x)]``."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss: ``-E[D(G(z))]``."""
    return -fake_scores.mean()


def gradient_penalty(
    critic: Callable[..., torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017, Algorithm 1): ``E[(‖∇D(x̂)‖₂ - 1)²]`` at
    ``x̂ = ε x + (1 - ε) x̃`` on random points between real ``x`` and fake ``x̃`` samples.

    ``eps`` [N] (default uniform in [0, 1]) can be given to make the result reproducible.
    The gradient is taken with ``create_graph=True`` so the penalty itself can be trained.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake "
                         f"{tuple(fake.shape)} must have the same shape")
    n = real.shape[0]
    if eps is None:
        eps = torch.rand(n, device=real.device, dtype=real.dtype)
    eps = eps.reshape(n, *([1] * (real.dim() - 1)))
    x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat) if labels is None else critic(x_hat, labels)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@dataclass
class GANHistory:
    """What :func:`train_gan` records: per-step losses, per-epoch samples of a fixed noise."""

    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    d_real: list[float] = field(default_factory=list)  # mean D(x) (probability; score for WGAN)
    d_fake: list[float] = field(default_factory=list)  # mean D(G(z))
    samples: list[torch.Tensor] = field(default_factory=list)  # [n, C, H, W] in [-1, 1]
    steps_per_epoch: int = 0


def train_gan(
    generator: DCGANGenerator,
    discriminator: DCGANDiscriminator,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    loss: str = "gan",
    n_critic: int = 1,
    gp_weight: float = 10.0,
    num_samples: int = 16,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> GANHistory:
    """Alternate discriminator and generator updates (Goodfellow et al. 2014, Algorithm 1).

    ``images`` [N, C, H, W] in [-1, 1]; ``labels`` [N] for conditional models. ``loss`` is
    ``"gan"`` (minimax with the non-saturating generator loss, Adam 2e-4, β₁ = 0.5 as in
    DCGAN) or ``"wgan-gp"`` (critic loss + ``gp_weight`` x gradient penalty, ``n_critic``
    critic steps per generator step; the paper used 5 and Adam β = (0, 0.9)).
    After each epoch the generator's output on a fixed noise (and fixed labels) is stored.
    """
    from ..config import get_device

    if loss not in ("gan", "wgan-gp"):
        raise ValueError(f"train_gan: unknown loss {loss!r}; valid: 'gan', 'wgan-gp'")
    conditional = generator.num_classes > 0
    if conditional and labels is None:
        raise ValueError("train_gan: conditional models need labels")
    device = get_device() if device is None else torch.device(device)
    generator.to(device)
    discriminator.to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    rng = torch.Generator().manual_seed(seed)
    fixed_z = generator.sample_latent(num_samples, generator=rng, device=device)
    fixed_y = None
    if conditional:  # the fixed samples cycle through the classes
        fixed_y = (torch.arange(num_samples) % generator.num_classes).to(device)
    history = GANHistory(steps_per_epoch=max(len(images) // batch_size, 1))

    def batch_labels(idx: torch.Tensor) -> torch.Tensor | None:
        return labels[idx].to(device) if conditional else None

    for _ in _progress(range(epochs), progress, f"{loss} epochs"):
        generator.train()
        discriminator.train()
        order = torch.randperm(len(images), generator=rng)
        for step in range(history.steps_per_epoch):
            idx = order[step * batch_size:(step + 1) * batch_size]
            real, y = images[idx].to(device), batch_labels(idx)
            z = generator.sample_latent(len(idx), generator=rng, device=device)
            # 1. Discriminator step: tell real from fake (the fake is detached: G is fixed).
            fake = generator(z, y)
            real_out, fake_out = discriminator(real, y), discriminator(fake.detach(), y)
            if loss == "gan":
                d_loss = discriminator_loss(real_out, fake_out)
            else:
                d_loss = (wasserstein_critic_loss(real_out, fake_out)
                          + gp_weight * gradient_penalty(discriminator, real, fake, y))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            history.d_loss.append(d_loss.item())
            to_prob = torch.sigmoid if loss == "gan" else (lambda t: t)
            history.d_real.append(to_prob(real_out).mean().item())
            history.d_fake.append(to_prob(fake_out).mean().item())
            # 2. Generator step (every n_critic discriminator steps): fool the new D.
            if step % n_critic == 0:
                fake_out = discriminator(generator(z, y), y)
                g_loss = (generator_loss(fake_out) if loss == "gan"
                          else wasserstein_generator_loss(fake_out))
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                history.g_loss.append(g_loss.item())
        generator.eval()
        with torch.no_grad():
            history.samples.append(generator(fixed_z, fixed_y).cpu())
    return history


def interpolate_latents(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` latent vectors on the straight line from ``z0`` to ``z1`` [D]: [steps, D]
    (DCGAN's Fig. 4 walks the latent space this way and the images change smoothly)."""
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)[:, None]
    return (1 - t) * z0[None] + t * z1[None]


__all__ = [
    "SHAPE_CLASSES", "ShapeCrops", "conv_output_size", "receptive_field", "LeNet", "MLP",
    "classification_accuracy", "train_classifier", "RNNCell", "LSTM_GATES", "LSTMCell",
    "RecurrentLayer", "make_recall_task", "SequenceClassifier", "input_gradient_norms",
    "train_sequence_classifier", "ConvAutoencoder", "DenoisingAutoencoder",
    "train_autoencoder", "reconstruction_error", "EncoderDecoder", "DCGANGenerator",
    "DCGANDiscriminator", "ConditionalGenerator", "ConditionalDiscriminator",
    "discriminator_loss", "generator_loss", "wasserstein_critic_loss",
    "wasserstein_generator_loss", "gradient_penalty", "GANHistory", "train_gan",
    "interpolate_latents",
]
