"""Attention to scale (Chen et al., CVPR 2016): one network on several scales, weighted per pixel.

Fig. 2 of the paper: the image is resized to scales ``s`` (1, 0.75, 0.5); one *shared*
network (DeepLab-LargeFOV) gives score maps ``f^s`` at every scale, resized to the scale-1
map. An *attention model* — two layers on the concatenated penultimate features (fc7) of all
scales — predicts one weight per scale and pixel, ``w^s_i = softmax_s(h^s_i)``, and the output
is the weighted sum ``g_i = sum_s w^s_i f^s_i``. The weights are learned from the
segmentation loss alone: no one tells the model which scale suits which pixel. The paper's
Fig. 5 shows what they learn: the coarse scale for large objects, the fine one for small
objects and details.

Why the paper's large objects take the coarse scale: at scale 1 a large object is bigger than
what one output pixel of the network sees (its receptive field), at scale 0.5 it fits.
``trunk="smallfov"`` builds a shared network that sees little on purpose (:class:`SmallFOV`,
18 px at scale 1 small, 24 px full), so that this argument can be tested on small images;
``trunk="largefov"`` (the default, the paper's) sees more than a whole 96-pixel image.

Deviations: small by default (a ``vgg_tiny`` trunk of width 16, 64-channel fc6/fc7 with rate
2, a 32-channel attention layer; ``full=True`` is the paper's VGG16 LargeFOV with 1024
channels, rate 12 and a 512-channel attention layer). The paper's "extra supervision" (a loss
on each scale's scores besides the merged output's) is :func:`extra_supervision_loss`, for a
training loop of one's own: :func:`course_lib.train.fit` trains one output and one auxiliary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import register_model
from ..backbones import build_backbone
from ..blocks import ConvBNReLU, check_channels, resize_to
from ..contract import SizeTable

TRUNKS = ("largefov", "smallfov")

PAPER_SCALES = (1.0, 0.75, 0.5)


@dataclass(frozen=True)
class ScaleAttentionSizes:
    backbone: str
    width: int  # the trunk's base width (64 in VGG16)
    fc_channels: int  # fc6 / fc7 width (1024 in LargeFOV)
    rate: int  # fc6's dilation (12 in LargeFOV)
    attention_channels: int  # the attention model's first layer (512)


SCALE_SIZES = SizeTable(small=ScaleAttentionSizes("vgg_tiny", 16, 64, 2, 32),
                        paper=ScaleAttentionSizes("vgg16", 64, 1024, 12, 512))


class LargeFOV(nn.Module):
    """The shared network: VGG at output stride 8 → fc6 (3x3, dilated) → fc7 (1x1) → fc8.

    ``forward`` returns ``(fc7 features, class scores)``, both at stride 8.
    """

    def __init__(self, in_channels: int, num_classes: int, sizes: ScaleAttentionSizes,
                 full: bool) -> None:
        super().__init__()
        norm = None if full else "bn"
        self.backbone = build_backbone(sizes.backbone, in_channels, sizes.width, 8, full=full)
        self.fc6 = nn.Sequential(ConvBNReLU(self.backbone.channels["c5"], sizes.fc_channels, 3,
                                            dilation=sizes.rate, norm=norm), nn.Dropout2d(0.5))
        self.fc7 = nn.Sequential(ConvBNReLU(sizes.fc_channels, sizes.fc_channels, 1, norm=norm),
                                 nn.Dropout2d(0.5))
        self.fc8 = nn.Conv2d(sizes.fc_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.fc7(self.fc6(self.backbone(x)["c5"]))
        return features, self.fc8(features)


class SmallFOV(nn.Module):
    """A shared network with a small receptive field: VGG's first two stages → fc6 → fc7 → fc8.

    Not in the paper: the first two VGG stages (pool2, stride 4), a 3x3 fc6 without dilation,
    a 1x1 fc7 and fc8. Its receptive field
    (:func:`course_lib.receptive_field.module_receptive_field`) is 18 px with
    ``vgg_tiny`` and 24 px with VGG16's stages (two convolutions each) — smaller than the
    large objects of a 96-pixel shapes-world scene, where the class is in the shape only, so
    at scale 1 the inside of a large object is texture without an outline; at scale 0.5 the
    same network sees twice as far. ``forward`` returns ``(fc7 features, class scores)``, both
    at stride 4.
    """

    def __init__(self, in_channels: int, num_classes: int, sizes: ScaleAttentionSizes,
                 full: bool) -> None:
        super().__init__()
        norm = None if full else "bn"
        vgg = build_backbone(sizes.backbone, in_channels, sizes.width, 8, full=full)
        self.stages = nn.Sequential(vgg.stage1, vgg.stage2)  # pool2: stride 4
        self.fc6 = nn.Sequential(ConvBNReLU(vgg.channels["c2"], sizes.fc_channels, 3,
                                            norm=norm), nn.Dropout2d(0.5))
        self.fc7 = nn.Sequential(ConvBNReLU(sizes.fc_channels, sizes.fc_channels, 1, norm=norm),
                                 nn.Dropout2d(0.5))
        self.fc8 = nn.Conv2d(sizes.fc_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.fc7(self.fc6(self.stages(x)))
        return features, self.fc8(features)


@register_model("scale_attention", family="attention", paper="Chen et al., CVPR 2016",
                year=2016, test_kwargs={"width": 4, "fc_channels": 32, "attention_channels": 8},
                full_params=34_654_031)
class ScaleAttention(nn.Module):
    """Attention to scale: a shared LargeFOV on every scale, merged by per-pixel soft weights.

    ``forward`` returns the merged logits [N, K, H, W]; :meth:`parts` also returns each
    scale's scores and the weights, :meth:`scale_weights` the weights alone.

    Args:
        in_channels, num_classes: image channels and ``K``.
        width: the trunk's base width (16; 64 full). fc_channels: fc6/fc7 width (64; 1024
            full). rate: fc6's dilation (2; 12 full). attention_channels: the attention
            model's hidden layer (32; 512 full). scales: input scales, the first the finest
            (the paper's best: 1, 0.75, 0.5). trunk: the shared network, ``"largefov"``
            (the paper's :class:`LargeFOV`) or ``"smallfov"`` (:class:`SmallFOV`, a small
            receptive field; ``rate`` unused). full: the paper's VGG16 LargeFOV.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 12, width: int | None = None,
                 fc_channels: int | None = None, rate: int | None = None,
                 attention_channels: int | None = None,
                 scales: Sequence[float] = PAPER_SCALES, trunk: str = "largefov",
                 full: bool = False) -> None:
        super().__init__()
        check_channels("ScaleAttention", in_channels, num_classes)
        if trunk not in TRUNKS:
            raise ValueError(f"ScaleAttention: trunk must be one of {TRUNKS}, got {trunk!r}")
        if len(scales) < 2 or min(scales) <= 0:
            raise ValueError(f"ScaleAttention: scales must be at least two positive factors, "
                             f"got {tuple(scales)}")
        sizes = SCALE_SIZES.resolve("ScaleAttention", full, width=width,
                                    fc_channels=fc_channels, rate=rate,
                                    attention_channels=attention_channels)
        self.scales = tuple(float(s) for s in scales)
        shared = LargeFOV if trunk == "largefov" else SmallFOV
        self.shared = shared(in_channels, num_classes, sizes, full)
        self.attention = nn.Sequential(  # the attention model: 3x3 conv + ReLU, 1x1 to S
            nn.Conv2d(len(self.scales) * sizes.fc_channels, sizes.attention_channels, 3,
                      padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(sizes.attention_channels, len(self.scales), 1),
        )

    def _branches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights [N, S, h, w] and scores [N, S, K, h, w] at the finest scale's map size."""
        features, scores = [], []
        for s in self.scales:  # the same network on every scale
            scaled = x if s == 1 else F.interpolate(
                x, scale_factor=s, mode="bilinear", align_corners=False,
                recompute_scale_factor=True)
            fc7, fc8 = self.shared(scaled)
            features.append(fc7)
            scores.append(fc8)
        reference = scores[0]  # every scale's maps resized to the first (finest) scale's
        features = [resize_to(f, reference) for f in features]
        scores = torch.stack([resize_to(f, reference) for f in scores], dim=1)
        weights = self.attention(torch.cat(features, dim=1)).softmax(dim=1)  # w^s_i
        return weights, scores

    def parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``out`` [N, K, H, W], ``weights`` [N, S, H, W] (sum 1 over S) and ``scores``
        [N, S, K, H, W] (each scale's own logits), all at the input size."""
        weights, scores = self._branches(x)
        merged = (weights[:, :, None] * scores).sum(dim=1)
        n, s, k = scores.shape[:3]
        every_scale = resize_to(scores.flatten(1, 2), x).view(n, s, k, *x.shape[-2:])
        return {"out": resize_to(merged, x), "weights": resize_to(weights, x),
                "scores": every_scale}

    def scale_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The per-pixel weights of the scales [N, S, H, W] at the input size."""
        return resize_to(self._branches(x)[0], x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, scores = self._branches(x)  # shared network on each scale, attention
        merged = (weights[:, :, None] * scores).sum(dim=1)  # g_i = sum_s w^s_i f^s_i
        return resize_to(merged, x)  # bilinear x8 to the image


def extra_supervision_loss(parts: dict[str, torch.Tensor], target: torch.Tensor,
                           loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                           ) -> torch.Tensor:
    """The paper's training loss: the merged output's plus every scale's own (Sec. 3.3).

    ``parts`` is :meth:`ScaleAttention.parts`; ``loss_fn(logits, target)`` scores each
    ``[N, K, H, W]`` map. With a loss on each scale, every scale learns to segment by itself
    and the attention chooses between meaningful answers ("extra supervision", which the
    paper found essential).
    """
    scores = parts["scores"]
    return loss_fn(parts["out"], target) + sum(loss_fn(scores[:, s], target)
                                                 for s in range(scores.shape[1]))


__all__ = ["LargeFOV", "PAPER_SCALES", "SCALE_SIZES", "TRUNKS", "ScaleAttention",
           "ScaleAttentionSizes", "SmallFOV", "extra_supervision_loss"]
