"""EncNet (Zhang et al., CVPR 2018, Fig. 2): a context encoding module that learns which
classes the scene holds, and scales the feature channels by it.

The **encoding layer** (Sec. 2.1) holds ``K`` learned codewords ``d_k`` and smoothing factors
``s_k``. Every pixel feature ``x_i`` (``N = h x w`` of them) is soft-assigned to the codewords,
``a_ik = softmax_k(-s_k ||x_i - d_k||²)``, and each codeword aggregates its residuals,
``e_k = Σ_i a_ik (x_i - d_k)``: an orderless summary of the whole image (a learned dictionary,
like VLAD). Then (Fig. 2):

- **channel scaling**: ``e = Σ_k BN-ReLU(e_k)`` → FC → sigmoid gives ``γ`` per channel, and
  the features become ``relu(x + x * γ)`` (the authors' code) — classes likely in this scene
  are emphasised;
- **semantic-encoding loss** (SE loss): a second FC on ``e`` predicts, for every class,
  *whether it is present* in the image; a binary cross-entropy against the classes of the
  ground truth (:func:`se_loss`), weight 0.2 in the paper. It forces ``e`` to know the scene.

``forward`` returns ``{"out", "aux", "se"}``: the logits, the ``FCNHead`` on ``c4`` (as in
the paper, weight 0.2 there; the course's :data:`~course_lib.losses.AUX_WEIGHT` by
:func:`course_lib.train.fit`) and the SE logits ``[N, K]``; :func:`encnet_loss` adds all three.

Deviations: a dilated ResNet of the course (``resnet_tiny``) by default; the paper's ResNet-101
with ``full=True`` (its multi-size evaluation not included).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ... import config
from ...config import IGNORE_INDEX
from ...runtime import on_device
from ...train.step import optimizer_step
from .. import register_model
from ..backbones import build_backbone
from ..blocks import ConvBNReLU, check_channels, check_input, resize_to
from ..contract import SizeTable
from ..heads import FCNHead

SE_WEIGHT = 0.2  # the paper's weight of the semantic-encoding loss


@dataclass(frozen=True)
class EncNetSizes:
    backbone: str
    width: int  # the backbone's base width (64)
    channels: int  # the head's width (512)
    codewords: int  # K codewords (32)


SIZES = SizeTable(small=EncNetSizes("resnet_tiny", 16, 32, 16),
                  paper=EncNetSizes("resnet101", 64, 512, 32))


class Encoding(nn.Module):
    """The encoding layer: ``[N, C, H, W]`` → ``e_k`` ``[N, K, C]`` (soft-assigned residuals)."""

    def __init__(self, channels: int, codewords: int) -> None:
        super().__init__()
        bound = 1.0 / (codewords * channels) ** 0.5  # the authors' initialisation
        self.codewords = nn.Parameter(torch.empty(codewords, channels).uniform_(-bound, bound))
        self.scale = nn.Parameter(torch.empty(codewords).uniform_(-1, 0))

    def assignment(self, x: torch.Tensor) -> torch.Tensor:
        """Soft assignment weights ``a`` [N, h*w, K] (each pixel's row sums to 1)."""
        pixels = x.flatten(2).transpose(1, 2)  # [N, hw, C]
        distance = (pixels[:, :, None] - self.codewords).pow(2).sum(-1)  # [N, hw, K]
        return torch.softmax(self.scale * distance, dim=2)  # s_k < 0: nearer, heavier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.flatten(2).transpose(1, 2)  # x_i, [N, hw, C]
        a = self.assignment(x)  # a_ik
        # e_k = Σ_i a_ik (x_i - d_k) = Σ_i a_ik x_i - (Σ_i a_ik) d_k
        return a.transpose(1, 2) @ pixels - a.sum(1)[..., None] * self.codewords


class ContextEncoding(nn.Module):
    """Encoding → BN-ReLU → mean over codewords → (channel scaling ``γ``, SE logits)."""

    def __init__(self, channels: int, codewords: int, num_classes: int) -> None:
        super().__init__()
        self.encoding = Encoding(channels, codewords)
        self.norm = nn.Sequential(nn.BatchNorm1d(codewords), nn.ReLU(inplace=True))
        self.scaling = nn.Sequential(nn.Linear(channels, channels), nn.Sigmoid())
        self.se = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.norm(self.encoding(x)).mean(dim=1)  # the encoded scene, [N, C]
        gamma = self.scaling(e)[..., None, None]  # channel scaling factors
        return F.relu(x + x * gamma), self.se(e)  # scaled features, class presence logits


@register_model("encnet", family="other", paper="Zhang et al., CVPR 2018", year=2018,
                output="dict", test_kwargs={"width": 4, "channels": 8, "codewords": 4},
                full_params=54_592_708)
class EncNet(nn.Module):
    """EncNet: dilated ResNet → 3x3 conv → context encoding (channel scaling) → classes;
    ``"se"``: which classes the image holds; ``"aux"``: ``FCNHead`` on ``c4``.

    Args:
        in_channels, num_classes: image channels and ``K``. width: the backbone's base width
        (16; 64 full). full: the paper's sizes (ResNet-101, 512 channels, 32 codewords).
        backbone: a ResNet name. channels: the head's width. codewords: the dictionary size.
        aux: the ``FCNHead`` on ``c4``.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 full: bool = False, backbone: str | None = None, channels: int | None = None,
                 codewords: int | None = None, aux: bool = True) -> None:
        super().__init__()
        check_channels("EncNet", in_channels, num_classes)
        sizes = SIZES.resolve("EncNet", full, backbone=backbone, width=width,
                              channels=channels, codewords=codewords)
        self.in_channels, self.num_classes = in_channels, num_classes
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, 8, full=full)
        ch = self.backbone.channels
        self.conv = ConvBNReLU(ch["c5"], sizes.channels, 3)
        self.context = ContextEncoding(sizes.channels, sizes.codewords, num_classes)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1),
                                        nn.Conv2d(sizes.channels, num_classes, 1))
        self.aux_classifier = FCNHead(ch["c4"], num_classes) if aux else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input("EncNet", x, self.in_channels)
        feats = self.backbone(x)  # dilated ResNet, stride 8
        scaled, se = self.context(self.conv(feats["c5"]))  # context encoding module
        result = {"out": resize_to(self.classifier(scaled), x), "se": se}
        if self.aux_classifier is not None:
            result["aux"] = resize_to(self.aux_classifier(feats["c4"]), x)
        return result


def class_presence(mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Which classes occur in each image: [N, K] float 0/1 from labels [N, H, W] (void left
    out)."""
    valid = mask != IGNORE_INDEX
    image = torch.arange(len(mask), device=mask.device).view(-1, 1, 1).expand_as(mask)
    flat = (image * num_classes + mask.clamp(max=num_classes - 1))[valid]
    counts = torch.bincount(flat, minlength=len(mask) * num_classes)
    return (counts.view(len(mask), num_classes) > 0).float()


def se_loss(se_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The semantic-encoding loss: binary cross-entropy of the class-presence logits."""
    return F.binary_cross_entropy_with_logits(se_logits,
                                              class_presence(mask, se_logits.shape[1]))


def encnet_loss(outputs: dict[str, torch.Tensor], mask: torch.Tensor,
                se_weight: float = SE_WEIGHT, aux_weight: float = 0.2) -> torch.Tensor:
    """Cross-entropy of ``"out"`` + ``aux_weight`` x that of ``"aux"`` + ``se_weight`` x
    :func:`se_loss` (the paper: 0.2 and 0.2; ``se_weight=0`` trains without the SE loss)."""
    loss = F.cross_entropy(outputs["out"], mask, ignore_index=IGNORE_INDEX)
    if "aux" in outputs:
        loss = loss + aux_weight * F.cross_entropy(outputs["aux"], mask,
                                                   ignore_index=IGNORE_INDEX)
    if se_weight:  # with se_weight=0 the SE head gets no gradient at all, not a zero one
        loss = loss + se_weight * se_loss(outputs["se"], mask)
    return loss


def presence_f1(predicted: torch.Tensor, present: torch.Tensor) -> float:
    """F1 of class-presence decisions: ``predicted`` and ``present`` are 0/1 [N, K] (which
    classes each image is said to hold / holds); pooled over all (image, class) pairs."""
    if predicted.shape != present.shape:
        raise ValueError(f"predicted and present must have one shape, got "
                         f"{tuple(predicted.shape)} and {tuple(present.shape)}")
    predicted, present = predicted.bool(), present.bool()
    tp = (predicted & present).sum().item()
    said, held = predicted.sum().item(), present.sum().item()
    return 2 * tp / (said + held) if said + held else 1.0


def train_encnet(model: nn.Module, loader: Iterable, steps: int, se_weight: float = SE_WEIGHT,
                 lr: float = 3e-3, progress: bool = True, desc: str = "EncNet",
                 device: torch.device | str | None = None) -> list[float]:
    """Train ``model`` for ``steps`` AdamW steps (poly schedule) with :func:`encnet_loss`
    (``se_weight=0``: without the semantic-encoding loss) on ``(image, mask)`` batches, the
    loader restarted as often as needed. Returns the per-step losses. The model trains on
    ``device`` (default :func:`course_lib.config.get_device`) and comes back on the device it
    was on (:func:`course_lib.runtime.on_device`)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    steps = config.cap_steps(steps)
    device = config.get_device() if device is None else torch.device(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                 lambda step: (1 - step / steps) ** 0.9)
    scaler = config.grad_scaler(device)
    losses: list[float] = []
    batches = iter(())
    with on_device(device, model):
        model.train()
        for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
            batch = next(batches, None)
            if batch is None:  # one more pass over the loader
                batches = iter(loader)
                batch = next(batches)
            images, masks = batch[0].to(device), batch[1].to(device)
            with config.autocast(device):
                outputs = model(images)
            loss = encnet_loss({k: v.float() for k, v in outputs.items()}, masks, se_weight)
            optimizer_step(loss, optimizer, scaler, schedule)
            losses.append(float(loss.detach()))
        return losses


__all__ = ["ContextEncoding", "EncNet", "Encoding", "SE_WEIGHT", "class_presence",
           "encnet_loss", "presence_f1", "se_loss", "train_encnet"]
