"""Segmentation metrics, all read off one confusion matrix.

Every score of the survey's metric section (pixel accuracy, mean pixel accuracy, IoU, mIoU,
frequency-weighted IoU, precision, recall, F1, Dice) is a ratio of three counts per class,
and all three sit in a single ``K x K`` **confusion matrix** ``cm`` whose row is the target
class and whose column is the predicted class:

* ``TP_c = cm[c, c]`` — pixels of class ``c`` predicted as ``c``;
* ``FN_c = cm[c, :].sum() - TP_c`` — pixels of class ``c`` predicted as something else;
* ``FP_c = cm[:, c].sum() - TP_c`` — pixels predicted as ``c`` that belong to another class.

The matrix is built in one call, ``torch.bincount(K * target + pred)``, exactly as
torchvision's reference trainer does, and summed over the batches of a whole validation set
(:class:`ConfusionMatrix`). Pixels whose target equals ``ignore_index`` (255, "void" in VOC)
are dropped before counting.

Conventions (the same as ``torchmetrics`` with ``average="macro"``):

* A class **absent from both prediction and target** (``TP + FP + FN == 0``) has no score:
  its per-class IoU, precision, recall, F1 and Dice are ``NaN``, and every mean
  (mIoU, mean pixel accuracy, mean F1, mean Dice) skips it (``nanmean``). Otherwise a
  class that does not occur in a small batch would count as a perfect 1 or a failed 0.
* A class **present in the target but never predicted** has ``TP = 0``, so IoU = 0, recall = 0,
  F1 = Dice = 0, and it pulls the means down — missing a class is an error. Its precision is
  ``0 / 0``; we report **0** (torchmetrics' ``zero_division=0``), not NaN.
* Symmetrically a class **predicted but absent from the target** gets IoU = precision = 0 and
  recall ``0 / 0`` reported as 0. So mean pixel accuracy (the mean of the per-class recalls) also
  counts such a class as 0; the original FCN code's ``nanmean(diag / rows)`` skips it instead.
* On one pooled matrix, per-class F1 and Dice are the same number, ``2TP / (2TP + FP + FN)``.
  They differ from IoU by the monotone map ``Dice = 2 IoU / (1 + IoU)``.

Micro versus per-image averaging: :func:`mean_iou` of the pooled matrix weighs every *pixel*
of the data set equally (the VOC / Cityscapes protocol). :func:`per_image_miou` first computes
each image's mIoU (over the classes present in that image) and then averages over images, so
every *image* weighs the same: a small object missed in one image costs that image a whole
class worth of IoU, while in the pooled score it costs only its few pixels. The two numbers
answer different questions; papers report the pooled one.

:func:`boundary_f_score` (Csurka et al., BMVC 2013) scores only the contours, with a tolerance
in pixels, because region metrics barely notice a blurred boundary.

The modules: :mod:`~course_lib.metrics.labels` (input checks),
:mod:`~course_lib.metrics.confusion` (the matrix), :mod:`~course_lib.metrics.scores` (the
scores of a matrix), :mod:`~course_lib.metrics.boundary` (boundary F),
:mod:`~course_lib.metrics.objects` (per-object IoU by object size) and
:mod:`~course_lib.metrics.report` (the course's usual columns of one segmentation, as one row of
a results table, and the table).
"""

from __future__ import annotations

from .boundary import boundary_f_score
from .confusion import ConfusionMatrix, confusion_matrix
from .objects import instance_iou, iou_by_object_size, objects_separated
from .report import SHAPES_GROUPS, binary_miou, format_table, score_segmentation
from .scores import (
    dice_per_class,
    frequency_weighted_iou,
    group_iou,
    iou_per_class,
    mean_iou,
    mean_pixel_accuracy,
    pair_confusion,
    per_image_miou,
    pixel_accuracy,
    precision_recall_f1,
    segmentation_metrics,
)

__all__ = [
    "SHAPES_GROUPS",
    "ConfusionMatrix",
    "binary_miou",
    "boundary_f_score",
    "confusion_matrix",
    "dice_per_class",
    "format_table",
    "frequency_weighted_iou",
    "group_iou",
    "instance_iou",
    "iou_by_object_size",
    "objects_separated",
    "iou_per_class",
    "mean_iou",
    "mean_pixel_accuracy",
    "pair_confusion",
    "per_image_miou",
    "pixel_accuracy",
    "precision_recall_f1",
    "score_segmentation",
    "segmentation_metrics",
]

