"""Survey section 2.3, encoder-decoders and autoencoders (Fig. 5): ``z = g(x)``, ``y = f(z)``.

A convolutional autoencoder (output = input), its denoising variant, their training loop,
and the image→mask :class:`EncoderDecoder` — the step from an autoencoder to segmentation
(registered as ``"encoder_decoder"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ... import config
from ...receptive_field import conv_output_size
from ...runtime import evaluating, model_device, on_device
from .. import register_model
from ..blocks import ConvBNReLU, check_input, resize_to
from ..contract import SizeTable
from .common import batch_starts, epochs_of, progress_bar, require_positive


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
        require_positive(type(self).__name__, in_channels=in_channels, width=width,
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
    """Minimise the mean squared reconstruction error ``‖f(g(x)) - x‖²``; per-epoch losses.

    A smoke run (``COURSE_SMOKE=1``) trains one epoch of a couple of steps.
    """
    device = config.get_device() if device is None else torch.device(device)
    with on_device(device, model):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        losses = []
        for _ in progress_bar(epochs_of(epochs), progress, f"AE bottleneck {model.bottleneck}"):
            model.train()
            order, total, seen = torch.randperm(len(images), generator=generator), 0.0, 0
            for start in batch_starts(len(order), batch_size):
                x = images[order[start:start + batch_size]].to(device)
                loss = F.mse_loss(model(x), x)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(x)
                seen += len(x)
            losses.append(total / seen)
        return losses


def reconstruction_error(
    model: nn.Module, images: torch.Tensor, inputs: torch.Tensor | None = None,
    batch_size: int = 64,
) -> float:
    """Mean squared error between ``model(inputs)`` (default: the images) and ``images``, in
    eval mode (the model's modes are restored afterwards)."""
    inputs = images if inputs is None else inputs
    device = model_device(model)
    total, seen = 0.0, 0
    with evaluating(model):
        for start in batch_starts(len(images), batch_size):
            target = images[start:start + batch_size].to(device)
            x = inputs[start:start + batch_size].to(device)
            total += F.mse_loss(model(x), target, reduction="sum").item()
            seen += target.numel()
    return total / seen


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

    ``full=True`` is refused with a clear error: the survey's Fig. 5 is a scheme, not a
    network with published sizes, so there is no paper size to build.
    """

    def __init__(
        self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
        depth: int | None = None, full: bool = False,
    ) -> None:
        super().__init__()
        require_positive("EncoderDecoder", in_channels=in_channels, num_classes=num_classes)
        sizes = ENCODER_DECODER_SIZES.resolve("EncoderDecoder", full, width=width, depth=depth)
        width, depth = sizes.width, sizes.depth
        self.in_channels = in_channels
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
        check_input("EncoderDecoder", x, self.in_channels)
        z = self.encoder(x)
        y = self.decoder(z)
        # Odd sizes were rounded up by the encoder: bring the logits back to H x W.
        return resize_to(self.classifier(y), x)

__all__ = [
    "ConvAutoencoder", "DenoisingAutoencoder", "train_autoencoder", "reconstruction_error",
    "EncoderDecoder",
]
