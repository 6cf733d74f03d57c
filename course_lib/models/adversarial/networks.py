"""The adversaries: Luc et al.'s label-map discriminator, Hung et al.'s fully convolutional
discriminator, and SegAN's segmentor and critic (Xue et al.).

Only SegAN's segmentor is a segmentation model (image in, class logits out), so only it is
registered (``"segan"``, the model contract). The three adversaries judge label maps and
are built directly; their sizes still come from a :class:`~course_lib.models.contract.
SizeTable` (``full=True``: the paper's sizes), so that an explicit argument always wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import register_model
from ..blocks import ConvBNReLU, check_channels, check_input, resize_to
from ..contract import SizeTable

LEAKY_SLOPE = 0.2  # every adversary here (and DCGAN's discriminator) uses LeakyReLU(0.2)


@dataclass(frozen=True)
class AdversarySizes:
    width: int  # channels of the first layer (doubled by each later stage)
    depth: int  # stride-2 stages


def _check_probabilities(owner: str, maps: torch.Tensor, num_classes: int) -> None:
    if maps.dim() != 4 or maps.shape[1] != num_classes:
        raise ValueError(f"{owner}: expected label maps [N, {num_classes}, H, W] (one-hot ground "
                         f"truth or softmax probabilities), got {tuple(maps.shape)}")


# --------------------------------------------------------------------------------------------
# Luc et al. 2016: is this label map the ground truth of this image, or a prediction?
# --------------------------------------------------------------------------------------------
LUC_SIZES = SizeTable(small=AdversarySizes(width=16, depth=3),
                      paper=AdversarySizes(width=64, depth=3))


class LabelMapDiscriminator(nn.Module):
    """The adversarial network of Luc et al., "Semantic Segmentation using Adversarial
    Networks", NIPS Workshop 2016 (Fig. 1, the Stanford Background net).

    Fig. 1 shows two inputs: the RGB image and a label map (class probabilities, one channel
    per class: the one-hot ground truth or the segmentor's softmax). Each passes through its
    own convolution (5x5: 16 channels for the image, 64 for the label map), the two are
    concatenated, and 3x3 convolutions with max pooling (128, 256, 512 channels) end in a
    classifier: ground truth (1) or prediction (0). Because it looks at the whole label
    map *with its image*, it can penalise what no per-pixel loss sees: a missing part, a
    blob in the wrong place, labels that do not fit together.

    Deviations: the image branch has ``width / 4`` channels and the label branch ``width``
    (the paper's 16 and 64 at ``full=True``); one logit per image averaged over the last map
    (the paper: a two-way softmax; the same thing for two classes); batch normalisation
    after the trunk's convolutions (the paper has none) keeps it stable at small batch.

    ``forward(image [N, C, H, W], label_map [N, K, H, W])`` returns logits ``[N]``.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 full: bool = False, depth: int | None = None) -> None:
        super().__init__()
        check_channels("LabelMapDiscriminator", in_channels, num_classes)
        sizes = LUC_SIZES.resolve("LabelMapDiscriminator", full, width=width, depth=depth)
        w = sizes.width
        self.in_channels, self.num_classes = in_channels, num_classes
        # Two branches (Fig. 1): the image and the label map, each its own 5x5 convolution.
        self.image_branch = nn.Sequential(nn.Conv2d(in_channels, max(w // 4, 1), 5, padding=2),
                                          nn.ReLU(inplace=True))
        self.label_branch = nn.Sequential(nn.Conv2d(num_classes, w, 5, padding=2),
                                          nn.ReLU(inplace=True))
        # Trunk: 3x3 convolutions, each followed by 2x2 max pooling, widths doubling.
        layers: list[nn.Module] = []
        c_in = w + max(w // 4, 1)
        for i in range(sizes.depth):
            layers += [ConvBNReLU(c_in, 2 * w * 2**i), nn.MaxPool2d(2, ceil_mode=True)]
            c_in = 2 * w * 2**i
        self.trunk = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(c_in, 1, 3, padding=1)

    def forward(self, image: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        check_input("LabelMapDiscriminator", image, self.in_channels)
        _check_probabilities("LabelMapDiscriminator", label_map, self.num_classes)
        if image.shape[-2:] != label_map.shape[-2:]:
            raise ValueError(f"LabelMapDiscriminator: image {tuple(image.shape)} and label map "
                             f"{tuple(label_map.shape)} must have the same H x W")
        # Concatenate the two branches, then the trunk.
        both = torch.cat([self.image_branch(image), self.label_branch(label_map)], dim=1)
        # One "ground truth or prediction?" logit per image.
        return self.classifier(self.trunk(both)).mean(dim=(1, 2, 3))


# --------------------------------------------------------------------------------------------
# Hung et al. 2018: a fully convolutional discriminator, one confidence per position
# --------------------------------------------------------------------------------------------
HUNG_SIZES = SizeTable(small=AdversarySizes(width=16, depth=3),
                       paper=AdversarySizes(width=64, depth=5))


class FCDiscriminator(nn.Module):
    """The fully convolutional discriminator of Hung et al., "Adversarial Learning for
    Semi-Supervised Semantic Segmentation", BMVC 2018 (Fig. 1, right).

    Five 4x4 convolutions of stride 2 (64, 128, 256, 512 channels, then one), each but the
    last followed by LeakyReLU(0.2); no normalisation. It reads a label map — one-hot ground
    truth or the segmentor's softmax — and answers *per position* how much it looks like
    ground truth. Upsampled to the image and passed through a sigmoid this is the
    **confidence map** (:meth:`confidence`): where it is high on an unlabelled image, the
    prediction is trusted enough to train on (the semi-supervised loss).

    ``depth`` is the number of stride-2 convolutions (the paper's 5 at ``full=True``; the
    output is at stride ``2**depth``): at the paper's 321-pixel crops five give a 10x10 map,
    at the course's 96-pixel images they would give 3x3, so the small size uses three (a
    12x12 map) and width 16. Output sides are ``floor(H / 2**depth)``.

    ``forward(label_map [N, K, H, W])`` returns logits ``[N, 1, H / 2**depth, W / 2**depth]``.
    """

    def __init__(self, num_classes: int = 12, width: int | None = None, full: bool = False,
                 depth: int | None = None) -> None:
        super().__init__()
        check_channels("FCDiscriminator", 1, num_classes)
        sizes = HUNG_SIZES.resolve("FCDiscriminator", full, width=width, depth=depth)
        self.num_classes, self.depth = num_classes, sizes.depth
        layers: list[nn.Module] = []
        c_in = num_classes
        # depth - 1 hidden stride-2 convolutions, widths w, 2w, 4w, ..., each with LeakyReLU.
        for i in range(sizes.depth - 1):
            c_out = sizes.width * 2**i
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1),
                       nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
            c_in = c_out
        # The classifier: one more stride-2 convolution to a single channel.
        layers.append(nn.Conv2d(c_in, 1, 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, label_map: torch.Tensor) -> torch.Tensor:
        _check_probabilities("FCDiscriminator", label_map, self.num_classes)
        side = 2**self.depth
        if min(label_map.shape[-2:]) < side:
            raise ValueError(f"FCDiscriminator: depth {self.depth} needs label maps of at least "
                             f"{side} x {side} pixels, got {tuple(label_map.shape[-2:])}")
        return self.net(label_map)

    def confidence(self, label_map: torch.Tensor) -> torch.Tensor:
        """The confidence map ``sigmoid(D(label_map))``, bilinearly upsampled to the label
        map's size: ``[N, H, W]`` in (0, 1)."""
        return torch.sigmoid(resize_to(self(label_map), label_map)).squeeze(1)


# --------------------------------------------------------------------------------------------
# SegAN (Xue et al. 2018): a segmentor and a critic whose features at every scale are compared
# --------------------------------------------------------------------------------------------
SEGAN_SIZES = SizeTable(small=AdversarySizes(width=16, depth=3),
                        paper=AdversarySizes(width=64, depth=4))


def _down(c_in: int, c_out: int, norm: bool) -> nn.Sequential:
    """SegAN's encoder step: 4x4 convolution of stride 2, batch norm (not on the first layer),
    LeakyReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not norm),
                         nn.BatchNorm2d(c_out) if norm else nn.Identity(),
                         nn.LeakyReLU(LEAKY_SLOPE, inplace=True))


@register_model(
    "segan",
    family="adversarial",
    paper="Xue et al., Neuroinformatics 2018 (SegAN)",
    year=2018,
    test_kwargs={"width": 4, "depth": 2},
    full_params=4_756_044,
)
class SegANSegmentor(nn.Module):
    """SegAN's segmentor S (Xue et al., "SegAN: Adversarial Network with Multi-scale L1 Loss
    for Medical Image Segmentation", Neuroinformatics 2018, Fig. 2, left).

    Fig. 2 shows an encoder of 4x4 convolutions of stride 2 (64, 128, 256, 512 channels,
    batch norm and LeakyReLU) and a decoder that undoes each step by *resize-convolution*
    (bilinear x2, then a 3x3 convolution, batch norm, ReLU) with the encoder's feature of the
    same scale concatenated (skip connections), ending in one map per class. It is trained
    against :class:`SegANCritic` with the multi-scale L1 loss
    (:func:`~course_lib.models.adversarial.losses.multiscale_l1_loss`).

    Deviations: the paper segments one structure (a sigmoid map); here ``num_classes`` maps
    of logits (softmax); the course's small size has width 16 and three steps. Any input
    size works (resize to the skip's size, logits resized to the input).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 full: bool = False, depth: int | None = None) -> None:
        super().__init__()
        check_channels("SegANSegmentor", in_channels, num_classes)
        sizes = SEGAN_SIZES.resolve("SegANSegmentor", full, width=width, depth=depth)
        self.in_channels = in_channels
        chans = [sizes.width * 2**i for i in range(sizes.depth)]  # w, 2w, 4w, ...
        self.encoder = nn.ModuleList(
            _down(c_in, c_out, norm=i > 0)
            for i, (c_in, c_out) in enumerate(zip([in_channels, *chans[:-1]], chans, strict=True)))
        # Decoder, coarse to fine: the deepest feature, then each step with its skip.
        ups = [(chans[-1], chans[-2] if len(chans) > 1 else chans[-1])]
        for i in range(len(chans) - 2, -1, -1):
            ups.append((2 * chans[i], chans[i - 1] if i > 0 else chans[0]))
        self.decoder = nn.ModuleList(ConvBNReLU(c_in, c_out) for c_in, c_out in ups)
        self.classifier = nn.Conv2d(chans[0], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("SegANSegmentor", x, self.in_channels)
        # Encoder: 4x4 stride-2 convolutions, every feature kept for the skips.
        skips = []
        h = x
        for down in self.encoder:
            h = down(h)
            skips.append(h)
        # Decoder: resize-convolution, then concatenate the encoder's feature of that scale.
        h = self.decoder[0](h)
        for up, skip in zip(self.decoder[1:], reversed(skips[:-1]), strict=True):
            h = up(torch.cat([resize_to(h, skip), skip], dim=1))
        # Last resize to the image and one map of logits per class.
        return self.classifier(resize_to(h, x))


class SegANCritic(nn.Module):
    """SegAN's critic C (Xue et al. 2018, Fig. 2, right): the segmentor's encoder again,
    reading the image *masked* by a label map, and returning its features at every scale.

    The input is ``x ∘ s``: each image channel multiplied by each class map (the predicted
    probabilities or the ground truth), ``K * C`` channels (:func:`~course_lib.models.
    adversarial.losses.masked_images`). ``forward`` returns the list ``[x ∘ s, f_1, ...,
    f_depth]`` — the masked input itself counts as the first scale, as in the authors' code —
    so that the multi-scale L1 loss compares pixels, edges and whole shapes at once.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 full: bool = False, depth: int | None = None) -> None:
        super().__init__()
        check_channels("SegANCritic", in_channels, num_classes)
        sizes = SEGAN_SIZES.resolve("SegANCritic", full, width=width, depth=depth)
        self.in_channels = in_channels * num_classes
        chans = [sizes.width * 2**i for i in range(sizes.depth)]
        self.layers = nn.ModuleList(
            _down(c_in, c_out, norm=i > 0)
            for i, (c_in, c_out) in enumerate(zip([self.in_channels, *chans[:-1]], chans,
                                                  strict=True)))

    def forward(self, masked: torch.Tensor) -> list[torch.Tensor]:
        check_input("SegANCritic", masked, self.in_channels)
        features = [masked]
        for layer in self.layers:
            features.append(layer(features[-1]))
        return features


def one_hot_map(mask: torch.Tensor, num_classes: int, ignore_index: int | None = 255
                ) -> torch.Tensor:
    """Ground truth as a label map: float ``[N, K, H, W]``, one-hot; ignored pixels all zero."""
    if mask.dim() != 3 or mask.dtype != torch.long:
        raise ValueError(f"mask must be int64 [N, H, W], got {mask.dtype} {tuple(mask.shape)}")
    valid = mask != ignore_index if ignore_index is not None else torch.ones_like(mask, dtype=bool)
    bad = (mask < 0) | ((mask >= num_classes) & valid)
    if bad.any():
        found = sorted(set(mask[bad].tolist()))[:5]
        raise ValueError(f"mask holds labels {found} outside 0..{num_classes - 1} (ignore "
                         f"index {ignore_index})")
    hot = F.one_hot(torch.where(valid, mask, 0), num_classes).movedim(-1, 1).float()
    return hot * valid.unsqueeze(1)


__all__ = [
    "AdversarySizes", "FCDiscriminator", "LabelMapDiscriminator", "SegANCritic",
    "SegANSegmentor", "one_hot_map", "HUNG_SIZES", "LUC_SIZES", "SEGAN_SIZES",
]
