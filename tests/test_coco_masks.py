"""COCO masks: RLE encoding and decoding, compressed strings and polygons against pycocotools
(bit for bit), and the boxes of masks."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.data import coco_masks as cm

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_rle_encode_matches_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    for i in range(60):
        h, w = rng.integers(1, 40, size=2)
        m = rng.random((h, w)) < rng.random()
        if i % 4 == 0:  # long runs -> multi-char values and negative deltas
            m = np.zeros((h, w), bool)
            m[rng.integers(0, h):, rng.integers(0, w):] = True
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        mine = cm.rle_encode(m)
        assert mine["counts"] == ref["counts"].decode() and mine["size"] == [h, w]
        assert np.array_equal(cm.rle_decode(mine), m)
        assert cm.rle_to_bbox(m) == [int(v) for v in mask_utils.toBbox(ref)]
    big = np.zeros((300, 400), bool)
    big[10:290, 5:395] = True
    assert cm.rle_encode(big)["counts"] == mask_utils.encode(np.asfortranarray(
        big.astype(np.uint8)))["counts"].decode()


def test_uncompressed_rle_and_string_roundtrip():
    counts = [3, 2, 4, 1, 2]  # 12 pixels, 3 x 4
    m = cm.rle_decode({"size": [3, 4], "counts": counts})
    assert m.shape == (3, 4) and m.sum() == 3
    s = cm.counts_to_string(counts)
    assert cm.string_to_counts(s).tolist() == counts
    assert np.array_equal(cm.rle_decode({"size": [3, 4], "counts": s}), m)
    with pytest.raises(ValueError, match="sum"):
        cm.rle_decode({"size": [3, 4], "counts": [1, 2]})


def test_polygons_match_pycocotools_exactly():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    h, w = 37, 53
    for i in range(80):
        n = int(rng.integers(3, 9))
        poly = rng.uniform(-5, 60, size=2 * n)
        if i % 5 == 0:
            poly = np.round(poly)  # integer vertices, axis-aligned edges
        if i % 7 == 0:
            poly[2:4] = poly[0:2]  # a repeated vertex
        polys = [poly.tolist(), rng.uniform(0, 40, size=8).tolist()]
        ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
        assert np.array_equal(cm.polygons_to_mask(polys, h, w), ref.astype(bool)), i
    box = [[3.5, 4.0, 10.0, 7.5]]  # pycocotools reads a 4-number list as a box
    ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(np.array(box), h, w)))
    assert np.array_equal(cm.polygons_to_mask(box, h, w), ref.astype(bool))


def test_malformed_polygons_raise_clearly():
    mask_utils = pytest.importorskip("pycocotools.mask")
    h, w = 20, 20
    for polys, message in [
        ([[5.0, 5.0]], r"polygon 0 has 1 point.*at least 3 points"),  # pycocotools raises too
        ([[5.0, 5.0, 6.0]], r"odd number of coordinates \(3\)"),
        ([[1.0, 1.0, 10.0, 1.0, 10.0]], r"odd number of coordinates \(5\)"),
        ([], "no polygon"),
        ([["a", "b", "c", "d", "e", "f"]], "polygon 0 .*numbers"),
        ([[1, 1, 9, 9], [1, 1, 5, 1, 5, 5]], r"box.*\[x, y, w, h\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            cm.polygons_to_mask(polys, h, w)
    # A degenerate polygon after a real one draws nothing, in pycocotools as here.
    polys = [[1.0, 1.0, 10.0, 1.0, 10.0, 10.0], [3.0, 3.0, 4.0, 4.0]]
    ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
    assert np.array_equal(cm.polygons_to_mask(polys, h, w), ref.astype(bool))
