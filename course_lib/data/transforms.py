"""Joint image + target augmentation on ``torchvision.transforms.v2`` and tv_tensors.

v2 transforms look at the *type* of each tensor in a sample: a ``tv_tensors.Image`` is
interpolated bilinearly and colour-jittered, a ``tv_tensors.Mask`` is resampled with
nearest-neighbour (so no new labels appear) and never colour-jittered, and
``tv_tensors.BoundingBoxes`` are moved with the geometry. The same random crop / flip /
deformation is therefore applied to everything in one sample, whether it is an
``(image, mask)`` tuple or a dict with ``"image"``, ``"mask"``, ``"masks"``, ``"boxes"``,
``"labels"``...

* :func:`train_transforms` - random resized crop, horizontal flip, colour jitter (image
  only, RGB channels only: a 4th depth channel is left alone), optional elastic deformation;
* :func:`eval_transforms` - a plain resize;
* :class:`ElasticDeform` - ``v2.ElasticTransform`` whose displacement never samples outside
  the image, so no fill value (and no fake label) is ever introduced;
* :class:`BoxesFromMasks` - recompute boxes from the instance masks after the geometry and
  drop instances that left the picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from course_lib.data.formats import boxes_from_masks

__all__ = [
    "ElasticDeform",
    "RGBColorJitter",
    "BoxesFromMasks",
    "ToFloatImage",
    "train_transforms",
    "eval_transforms",
]


class ElasticDeform(v2.ElasticTransform):
    """Elastic deformation (Simard et al. 2003; the U-Net augmentation), applied with
    probability ``p``. The displacement is clamped so that every output pixel samples inside
    the input: masks keep exactly their label set and need no fill value."""

    def __init__(self, alpha: float = 30.0, sigma: float = 5.0, p: float = 0.5) -> None:
        super().__init__(alpha=alpha, sigma=sigma)
        self.p = p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        params = super().make_params(flat_inputs)
        disp = params["displacement"]  # [1,H,W,2], normalised units, added to the id grid
        _, h, w, _ = disp.shape
        gx = torch.linspace((-w + 1) / w, (w - 1) / w, w).view(1, 1, w)
        gy = torch.linspace((-h + 1) / h, (h - 1) / h, h).view(1, h, 1)
        lim_x, lim_y = (w - 1) / w, (h - 1) / h
        disp[..., 0] = (gx + disp[..., 0]).clamp(-lim_x, lim_x) - gx
        disp[..., 1] = (gy + disp[..., 1]).clamp(-lim_y, lim_y) - gy
        params["displacement"] = disp
        params["apply"] = bool(torch.rand(()) < self.p)
        return params

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params["apply"]:
            return inpt
        return super().transform(inpt, {"displacement": params["displacement"]})


class RGBColorJitter(v2.Transform):
    """``v2.ColorJitter`` on the first three channels of an image only (a depth channel or
    any non-image tensor is untouched)."""

    def __init__(self, brightness: float = 0.3, contrast: float = 0.3, saturation: float = 0.3,
                 hue: float = 0.05) -> None:
        super().__init__()
        self.jitter = v2.ColorJitter(brightness, contrast, saturation, hue)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        if inpt.shape[-3] in (1, 3):
            return self.jitter(inpt)
        rgb = self.jitter(tv_tensors.Image(inpt[..., :3, :, :]))
        return tv_tensors.wrap(torch.cat([rgb, inpt[..., 3:, :, :]], dim=-3), like=inpt)


class BoxesFromMasks(v2.Transform):
    """Set ``"boxes"`` to the tight boxes of ``"masks"`` and drop empty instances (from
    ``masks``, ``boxes``, ``labels`` and any other per-instance entry of the dict)."""

    per_instance = ("masks", "boxes", "labels", "iscrowd")

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        if not isinstance(sample, dict) or "masks" not in sample:
            return sample
        masks = sample["masks"]
        keep = masks.flatten(1).any(dim=1) if masks.shape[0] else torch.zeros(0, dtype=bool)
        out = dict(sample)
        for key in self.per_instance:
            if key in out and key != "boxes":
                out[key] = tv_tensors.wrap(out[key][keep], like=out[key]) \
                    if isinstance(out[key], tv_tensors.TVTensor) else out[key][keep]
        h, w = masks.shape[-2:]
        out["boxes"] = tv_tensors.BoundingBoxes(boxes_from_masks(out["masks"]), format="XYXY",
                                                canvas_size=(h, w))
        return out


class ToFloatImage(v2.Transform):
    """uint8 images -> float32 in [0, 1]; float images unchanged; targets untouched."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Image) and not inpt.is_floating_point():
            return tv_tensors.wrap(inpt.float().div_(255.0), like=inpt)
        return inpt


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def train_transforms(
    size: int | Sequence[int],
    scale: tuple[float, float] = (0.5, 1.0),
    hflip: float = 0.5,
    jitter: float = 0.3,
    elastic: float = 0.0,
    elastic_alpha: float = 30.0,
    elastic_sigma: float = 5.0,
) -> v2.Compose:
    """Training augmentation: random resized crop to ``size``, horizontal flip (prob.
    ``hflip``), colour jitter of strength ``jitter`` on the image only (0 = off), elastic
    deformation with probability ``elastic`` (0 = off), uint8 -> float; instance boxes are
    recomputed from the masks and instances that left the crop are dropped."""
    steps: list[Any] = [v2.RandomResizedCrop(_size(size), scale=scale, antialias=True)]
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p=hflip))
    if jitter > 0:
        steps.append(RGBColorJitter(jitter, jitter, jitter, min(0.5, jitter / 6)))
    if elastic > 0:
        steps.append(ElasticDeform(alpha=elastic_alpha, sigma=elastic_sigma, p=elastic))
    steps += [ToFloatImage(), BoxesFromMasks()]
    return v2.Compose(steps)


def eval_transforms(size: int | Sequence[int]) -> v2.Compose:
    """Evaluation: resize to ``size`` (masks with nearest neighbour), uint8 -> float."""
    return v2.Compose([v2.Resize(_size(size), antialias=True), ToFloatImage(), BoxesFromMasks()])
