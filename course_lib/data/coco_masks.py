"""COCO's mask encodings, vectorised with NumPy: run-length encoding (RLE, compressed and
uncompressed), polygons rasterised exactly as ``pycocotools`` does (the tests check it bit
for bit), and the tight boxes of masks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "ann_to_mask",
    "boxes_from_masks",
    "counts_to_string",
    "polygons_to_mask",
    "rle_decode",
    "rle_encode",
    "rle_to_bbox",
    "string_to_counts",
]


def boxes_from_masks(masks: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Tight XYXY boxes [M,4] (float) of bool masks [M,H,W], inclusive pixel indices (the
    ``torchvision.ops.masks_to_boxes`` convention); an empty mask gives a zero box."""
    m = masks.numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    m = m.astype(bool, copy=False)
    if m.shape[0] == 0:
        return torch.zeros(0, 4)
    cols, rows = m.any(axis=1), m.any(axis=2)  # [M,W], [M,H] (NumPy: faster than torch here)
    w, h = cols.shape[1], rows.shape[1]
    x0, x1 = cols.argmax(axis=1), w - 1 - cols[:, ::-1].argmax(axis=1)
    y0, y1 = rows.argmax(axis=1), h - 1 - rows[:, ::-1].argmax(axis=1)
    boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)
    boxes[~cols.any(axis=1)] = 0.0
    return torch.from_numpy(boxes)



# --------------------------------------------------------------------------------------
# COCO run-length encoding (pycocotools' maskApi.c, vectorised with NumPy)
# --------------------------------------------------------------------------------------
def _mask_counts(mask: np.ndarray) -> np.ndarray:
    """Run lengths of a binary mask in column-major order, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(edges)
    if flat.size and flat[0]:
        counts = np.concatenate([[0], counts])
    return counts.astype(np.int64)


def counts_to_string(counts: Sequence[int] | np.ndarray) -> str:
    """COCO's compressed RLE string (LEB128-like, 5 bits per char, deltas from index 3)."""
    c = np.asarray(counts, dtype=np.int64)
    x = c.copy()
    if len(x) > 3:
        x[3:] -= c[1:-2]
    if not len(x):
        return ""
    groups = np.zeros((len(x), 8), dtype=np.int64)
    more = np.zeros((len(x), 8), dtype=bool)
    rest = x.copy()
    for k in range(8):  # at most 8 groups of 5 bits for a 32-bit count
        ch = rest & 0x1F
        rest = rest >> 5  # arithmetic shift, as in C for signed longs
        more[:, k] = np.where((ch & 0x10) != 0, rest != -1, rest != 0)
        groups[:, k] = ch
    n_groups = np.argmin(more, axis=1) + 1  # the first group with no continuation ends it
    used = np.arange(8)[None, :] < n_groups[:, None]
    chars = groups + 48 + np.where(more & used, 0x20, 0)
    return chars[used].astype(np.uint8).tobytes().decode("ascii")


def string_to_counts(s: str | bytes) -> np.ndarray:
    """Inverse of :func:`counts_to_string`."""
    b = np.frombuffer(s.encode("ascii") if isinstance(s, str) else bytes(s), dtype=np.uint8)
    if not len(b):
        return np.zeros(0, dtype=np.int64)
    c = b.astype(np.int64) - 48
    last = (c & 0x20) == 0  # the last char of each value
    value_id = np.concatenate([[0], np.cumsum(last)[:-1]])
    starts = np.concatenate([[0], np.flatnonzero(last)[:-1] + 1])
    k = np.arange(len(c)) - starts[value_id]
    x = np.zeros(int(last.sum()), dtype=np.int64)
    np.add.at(x, value_id, (c & 0x1F) << (5 * k))
    end_k = k[last] + 1
    negative = (c[last] & 0x10) != 0
    x[negative] -= np.left_shift(np.int64(1), 5 * end_k[negative])
    # undo the deltas: counts[i] += counts[i-2] for i >= 3 (two interleaved cumulative sums)
    out = x.copy()
    if len(out) > 3:
        out[3::2] = np.cumsum(np.concatenate([[out[1]], x[3::2]]))[1:]
        out[4::2] = np.cumsum(np.concatenate([[out[2]], x[4::2]]))[1:]
    return out & 0xFFFFFFFF  # C stores them as uint


def rle_encode(mask: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """Compressed COCO RLE ``{"size": [h, w], "counts": str}`` of a binary [H,W] mask."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"rle_encode expects a 2-D mask, got shape {tuple(m.shape)}")
    h, w = m.shape
    return {"size": [int(h), int(w)], "counts": counts_to_string(_mask_counts(m))}


def _counts_to_mask(counts: np.ndarray, h: int, w: int) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    if int(counts.sum()) != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected h*w = {h * w}")
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(w, h).T


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Binary [H,W] mask from a compressed (``counts`` str) or uncompressed (list) RLE."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = string_to_counts(counts)
    return _counts_to_mask(np.asarray(counts, dtype=np.int64), h, w)


def rle_to_bbox(mask: np.ndarray | torch.Tensor) -> list[int]:
    """COCO ``[x, y, w, h]`` of a binary mask (as ``pycocotools.mask.toBbox``)."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return [0, 0, 0, 0]
    cols = np.flatnonzero(m.any(axis=0))
    rows = np.flatnonzero(m.any(axis=1))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def _poly_counts(xy: Sequence[float], h: int, w: int) -> np.ndarray:
    """RLE counts of one polygon, exactly as pycocotools' ``rleFrPoly`` rasterises it."""
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    scale = 5.0
    x = np.trunc(scale * pts[:, 0] + 0.5).astype(np.int64)
    y = np.trunc(scale * pts[:, 1] + 0.5).astype(np.int64)
    xs, ys = x, y
    xe, ye = np.roll(x, -1), np.roll(y, -1)
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    flip = ((dx >= dy) & (xs > xe)) | ((dx < dy) & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    horiz = dx >= dy
    n = np.where(horiz, dx, dy) + 1  # points per edge
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(horiz, (ye - ys) / np.where(dx == 0, 1, dx),
                     (xe - xs) / np.where(dy == 0, 1, dy))
    edge = np.repeat(np.arange(len(n)), n)
    d = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    span = np.where(horiz, dx, dy)[edge]
    t = np.where(flip[edge], span - d, d)
    se, xse, yse = s[edge], xs[edge], ys[edge]
    u = np.where(horiz[edge], t + xse, np.trunc(xse + se * t + 0.5).astype(np.int64))
    v = np.where(horiz[edge], np.trunc(yse + se * t + 0.5).astype(np.int64), t + yse)
    # points where the boundary crosses a column: downsample to pixel resolution
    j = np.flatnonzero(u[1:] != u[:-1]) + 1
    xd = np.where(u[j] < u[j - 1], u[j], u[j] - 1).astype(np.float64)
    xd = (xd + 0.5) / scale - 0.5
    keep = (np.floor(xd) == xd) & (xd >= 0) & (xd <= w - 1)
    yd = np.where(v[j] < v[j - 1], v[j], v[j - 1]).astype(np.float64)
    yd = (yd + 0.5) / scale - 0.5
    yd = np.ceil(np.clip(yd, 0, h))
    xk, yk = xd[keep].astype(np.int64), yd[keep].astype(np.int64)
    a = np.sort(np.concatenate([xk * h + yk, [h * w]]).astype(np.int64))
    a = np.diff(np.concatenate([[0], a]))
    # merge: a zero run means two toggles at one place; it glues the next run to the last one
    rest = a[1:]
    zero = rest == 0
    # length of the run of zeros just before each element
    idx = np.arange(len(rest))
    last_nonzero = np.maximum.accumulate(np.where(~zero, idx, -1))
    prev_nz = np.concatenate([[-1], last_nonzero[:-1]])
    zeros_before = idx - prev_nz - 1
    merged = (~zero) & (zeros_before % 2 == 1)
    take = (~zero) & ~merged
    group = np.cumsum(take)  # 0 = the first element a[0]
    b = np.zeros(int(take.sum()) + 1, dtype=np.int64)
    b[0] = a[0]
    np.add.at(b, group[~zero], rest[~zero])
    return b


def _checked_polygons(polygons: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """The polygons as float arrays, refusing what pycocotools refuses or misreads: no
    polygon, a first polygon of fewer than 3 points, non-numbers, an odd coordinate count,
    and a box ``[x, y, w, h]`` (a 4-number first entry) mixed with polygons."""
    if len(polygons) == 0:
        raise ValueError("no polygon: a COCO polygon segmentation is a list of "
                         "[x1, y1, x2, y2, ...] lists")
    polys = []
    for i, p in enumerate(polygons):
        try:
            xy = np.asarray(p, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"polygon {i} must hold numbers [x1, y1, x2, y2, ...], "
                             f"got {str(p)[:60]}") from err
        if xy.ndim != 1 or len(xy) % 2:
            raise ValueError(f"polygon {i} has an odd number of coordinates ({xy.size}): "
                             "expected x, y pairs [x1, y1, x2, y2, ...]")
        polys.append(xy)
    if len(polys[0]) == 4:
        lengths = [len(p) for p in polys]
        if any(n != 4 for n in lengths):
            raise ValueError(f"polygon 0 has 4 numbers, read as a box [x, y, w, h] (as "
                             f"pycocotools does), but the others are not boxes: lengths {lengths}")
    elif len(polys[0]) < 6:
        n = len(polys[0]) // 2
        raise ValueError(f"polygon 0 has {n} point{'s' if n != 1 else ''}: a polygon needs "
                         "at least 3 points (pycocotools refuses it too)")
    return polys


def polygons_to_mask(polygons: Sequence[Sequence[float]], h: int, w: int) -> np.ndarray:
    """Union of COCO polygons as a bool [H,W] mask, identical to ``pycocotools``.

    A first entry of 4 numbers makes every entry a box ``[x, y, w, h]`` (as in pycocotools);
    a later polygon of fewer than 3 points draws nothing (as in pycocotools). Malformed input
    raises ``ValueError`` naming the polygon (see :func:`_checked_polygons`).
    """
    polys = [p for p in _checked_polygons(polygons) if len(p) >= 4]
    if len(polys[0]) == 4:  # pycocotools reads 4-number lists as [x, y, w, h] boxes
        polys = [[x0, y0, x0, y0 + bh, x0 + bw, y0 + bh, x0 + bw, y0] for x0, y0, bw, bh in polys]
    out = np.zeros((h, w), dtype=bool)
    for p in polys:  # a loop over the few polygons of one object
        out |= _counts_to_mask(_poly_counts(p, h, w), h, w)
    return out


def ann_to_mask(segmentation: Any, h: int, w: int) -> np.ndarray:
    """Decode one COCO ``segmentation`` field (polygons, RLE or compressed RLE) to bool [H,W]."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, h, w)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        rh, rw = (int(v) for v in segmentation["size"])
        if (rh, rw) != (h, w):
            raise ValueError(f"RLE size {rw}x{rh} differs from the image size {w}x{h}")
        return rle_decode(segmentation)
    raise ValueError(f"unknown COCO segmentation format: {type(segmentation).__name__}")
