"""Tests of course_lib.classic: Otsu against a brute force, k-means, region growing, watershed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import classic


def _brute_force_otsu(hist: np.ndarray) -> tuple[int, float]:
    """Best split by the definition: minimise the within-class variance, one split at a time."""
    levels = np.arange(len(hist), dtype=np.float64)
    total = hist.sum()
    best_k, best = -1, np.inf
    for k in range(len(hist) - 1):
        n0, n1 = hist[: k + 1].sum(), hist[k + 1 :].sum()
        if n0 == 0 or n1 == 0:
            continue
        m0 = (hist[: k + 1] * levels[: k + 1]).sum() / n0
        m1 = (hist[k + 1 :] * levels[k + 1 :]).sum() / n1
        v0 = (hist[: k + 1] * (levels[: k + 1] - m0) ** 2).sum() / n0
        v1 = (hist[k + 1 :] * (levels[k + 1 :] - m1) ** 2).sum() / n1
        within = (n0 * v0 + n1 * v1) / total
        if within < best - 1e-9:
            best_k, best = k, within
    return best_k, best


def _within(hist: np.ndarray, k: int) -> float:
    levels = np.arange(len(hist), dtype=np.float64)
    out = 0.0
    for part, lv in ((hist[: k + 1], levels[: k + 1]), (hist[k + 1 :], levels[k + 1 :])):
        n = part.sum()
        m = (part * lv).sum() / n
        out += (part * (lv - m) ** 2).sum()
    return out / hist.sum()


@pytest.mark.parametrize("seed", range(6))
def test_otsu_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # a two-humped histogram with noise, plus sparse random ones
    levels = np.arange(256)
    a, b = rng.uniform(30, 110), rng.uniform(140, 230)
    hist = (rng.uniform(100, 1000) * np.exp(-0.5 * ((levels - a) / rng.uniform(5, 25)) ** 2)
            + rng.uniform(100, 1000) * np.exp(-0.5 * ((levels - b) / rng.uniform(5, 25)) ** 2))
    hist = np.round(hist + rng.integers(0, 5, 256)).astype(np.float64)
    if seed % 2:
        hist = rng.integers(0, 50, 256).astype(np.float64) * (rng.random(256) < 0.3)
    k = int(classic.otsu_threshold(hist))
    k_ref, within_ref = _brute_force_otsu(hist)
    # the same split, or (on an exact numerical tie) one just as good
    assert k == k_ref or abs(_within(hist, k) - within_ref) < 1e-9 * max(1.0, within_ref)


def test_otsu_hand_cases() -> None:
    hist = np.zeros(256)
    hist[[0, 100, 255]] = [1, 1, 2]
    # split after 0: w0 w1 (mu0 - mu1)^2 = 0.1875 * 203.33^2 = 7752; after 100: 0.25 * 205^2
    assert classic.otsu_threshold(hist) == 100.0
    two = np.zeros(256)
    two[[50, 200]] = [3, 5]
    assert classic.otsu_threshold(two) == 50.0  # every k in 50..199 ties: lowest is taken
    image = torch.tensor([[10, 20], [200, 210]], dtype=torch.uint8)
    assert classic.otsu_threshold(image) == 20.0
    assert classic.threshold_segment(image).tolist() == [[False, False], [True, True]]
    assert classic.threshold_segment(image, invert=True).tolist() == [[True, True], [False, False]]


def test_otsu_float_and_uint8_images_agree() -> None:
    rng = np.random.default_rng(0)
    img = np.clip(np.concatenate([rng.normal(60, 15, 500), rng.normal(170, 20, 700)]), 0, 255)
    img = img.astype(np.uint8).reshape(30, 40)
    t_int = classic.otsu_threshold(img)
    t_float = classic.otsu_threshold(torch.from_numpy(img).float() / 255.0)
    assert t_float == pytest.approx((t_int + 1) / 256)
    seg_int = classic.threshold_segment(img)
    seg_float = classic.threshold_segment(torch.from_numpy(img).float() / 255.0)
    assert torch.equal(seg_int, seg_float)
    assert torch.equal(seg_int, torch.from_numpy(img > t_int))


def test_otsu_bad_input() -> None:
    with pytest.raises(ValueError, match="256 bins"):
        classic.otsu_threshold(np.ones(10))
    with pytest.raises(ValueError, match="non-negative"):
        classic.otsu_threshold(np.zeros(256))
    with pytest.raises(ValueError, match="torch.Tensor or numpy"):
        classic.otsu_threshold([1, 2, 3])


def test_otsu_constant_image_has_no_foreground() -> None:
    img = torch.full((8, 8), 0.5)
    assert not classic.threshold_segment(img).any()


def _two_colour_image(noise: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    img = torch.zeros(3, 32, 40)
    truth = torch.zeros(32, 40, dtype=torch.bool)
    truth[6:26, 8:22] = True
    img[:, truth] = torch.tensor([0.9, 0.2, 0.1])[:, None]
    img[:, ~truth] = torch.tensor([0.1, 0.3, 0.8])[:, None]
    img = (img + noise * torch.randn(img.shape, generator=gen)).clamp(0, 1)
    return img, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_recovers_two_colour_regions(seed: int) -> None:
    img, truth = _two_colour_image(seed=seed)
    labels = classic.kmeans_segment(img, k=2, iters=20, seed=seed)
    assert labels.shape == truth.shape and labels.dtype == torch.int64
    assert set(labels.unique().tolist()) == {0, 1}
    inside = labels[truth]
    assert (inside == inside[0]).all() and (labels[~truth] != inside[0]).all()


def test_kmeans_is_reproducible_and_sorted_by_brightness() -> None:
    img, truth = _two_colour_image()
    a = classic.kmeans_segment(img, k=3, seed=5)
    b = classic.kmeans_segment(img, k=3, seed=5)
    assert torch.equal(a, b)
    grey = torch.zeros(1, 4, 4)
    grey[0, :, 2:] = 1.0
    lab = classic.kmeans_segment(grey, k=2)
    assert lab[:, :2].eq(0).all() and lab[:, 2:].eq(1).all()  # label 0 = darkest
    with pytest.raises(ValueError, match="k must be"):
        classic.kmeans_segment(img, k=0)


def test_region_growing_fills_connected_region_and_stops_at_edge() -> None:
    img = torch.zeros(3, 30, 30)
    img[:, :, :] = 0.1
    img[:, 5:15, 5:15] = 0.8  # square A
    img[:, 20:27, 20:27] = 0.8  # square B: same colour, not connected to A
    img[0, 5:15, 5:15] += torch.linspace(0, 0.04, 10)  # a gentle ramp inside A
    region = classic.region_growing(img, [(8, 8)], tol=0.1)
    expected = torch.zeros(30, 30, dtype=torch.bool)
    expected[5:15, 5:15] = True
    assert torch.equal(region, expected)
    # the background grows from a corner and stops at both squares' edges
    bg = classic.region_growing(img, [(0, 0)], tol=0.1, criterion="neighbour")
    assert bg.sum() == 900 - 100 - 49 and not bg[5:15, 5:15].any()
    # a seed mask works like the coordinate list
    seeds = torch.zeros(30, 30, dtype=torch.bool)
    seeds[8, 8] = True
    assert torch.equal(classic.region_growing(img, seeds, tol=0.1), expected)


def test_region_growing_neighbour_follows_ramp_mean_does_not() -> None:
    ramp = torch.linspace(0, 1, 50).repeat(10, 1)[None]  # a grey ramp, 0.02 per pixel
    follow = classic.region_growing(ramp, [(5, 0)], tol=0.05, criterion="neighbour")
    assert follow.all()
    mean = classic.region_growing(ramp, [(5, 0)], tol=0.05, criterion="mean")
    assert 0 < mean.sum() < 10 * 50


def test_region_growing_bad_input() -> None:
    img = torch.zeros(3, 10, 10)
    with pytest.raises(ValueError, match="inside"):
        classic.region_growing(img, [(20, 3)])
    with pytest.raises(ValueError, match="criterion"):
        classic.region_growing(img, [(2, 3)], criterion="nope")


def _disks(centres: list[tuple[int, int]], radius: int, size: int = 96) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    mask = torch.zeros(size, size, dtype=torch.bool)
    for cy, cx in centres:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    return mask


def test_watershed_splits_two_touching_disks() -> None:
    mask = _disks([(48, 30), (48, 62)], 18)
    assert classic.label_components(mask).max() == 1  # one blob for connected components
    labels = classic.watershed_split(mask)
    assert labels.max() == 2 and labels.dtype == torch.int64
    assert torch.equal(labels > 0, mask)
    left, right = _disks([(48, 30)], 18), _disks([(48, 62)], 18)
    # each label sits on one disk: the left disk's own pixels are (almost) all one label
    only_left, only_right = left & ~right, right & ~left
    a = torch.mode(labels[only_left]).values
    b = torch.mode(labels[only_right]).values
    assert a != b
    assert (labels[only_left] == a).float().mean() > 0.95
    assert (labels[only_right] == b).float().mean() > 0.95


def test_watershed_keeps_single_objects_whole() -> None:
    mask = _disks([(30, 30)], 15, size=64)
    mask[50:60, 5:60] = True  # a bar elsewhere
    labels = classic.watershed_split(mask)
    assert labels.max() == 2
    assert classic.watershed_split(torch.zeros(8, 8, dtype=torch.bool)).max() == 0


def test_label_components_connectivity() -> None:
    mask = torch.zeros(5, 5, dtype=torch.bool)
    mask[1, 1] = mask[2, 2] = True  # diagonal neighbours
    mask[4, 4] = True
    assert classic.label_components(mask, connectivity=8).max() == 2
    lab4 = classic.label_components(mask, connectivity=4)
    assert lab4.max() == 3 and lab4[1, 1] == 1 and lab4[4, 4] == 3


def test_distance_transform_of_a_square() -> None:
    mask = torch.zeros(11, 11, dtype=torch.bool)
    mask[2:9, 2:9] = True  # 7x7 square: centre survives 3 erosions
    dist = classic.distance_transform(mask)
    assert dist[5, 5] == 4 and dist[2, 2] == 1 and dist[0, 0] == 0


def test_seeded_region_growing_grows_each_region_to_its_edge() -> None:
    img = torch.zeros(3, 20, 30)
    img[:, :10] = torch.tensor([0.2, 0.4, 0.9])[:, None, None]  # "sky"
    img[:, 10:] = torch.tensor([0.2, 0.6, 0.2])[:, None, None]  # "grass"
    img[:, 4:14, 12:18] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]  # an object
    seeds = classic.border_seeds(20, 30, spacing=5)
    labels = classic.seeded_region_growing(img, seeds, tol=0.1)
    unreached = labels == 0
    expected = torch.zeros(20, 30, dtype=torch.bool)
    expected[4:14, 12:18] = True
    assert torch.equal(unreached, expected)
    # sky pixels carry sky seeds' labels only, grass pixels grass seeds' labels only
    sky_labels = set(labels[:4].unique().tolist())
    grass_labels = set(labels[15:].unique().tolist())
    assert sky_labels and grass_labels and not sky_labels & grass_labels
    with pytest.raises(ValueError, match="at least one seed"):
        classic.seeded_region_growing(img, torch.zeros(20, 30, dtype=torch.long))


def test_oracle_mappings() -> None:
    target = torch.tensor([[True, True, False, False]])
    assert torch.equal(classic.best_polarity(~target, target), target)
    labels = torch.tensor([[0, 0, 1, 2]])
    assert classic.majority_foreground(labels, target).tolist() == [[True, True, False, False]]
    assert classic.border_seeds(16, 16, 8).max() == 2 + 2 + 2
