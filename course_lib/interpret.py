"""Interpretability: Grad-CAM for a class region of a segmentation model.

Grad-CAM (Selvaraju et al., ICCV 2017) asks which feature maps of a layer raise a class
score, and where: with the layer's activations ``A^k`` (channel ``k``) and a scalar score
``y``, each channel gets the weight ``alpha_k = mean_{x} dy / dA^k(x)`` (the gradient,
averaged over the map), and the map is ``ReLU(sum_k alpha_k A^k)``: the places whose
features push the score up. For segmentation, Vinogradova et al. (AAAI 2020, "Seg-Grad-CAM")
take as ``y`` the class's logits *summed over a region of pixels* (a predicted object, or
the whole image), so the map explains that region's label.

:func:`contrast_gradient_share` asks a simpler question at the input: to tell two look-alike
classes apart (notebook 05's car and boat), how much of the decision's gradient falls on the
pixels of other classes (the road or river that names them)? And
:func:`channel_mask_correlation` asks which feature channels hold a class at all (notebook 07:
do the 1/32 maps still hold the thin rings and wires?).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.runtime import evaluating

__all__ = ["channel_mask_correlation", "contrast_gradient_share", "grad_cam"]


def grad_cam(model: nn.Module, image: torch.Tensor, layer: nn.Module, target_class: int,
             region: torch.Tensor | None = None, normalize: bool = True) -> torch.Tensor:
    """Seg-Grad-CAM of ``target_class`` over ``region`` at the output of ``layer``.

    Args:
        model: a segmentation model returning logits ``[N, K, H, W]`` (or ``{"out": ...}``).
        image: ``[N, C, H, W]``.
        layer: a submodule of ``model`` whose output (a tensor ``[N, D, h, w]``) is explained.
        target_class: the class ``c`` whose score ``y = sum_{x in region} logits[c, x]`` is
            explained.
        region: bool ``[N, H, W]`` or ``[H, W]`` (all pixels when ``None``).
        normalize: divide each map by its maximum (a map that is all zero stays zero).

    Returns:
        ``[N, H, W]``: the map upsampled (bilinear) to the image size, ≥ 0, on the CPU.
        The model's parameters receive no gradient; its mode (train/eval) is not changed,
        so call it on a model in eval mode.
    """
    if image.dim() != 4:
        raise ValueError(f"image must be [N, C, H, W], got {tuple(image.shape)}")
    if not any(m is layer for m in model.modules()):
        raise ValueError(f"layer {type(layer).__name__} is not a submodule of the model")
    captured: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"Grad-CAM needs a layer that returns a tensor, "
                            f"{type(layer).__name__} returned {type(output).__name__}")
        captured.append(output)

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            out = model(image)
            logits = out["out"] if isinstance(out, dict) else out
            n, k, h, w = logits.shape
            if not 0 <= target_class < k:
                raise ValueError(f"target_class must be in [0, {k}), got {target_class}")
            if region is None:
                region = torch.ones(n, h, w, dtype=torch.bool, device=logits.device)
            if region.dim() == 2 and region.shape == (h, w):
                region = region.expand(n, h, w)
            if region.shape != (n, h, w) or region.dtype != torch.bool:
                raise ValueError(f"region must be a bool mask [N, H, W] = {(n, h, w)} or "
                                 f"[H, W], got {region.dtype} {tuple(region.shape)}")
            # the region's score of the class, one per image (images do not mix)
            score = (logits[:, target_class] * region.to(logits.device)).sum()
            activations = captured[-1]
            (gradients,) = torch.autograd.grad(score, activations)
    finally:
        handle.remove()
    alpha = gradients.mean(dim=(2, 3), keepdim=True)  # one weight per channel
    cam = F.relu((alpha * activations).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=image.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    if normalize:
        cam = cam / cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return cam.cpu()


def contrast_gradient_share(model: nn.Module, images: torch.Tensor, masks: torch.Tensor,
                            pair: tuple[int, int], region_classes: tuple[int, ...]) -> float:
    """Share of the input gradient of a two-class decision that lies on ``region_classes``.

    With ``pair = (a, b)`` the decision is ``d = sum over the true pixels of a or b of
    (logit_a - logit_b)``; the gradient magnitude ``g(x) = sum_channels |dd/dimage(x)|`` is
    split by the true mask: the result is ``sum_{x in region} g(x) / sum_x g(x)`` in [0, 1]
    (0 when the model ignores the region, e.g. beyond its receptive field). Computed in eval
    mode (the model's modes are restored); the parameters' ``.grad`` is left untouched.
    """
    if images.dim() != 4 or masks.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"images must be [N, C, H, W] and masks [N, H, W] of the same N, H, W; "
                         f"got {tuple(images.shape)} and {tuple(masks.shape)}")
    a, b = pair
    with evaluating(model, no_grad=False):
        x = images.detach().clone().requires_grad_(True)
        out = model(x)
        logits = out["out"] if isinstance(out, dict) else out
        k = logits.shape[1]
        if not (0 <= a < k and 0 <= b < k and all(0 <= c < k for c in region_classes)):
            raise ValueError(f"classes must be in [0, {k}), got pair {pair} and region "
                             f"{region_classes}")
        objects = ((masks == a) | (masks == b)).to(logits)
        decision = ((logits[:, a] - logits[:, b]) * objects).sum()
        (gradient,) = torch.autograd.grad(decision, x)
    magnitude = gradient.abs().sum(1)
    region = torch.isin(masks, torch.tensor(region_classes, device=masks.device))
    total = magnitude.sum()
    return float((magnitude * region).sum() / total) if total > 0 else 0.0


def channel_mask_correlation(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each channel of ``features`` ``[N, C, h, w]`` (upsampled
    bilinearly to the mask's size) with a binary ``mask`` ``[N, H, W]`` over all pixels of all
    images: float ``[C]`` in [-1, 1]; a constant channel gives 0."""
    if features.dim() != 4 or mask.dim() != 3 or features.shape[0] != mask.shape[0]:
        raise ValueError(f"features must be [N, C, h, w] and mask [N, H, W] of the same N; got "
                         f"{tuple(features.shape)} and {tuple(mask.shape)}")
    up = F.interpolate(features.float(), size=mask.shape[-2:], mode="bilinear",
                       align_corners=False)
    centred = up - up.mean(dim=(0, 2, 3), keepdim=True)
    target = mask.float()
    target = (target - target.mean())[:, None]
    spread = centred.pow(2).sum((0, 2, 3)).sqrt() * target.pow(2).sum().sqrt()
    return (centred * target).sum((0, 2, 3)) / spread.clamp_min(1e-12)
