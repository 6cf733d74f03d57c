"""The course's usual columns for one semantic segmentation, and an aligned text table of them.

Notebooks compare models on the same few numbers: mIoU, boundary F, the mean IoU of groups of
classes (stuff vs things, the thin classes), sometimes every class's IoU and how a pair of
look-alike classes is labelled. :func:`score_segmentation` reads all of them off one
confusion matrix (plus the boundary F-score, which needs the label maps) and returns one
flat dict, a row of a results table; :func:`format_table` prints such rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from course_lib.config import IGNORE_INDEX
from course_lib.data.shapes import CLASS_GROUPS, CLASS_NAMES, NUM_CLASSES, THIN_CLASSES

from .boundary import boundary_f_score
from .confusion import confusion_matrix
from .labels import as_labels
from .scores import group_iou, iou_per_class, mean_iou, pair_confusion

#: The shapes world's groups: its four stuff classes, its eight object classes, ring and wire.
SHAPES_GROUPS: dict[str, tuple[int, ...]] = {**CLASS_GROUPS, "thin": THIN_CLASSES}


def score_segmentation(
    pred: Tensor,
    target: Tensor,
    num_classes: int = NUM_CLASSES,
    *,
    groups: Mapping[str, Sequence[int]] | None = None,
    per_class: bool = False,
    class_names: Sequence[str] | None = None,
    pair: tuple[int, int] | None = None,
    tolerance: int = 2,
    ignore_index: int | None = IGNORE_INDEX,
) -> dict[str, float]:
    """Score predicted labels against true labels: one row of a results table.

    Returns a flat dict: ``"miou"`` (pooled over the whole set, see :mod:`course_lib.metrics`),
    ``"boundary_f"`` (:func:`boundary_f_score` with ``tolerance``), ``"<group>_iou"`` for each
    group (mean IoU of its classes, :func:`group_iou`), ``"<class name>_iou"`` for every class
    if ``per_class``, and, for a ``pair`` of look-alike classes, :func:`pair_confusion`'s
    ``"right"``, ``"swapped"``, ``"missed"``, ``"pair_accuracy"`` and ``"pixels"`` (an int).

    Args:
        pred: labels ``[N, H, W]`` (or logits ``[N, K, H, W]``, scored by their argmax).
        target: labels ``[N, H, W]``.
        num_classes: K (the shapes world's 12 by default).
        groups: name -> classes; by default the shapes world's ``stuff``, ``things`` and
            ``thin`` (:data:`SHAPES_GROUPS`), which needs ``num_classes`` to be its 12.
        per_class: add every class's IoU, named by ``class_names``.
        class_names: K names (the shapes world's by default).
        pair: two classes for :func:`pair_confusion` (e.g. ``CONTEXT_PAIR``, car and boat).
        tolerance: boundary F tolerance in pixels.
        ignore_index: target label that is not scored.
    """
    shapes_world = num_classes == NUM_CLASSES
    if groups is None:
        if not shapes_world:
            raise ValueError(f"the default groups are the shapes world's {NUM_CLASSES} classes, "
                             f"got num_classes={num_classes}: pass groups= (or groups={{}})")
        groups = SHAPES_GROUPS
    if per_class and class_names is None:
        if not shapes_world:
            raise ValueError(f"per_class needs class_names for num_classes={num_classes} (the "
                             f"default names are the shapes world's {NUM_CLASSES})")
        class_names = CLASS_NAMES
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for num_classes={num_classes}")
    pred, target, _ = as_labels(pred, target, num_classes)  # logits -> labels once, for both
    cm = confusion_matrix(pred, target, num_classes, ignore_index=ignore_index)
    iou = iou_per_class(cm)
    row: dict[str, Any] = {
        "miou": mean_iou(cm),
        "boundary_f": boundary_f_score(pred, target, num_classes, tolerance, ignore_index),
    }
    row.update({f"{name}_iou": value for name, value in group_iou(iou, groups).items()})
    if per_class:
        for name, value in zip(class_names, iou.tolist(), strict=True):
            if f"{name}_iou" in row:
                raise ValueError(f"class {name!r} gives the column {name}_iou, already a group's")
            row[f"{name}_iou"] = value
    if pair is not None:
        row.update(pair_confusion(cm, pair))
    return row


def binary_miou(masks: Tensor | Sequence[Tensor], target: Tensor) -> float:
    """mIoU of a figure-ground segmentation: boolean foreground ``masks`` (``[N, H, W]`` or a
    list of ``[H, W]``) against the boolean ``target`` ``[N, H, W]``, over its two classes
    (background and foreground), pooled over the set."""
    pred = masks if isinstance(masks, Tensor) else torch.stack(list(masks))
    if pred.shape != target.shape:
        raise ValueError(f"masks {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if pred.dtype != torch.bool or target.dtype != torch.bool:
        raise ValueError(f"binary_miou wants boolean masks and target, got {pred.dtype} and "
                         f"{target.dtype}")
    return mean_iou(confusion_matrix(pred.long(), target.long(), 2))


def format_table(
    rows: Mapping[str, Mapping[str, Any]],
    columns: Mapping[str, tuple[str, str]],
    label: str = "model",
    gap: int = 2,
) -> str:
    """An aligned text table of ``rows`` (row label -> its values), one line per row.

    ``columns`` maps a key of the rows to ``(header, format spec)``, in the order shown, e.g.
    ``{"miou": ("mIoU", ".3f"), "params": ("params", ",")}``. The first column holds the row
    labels under the header ``label``, left-aligned; every other column is right-aligned to
    its widest entry; columns are ``gap`` spaces apart.
    """
    if not columns:
        raise ValueError("format_table needs at least one column: {key: (header, format spec)}")
    cells = []
    for name, values in rows.items():
        missing = [key for key in columns if key not in values]
        if missing:
            raise ValueError(f"row {name!r} has no {missing} (it has {sorted(values)})")
        line = [str(name)]
        for key, (_, spec) in columns.items():
            try:
                line.append(format(values[key], spec))
            except (TypeError, ValueError) as error:
                raise ValueError(f"column {key!r}: format {spec!r} does not fit "
                                 f"{values[key]!r} of row {name!r} ({error})") from None
        cells.append(line)
    header = [label, *(head for head, _ in columns.values())]
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]
    sep = " " * gap

    def join(line: list[str]) -> str:
        return sep.join([line[0].ljust(widths[0]),
                         *(cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True))])

    return "\n".join(join(line) for line in (header, *cells))
