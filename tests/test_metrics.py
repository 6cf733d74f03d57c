"""Tests for course_lib.metrics: hand-computed cases, torchmetrics agreement, errors."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import metrics as M

# --------------------------------------------------------------------------------------
# A hand-computed example (K = 3). Non-ignored (target, pred) pairs:
#   (0,0) (0,1) (1,1) (1,1) (2,2) (2,0) (0,2)    -- the 255 pixel is dropped
# so cm = [[1,1,1], [0,2,0], [1,0,1]]; TP = [1,2,1], rows (target) = [3,2,2],
# columns (pred) = [2,3,2], 7 pixels.
# --------------------------------------------------------------------------------------
TARGET = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 0]]])
PRED = torch.tensor([[[0, 1, 1, 1], [2, 0, 1, 2]]])
CM = torch.tensor([[1, 1, 1], [0, 2, 0], [1, 0, 1]])


def test_confusion_matrix_hand() -> None:
    cm = M.confusion_matrix(PRED, TARGET, 3)
    assert cm.dtype == torch.int64
    assert torch.equal(cm, CM)


def test_metrics_hand() -> None:
    s = M.segmentation_metrics(CM)
    assert s["pixel_accuracy"] == pytest.approx(4 / 7)
    # recall = [1/3, 2/2, 1/2]
    assert s["mean_pixel_accuracy"] == pytest.approx((1 / 3 + 1 + 1 / 2) / 3)
    # IoU = TP / (row + col - TP) = [1/4, 2/3, 1/3]
    assert s["iou"].tolist() == pytest.approx([1 / 4, 2 / 3, 1 / 3])
    assert s["miou"] == pytest.approx(5 / 12)
    # FWIoU = 3/7 * 1/4 + 2/7 * 2/3 + 2/7 * 1/3 = 11/28
    assert s["fwiou"] == pytest.approx(11 / 28)
    assert s["precision"].tolist() == pytest.approx([1 / 2, 2 / 3, 1 / 2])
    assert s["recall"].tolist() == pytest.approx([1 / 3, 1, 1 / 2])
    # F1 = Dice = 2TP / (row + col) = [2/5, 4/5, 2/4]
    assert s["f1"].tolist() == pytest.approx([2 / 5, 4 / 5, 1 / 2])
    assert s["dice"].tolist() == pytest.approx([2 / 5, 4 / 5, 1 / 2])
    assert s["mean_f1"] == pytest.approx(1.7 / 3)
    assert s["mean_dice"] == pytest.approx(1.7 / 3)
    assert isinstance(s["miou"], float) and isinstance(s["pixel_accuracy"], float)
    # the single-metric functions agree with the dict
    assert M.pixel_accuracy(CM) == pytest.approx(4 / 7)
    assert M.mean_iou(CM) == pytest.approx(5 / 12)
    assert M.mean_pixel_accuracy(CM) == pytest.approx(11 / 18)
    assert M.frequency_weighted_iou(CM) == pytest.approx(11 / 28)
    assert torch.allclose(M.iou_per_class(CM), s["iou"])
    assert torch.allclose(M.dice_per_class(CM), s["dice"])
    p, r, f = M.precision_recall_f1(CM)
    assert torch.allclose(p, s["precision"]) and torch.allclose(r, s["recall"])


def test_absent_and_never_predicted_classes() -> None:
    # K = 3: class 2 absent from both; class 1 in target, never predicted.
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 0, 0, 0]])
    s = M.segmentation_metrics(M.confusion_matrix(pred, target, 3))
    iou, prec, rec = s["iou"], s["precision"], s["recall"]
    assert iou[0] == pytest.approx(0.5) and iou[1] == 0 and math.isnan(iou[2])
    assert prec[0] == pytest.approx(0.5) and prec[1] == 0 and math.isnan(prec[2])
    assert rec[0] == 1 and rec[1] == 0 and math.isnan(rec[2])
    assert math.isnan(s["dice"][2]) and math.isnan(s["f1"][2])
    assert s["miou"] == pytest.approx(0.25)  # (0.5 + 0) / 2, class 2 skipped
    assert s["mean_pixel_accuracy"] == pytest.approx(0.5)
    assert s["pixel_accuracy"] == pytest.approx(0.5)
    # empty matrix: nothing defined
    empty = M.segmentation_metrics(torch.zeros(3, 3, dtype=torch.long))
    assert math.isnan(empty["miou"]) and math.isnan(empty["pixel_accuracy"])


def test_logits_equal_labels() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 5, 6, generator=g)
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    assert torch.equal(
        M.confusion_matrix(logits, target, 4), M.confusion_matrix(logits.argmax(1), target, 4)
    )


def test_ignore_index_variants() -> None:
    target = torch.tensor([[0, 1, 255, 2, 255]])
    pred = torch.tensor([[0, 1, 2, 2, 0]])
    cm = M.confusion_matrix(pred, target, 3)
    assert int(cm.sum()) == 3 and torch.equal(cm, torch.eye(3, dtype=torch.long))
    # a negative ignore index (PyTorch's -100 convention) and one inside [0, K)
    assert torch.equal(M.confusion_matrix(pred, target.where(target != 255, -100), 3,
                                          ignore_index=-100), cm)
    cm0 = M.confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2, ignore_index=0)
    assert torch.equal(cm0, torch.tensor([[0, 0], [0, 1]]))
    # ignore_index=None counts every pixel, so 255 becomes an invalid label
    with pytest.raises(ValueError, match=r"\[255\]"):
        M.confusion_matrix(pred, target, 3, ignore_index=None)
    # uint8 / int32 / bool inputs give the same matrix
    assert torch.equal(M.confusion_matrix(pred.to(torch.uint8), target.to(torch.uint8), 3), cm)
    assert torch.equal(M.confusion_matrix(pred.int(), target.int(), 3), cm)


def test_errors() -> None:
    t = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="does not match"):
        M.confusion_matrix(torch.zeros(2, 4, 5, dtype=torch.long), t, 3)
    with pytest.raises(ValueError, match="integer class labels.*float32"):
        M.confusion_matrix(t, t.float(), 3)
    bad = t.clone()
    bad[0, 0, 0], bad[1, 1, 1] = 7, 40
    with pytest.raises(ValueError, match=r"\[7, 40\].*\[0, 3\).*ignore_index=255"):
        M.confusion_matrix(t, bad, 3)
    bad[0, 0, 0], bad[1, 1, 1] = -1, 0
    with pytest.raises(ValueError, match=r"negative label\(s\) \[-1\]"):
        M.confusion_matrix(t, bad, 3)
    with pytest.raises(ValueError, match="pred contains labels outside"):
        M.confusion_matrix(t + 3, t, 3)
    with pytest.raises(ValueError, match="4 channels"):
        M.confusion_matrix(torch.randn(2, 4, 4, 4), t, 3)
    with pytest.raises(ValueError, match="integer labels, or logits"):
        M.confusion_matrix(t.float(), t, 3)
    with pytest.raises(ValueError, match="num_classes"):
        M.ConfusionMatrix(0)
    with pytest.raises(ValueError, match="square"):
        M.mean_iou(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="tolerance"):
        M.boundary_f_score(t, t, 3, tolerance=-1)


def test_accumulation_equals_one_call() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (6, 9, 7), generator=g)
    target[torch.rand(6, 9, 7, generator=g) < 0.1] = 255
    logits = torch.randn(6, 5, 9, 7, generator=g)
    acc = M.ConfusionMatrix(5)
    for i in range(0, 6, 2):  # batches of different kinds: logits, labels
        batch = logits[i : i + 2] if i % 4 == 0 else logits[i : i + 2].argmax(1)
        acc.update(batch, target[i : i + 2])
    whole = M.confusion_matrix(logits, target, 5)
    assert torch.equal(acc.matrix, whole)
    assert acc.compute()["miou"] == pytest.approx(M.mean_iou(whole))
    acc.update(logits[:1].argmax(1), target[:1])  # a smaller batch reuses the buffer
    assert int(acc.matrix.sum()) > int(whole.sum())
    acc.reset()
    assert int(acc.matrix.sum()) == 0 and acc.matrix.shape == (5, 5)


def test_per_image_miou_hand() -> None:
    # image 0: perfect on classes {0, 1} -> mIoU 1.
    # image 1: target [0,0,0,1], pred [0,0,0,0]: IoU0 = 3/4, IoU1 = 0 -> mIoU 3/8.
    target = torch.tensor([[[0, 0, 1, 1]], [[0, 0, 0, 1]]])
    pred = torch.tensor([[[0, 0, 1, 1]], [[0, 0, 0, 0]]])
    assert M.per_image_miou(pred, target, 2) == pytest.approx((1 + 3 / 8) / 2)
    # pooled: cm = [[5,0],[1,2]] -> IoU0 = 5/6, IoU1 = 2/3 -> 3/4
    assert M.mean_iou(M.confusion_matrix(pred, target, 2)) == pytest.approx(3 / 4)
    # a fully ignored image is skipped
    target3 = torch.cat([target, torch.full((1, 1, 4), 255)])
    pred3 = torch.cat([pred, torch.zeros(1, 1, 4, dtype=torch.long)])
    assert M.per_image_miou(pred3, target3, 2) == pytest.approx((1 + 3 / 8) / 2)


def test_per_image_miou_matches_loop() -> None:
    g = torch.Generator().manual_seed(3)
    target = torch.randint(0, 4, (5, 8, 8), generator=g)
    target[torch.rand(5, 8, 8, generator=g) < 0.2] = 255
    pred = torch.randint(0, 4, (5, 8, 8), generator=g)
    loop = [M.mean_iou(M.confusion_matrix(pred[i], target[i], 4)) for i in range(5)]
    assert M.per_image_miou(pred, target, 4) == pytest.approx(sum(loop) / 5)


# --------------------------------------------------------------------------------------
# Boundary F-score. Target: a 4x4 square of class 1 at rows 4..7, cols 4..7 in 12x12.
# Boundary pixels (3x3 label change): class 1 = the square's outer ring (12 px);
# class 0 = the ring around the square, rows/cols 3..8 minus the square (20 px).
# Pred: the square shifted right by 2 columns; tolerance 1:
#   class 1: target ring dilated by 1 covers rows/cols 3..8; 8 of the 12 predicted ring
#            pixels lie there (left column 4 + top/bottom at cols 7, 8), P = 8/12; by
#            symmetry R = 8/12 -> F1 = 2/3.
#   class 0: target bg ring dilated by 1 = rows/cols 2..9 minus the inner 2x2 (rows/cols
#            5..6); predicted bg ring (rows 3 and 8 at cols 5..10, cols 5 and 10 at rows
#            4..7): 5 + 5 + 2 = 12 of 20 inside, P = R = 3/5 -> F0 = 3/5.
#   mean = (2/3 + 3/5) / 2 = 19/30.
# --------------------------------------------------------------------------------------


def _square(shift: int) -> torch.Tensor:
    m = torch.zeros(1, 12, 12, dtype=torch.long)
    m[:, 4:8, 4 + shift : 8 + shift] = 1
    return m


def test_boundary_f_within_tolerance() -> None:
    assert M.boundary_f_score(_square(0), _square(0), 2, tolerance=0) == pytest.approx(1.0)
    assert M.boundary_f_score(_square(1), _square(0), 2, tolerance=1) == pytest.approx(1.0)
    assert M.boundary_f_score(_square(1), _square(0), 2, tolerance=0) < 1.0


def test_boundary_f_beyond_tolerance_hand() -> None:
    assert M.boundary_f_score(_square(2), _square(0), 2, tolerance=1) == pytest.approx(19 / 30)
    # also from logits and for a 2D map
    logits = torch.nn.functional.one_hot(_square(2), 2).permute(0, 3, 1, 2).float()
    assert M.boundary_f_score(logits, _square(0), 2, tolerance=1) == pytest.approx(19 / 30)
    assert M.boundary_f_score(_square(2)[0], _square(0)[0], 2, 1) == pytest.approx(19 / 30)


@pytest.mark.parametrize("radius", [0, 1, 2, 3])
def test_boundary_dilation_is_the_windows_max(radius: int) -> None:
    """The fast dilation (a depthwise sum > 0) against its definition, a max over the window
    (max_pool2d pads with -inf: the border adds nothing), on sparse and dense random maps."""
    from course_lib.metrics.boundary import _dilate

    g = torch.Generator().manual_seed(radius)
    for density in (0.02, 0.5):
        maps = (torch.rand(3, 5, 17, 23, generator=g) < density).float()
        window_max = torch.nn.functional.max_pool2d(maps, 2 * radius + 1, stride=1, padding=radius)
        assert torch.equal(_dilate(maps, radius), window_max)


def test_boundary_f_edge_cases() -> None:
    flat = torch.zeros(1, 6, 6, dtype=torch.long)
    assert math.isnan(M.boundary_f_score(flat, flat, 2))  # no boundary anywhere
    # prediction misses the object entirely: class 1 F = 0, class 0 F = 0 -> 0
    assert M.boundary_f_score(torch.zeros_like(_square(0)), _square(0), 2) == 0.0
    # A void block in the corner (rows 9..11, cols 0..2): its class-0 neighbours are target
    # edges. The prediction puts a spurious class-1 blob exactly there: the blob's class-0
    # edges equal the target's, and its class-1 edges lie on void pixels, so they are not
    # scored -> perfect, even at tolerance 0. Without the void the blob costs precision.
    t = _square(0).clone()
    t[:, 9:, :3] = 255
    p = _square(0).clone()
    p[:, 9:, :3] = 1
    assert M.boundary_f_score(p, t, 2, tolerance=0) == pytest.approx(1.0)
    assert M.boundary_f_score(p, _square(0), 2, tolerance=0) < 1.0


# --------------------------------------------------------------------------------------
# Agreement with torchmetrics (dev dependency)
# --------------------------------------------------------------------------------------


@pytest.fixture()
def random_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    k = 6
    target = torch.randint(0, k - 1, (4, 16, 16), generator=g)  # class 5 never in target
    target[torch.rand(4, 16, 16, generator=g) < 0.1] = 255
    pred = torch.randint(0, k - 1, (4, 16, 16), generator=g)
    pred[pred == 4] = 3  # class 4: in target, never predicted; class 5: absent from both
    return pred, target


def test_vs_torchmetrics(random_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    tc = pytest.importorskip("torchmetrics.classification")
    pred, target = random_batch
    k, kw = 6, {"num_classes": 6, "ignore_index": 255}
    s = M.segmentation_metrics(M.confusion_matrix(pred, target, k))

    def close(ours: float | torch.Tensor, theirs: torch.Tensor) -> None:
        ours_t = torch.as_tensor(ours, dtype=torch.float64).nan_to_num(0.0)  # tm: 0 for absent
        assert torch.allclose(ours_t, theirs.double(), atol=1e-6), (ours, theirs)

    close(s["iou"], tc.MulticlassJaccardIndex(average=None, **kw)(pred, target))
    close(s["miou"], tc.MulticlassJaccardIndex(average="macro", **kw)(pred, target))
    close(s["pixel_accuracy"], tc.MulticlassAccuracy(average="micro", **kw)(pred, target))
    close(s["mean_pixel_accuracy"], tc.MulticlassAccuracy(average="macro", **kw)(pred, target))
    for name, cls in (("precision", tc.MulticlassPrecision), ("recall", tc.MulticlassRecall),
                      ("f1", tc.MulticlassF1Score)):
        close(s[name], cls(average=None, **kw)(pred, target))
        close(torch.nanmean(s[name]), cls(average="macro", **kw)(pred, target))


def test_dice_vs_torchmetrics() -> None:
    seg = pytest.importorskip("torchmetrics.segmentation")
    g = torch.Generator().manual_seed(5)
    target = torch.randint(0, 4, (3, 10, 10), generator=g)  # DiceScore has no ignore_index
    pred = torch.randint(0, 4, (3, 10, 10), generator=g)
    ours = M.dice_per_class(M.confusion_matrix(pred, target, 4))
    theirs = seg.DiceScore(num_classes=4, average="none", aggregation_level="global",
                           input_format="index", include_background=True)(pred, target)
    assert torch.allclose(ours, theirs.double().flatten(), atol=1e-6)


def test_pair_confusion_against_hand_counts() -> None:
    from course_lib.metrics import pair_confusion

    # target: 4 car (1) pixels, 2 boat (2) pixels; pred: 2 cars right, 1 car -> boat,
    # 1 car -> background, boat pixels: 1 right, 1 -> car
    target = torch.tensor([[1, 1, 1, 1, 2, 2, 0, 0]])
    pred = torch.tensor([[1, 1, 2, 0, 2, 1, 0, 0]])
    out = pair_confusion(M.confusion_matrix(pred, target, 3), (1, 2))
    assert out["pixels"] == 6
    assert out["right"] == pytest.approx(3 / 6)
    assert out["swapped"] == pytest.approx(2 / 6)
    assert out["missed"] == pytest.approx(1 / 6)
    assert out["pair_accuracy"] == pytest.approx(3 / 5)


def test_pair_confusion_rejects_bad_pairs_and_handles_absent_classes() -> None:
    from course_lib.metrics import pair_confusion

    cm = torch.zeros(3, 3, dtype=torch.long)
    cm[0, 0] = 5
    out = pair_confusion(cm, (1, 2))
    assert math.isnan(out["right"]) and math.isnan(out["pair_accuracy"]) and out["pixels"] == 0
    with pytest.raises(ValueError, match="two different classes"):
        pair_confusion(cm, (1, 1))
    with pytest.raises(ValueError, match="two different classes"):
        pair_confusion(cm, (1, 3))
    with pytest.raises(ValueError, match="square"):
        pair_confusion(torch.zeros(3, 4), (1, 2))


# --------------------------------------------------------------------------------------
# Inputs that used to give a silent wrong answer or torch's own error
# --------------------------------------------------------------------------------------
def test_nan_logits_are_refused_not_scored() -> None:
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    logits = torch.full((2, 3, 4, 4), math.nan)  # all NaN: argmax would call every pixel 0
    logits[0, :, 0, 0] = 1.0  # one finite pixel: 3 of the 96 values
    for score in (lambda: M.confusion_matrix(logits, target, 3),
                  lambda: M.ConfusionMatrix(3).update(logits, target),
                  lambda: M.per_image_miou(logits, target, 3)):
        with pytest.raises(ValueError, match=r"logits hold 93 NaN value\(s\) \(of 96\)"):
            score()


def test_empty_inputs_are_refused_clearly() -> None:
    empty = torch.zeros(0, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"no pixels.*\(0, 4, 4\)"):
        M.confusion_matrix(empty, empty, 3)
    with pytest.raises(ValueError, match=r"no pixels.*\(0, 4, 4\)"):
        M.confusion_matrix(torch.zeros(0, 3, 4, 4), empty, 3)
    with pytest.raises(ValueError, match="no pixels"):
        M.ConfusionMatrix(3).update(empty, empty)


def test_ignore_index_255_refused_when_255_is_a_class() -> None:
    pred = target = torch.tensor([[0, 255, 17]])
    message = r"num_classes=256.*ignore_index=255"
    with pytest.raises(ValueError, match=message):
        M.confusion_matrix(pred, target, 256)
    with pytest.raises(ValueError, match=message):
        M.ConfusionMatrix(256)
    with pytest.raises(ValueError, match=message):
        M.per_image_miou(pred, target, 256)
    cm = M.confusion_matrix(pred, target, 256, ignore_index=None)  # every label a class
    assert int(cm[255, 255]) == 1 and int(cm.sum()) == 3


def test_group_iou_means_each_group_skipping_absent_classes() -> None:
    from course_lib.data.synthetic import CLASS_GROUPS, NUM_CLASSES

    iou = torch.full((NUM_CLASSES,), math.nan, dtype=torch.float64)
    iou[[0, 1]] = torch.tensor([0.9, 0.7], dtype=torch.float64)  # stuff 2 and 3 absent
    iou[[4, 5, 11]] = torch.tensor([0.3, 0.0, 0.6], dtype=torch.float64)
    scores = M.group_iou(iou, CLASS_GROUPS)
    assert scores == pytest.approx({"stuff": 0.8, "things": 0.3})
    with pytest.raises(ValueError, match="labels in"):
        M.group_iou(iou, {"bad": (4, NUM_CLASSES)})
    with pytest.raises(ValueError, match="one value per class"):
        M.group_iou(iou[None], CLASS_GROUPS)
