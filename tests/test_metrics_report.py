"""score_segmentation against a hand-computed oracle, its input errors, and format_table."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.data.shapes import CLASS_NAMES, NUM_CLASSES
from course_lib.metrics import (
    SHAPES_GROUPS,
    binary_miou,
    boundary_f_score,
    format_table,
    score_segmentation,
)

# Three classes on a 4x4 image. Class 0: 4 target pixels, predicted on those 4 and one of
# class 1 -> IoU 4/5. Class 1: 4 target pixels, 3 found, one of class 2 taken -> 3/5.
# Class 2: 8 target pixels, 7 found -> 7/8.
TARGET = torch.tensor([[0, 0, 1, 1],
                       [0, 0, 1, 1],
                       [2, 2, 2, 2],
                       [2, 2, 2, 2]])[None]
PRED = torch.tensor([[0, 0, 0, 1],
                     [0, 0, 1, 1],
                     [2, 2, 2, 1],
                     [2, 2, 2, 2]])[None]
GROUPS = {"top": (0, 1), "bottom": (2,)}
IOU = {"a": 4 / 5, "b": 3 / 5, "c": 7 / 8}


def test_scores_match_the_hand_computed_oracle() -> None:
    row = score_segmentation(PRED, TARGET, 3, groups=GROUPS, per_class=True,
                             class_names=("a", "b", "c"), pair=(0, 1))
    assert row["miou"] == pytest.approx(sum(IOU.values()) / 3, abs=1e-12)
    assert row["top_iou"] == pytest.approx((IOU["a"] + IOU["b"]) / 2, abs=1e-12)
    assert row["bottom_iou"] == pytest.approx(IOU["c"], abs=1e-12)
    for name, iou in IOU.items():
        assert row[f"{name}_iou"] == pytest.approx(iou, abs=1e-12)
    # the pair (0, 1): 8 pixels, 7 named right, one of class 1 called 0, none missed
    assert row["right"] == pytest.approx(7 / 8) and row["swapped"] == pytest.approx(1 / 8)
    assert row["missed"] == 0 and row["pair_accuracy"] == pytest.approx(7 / 8)
    assert row["pixels"] == 8
    assert row["boundary_f"] == boundary_f_score(PRED, TARGET, 3)
    assert set(row) == {"miou", "boundary_f", "top_iou", "bottom_iou", "a_iou", "b_iou", "c_iou",
                        "right", "swapped", "missed", "pair_accuracy", "pixels"}


def test_only_the_asked_columns_and_a_perfect_prediction() -> None:
    row = score_segmentation(TARGET, TARGET, 3, groups={})
    assert row == {"miou": 1.0, "boundary_f": 1.0}


def test_logits_are_scored_by_their_argmax_and_ignored_pixels_are_skipped() -> None:
    logits = torch.nn.functional.one_hot(PRED, 3).permute(0, 3, 1, 2).float()
    assert score_segmentation(logits, TARGET, 3, groups=GROUPS) == \
        score_segmentation(PRED, TARGET, 3, groups=GROUPS)
    target = TARGET.clone()
    target[0, 0, 2] = 255  # the class-1 pixel predicted as 0: now not scored
    row = score_segmentation(PRED, target, 3, groups={}, per_class=True, class_names="abc")
    assert row["a_iou"] == 1.0 and row["b_iou"] == pytest.approx(3 / 4)


def test_the_shapes_world_defaults() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, NUM_CLASSES, (2, 16, 16), generator=g)
    pred = torch.randint(0, NUM_CLASSES, (2, 16, 16), generator=g)
    row = score_segmentation(pred, target, per_class=True)
    assert {"stuff_iou", "things_iou", "thin_iou"} <= set(row)
    assert {f"{name}_iou" for name in CLASS_NAMES} <= set(row)
    thin = [row[f"{CLASS_NAMES[c]}_iou"] for c in SHAPES_GROUPS["thin"]]
    assert row["thin_iou"] == pytest.approx(sum(thin) / len(thin), abs=1e-12)
    assert "pixels" not in row  # no pair asked


@pytest.mark.parametrize(("pred", "target", "kwargs", "message"), [
    (PRED[:, :3], TARGET, {}, "does not match"),
    (PRED, TARGET.float(), {}, "integer class labels"),
    (PRED.float(), TARGET, {}, "dtype"),
    (PRED + 1, TARGET, {}, "outside"),
    (PRED, TARGET + 1, {}, "outside"),
    (PRED, TARGET, {"groups": {"top": (0, 5)}}, "group 'top'"),
    (PRED, TARGET, {"groups": {}, "pair": (0, 3)}, "pair"),
    (PRED, TARGET, {"groups": {}, "per_class": True, "class_names": "ab"}, "2 names"),
    (PRED, TARGET, {"groups": {"a": (0,)}, "per_class": True, "class_names": "abc"}, "already"),
])
def test_bad_input_raises_a_clear_error(pred, target, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        score_segmentation(pred, target, 3, **{"groups": {}, **kwargs})


def test_the_shapes_world_defaults_need_its_class_count() -> None:
    with pytest.raises(ValueError, match="pass groups="):
        score_segmentation(PRED, TARGET, 3)
    with pytest.raises(ValueError, match="class_names"):
        score_segmentation(PRED, TARGET, 3, groups={}, per_class=True)


ROWS = {"a": {"miou": 0.5, "params": 1234, "extra": "not shown"},
        "long name": {"miou": math.nan, "params": 5}}
COLUMNS = {"miou": ("mIoU", ".3f"), "params": ("params", ",")}


def test_format_table_aligns_the_chosen_columns() -> None:
    assert format_table(ROWS, COLUMNS) == (
        "model       mIoU  params\n"
        "a          0.500   1,234\n"
        "long name    nan       5")
    assert format_table(ROWS, {"params": ("n", ">4d")}, label="", gap=1).splitlines() == [
        "             n", "a         1234", "long name    5"]
    assert format_table({}, COLUMNS) == "model  mIoU  params"


def test_format_table_errors() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        format_table(ROWS, {})
    with pytest.raises(ValueError, match=r"row 'long name' has no \['extra'\]"):
        format_table(ROWS, {"extra": ("extra", "s")})
    with pytest.raises(ValueError, match="column 'miou': format 'd'"):
        format_table(ROWS, {"miou": ("mIoU", "d")})


def test_binary_miou_against_a_hand_count() -> None:
    # 2x4 image: foreground 3 true pixels, 2 found plus 1 false -> IoU 2/4; background 5 true
    # pixels, 4 kept -> IoU 4/6; mIoU = (1/2 + 2/3) / 2
    target = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)[None]
    masks = [torch.tensor([[1, 1, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)]
    assert binary_miou(masks, target) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert binary_miou(target.clone(), target) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="boolean"):
        binary_miou(target.long(), target)
    with pytest.raises(ValueError, match="differ"):
        binary_miou(target[:, :, :2], target)
