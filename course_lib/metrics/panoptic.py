"""Panoptic quality (Kirillov et al., CVPR 2019): PQ = SQ x RQ, per class, over things and stuff.

A panoptic segmentation gives every pixel a class *and* a segment: a thing pixel belongs to
one object, a stuff pixel to the one region of its class. Here a segmentation is a map of
integer **panoptic ids**, ``id = class * label_divisor + instance`` (the shapes world's
``"panoptic"`` target: ``label * 1000 + instance id``, instance 0 for stuff). A pixel whose
class is ``ignore_index`` (255) is **void**.

The COCO panoptic definition (panopticapi's ``pq_compute``), per image and class ``c``:

* a predicted segment ``p`` and a ground-truth segment ``g`` of the same class **match** when
  ``IoU(p, g) > 0.5``, where the union leaves out the pixels of ``p`` that are void in the
  ground truth (``|p| + |g| - |p ∩ g| - |p ∩ void|``). Above 0.5 a segment can match at most
  one other (the segments of one map do not overlap), so the matching is unique, no
  assignment problem;
* matched pairs are true positives (TP), unmatched ground-truth segments false negatives
  (FN), unmatched predicted segments false positives (FP) — **except** a predicted segment
  whose pixels lie more than half in void or in a *crowd* region of its class (a ground-truth
  segment marked "iscrowd": a group of objects too many to label one by one), which is
  ignored. Crowd segments are never matched and never count as FN;
* ``SQ_c = Σ IoU(TP) / |TP|`` (how well the matched segments fit), ``RQ_c = |TP| / (|TP| +
  ½|FP| + ½|FN|)`` (an F1 score of detection), ``PQ_c = SQ_c x RQ_c``;
* the reported PQ, SQ, RQ are means over the classes that occur (``TP + FP + FN > 0``), over
  all classes, the things and the stuff separately.

The counts ``TP, FP, FN, Σ IoU`` of each class add up over images, so
:class:`PanopticQuality` sums :func:`panoptic_stats` batch by batch, as panopticapi sums its
images. Everything is computed with ``torch.unique`` / ``bincount`` over segment pairs, no loop
over pixels or segments.

One simplification: panopticapi keeps one crowd region per class and image (the last one it
reads); here the pixels of every crowd region of the class count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from course_lib.config import IGNORE_INDEX

LABEL_DIVISOR = 1000  # the shapes world's panoptic ids: class * 1000 + instance
MATCH_IOU = 0.5  # a match needs IoU strictly above this (unique matching)
IGNORED_FRACTION = 0.5  # an unmatched prediction more than half in void/crowd is no FP


@dataclass(frozen=True)
class PanopticStats:
    """Per-class sums over images: ``tp``, ``fp``, ``fn`` (int64 [K]) and ``iou`` (float64 [K],
    the sum of the matched pairs' IoU). Add two with ``+``."""

    tp: Tensor
    fp: Tensor
    fn: Tensor
    iou: Tensor

    def __add__(self, other: PanopticStats) -> PanopticStats:
        return PanopticStats(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                             self.iou + other.iou)


def _check(pred: Tensor, target: Tensor, num_classes: int, label_divisor: int) -> None:
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise ValueError(f"pred and target must be torch tensors, got {type(pred).__name__} "
                         f"and {type(target).__name__}")
    if pred.shape != target.shape or pred.dim() not in (2, 3):
        raise ValueError(f"pred and target must be panoptic id maps of one shape [N, H, W] or "
                         f"[H, W], got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.is_floating_point() or target.is_floating_point():
        raise ValueError(f"panoptic ids must be integers, got {pred.dtype} and {target.dtype}")
    if not isinstance(num_classes, int) or num_classes < 1 or label_divisor < 1:
        raise ValueError(f"num_classes and label_divisor must be positive ints, got "
                         f"{num_classes!r} and {label_divisor!r}")
    for name, ids in (("pred", pred), ("target", target)):
        if ids.numel() and int(ids.min()) < 0:
            raise ValueError(f"{name} holds a negative panoptic id {int(ids.min())}")


def _segments(ids: Tensor, image: Tensor, label_divisor: int) -> tuple[Tensor, Tensor, Tensor]:
    """Segments of a batch of id maps: (segment index per pixel, panoptic id and image of each
    segment). A segment is an (image, id) pair."""
    span = int(ids.max()) + 1 if ids.numel() else 1
    keys, index = torch.unique(image * span + ids, return_inverse=True)
    return index, keys % span, keys // span


def panoptic_stats(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    label_divisor: int = LABEL_DIVISOR,
    ignore_index: int = IGNORE_INDEX,
    crowd_ids: Sequence[int] | Tensor = (),
) -> PanopticStats:
    """The COCO panoptic counts (module docstring) of a batch of panoptic id maps.

    Args:
        pred, target: int [N, H, W] (or [H, W]) panoptic ids ``class * label_divisor +
            instance``; class ``ignore_index`` is void (in ``pred``: no segment there).
        num_classes: ``K``; every non-void class must be below it.
        crowd_ids: target panoptic ids that are crowd regions (in every image).
    """
    _check(pred, target, num_classes, label_divisor)
    if pred.dim() == 2:
        pred, target = pred[None], target[None]
    n = pred.shape[0]
    image = torch.arange(n, device=pred.device).view(n, 1, 1).expand_as(pred).reshape(-1)
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    for name, ids in (("pred", pred), ("target", target)):
        classes = ids // label_divisor
        bad = (classes >= num_classes) & (classes != ignore_index)
        if bad.any():
            raise ValueError(f"{name} holds class {int(classes[bad][0])} (panoptic id "
                             f"{int(ids[bad][0])}), not in 0..{num_classes - 1} nor "
                             f"ignore_index={ignore_index}")

    g_index, g_id, g_image = _segments(target, image, label_divisor)
    p_index, p_id, p_image = _segments(pred, image, label_divisor)
    g_class, p_class = g_id // label_divisor, p_id // label_divisor
    g_void, p_void = g_class == ignore_index, p_class == ignore_index
    crowd = torch.as_tensor(list(crowd_ids) if not isinstance(crowd_ids, Tensor) else crowd_ids,
                            dtype=torch.long, device=g_id.device)
    g_crowd = torch.isin(g_id, crowd) & ~g_void
    g_area = torch.bincount(g_index, minlength=len(g_id))
    p_area = torch.bincount(p_index, minlength=len(p_id))

    # every (ground-truth segment, predicted segment) pair that shares pixels, and how many
    pairs, inter = torch.unique(g_index * len(p_id) + p_index, return_counts=True)
    pg, pp = pairs // len(p_id), pairs % len(p_id)
    # pixels of each predicted segment that are void / crowd of its class in the ground truth
    p_in_void = torch.bincount(pp[g_void[pg]], weights=inter[g_void[pg]].double(),
                               minlength=len(p_id))
    same_class = g_class[pg] == p_class[pp]
    into_crowd = g_crowd[pg] & same_class
    p_in_crowd = torch.bincount(pp[into_crowd], weights=inter[into_crowd].double(),
                                minlength=len(p_id))

    # matches: same class, neither void nor crowd, IoU > 0.5 with the void pixels left out
    candidate = same_class & ~g_void[pg] & ~g_crowd[pg] & ~p_void[pp]
    union = p_area[pp] + g_area[pg] - inter - p_in_void[pp]
    iou = inter.double() / union.clamp(min=1).double()
    match = candidate & (iou > MATCH_IOU)
    g_matched = torch.zeros(len(g_id), dtype=torch.bool, device=g_id.device)
    p_matched = torch.zeros(len(p_id), dtype=torch.bool, device=p_id.device)
    g_matched[pg[match]] = True
    p_matched[pp[match]] = True

    unmatched_g = ~g_matched & ~g_void & ~g_crowd
    ignored = (p_in_void + p_in_crowd) / p_area.double() > IGNORED_FRACTION
    unmatched_p = ~p_matched & ~p_void & ~ignored
    k = num_classes
    return PanopticStats(
        tp=torch.bincount(g_class[pg[match]], minlength=k).cpu(),
        fp=torch.bincount(p_class[unmatched_p], minlength=k).cpu(),
        fn=torch.bincount(g_class[unmatched_g], minlength=k).cpu(),
        iou=torch.bincount(g_class[pg[match]], weights=iou[match], minlength=k).cpu(),
    )


def panoptic_scores(stats: PanopticStats, things: Sequence[int]) -> dict[str, dict[str, float]]:
    """PQ, SQ, RQ and the number of classes averaged, for ``"all"``, ``"things"``, ``"stuff"``
    (the classes not in ``things``), plus ``"per_class"`` (tensors ``pq, sq, rq`` [K], NaN for
    a class with ``TP + FP + FN = 0``), as panopticapi's ``pq_average``."""
    tp, fp, fn = stats.tp.double(), stats.fp.double(), stats.fn.double()
    present = (tp + fp + fn) > 0
    sq = torch.where(tp > 0, stats.iou / tp.clamp(min=1), torch.zeros_like(tp))
    rq = tp / (tp + 0.5 * fp + 0.5 * fn).clamp(min=1e-12)
    pq = sq * rq
    nan = torch.full_like(pq, float("nan"))
    per_class = {name: torch.where(present, v, nan) for name, v in
                 (("pq", pq), ("sq", sq), ("rq", rq))}
    k = len(tp)
    is_thing = torch.zeros(k, dtype=torch.bool)
    things = [int(c) for c in things]
    if any(not 0 <= c < k for c in things):
        raise ValueError(f"things must be classes in 0..{k - 1}, got {things}")
    is_thing[things] = True
    result: dict[str, dict] = {}
    for name, chosen in (("all", present), ("things", present & is_thing),
                         ("stuff", present & ~is_thing)):
        count = int(chosen.sum())
        result[name] = {m: (float(v[chosen].mean()) if count else float("nan"))
                        for m, v in (("pq", pq), ("sq", sq), ("rq", rq))}
        result[name]["n"] = count
    result["per_class"] = per_class
    return result


def panoptic_quality(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    things: Sequence[int],
    label_divisor: int = LABEL_DIVISOR,
    ignore_index: int = IGNORE_INDEX,
    crowd_ids: Sequence[int] | Tensor = (),
) -> dict[str, dict[str, float]]:
    """PQ, SQ, RQ of one batch: :func:`panoptic_scores` of :func:`panoptic_stats`."""
    stats = panoptic_stats(pred, target, num_classes, label_divisor, ignore_index, crowd_ids)
    return panoptic_scores(stats, things)


class PanopticQuality:
    """PQ over a whole data set: ``update(pred, target)`` per batch, then ``compute()``."""

    def __init__(self, num_classes: int, things: Sequence[int],
                 label_divisor: int = LABEL_DIVISOR, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes, self.things = num_classes, tuple(things)
        self.label_divisor, self.ignore_index = label_divisor, ignore_index
        zeros = torch.zeros(num_classes, dtype=torch.long)
        self.stats = PanopticStats(zeros, zeros, zeros, zeros.double())

    def update(self, pred: Tensor, target: Tensor, crowd_ids: Sequence[int] | Tensor = ()
               ) -> None:
        self.stats = self.stats + panoptic_stats(pred, target, self.num_classes,
                                                 self.label_divisor, self.ignore_index,
                                                 crowd_ids)

    def compute(self) -> dict[str, dict[str, float]]:
        return panoptic_scores(self.stats, self.things)


__all__ = ["LABEL_DIVISOR", "PanopticQuality", "PanopticStats", "panoptic_quality",
           "panoptic_scores", "panoptic_stats"]
