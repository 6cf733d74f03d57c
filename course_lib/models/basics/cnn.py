"""Survey section 2.1, convolutional neural networks (Fig. 2): LeNet against a fully
connected network, and the small classification loop of notebooks 01 and 04."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ... import config
from ...data.crops import ShapeCrops
from ...receptive_field import conv_output_size
from ...runtime import evaluating, on_device
from .common import batch_starts, epochs_of, progress_bar, require_positive


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
        require_positive("LeNet", in_channels=in_channels, num_classes=num_classes,
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
        require_positive("MLP", in_channels=in_channels, num_classes=num_classes,
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


class DeepStack(nn.Module):
    """A deep stack of 3x3 convolutions, plain or with identity shortcuts (He, Zhang, Ren & Sun,
    "Deep Residual Learning for Image Recognition", CVPR 2016).

    The paper's Fig. 2 is the building block: two 3x3 convolutions compute F(x) and the block
    outputs relu(F(x) + x); the shortcut adds no parameters. With ``residual=False`` the same
    convolutions are stacked without the addition (the paper's "plain" network), so the two
    differ only in the shortcut.

    Deviations, said out loud: no BatchNorm (the paper puts it after every convolution) and
    PyTorch's default initialisation, so that what the shortcut does to the gradient at
    initialisation is seen on its own; a 3x3 stem and one 2x2 pooling instead of the paper's
    7x7 stem and stride-2 stages; global average pooling and one linear layer as in Fig. 3.

    Args:
        in_channels, num_classes: input channels and classes.
        depth: convolutions in the stack (even: ``depth // 2`` blocks of two).
        width: channels of every convolution.
        residual: add the identity shortcut around each block.
    """

    def __init__(
        self, in_channels: int = 3, num_classes: int = 6, depth: int = 20, width: int = 16,
        residual: bool = True,
    ) -> None:
        super().__init__()
        require_positive("DeepStack", in_channels=in_channels, num_classes=num_classes,
                         depth=depth, width=width)
        if depth % 2:
            raise ValueError(f"DeepStack: depth must be even (blocks of two convolutions), "
                             f"got {depth}")
        self.residual = residual
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                  nn.MaxPool2d(2))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(width, width, 3, padding=1))
            for _ in range(depth // 2))
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            # Fig. 2: relu(F(x) + x) — the "+ x" is the whole difference to the plain stack
            x = F.relu(block(x) + x) if self.residual else F.relu(block(x))
        return self.classifier(x.mean(dim=(2, 3)))  # global average pooling


def first_layer_gradient_norm(
    model: DeepStack, images: torch.Tensor, labels: torch.Tensor,
) -> float:
    """Norm of the cross-entropy loss's gradient on the first convolution's weights: how much
    of the training signal reaches the bottom of the stack. Gradients are cleared afterwards."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()
    norm = model.stem[0].weight.grad.norm().item()
    model.zero_grad(set_to_none=True)
    return norm


def classification_accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256,
    device: torch.device | str | None = None,
) -> float:
    """Fraction of ``images`` [N, C, H, W] whose arg-max prediction equals ``labels`` [N]
    (in eval mode; the model's modes are restored afterwards)."""
    device = config.get_device() if device is None else torch.device(device)
    with on_device(device, model):
        correct = seen = 0
        with evaluating(model):
            for start in batch_starts(len(labels), batch_size):
                x, y = images[start:start + batch_size].to(device), labels[start:start + batch_size]
                correct += (model(x).argmax(1).cpu() == y).sum().item()
                seen += len(y)
        return correct / max(seen, 1)


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
    A smoke run (``COURSE_SMOKE=1``) trains one epoch of a couple of steps.
    """
    device = config.get_device() if device is None else torch.device(device)
    images, labels = _tensors_of(train_set)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"train_loss": [], "train_accuracy": [], "val_accuracy": []}
    with on_device(device, model):
        for _ in progress_bar(epochs_of(epochs), progress, "epochs"):
            model.train()
            order = torch.randperm(len(labels), generator=generator)
            total, correct, seen = 0.0, 0, 0
            for start in batch_starts(len(order), batch_size):
                idx = order[start:start + batch_size]
                x, y = images[idx].to(device), labels[idx].to(device)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(idx)
            history["train_loss"].append(total / seen)
            history["train_accuracy"].append(correct / seen)
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

__all__ = ["LeNet", "MLP", "DeepStack", "first_layer_gradient_norm", "classification_accuracy",
           "train_classifier"]
