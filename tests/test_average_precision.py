"""COCO box and mask AP from course code, against pycocotools' COCOeval (the oracle)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from course_lib.metrics.average_precision import COCO_AREA_RANGES, coco_average_precision
from course_lib.metrics.cocoeval_reference import cocoeval_stats

pycocotools = pytest.importorskip("pycocotools")

STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10",
              "AR100", "AR_small", "AR_medium", "AR_large")


def _blob(rng: np.random.Generator, h: int, w: int, scale: float) -> torch.Tensor:
    """A random ellipse or rectangle mask of roughly ``scale`` x the image."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry = max(1.0, rng.uniform(0.3, 1.0) * scale * h)
    rx = max(1.0, rng.uniform(0.3, 1.0) * scale * w)
    if rng.random() < 0.5:
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    else:
        m = ((yy - cy).abs() <= ry) & ((xx - cx).abs() <= rx)
    if not m.any():
        m[int(min(cy, h - 1)), int(min(cx, w - 1))] = True
    return m


def _boxes(masks: torch.Tensor) -> torch.Tensor:
    out = []
    for m in masks:
        ys, xs = torch.where(m)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(out, dtype=torch.float32).reshape(-1, 4)


def make_case(seed: int, n_images: int = 6, size: tuple[int, int] = (120, 160),
              classes: int = 3, crowd: bool = True) -> tuple[list[dict], list[dict]]:
    """Random ground truth (some crowd, one empty image) and noisy, scored predictions."""
    rng = np.random.default_rng(seed)
    h, w = size
    targets, predictions = [], []
    for i in range(n_images):
        n_gt = 0 if i == 1 else int(rng.integers(1, 8))
        masks = torch.stack([_blob(rng, h, w, rng.choice([0.05, 0.15, 0.4]))
                             for _ in range(n_gt)]) if n_gt else torch.zeros(0, h, w, dtype=bool)
        labels = torch.tensor(rng.integers(1, classes + 1, n_gt), dtype=torch.int64)
        iscrowd = torch.tensor((rng.random(n_gt) < 0.15) if crowd else np.zeros(n_gt, bool))
        targets.append({"boxes": _boxes(masks), "labels": labels, "masks": masks,
                        "iscrowd": iscrowd.long()})
        # predictions: jittered copies of most objects (some relabelled), plus false alarms
        pm, pl = [], []
        for m, lab in zip(masks, labels.tolist(), strict=True):
            for _ in range(int(rng.integers(0, 3))):
                shift = (int(rng.integers(-4, 5)), int(rng.integers(-4, 5)))
                pm.append(torch.roll(m, shift, dims=(0, 1)) | (_blob(rng, h, w, 0.03)
                                                               if rng.random() < 0.3 else m))
                pl.append(lab if rng.random() < 0.85 else int(rng.integers(1, classes + 2)))
        for _ in range(int(rng.integers(0, 4))):
            pm.append(_blob(rng, h, w, rng.choice([0.05, 0.2])))
            pl.append(int(rng.integers(1, classes + 1)))
        pmasks = torch.stack(pm) if pm else torch.zeros(0, h, w, dtype=bool)
        probs = torch.where(pmasks, torch.tensor(0.9), torch.tensor(0.1))[:, None]
        scores = torch.tensor(rng.random(len(pm)), dtype=torch.float32)
        if len(pm) > 3:
            scores[1] = scores[2]  # a tie, broken by order as in COCOeval
        predictions.append({"boxes": _boxes(pmasks), "labels": torch.tensor(pl, dtype=torch.int64),
                            "scores": scores, "masks": probs})
    return predictions, targets


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_cocoeval(iou_type: str, seed: int) -> None:
    predictions, targets = make_case(seed)
    expected, ev = cocoeval_stats(predictions, targets, iou_type)
    ours = coco_average_precision(predictions, targets, iou_type=iou_type)
    got = np.array([ours[k] for k in STAT_NAMES])
    assert np.all(np.abs(got - expected) <= 1e-6), dict(zip(STAT_NAMES, zip(got, expected,
                                                                              strict=True),
                                                           strict=True))
    assert 0.05 < ours["AP"] < 0.95  # a case that exercises matching, not a trivial one
    # the whole precision and recall arrays, not only their means
    np.testing.assert_allclose(ours["precision"].numpy(), ev.eval["precision"], atol=1e-12)
    np.testing.assert_allclose(ours["recall"].numpy(), ev.eval["recall"], atol=1e-12)


def test_equals_cocoeval_with_few_detections_per_image() -> None:
    predictions, targets = make_case(5, crowd=False)
    expected, _ = cocoeval_stats(predictions, targets, "segm", max_detections=(1, 2, 3))
    ours = coco_average_precision(predictions, targets, max_detections=(1, 2, 3))
    names = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR2", "AR3")
    # COCOeval's summarize() hard-codes maxDets=100 for the AP lines: compare the AR lines
    got = np.array([ours[k] for k in names[6:]])
    assert np.all(np.abs(got - expected[6:9]) <= 1e-6), (got, expected[6:9])


def test_hand_case_and_conventions() -> None:
    # one image, two objects; a perfect detection of each: AP 1 at every threshold
    masks = torch.zeros(2, 20, 20, dtype=torch.bool)
    masks[0, 2:8, 2:8] = True
    masks[1, 10:18, 10:18] = True
    target = {"boxes": _boxes(masks), "labels": torch.tensor([1, 1]), "masks": masks}
    perfect = {"boxes": _boxes(masks), "labels": torch.tensor([1, 1]),
               "scores": torch.tensor([0.9, 0.8]), "masks": masks[:, None].float()}
    assert coco_average_precision([perfect], [target])["AP"] == pytest.approx(1.0)
    # one object found, the other missed with a confident false alarm ranked first:
    # precision 0 at the first rank, 1/2 at recall 1/2 → 51 of 101 levels x 0.5 = AP 0.2525
    wrong = torch.zeros(1, 20, 20, dtype=torch.bool)
    wrong[0, 0:2, 15:19] = True
    half = {"boxes": torch.cat([_boxes(wrong), _boxes(masks[:1])]), "labels": torch.tensor([1, 1]),
            "scores": torch.tensor([0.9, 0.5]),
            "masks": torch.cat([wrong, masks[:1]])[:, None].float()}
    out = coco_average_precision([half], [target])
    assert out["AP50"] == pytest.approx(51 * 0.5 / 101)
    assert out["AR100"] == pytest.approx(0.5)
    # no ground truth of any class: undefined, -1 as in COCOeval
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
             "masks": torch.zeros(0, 20, 20, dtype=torch.bool)}
    assert coco_average_precision([perfect], [empty])["AP"] == -1


def _rect(h: int, w: int, rows: slice, cols: slice) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.bool)
    m[rows, cols] = True
    return m


def test_matching_rules_equal_cocoeval() -> None:
    """The cases random data rarely hits: an IoU tie between two ground truths (COCOeval
    gives the detection the later one, which leaves the earlier one to a second detection),
    and a regular object preferred to a better-overlapping crowd region."""
    h, w, r = 20, 40, slice(0, 10)
    # tie: dt1 overlaps A and B equally (IoU 110/130); dt2 matches only A above IoU 0.6
    a, b = _rect(h, w, r, slice(0, 12)), _rect(h, w, r, slice(2, 14))
    dt1, dt2 = _rect(h, w, r, slice(1, 13)), _rect(h, w, r, slice(0, 10))
    # preference: dt3 covers a regular object C (IoU 0.8) inside a crowd region D (IoU 1)
    c, d = _rect(h, w, slice(12, 20), slice(20, 30)), _rect(h, w, slice(10, 20), slice(18, 40))
    dt3 = _rect(h, w, slice(12, 20), slice(20, 32))
    gt_masks = torch.stack([a, b, c, d])
    target = {"boxes": _boxes(gt_masks), "labels": torch.tensor([1, 1, 1, 1]),
              "masks": gt_masks, "iscrowd": torch.tensor([0, 0, 0, 1])}
    dt_masks = torch.stack([dt1, dt2, dt3])
    pred = {"boxes": _boxes(dt_masks), "labels": torch.tensor([1, 1, 1]),
            "scores": torch.tensor([0.9, 0.8, 0.7]), "masks": dt_masks[:, None].float()}
    for iou_type in ("segm", "bbox"):
        expected, _ = cocoeval_stats([pred], [target], iou_type)
        ours = coco_average_precision([pred], [target], iou_type=iou_type)
        got = np.array([ours[k] for k in STAT_NAMES])
        assert np.all(np.abs(got - expected) <= 1e-6), (iou_type, got, expected)
        assert ours["AP"] > 0.5  # both rules turn a detection into a true positive


def test_bad_input_is_refused_clearly() -> None:
    predictions, targets = make_case(0, n_images=2)
    with pytest.raises(ValueError, match="iou_type"):
        coco_average_precision(predictions, targets, iou_type="keypoints")
    with pytest.raises(ValueError, match="one prediction dict per target"):
        coco_average_precision(predictions[:1], targets)
    with pytest.raises(ValueError, match="lacks"):
        coco_average_precision([{"boxes": torch.zeros(0, 4)}] * 2, targets)
    with pytest.raises(ValueError, match="'all'"):
        coco_average_precision(predictions, targets, area_ranges={"small": (0, 10)})
    bad = dict(predictions[0], masks=predictions[0]["masks"][..., :10])
    with pytest.raises(ValueError, match="predicted masks"):
        coco_average_precision([bad, predictions[1]], targets)
    assert set(COCO_AREA_RANGES) == {"all", "small", "medium", "large"}


def test_the_reference_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    predictions, targets = make_case(0, n_images=1)
    with pytest.raises(ValueError, match="iou_type"):
        cocoeval_stats(predictions, targets, "keypoints")
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install pycocotools"):
        cocoeval_stats(predictions, targets)
