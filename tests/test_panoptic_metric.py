"""Panoptic quality against an independent, loop-by-loop computation of the COCO panoptic
definition (the structure of panopticapi's ``pq_compute_single_core`` and ``pq_average``)."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.metrics.panoptic import (
    PanopticQuality,
    panoptic_quality,
    panoptic_stats,
)

DIV = 1000
VOID = 255
K = 4
THINGS = (2, 3)


def brute_force_pq(preds, targets, crowd_ids=(), things=THINGS, k=K):
    """COCO panoptic PQ with Python loops over images, segments and pixel pairs."""
    tp = [0] * k
    fp = [0] * k
    fn = [0] * k
    iou_sum = [0.0] * k
    for pred, target in zip(preds, targets, strict=True):
        pairs: dict[tuple[int, int], int] = {}
        gt_area: dict[int, int] = {}
        pred_area: dict[int, int] = {}
        for g, p in zip(target.flatten().tolist(), pred.flatten().tolist(), strict=True):
            pairs[(g, p)] = pairs.get((g, p), 0) + 1
            gt_area[g] = gt_area.get(g, 0) + 1
            pred_area[p] = pred_area.get(p, 0) + 1
        void_gt = {g for g in gt_area if g // DIV == VOID}
        void_pred = {p for p in pred_area if p // DIV == VOID}
        gt_matched, pred_matched = set(), set()
        for (g, p), inter in pairs.items():
            if g in void_gt or p in void_pred or g in crowd_ids or g // DIV != p // DIV:
                continue
            in_void = sum(n for (gg, pp), n in pairs.items() if pp == p and gg in void_gt)
            union = pred_area[p] + gt_area[g] - inter - in_void
            iou = inter / union
            if iou > 0.5:
                tp[g // DIV] += 1
                iou_sum[g // DIV] += iou
                gt_matched.add(g)
                pred_matched.add(p)
        for g in gt_area:
            if g not in gt_matched and g not in void_gt and g not in crowd_ids:
                fn[g // DIV] += 1
        for p in pred_area:
            if p in pred_matched or p in void_pred:
                continue
            ignored = sum(n for (gg, pp), n in pairs.items() if pp == p and (
                gg in void_gt or (gg in crowd_ids and gg // DIV == p // DIV)))
            if ignored / pred_area[p] > 0.5:
                continue
            fp[p // DIV] += 1
    result = {}
    for name, chosen in (("all", range(k)), ("things", things),
                         ("stuff", [c for c in range(k) if c not in things])):
        pq = sq = rq = 0.0
        n = 0
        for c in chosen:
            if tp[c] + fp[c] + fn[c] == 0:
                continue
            n += 1
            sq_c = iou_sum[c] / tp[c] if tp[c] else 0.0
            rq_c = tp[c] / (tp[c] + 0.5 * fp[c] + 0.5 * fn[c])
            pq += sq_c * rq_c
            sq += sq_c
            rq += rq_c
        result[name] = ({"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n} if n else
                        {"pq": math.nan, "sq": math.nan, "rq": math.nan, "n": 0})
    return result


def assert_same(ours, reference):
    for name in ("all", "things", "stuff"):
        assert ours[name]["n"] == reference[name]["n"], name
        for m in ("pq", "sq", "rq"):
            a, b = ours[name][m], reference[name][m]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12), (
                f"{name} {m}: {a} vs {b}")


def scene() -> torch.Tensor:
    """An 8 x 8 target: stuff 0 on top, stuff 1 below, two things of class 2 and one of 3."""
    t = torch.zeros(8, 8, dtype=torch.long)
    t[4:] = 1 * DIV
    t[1:3, 1:3] = 2 * DIV + 1
    t[5:8, 0:3] = 2 * DIV + 2
    t[5:7, 5:8] = 3 * DIV + 3
    return t


def test_perfect_prediction_is_one() -> None:
    t = scene()
    result = panoptic_quality(t[None], t[None], K, THINGS)
    assert result["all"]["pq"] == 1.0 and result["all"]["n"] == 4
    assert result["things"]["n"] == 2 and result["stuff"]["n"] == 2


def test_a_missed_object_is_a_false_negative() -> None:
    t = scene()
    p = t.clone()
    p[5:7, 5:8] = 1 * DIV  # class-3 object predicted as stuff 1
    stats = panoptic_stats(p, t, K)
    assert stats.fn.tolist() == [0, 0, 0, 1] and stats.tp[3] == 0
    result = panoptic_quality(p, t, K, THINGS)
    assert result["per_class"]["pq"][3] == 0
    assert_same(result, brute_force_pq([p], [t]))


def test_a_false_positive_and_a_split_object() -> None:
    t = scene()
    p = t.clone()
    p[0, 5:8] = 3 * DIV + 7  # an object in the sky that is not there
    p[5:8, 0:1] = 2 * DIV + 9  # the object of class 2 split in two (9 px of 9 kept 6)
    stats = panoptic_stats(p, t, K)
    assert stats.fp[3] == 1  # the invented object
    assert stats.tp[2] == 2 and stats.fp[2] == 1  # 6/9 > 0.5 still matches; the third is FP
    assert_same(panoptic_quality(p, t, K, THINGS), brute_force_pq([p], [t]))


def test_void_pixels_leave_the_union() -> None:
    t = scene()
    t[1:3, 3:6] = VOID * DIV  # void next to the first object
    p = t.clone()
    p[1:3, 1:6] = 2 * DIV + 1  # the prediction spills into the void: 4 hits, 6 void
    stats = panoptic_stats(p, t, K)
    assert stats.tp[2] == 2 and stats.iou[2] == pytest.approx(2.0)  # void is no error
    p[1:3, 1:2] = 0  # now 2 of its 8 pixels are right and 6 void: IoU 2/4 is no match
    stats = panoptic_stats(p, t, K)
    assert stats.tp[2] == 1 and stats.fn[2] == 1 and stats.fp[2] == 0  # ignored: > half void
    assert_same(panoptic_quality(p, t, K, THINGS), brute_force_pq([p], [t]))


def test_crowd_regions_neither_match_nor_count() -> None:
    t = scene()
    crowd = 3 * DIV + 50
    t[0:2, 4:8] = crowd  # a crowd of class-3 objects in the sky
    p = t.clone()
    p[0:2, 4:8] = 0  # nothing predicted on the crowd: no false negative
    assert panoptic_stats(p, t, K, crowd_ids=[crowd]).fn.sum() == 0
    assert panoptic_stats(p, t, K).fn[3] == 1  # without the crowd flag it is a miss
    p = t.clone()
    p[0:2, 4:8] = 0
    p[0:2, 5:7] = 3 * DIV + 8  # one object predicted inside the crowd: not a false positive
    p[0:1, 2:4] = 3 * DIV + 9  # one outside: a false positive
    stats = panoptic_stats(p, t, K, crowd_ids=[crowd])
    assert stats.fp[3] == 1 and stats.tp[3] == 1
    assert_same(panoptic_quality(p, t, K, THINGS, crowd_ids=[crowd]),
                brute_force_pq([p], [t], crowd_ids={crowd}))


def test_pq_is_sq_times_rq_per_class() -> None:
    t = scene()
    p = t.clone()
    p[5:8, 0:1] = 1 * DIV
    p[0, 0:2] = 3 * DIV + 5
    per_class = panoptic_quality(p, t, K, THINGS)["per_class"]
    present = ~torch.isnan(per_class["pq"])
    assert torch.allclose(per_class["pq"][present],
                          (per_class["sq"] * per_class["rq"])[present])


@pytest.mark.parametrize("seed", range(12))
def test_random_cases_equal_the_brute_force(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)

    def random_map() -> torch.Tensor:
        # blocky segments: a 4 x 4 grid of random ids upsampled, plus pixel noise
        classes = torch.randint(0, K, (4, 4), generator=g)
        inst = torch.randint(1, 4, (4, 4), generator=g) * (classes >= 2)
        ids = (classes * DIV + inst).repeat_interleave(3, 0).repeat_interleave(3, 1)
        noise = torch.rand(12, 12, generator=g) < 0.15
        ids[noise] = (torch.randint(0, K, (int(noise.sum()),), generator=g) * DIV
                      + torch.randint(0, 2, (int(noise.sum()),), generator=g))
        void = torch.rand(12, 12, generator=g) < 0.08
        return ids, void

    targets, preds = [], []
    for _ in range(3):
        t, void = random_map()
        t[void] = VOID * DIV
        p, _ = random_map()
        p = torch.where(torch.rand(12, 12, generator=g) < 0.6, t, p)  # correlated with t
        p[p // DIV == VOID] = 0
        targets.append(t)
        preds.append(p)
    crowd = {int(targets[0].flatten()[5])} if targets[0].flatten()[5] // DIV != VOID else set()
    ours = panoptic_quality(torch.stack(preds), torch.stack(targets), K, THINGS,
                            crowd_ids=sorted(crowd))
    assert_same(ours, brute_force_pq(preds, targets, crowd_ids=crowd))


def test_batches_add_up() -> None:
    t = scene()
    p = t.clone()
    p[0, 5:8] = 3 * DIV + 7
    metric = PanopticQuality(K, THINGS)
    metric.update(p[None], t[None])
    metric.update(t[None], t[None])
    assert_same(metric.compute(), brute_force_pq([p, t], [t, t]))


def test_bad_input_is_refused() -> None:
    t = scene()
    with pytest.raises(ValueError, match="shape"):
        panoptic_stats(t[:4], t, K)
    with pytest.raises(ValueError, match="class 7"):
        panoptic_stats(t + 0 * t + (t == 0) * 7 * DIV, t, K)
    with pytest.raises(ValueError, match="integers"):
        panoptic_stats(t.float(), t, K)
