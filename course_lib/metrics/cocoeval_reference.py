"""pycocotools' ``COCOeval`` on the course's prediction and target dicts: the reference that
:func:`~course_lib.metrics.average_precision.coco_average_precision` is checked against
(``tests/test_average_precision.py`` and notebook 10).

It only translates: the ground truth becomes a COCO json written by hand (masks as RLE), the
predictions go through ``COCO.loadRes``, and COCOeval does the rest. The translation shares
nothing with ``average_precision`` but its input checks, so a bug there cannot hide in both.
pycocotools is a development dependency, imported when this is called.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .average_precision import _check

__all__ = ["cocoeval_stats"]


def cocoeval_stats(
    predictions: Sequence[Mapping[str, Tensor]],
    targets: Sequence[Mapping[str, Tensor]],
    iou_type: str = "segm",
    area_ranges: Mapping[str, tuple[float, float]] | None = None,
    max_detections: Sequence[int] = (1, 10, 100),
    mask_threshold: float = 0.5,
) -> tuple[np.ndarray, Any]:
    """COCOeval's twelve summary numbers (``stats``: AP, AP50, AP75, AP small / medium / large,
    AR1, AR10, AR100, AR small / medium / large) and the evaluator itself, for the inputs and
    options of :func:`~course_lib.metrics.average_precision.coco_average_precision`.

    A target's ``"iscrowd"`` defaults to 0, its ``"area"`` to the mask's pixel count (else the
    box's area); ``area_ranges`` (name → (min, max): ``all``, ``small``, ``medium`` and
    ``large``, the names COCOeval's summary reads) replaces COCO's.
    """
    _check(predictions, targets, iou_type)
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as err:
        raise ImportError("cocoeval_stats needs pycocotools, a development dependency "
                          "(pip install pycocotools)") from err

    def rle(mask: Tensor) -> dict:
        encoded = mask_utils.encode(np.asfortranarray(mask.cpu().numpy().astype(np.uint8)))
        encoded["counts"] = encoded["counts"].decode("ascii")
        return encoded

    def xywh(box: Tensor) -> list[float]:
        x0, y0, x1, y1 = box.double().tolist()
        return [x0, y0, x1 - x0, y1 - y0]

    def binary(masks: Tensor, threshold: float) -> Tensor:
        masks = masks[:, 0] if masks.dim() == 4 else masks  # Mask R-CNN's [D, 1, H, W]
        return masks >= threshold if masks.is_floating_point() else masks.bool()

    images, annotations, results, labels = [], [], [], set()
    for i, (pred, target) in enumerate(zip(predictions, targets, strict=True)):
        image = {"id": i + 1}
        if "masks" in target:
            image["height"], image["width"] = (int(s) for s in target["masks"].shape[-2:])
        images.append(image)
        gt_masks = binary(target["masks"], 0.5) if "masks" in target else None
        crowd = target.get("iscrowd", torch.zeros(len(target["labels"])))
        for j, label in enumerate(torch.as_tensor(target["labels"]).tolist()):
            box = xywh(target["boxes"][j]) if "boxes" in target else [0.0, 0.0, 0.0, 0.0]
            area = (float(target["area"][j]) if "area" in target
                    else float(gt_masks[j].sum()) if gt_masks is not None else box[2] * box[3])
            entry = {"id": len(annotations) + 1, "image_id": i + 1, "category_id": label,
                     "bbox": box, "area": area, "iscrowd": int(crowd[j])}
            if gt_masks is not None:
                entry["segmentation"] = rle(gt_masks[j])
            annotations.append(entry)
            labels.add(label)
        pred_labels = torch.as_tensor(pred["labels"]).tolist()
        pred_masks = binary(pred["masks"], mask_threshold) if iou_type == "segm" else None
        for j, (label, score) in enumerate(zip(pred_labels, pred["scores"].tolist(), strict=True)):
            entry = {"image_id": i + 1, "category_id": label, "score": score}
            if pred_masks is not None:
                entry["segmentation"] = rle(pred_masks[j])
            else:
                entry["bbox"] = xywh(pred["boxes"][j])
            results.append(entry)
            labels.add(label)

    with contextlib.redirect_stdout(io.StringIO()):  # COCO and COCOeval print as they go
        ground_truth = COCO()
        ground_truth.dataset = {"images": images, "annotations": annotations,
                                "categories": [{"id": c} for c in sorted(labels)]}
        ground_truth.createIndex()
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(results), iou_type)
        evaluator.params.maxDets = list(max_detections)
        if area_ranges is not None:
            evaluator.params.areaRng = [list(r) for r in area_ranges.values()]
            evaluator.params.areaRngLbl = list(area_ranges)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats, evaluator
