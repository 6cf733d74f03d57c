"""COCO average precision of boxes and masks (Lin et al., "Microsoft COCO", ECCV 2014).

An instance model outputs a list of scored objects per image; AP asks how well the score
ranks right objects above wrong ones. For one class, one IoU threshold ``t`` and all
images together:

1. **match** (per image): walk the detections from the highest score down; each takes the
   still-unmatched ground-truth object it overlaps most, if that IoU >= ``t`` (a true
   positive); otherwise it is a false positive. A ground truth marked *crowd* (or outside
   the area range being scored) is "ignored": a detection matched to it counts neither way;
2. **rank** (over all images): sort the detections by score; after each one, recall = TP /
   (number of ground-truth objects) and precision = TP / (TP + FP);
3. **interpolate**: make precision non-increasing from the right (the best precision
   reachable at this recall or more) and read it at 101 recall levels 0, 0.01, ..., 1
   (0 where that recall is never reached); AP is their mean.

COCO's AP is the mean of that over the ten IoU thresholds 0.50, 0.55, ..., 0.95 and over the
classes; AP50 / AP75 use one threshold; AP_small / medium / large score only objects of
area < 32², 32²-96², > 96² pixels (a detection outside the range is ignored unless it
matched); at most ``maxDets`` = 100 detections per image (AR1 / AR10 / AR100: the recall
with at most 1, 10, 100). :func:`coco_average_precision` reproduces ``pycocotools``'
``COCOeval`` step for step — the same matching rule (ties go to the later ground truth,
regular objects before ignored ones), the same sorts (stable), the same thresholds — so
its numbers equal COCOeval's on the same predictions (tested to 1e-6).

IoU: boxes by area (``iou_type="bbox"``), masks by pixel counts (``"segm"``, predicted
masks thresholded at 0.5). A crowd ground truth's IoU is intersection / detection area.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["COCO_AREA_RANGES", "COCO_IOU_THRESHOLDS", "COCO_RECALL_THRESHOLDS",
           "coco_average_precision", "box_iou_xywh", "mask_iou"]

# the thresholds exactly as COCOeval builds them (np.linspace), bit for bit
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1,
                                  endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1,
                                     endpoint=True)
COCO_AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
_EPS = np.spacing(1)  # COCOeval's guard in precision = tp / (tp + fp + eps)


def box_iou_xywh(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU ``[D, G]`` of XYWH boxes (float64), crowd columns by detection area (as COCO)."""
    x1 = np.minimum(dt[:, None, 0] + dt[:, None, 2], gt[None, :, 0] + gt[None, :, 2])
    w = x1 - np.maximum(dt[:, None, 0], gt[None, :, 0])
    y1 = np.minimum(dt[:, None, 1] + dt[:, None, 3], gt[None, :, 1] + gt[None, :, 3])
    h = y1 - np.maximum(dt[:, None, 1], gt[None, :, 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    dt_area, gt_area = dt[:, 2] * dt[:, 3], gt[:, 2] * gt[:, 3]
    union = np.where(crowd[None, :], dt_area[:, None], dt_area[:, None] + gt_area[None] - inter)
    return np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def mask_iou(dt: Tensor, gt: Tensor, crowd: np.ndarray) -> np.ndarray:
    """IoU ``[D, G]`` of boolean masks ``[D, H, W]`` / ``[G, H, W]`` by exact pixel counts."""
    d, g = dt.flatten(1).double(), gt.flatten(1).double()
    inter = (d @ g.T).numpy()  # exact integers in float64
    dt_area, gt_area = d.sum(1).numpy(), g.sum(1).numpy()
    union = np.where(crowd[None, :], dt_area[:, None], dt_area[:, None] + gt_area[None] - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _xywh(boxes: Tensor) -> np.ndarray:
    b = boxes.detach().cpu().double().numpy().reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def _binary_masks(masks: Tensor, threshold: float) -> Tensor:
    masks = masks.detach().cpu()
    if masks.dim() == 4:  # [D, 1, H, W] as Mask R-CNN returns them
        masks = masks[:, 0]
    return masks >= threshold if masks.is_floating_point() else masks.bool()


def _match(ious: np.ndarray, gt_ignore: np.ndarray, crowd: np.ndarray, thresholds: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's greedy matching for every threshold at once.

    ``ious`` ``[D, G]`` with the detections by score and the ground truths regular-first.
    Returns ``matched`` (index of the matched ground truth or -1) and ``ignored`` (the match
    is an ignored ground truth), both ``[T, D]``.
    """
    t, (d, g) = len(thresholds), ious.shape
    limit = np.minimum(thresholds, 1 - 1e-10)[:, None]  # [T, 1]
    taken = np.zeros((t, g), dtype=bool)
    matched = np.full((t, d), -1, dtype=np.int64)
    if g == 0:  # nothing to match: every detection is a false positive
        return matched, np.zeros((t, d), dtype=bool)
    rows = np.arange(t)
    for i in range(d):  # a loop over the detections: matching is greedy by score
        free = ~taken | crowd[None, :]
        good = free & (ious[i][None, :] >= limit)  # [T, G]
        regular = good & ~gt_ignore[None, :]
        candidates = np.where(regular.any(1, keepdims=True), regular, good & gt_ignore[None, :])
        score = np.where(candidates, ious[i][None, :], -1.0)
        best = score.max(1, keepdims=True)
        # the last ground truth with the best IoU (COCOeval replaces on ">=")
        last = g - 1 - np.argmax(((score == best) & candidates)[:, ::-1], axis=1)
        hit = candidates.any(1)
        matched[hit, i] = last[hit]
        taken[rows[hit], last[hit]] = True
    ignored = np.where(matched >= 0, gt_ignore[np.maximum(matched, 0)], False)
    return matched, ignored


def _check(predictions: Sequence[Mapping[str, Tensor]], targets: Sequence[Mapping[str, Tensor]],
           iou_type: str) -> None:
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    if len(predictions) != len(targets):
        raise ValueError(f"one prediction dict per target dict: got {len(predictions)} "
                         f"predictions and {len(targets)} targets")
    geometry = "boxes" if iou_type == "bbox" else "masks"
    for i, (p, t) in enumerate(zip(predictions, targets, strict=True)):
        for what, d, keys in (("prediction", p, (geometry, "scores", "labels")),
                              ("target", t, (geometry, "labels"))):
            missing = [k for k in keys if k not in d]
            if missing:
                raise ValueError(f"{what} {i} lacks {missing} (iou_type={iou_type!r} needs "
                                 f"{list(keys)})")
            n = len(d["labels"])
            if len(d[geometry]) != n or (what == "prediction" and len(d["scores"]) != n):
                raise ValueError(f"{what} {i}: {n} labels but {len(d[geometry])} {geometry}")
            if torch.as_tensor(d["labels"]).is_floating_point():
                raise ValueError(f"{what} {i}: labels must be integers")
        if iou_type == "segm" and len(p["masks"]) and len(t["masks"]):
            if tuple(p["masks"].shape[-2:]) != tuple(t["masks"].shape[-2:]):
                raise ValueError(f"image {i}: predicted masks are {tuple(p['masks'].shape[-2:])}"
                                 f" but target masks {tuple(t['masks'].shape[-2:])}")


def coco_average_precision(
    predictions: Sequence[Mapping[str, Tensor]],
    targets: Sequence[Mapping[str, Tensor]],
    iou_type: str = "segm",
    area_ranges: Mapping[str, tuple[float, float]] | None = None,
    max_detections: Sequence[int] = (1, 10, 100),
    classes: Sequence[int] | None = None,
    mask_threshold: float = 0.5,
) -> dict[str, Any]:
    """COCO AP/AR of ``predictions`` against ``targets`` (one dict per image each).

    Args:
        predictions: ``{"boxes" [D, 4] XYXY, "scores" [D], "labels" [D], "masks" [D, (1,) H, W]
            (probabilities: thresholded at ``mask_threshold``, or booleans)}`` per image (the
            output of a torchvision-style detection model in eval mode).
        targets: ``{"boxes", "labels", "masks" [G, H, W]}`` per image, optionally ``"iscrowd"``
            [G] and ``"area"`` [G] (default: the mask's pixel count if masks are given, else
            the box's area — COCO's ``area`` is the segment's, for bbox AP too).
        iou_type: ``"segm"`` (mask AP) or ``"bbox"`` (box AP).
        area_ranges: name → (min, max) object area in pixels, ``"all"`` required; default
            COCO's (``small`` < 32², ``medium`` < 96², ``large``).
        max_detections: COCO's ``maxDets``; the AP uses the last (100).
        classes: labels to score (default: every label in the targets or predictions).

    Returns:
        ``"AP"`` (IoU .50:.95), ``"AP50"``, ``"AP75"``, ``"AP_<range>"`` for each other area
        range, ``"AR<m>"`` for each ``m`` of ``max_detections``, ``"AR_<range>"``; then
        ``"per_class"`` {label: AP}, ``"classes"``, ``"precision"`` [T, R, K, A, M] and
        ``"recall"`` [T, K, A, M] (as COCOeval's ``eval``). An undefined value (no ground
        truth) is -1, as in COCOeval.
    """
    _check(predictions, targets, iou_type)
    ranges = dict(COCO_AREA_RANGES if area_ranges is None else area_ranges)
    if "all" not in ranges:
        raise ValueError(f"area_ranges needs an 'all' entry, got {list(ranges)}")
    max_dets = [int(m) for m in max_detections]
    if not max_dets or min(max_dets) < 1:
        raise ValueError(f"max_detections must be positive, got {list(max_detections)}")
    if classes is None:
        classes = sorted({int(c) for d in (*predictions, *targets)
                          for c in torch.as_tensor(d["labels"]).tolist()})
    classes = [int(c) for c in classes]
    thresholds, recall_levels = COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS
    n_t, n_r, n_k, n_a, n_m = len(thresholds), len(recall_levels), len(classes), len(ranges), \
        len(max_dets)
    area_bounds = list(ranges.values())

    # ---- per image and class: IoUs and the matches in every area range (COCOeval.evaluate)
    evals: dict[tuple[int, int], list[dict[str, np.ndarray]]] = {}
    for img, (pred, tgt) in enumerate(zip(predictions, targets, strict=True)):
        p_labels = torch.as_tensor(pred["labels"]).cpu().numpy()
        g_labels = torch.as_tensor(tgt["labels"]).cpu().numpy()
        p_scores = torch.as_tensor(pred["scores"]).detach().cpu().double().numpy()
        crowd_all = (torch.as_tensor(tgt["iscrowd"]).cpu().numpy().astype(bool)
                     if "iscrowd" in tgt else np.zeros(len(g_labels), dtype=bool))
        if iou_type == "bbox":
            p_geo, g_geo = _xywh(pred["boxes"]), _xywh(tgt["boxes"])
            p_area = p_geo[:, 2] * p_geo[:, 3]
        else:
            p_geo, g_geo = _binary_masks(pred["masks"], mask_threshold), _binary_masks(
                tgt["masks"], 0.5)
            p_area = p_geo.flatten(1).sum(1).double().numpy()
        if "area" in tgt:
            g_area = torch.as_tensor(tgt["area"]).cpu().double().numpy()
        elif "masks" in tgt:
            g_area = _binary_masks(tgt["masks"], 0.5).flatten(1).sum(1).double().numpy()
        else:
            g_area = _xywh(tgt["boxes"])[:, 2] * _xywh(tgt["boxes"])[:, 3]
        for k in classes:
            gi, di = np.where(g_labels == k)[0], np.where(p_labels == k)[0]
            if len(gi) == 0 and len(di) == 0:
                continue
            order = di[np.argsort(-p_scores[di], kind="mergesort")][: max_dets[-1]]
            crowd = crowd_all[gi]
            if len(order) and len(gi):
                if iou_type == "bbox":
                    ious = box_iou_xywh(p_geo[order], g_geo[gi], crowd)
                else:
                    ious = mask_iou(p_geo[order], g_geo[gi], crowd)
            else:
                ious = np.zeros((len(order), len(gi)))
            per_range = []
            for lo, hi in area_bounds:
                ignore = crowd | (g_area[gi] < lo) | (g_area[gi] > hi)
                regular_first = np.argsort(ignore, kind="mergesort")
                matched, ignored = _match(ious[:, regular_first], ignore[regular_first],
                                          crowd[regular_first], thresholds)
                outside = (p_area[order] < lo) | (p_area[order] > hi)
                ignored = ignored | ((matched < 0) & outside[None, :])
                per_range.append({"scores": p_scores[order], "matched": matched >= 0,
                                  "ignored": ignored, "gt_ignored": ignore})
            evals[(k, img)] = per_range

    # ---- precision and recall per class, area range and maxDets (COCOeval.accumulate)
    precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    for ki, k in enumerate(classes):
        found = [e for (c, _), e in sorted(evals.items()) if c == k]
        for ai in range(n_a):
            for mi, m in enumerate(max_dets):
                es = [e[ai] for e in found]
                if not es:
                    continue
                scores = np.concatenate([e["scores"][:m] for e in es])
                rank = np.argsort(-scores, kind="mergesort")
                matched = np.concatenate([e["matched"][:, :m] for e in es], axis=1)[:, rank]
                ignored = np.concatenate([e["ignored"][:, :m] for e in es], axis=1)[:, rank]
                n_gt = int(np.count_nonzero(~np.concatenate([e["gt_ignored"] for e in es])))
                if n_gt == 0:
                    continue
                tp = np.cumsum(matched & ~ignored, axis=1).astype(float)
                fp = np.cumsum(~matched & ~ignored, axis=1).astype(float)
                nd = tp.shape[1]
                rc = tp / n_gt
                pr = tp / (fp + tp + _EPS)
                recall[:, ki, ai, mi] = rc[:, -1] if nd else 0.0
                if nd == 0:
                    precision[:, :, ki, ai, mi] = 0.0
                    continue
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # non-increasing
                for ti in range(n_t):
                    at = np.searchsorted(rc[ti], recall_levels, side="left")
                    precision[ti, :, ki, ai, mi] = np.where(at < nd, pr[ti, np.minimum(at, nd - 1)],
                                                            0.0)

    # ---- the summary numbers (COCOeval.summarize)
    def mean_valid(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    last = len(max_dets) - 1
    names = list(ranges)
    out: dict[str, Any] = {
        "AP": mean_valid(precision[:, :, :, 0, last]),
        "AP50": mean_valid(precision[thresholds == 0.5][:, :, :, 0, last]),
        "AP75": mean_valid(precision[thresholds == 0.75][:, :, :, 0, last]),
    }
    for ai, name in enumerate(names[1:], start=1):
        out[f"AP_{name}"] = mean_valid(precision[:, :, :, ai, last])
    for mi, m in enumerate(max_dets):
        out[f"AR{m}"] = mean_valid(recall[:, :, 0, mi])
    for ai, name in enumerate(names[1:], start=1):
        out[f"AR_{name}"] = mean_valid(recall[:, :, ai, last])
    out["per_class"] = {k: mean_valid(precision[:, :, ki, 0, last]) for ki, k in enumerate(classes)}
    out["classes"] = classes
    out["precision"], out["recall"] = torch.from_numpy(precision), torch.from_numpy(recall)
    return out
