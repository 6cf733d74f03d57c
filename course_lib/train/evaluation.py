"""Scoring a model over a loader (:func:`evaluate`) and labelling images (:func:`predict`,
and with test-time augmentation :func:`predict_augmented`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import config
from course_lib.losses import LossFn, cross_entropy, model_loss, split_output
from course_lib.metrics import ConfusionMatrix
from course_lib.runtime import evaluating, on_device

from .batches import plain, split_batch, to_device, unwrap

#: What :func:`predict` returns: the class of every pixel or the scores.
PREDICT_OUTPUTS = ("labels", "logits")
#: What :func:`predict_augmented` returns: the class of every pixel or the mean probabilities.
AUGMENTED_OUTPUTS = ("labels", "probabilities")
#: The image scales of multi-scale testing: mmsegmentation's TestTimeAug lists
#: 0.5-1.75; three around 1 keep the cost at six passes with the flips.
TTA_SCALES = (0.75, 1.0, 1.25)


def evaluate(
    model: nn.Module,
    loader: Iterable,
    num_classes: int,
    device: torch.device | str | None = None,
    ignore_index: int = config.IGNORE_INDEX,
    loss_fn: LossFn | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` over a whole loader, from one confusion matrix.

    Returns :func:`course_lib.metrics.segmentation_metrics` (``"miou"``,
    ``"pixel_accuracy"``, per-class ``"iou"`` ...) plus ``"loss"``, the mean loss per
    image (cross-entropy ignoring ``ignore_index`` unless ``loss_fn`` is given). The
    model's train/eval mode is restored afterwards, and the model comes back on the device it
    was on. NaN logits raise ``FloatingPointError`` naming the batch.
    """
    device = config.get_device() if device is None else torch.device(device)
    if loss_fn is None:
        loss_fn = functools.partial(cross_entropy, ignore_index=ignore_index)
    model = unwrap(model)
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    total_loss, total_images = 0.0, 0
    with on_device(device, model), evaluating(model):
        for index, batch in enumerate(config.capped(loader), start=1):  # smoke: 2 batches
            image, mask = to_device(*split_batch(batch), device)
            with config.autocast(device):
                out = model(image)
            logits, _ = split_output(out)
            if bool(torch.isnan(logits).any()):  # argmax would score NaN as a class
                raise FloatingPointError(
                    f"evaluate: at batch {index} of the loader the model's logits hold NaN "
                    f"({int(torch.isnan(logits).sum())} of {logits.numel()} values); a "
                    "diverged model cannot be scored (check the learning rate and the inputs)"
                )
            total_loss += float(model_loss(logits, mask, loss_fn, aux_weight=0.0)) * len(image)
            total_images += len(image)
            cm.update(logits.float(), mask)
    if total_images == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    result = dict(cm.compute())
    result["loss"] = total_loss / total_images
    return result


def predict(
    model: nn.Module, images: torch.Tensor | Iterable[torch.Tensor],
    device: torch.device | str | None = None,
    *,
    batch_size: int | None = None,
    output: str = "labels",
) -> torch.Tensor:
    """Predicted class of every pixel: LongTensor [N, H, W] on the CPU.

    ``images`` is a batch [N, C, H, W], a list of [C, H, W] images, or a single image
    [C, H, W] (then the result is [H, W]). uint8 images are scaled to [0, 1].
    ``batch_size`` runs the model on that many images at a time (memory stays bounded for a
    whole validation set; the result is the same as in one batch, in eval mode).
    ``output="logits"`` returns the float32 scores [N, K, H, W] (``[K, H, W]`` for a single
    image) instead of their argmax; a dict output (``{"out", "aux"}``) gives its ``"out"``.
    The model's modes are restored afterwards (:func:`course_lib.runtime.evaluating`), and
    it comes back on the device it was on (:func:`course_lib.runtime.on_device`).
    """
    if output not in PREDICT_OUTPUTS:
        raise ValueError(f"predict: output must be one of {PREDICT_OUTPUTS}, got {output!r}")
    batch, single = _image_batch(images, batch_size, "predict")
    device = config.get_device() if device is None else torch.device(device)
    model = unwrap(model)
    step = len(batch) if batch_size is None else batch_size
    scores = []
    with on_device(device, model), evaluating(model), config.autocast(device):
        for start in range(0, len(batch), step):
            image, _ = to_device(batch[start:start + step], torch.zeros(0), device)
            logits, _ = split_output(model(image))
            scores.append(logits.float().cpu() if output == "logits" else
                          logits.argmax(dim=1).cpu())
    result = torch.cat(scores)
    return result[0] if single else result


def _image_batch(images: torch.Tensor | Iterable[torch.Tensor], batch_size: int | None,
                 caller: str) -> tuple[torch.Tensor, bool]:
    """``images`` as one batch [N, C, ...] and whether it was a single image [C, H, W]; the
    checks :func:`predict` and :func:`predict_augmented` share, their errors named ``caller``."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"{caller}: batch_size must be a positive integer or None, got "
                         f"{batch_size}")
    single = isinstance(images, torch.Tensor) and images.dim() == 3
    if isinstance(images, torch.Tensor):
        batch = plain(images)[None] if single else plain(images)
    else:
        batch = torch.stack([plain(im) for im in images])
    if batch.dim() < 4:
        raise ValueError(
            f"{caller} expects images [N, C, H, W] or [C, H, W], got {tuple(batch.shape)}"
        )
    if len(batch) == 0:
        raise ValueError(f"{caller}: no images were given (a batch of 0)")
    return batch, single


def predict_augmented(
    model: nn.Module, images: torch.Tensor | Iterable[torch.Tensor],
    device: torch.device | str | None = None,
    *,
    scales: tuple[float, ...] = TTA_SCALES,
    flip: bool = True,
    batch_size: int | None = None,
    output: str = "labels",
) -> torch.Tensor:
    """Test-time augmentation: the class probabilities averaged over resized and mirrored views.

    Every image is resized by each of ``scales`` (bilinear, side ``round(scale * side)``) and,
    with ``flip``, also mirrored left-right; the model's logits for each view are mirrored
    back, resized to the image (bilinear) and turned into probabilities (softmax), and the
    probabilities are averaged. This is the multi-scale + flip evaluation of DeepLab (v2, v3)
    and PSPNet; mmsegmentation's ``SegTTAModel`` merges its views the same way. Only
    left-right mirrors: in a scene the sky is on top. It costs ``len(scales) * (1 + flip)``
    forward passes; ``scales=(1.0,), flip=False`` is :func:`predict` (labels) or its softmax.

    ``images`` is a float or uint8 batch [N, C, H, W], a list of [C, H, W] images or one image;
    ``output="probabilities"`` returns the mean probabilities [N, K, H, W] (on the CPU)
    instead of their argmax [N, H, W]. ``device`` and ``batch_size`` as in :func:`predict`.
    """
    if output not in AUGMENTED_OUTPUTS:
        raise ValueError(f"predict_augmented: output must be one of {AUGMENTED_OUTPUTS}, "
                         f"got {output!r}")
    if len(scales) == 0 or any(not scale > 0 for scale in scales):
        raise ValueError(f"predict_augmented: scales must be one or more numbers > 0, "
                         f"got {scales!r}")
    batch, single = _image_batch(images, batch_size, "predict_augmented")
    if batch.dim() != 4:  # the views are resized in 2D
        raise ValueError(f"predict_augmented expects images [N, C, H, W] or [C, H, W], got "
                         f"{tuple(batch.shape)}")
    if not batch.is_floating_point():
        batch = batch.float() / 255.0
    device = config.get_device() if device is None else torch.device(device)
    model = unwrap(model)
    step = len(batch) if batch_size is None else batch_size
    chunks = []  # memory stays bounded by one chunk's views, as in predict
    # moved once for all the views: each predict below then finds the model where it runs
    with on_device(device, model):
        for start in range(0, len(batch), step):
            mean = _mean_probabilities(model, batch[start:start + step], device, scales, flip)
            chunks.append(mean if output == "probabilities" else mean.argmax(dim=1))
    result = torch.cat(chunks)
    return result[0] if single else result


def _mean_probabilities(model: nn.Module, images: torch.Tensor, device: torch.device,
                        scales: tuple[float, ...], flip: bool) -> torch.Tensor:
    """Softmax of the model over every scaled (and mirrored) view of ``images`` [N, C, H, W],
    each brought back to the images' size and mirror, averaged: [N, K, H, W] on the CPU."""
    height, width = images.shape[-2:]
    mirrors = (False, True) if flip else (False,)
    total = torch.zeros(())
    for scale in scales:
        size = (max(1, int(scale * height + 0.5)), max(1, int(scale * width + 0.5)))
        view = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        for mirrored in mirrors:
            logits = predict(model, view.flip(-1) if mirrored else view, device, output="logits")
            logits = logits.flip(-1) if mirrored else logits
            logits = F.interpolate(logits, size=(height, width), mode="bilinear",
                                   align_corners=False)
            total = total + logits.softmax(dim=1)
    return total / (len(scales) * len(mirrors))
