"""The course's big models against torchvision's builds of the same networks: training-step time.

:func:`deeplab_vs_torchvision` (DeepLab v3) and :func:`mask_rcnn_step_ratio` (Mask R-CNN,
notebook 10) time a training step of each on the same input, with :mod:`course_lib.bench`'s
clocks, and return the medians and their ratio (ours / torchvision).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn

from . import config
from .bench import synchronize, train_step_time


def deeplab_vs_torchvision(
    size: int = 128, batch: int = 2, repeats: int = 5, device: torch.device | str | None = None
) -> dict[str, Any]:
    """Training-step time of the course's full DeepLab v3 (ResNet-50, output stride 8, 21
    classes, auxiliary head) against ``torchvision.models.segmentation.deeplabv3_resnet50``
    (no weights) on the same input; returns ``{"ours_ms", "torchvision_ms", "ratio",
    "device", "size", "batch"}`` (``ratio`` = ours / torchvision, medians of ``repeats``
    steps). The two networks have the same parameters, tensor by tensor (tests/test_deeplab.py).
    """
    from torchvision.models.segmentation import deeplabv3_resnet50

    from .models.deeplab import DeepLabV3

    device = config.get_device() if device is None else torch.device(device)
    torch.manual_seed(0)
    x = torch.rand(batch, 3, size, size, device=device)
    target = torch.randint(0, 21, (batch, size, size), device=device)
    ours = DeepLabV3(num_classes=21, output_stride=8, aux=True, full=True).to(device)
    theirs = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21,
                                aux_loss=True).to(device)
    t_theirs = train_step_time(theirs, x, target, repeats=repeats)["median_ms"]
    t_ours = train_step_time(ours, x, target, repeats=repeats)["median_ms"]
    return {"ours_ms": t_ours, "torchvision_ms": t_theirs, "ratio": t_ours / t_theirs,
            "device": device.type, "size": size, "batch": batch}


def mask_rcnn_step_ratio(size: int = 320, batch: int = 2, repeats: int = 5,
                         backbone: str = "resnet50", device: torch.device | str | None = None,
                         ) -> dict[str, Any]:
    """Training-step time of the course's Mask R-CNN against torchvision's (notebook 10).

    Equal configuration: the same ResNet-FPN (``backbone``, trainable BatchNorm: torchvision's
    ``weights=None`` build), 91 classes, images resized to ``size`` (``min_size = max_size``),
    ``batch`` images with three objects each, one SGD step (forward, the five losses,
    backward, update). The two models' steps are timed alternately after a warm-up step each
    (so both see the same machine load); returns the medians and ``ratio`` = ours / theirs.
    """
    from torchvision import models as tv_models
    from torchvision.models.detection import MaskRCNN as TorchvisionMaskRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor

    from .models.rcnn import MaskRCNN

    device = config.get_device() if device is None else torch.device(device)
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=g, device="cpu").to(device)
              for _ in range(batch)]
    targets = []
    for _ in range(batch):
        xy = torch.rand(3, 2, generator=g) * size * 0.6
        boxes = torch.cat([xy, xy + size * 0.1 + torch.rand(3, 2, generator=g) * size * 0.3], 1)
        masks = torch.zeros(3, size, size, dtype=torch.uint8)
        for m, (x0, y0, x1, y1) in zip(masks, boxes.round().long().tolist(), strict=True):
            m[y0:y1, x0:x1] = 1
        targets.append({"boxes": boxes.to(device), "labels": torch.tensor([1, 2, 3], device=device),
                        "masks": masks.to(device)})
    ours = MaskRCNN(full=True, backbone=backbone, norm="bn", min_size=size, max_size=size)
    theirs = TorchvisionMaskRCNN(_resnet_fpn_extractor(getattr(tv_models, backbone)(), 5),
                                 num_classes=91, min_size=size, max_size=size)
    steps = {}
    for name, model in (("ours", ours), ("torchvision", theirs)):
        model.to(device).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

        def step(model: nn.Module = model, optimizer: torch.optim.Optimizer = optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            sum(model(images, targets).values()).backward()
            optimizer.step()

        steps[name] = step
        step()  # warm-up
    times: dict[str, list[float]] = {"ours": [], "torchvision": []}
    for _ in range(repeats):
        for name, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times[name].append((time.perf_counter() - start) * 1000.0)
    ours_ms, theirs_ms = statistics.median(times["ours"]), statistics.median(times["torchvision"])
    return {"ours_ms": ours_ms, "torchvision_ms": theirs_ms, "ratio": ours_ms / theirs_ms,
            "size": size, "batch": batch, "backbone": backbone, "repeats": repeats,
            "device": device.type}
