"""The "shapes world": a synthetic segmentation data set generated on the fly, no download.

Every image is a small outdoor-like scene, drawn deterministically from
``(seed, split, index)``:

* four *stuff* classes fill the background: **sky** on top, a horizon, and the ground split
  into bands of **grass**, **road** and **water**, each with its own texture;
* eight *thing* classes are painted on top, far objects first, so near objects occlude far
  ones: **disk, square, triangle, star** (solid shapes), **ring** and **wire** (thin
  structures, 1-3 px wide), and **car** and **boat**;
* the class of a thing is decided by its **shape only**: colours and textures (flat, stripes,
  noise, gradient, checker) are random per object;
* **car and boat look identical** (same silhouette, same colour distribution). A car only
  ever stands on road and a boat only ever floats on water, so only the *context* around an
  object tells them apart (PSPNet's boat-vs-car failure of a plain FCN);
* a plausible **depth map** (ground plane receding to the horizon, objects in front of the
  surface behind them) can be appended as a fourth image channel (``with_depth=True``).

One sample yields semantic, instance (visible masks, XYXY boxes, labels) and panoptic
targets. Rasterisation uses NumPy coordinate grids, restricted to each object's bounding
box, so one core makes well over a thousand 128 x 128 images per second
(:func:`generation_speed`).

Two further variants serve the medical lesson (notebook 08), each with its own
``class_names`` / ``palette`` / ``num_classes`` on the data set:

* ``variant="microscopy"``: electron-microscopy-like sections of touching cells, a Voronoi
  tessellation of jittered seeds under a smooth warp. Cells are separated by thin dark
  membranes (1-3 px; two different cells are never 4-neighbours), cytoplasm is granular,
  dark mitochondria-like organelles lie *inside* cells (dark, but not membrane), then blur
  and noise. **One grey channel**: image ``[1,H,W]`` (like :class:`~course_lib.data.formats.
  EMStack`), mask ``[H,W]`` with ``0 = membrane``, ``1 = cell`` (the ISBI 2012 convention),
  instance ids ``1..M`` per cell (0 on membranes) for :func:`course_lib.losses.unet_weight_map`.
* ``variant="volume"``: 3D volumes, image ``[1,D,H,W]`` (``D = H = W = image_size``, default
  the profile's ``volume_size``) and mask ``[D,H,W]``: an organ-like blob in a darker
  surround, and 1-3 small brighter "lesions" (class 1) that together cover **at most 1 %**
  of the voxels (0.2-0.7 % on average): the class imbalance of V-Net's Dice-loss lesson.
  Only ``target="semantic"``; no depth channel, no VOC/COCO export.

The ``variant="context"`` (notebook 05, ParseNet) keeps the shapes classes but makes the
car/boat pair a *global* context problem: one car or boat stands on grass at least half the
image away from the only road (car) or river (boat) of the scene, so its local surround is
the same for both classes. No depth channel, no VOC/COCO export.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from course_lib import config
from course_lib.config import IGNORE_INDEX
from course_lib.data.formats import boxes_from_masks, rle_encode, rle_to_bbox

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "STUFF_CLASSES",
    "THING_CLASSES",
    "THIN_CLASSES",
    "CONTEXT_PAIR",
    "PALETTE",
    "IGNORE_INDEX",
    "VARIANTS",
    "TARGETS",
    "SPLITS",
    "ShapesWorld",
    "foreground",
    "write_voc",
    "write_coco",
    "generation_speed",
]

CLASS_NAMES: tuple[str, ...] = (
    "sky", "grass", "road", "water",
    "disk", "square", "triangle", "star", "ring", "wire", "car", "boat",
)
NUM_CLASSES = len(CLASS_NAMES)
STUFF_CLASSES: tuple[int, ...] = (0, 1, 2, 3)
THING_CLASSES: tuple[int, ...] = tuple(range(4, NUM_CLASSES))
THIN_CLASSES: tuple[int, ...] = (8, 9)  # ring, wire
CONTEXT_PAIR: tuple[int, int] = (10, 11)  # car (only on road), boat (only on water)

#: Display colour of each class (uint8 RGB); the void label 255 is drawn separately.
PALETTE: np.ndarray = np.array(
    [
        [135, 190, 235],  # sky
        [60, 150, 60],  # grass
        [110, 110, 110],  # road
        [30, 80, 170],  # water
        [230, 60, 60],  # disk
        [250, 170, 30],  # square
        [240, 230, 60],  # triangle
        [200, 80, 220],  # star
        [0, 230, 230],  # ring
        [255, 255, 255],  # wire
        [160, 40, 40],  # car
        [40, 40, 160],  # boat
    ],
    dtype=np.uint8,
)
VOID_COLOUR = (224, 224, 192)  # as in PASCAL VOC

TARGETS: tuple[str, ...] = ("semantic", "all")
SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
GENERATOR_VERSION = 1  # bump when the drawing changes: it invalidates the on-disk cache

SKY, GRASS, ROAD, WATER = 0, 1, 2, 3
DISK, SQUARE, TRIANGLE, STAR, RING, WIRE, CAR, BOAT = range(4, 12)
_GENERIC = (DISK, SQUARE, TRIANGLE, STAR, RING, WIRE)
_STUFF_RGB = np.array(  # base colours of the stuff regions (jittered per image)
    [[0.42, 0.62, 0.92], [0.30, 0.55, 0.22], [0.42, 0.42, 0.44], [0.16, 0.36, 0.62]],
    dtype=np.float32,
)


# --------------------------------------------------------------------------------------
# Per-size constants: coordinate grids and a bank of textures (fixed seed, made once)
# --------------------------------------------------------------------------------------
class _Canvas:
    """Pixel-centre coordinates and texture bank for one image size."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.ys = (np.arange(size, dtype=np.float32) + 0.5)[:, None]
        self.xs = (np.arange(size, dtype=np.float32) + 0.5)[None, :]
        side = max(128, 2 * size)
        self.bank_side = side
        rng = np.random.default_rng(20240611)

        def smooth(cells_y: int, cells_x: int) -> np.ndarray:
            low = torch.from_numpy(rng.standard_normal((1, 1, cells_y, cells_x)).astype("f4"))
            up = torch.nn.functional.interpolate(low, size=(side, side), mode="bicubic")
            a = up[0, 0].numpy()
            return (a / (np.abs(a).max() + 1e-6)).astype(np.float32)

        fine = rng.uniform(-1.0, 1.0, (side, side)).astype(np.float32)
        clouds = smooth(max(2, side // 24), max(2, side // 24))
        blades = 0.6 * smooth(max(2, side // 6), side // 1) + 0.4 * fine
        yy = np.arange(side, dtype=np.float32)[:, None]
        ripple = np.sin(2 * np.pi * yy / 5.0 + 4.0 * smooth(side // 16, side // 16)).astype("f4")
        blobs = smooth(max(2, side // 8), max(2, side // 8))
        self.bank = {
            "fine": fine,
            "clouds": clouds,
            "blades": blades.astype(np.float32),
            "ripple": ripple,
            "blobs": blobs,
        }
        # ready-made stuff shading, already in 0..255 units: colour * shading = pixel value
        self.shading = {
            SKY: (255.0 * (1.0 + 0.35 * np.maximum(clouds, 0.0))).astype(np.float32),
            GRASS: (255.0 * (1.0 + 0.25 * blades)).astype(np.float32),
            ROAD: (255.0 * (1.0 + 0.10 * fine)).astype(np.float32),
            WATER: (255.0 * (1.0 + 0.18 * ripple)).astype(np.float32),
        }
        self.sensor = (6.0 * fine[::-1] + 0.5).astype(np.float32)  # noise + rounding offset


_CANVASES: dict[int, _Canvas] = {}


def _canvas(size: int) -> _Canvas:
    if size not in _CANVASES:
        _CANVASES[size] = _Canvas(size)
    return _CANVASES[size]


class _Draws:
    """Uniform random numbers drawn in blocks from a NumPy Generator (one call per block):
    a scene needs ~100 scalars, and one Generator call per scalar would cost more than the
    drawing itself."""

    def __init__(self, rng: np.random.Generator, block: int = 256) -> None:
        self._rng, self._block = rng, block
        self._arr = rng.random(block, dtype=np.float32)
        self._vals = self._arr.tolist()
        self._i = 0

    def _refill(self) -> None:
        self._arr = self._rng.random(self._block, dtype=np.float32)
        self._vals = self._arr.tolist()
        self._i = 0

    def u(self, lo: float = 0.0, hi: float = 1.0) -> float:
        """One uniform number in [lo, hi)."""
        if self._i >= self._block:
            self._refill()
        x = self._vals[self._i]
        self._i += 1
        return lo + (hi - lo) * x

    def i(self, lo: int, hi: int) -> int:
        """One integer in [lo, hi)."""
        return min(lo + int(self.u() * (hi - lo)), hi - 1)

    def arr(self, n: int, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        """n uniform numbers in [lo, hi) as a float32 array."""
        if self._i + n > self._block:
            self._refill()
        a = self._arr[self._i : self._i + n]
        self._i += n
        if lo == 0.0 and hi == 1.0:  # common case: lo + (hi - lo) * a == a exactly; a view,
            return a  # so callers must not write into it
        return lo + (hi - lo) * a


def _crop(canvas: _Canvas, name: str, rnd: _Draws, h: int, w: int) -> np.ndarray:
    """A random h x w window of a bank texture (a view, no copy)."""
    top = canvas.bank_side - max(h, w) + 1
    oy, ox = rnd.i(0, top), rnd.i(0, top)
    bank = canvas.sensor if name == "sensor" else canvas.bank[name]
    return bank[oy : oy + h, ox : ox + w]


# --------------------------------------------------------------------------------------
# Shape rasterisers: each returns a boolean mask on a local grid (lx, ly relative to centre)
# --------------------------------------------------------------------------------------
def _rotate(lx: np.ndarray, ly: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(theta), math.sin(theta)
    return lx * c + ly * s, ly * c - lx * s


def _shape_mask(cls: int, lx: np.ndarray, ly: np.ndarray, p: dict[str, float]) -> np.ndarray:
    r, theta = p.get("r", 0.0), p.get("theta", 0.0)
    if cls == DISK:
        return lx * lx + ly * ly <= r * r
    if cls == SQUARE:
        u, v = _rotate(lx, ly, theta)
        a = 0.85 * r
        return (np.abs(u) <= a) & (np.abs(v) <= a)
    if cls == TRIANGLE:  # equilateral, circumradius r: three half-planes at distance r/2
        out = None
        for k in range(3):
            ang = theta + k * 2.0 * np.pi / 3.0
            inside = lx * math.cos(ang) + ly * math.sin(ang) <= 0.5 * r
            out = inside if out is None else out & inside
        return out
    if cls == STAR:  # five points; fold the angle into one half-spike and test one edge
        rho = np.sqrt(lx * lx + ly * ly)
        sector = 2.0 * np.pi / 5.0
        ang = np.mod(np.arctan2(ly, lx) - theta, sector)
        alpha = np.abs(ang - sector / 2.0)  # 0 at the inner vertex, sector/2 at the tip
        px, py = rho * np.cos(alpha), rho * np.sin(alpha)
        ix, iy = 0.45 * r, 0.0  # inner vertex
        ox, oy = r * math.cos(sector / 2.0), r * math.sin(sector / 2.0)  # outer vertex (tip)
        cross = (ox - ix) * py - (oy - iy) * (px - ix)  # iy = 0: py - iy == py exactly
        return cross >= 0.0  # the centre's side of the inner-to-tip edge
    if cls == RING:
        d = np.sqrt(lx * lx + ly * ly)
        return np.abs(d - r) <= 0.5 * p["thick"]
    if cls == WIRE:  # segment through the centre, half-length r, thickness 1-2 px
        dx, dy = math.cos(theta) * r, math.sin(theta) * r
        t = np.minimum(np.maximum((lx * dx + ly * dy) / (dx * dx + dy * dy), -1.0), 1.0)
        ex, ey = lx - t * dx, ly - t * dy
        return ex * ex + ey * ey <= (0.5 * p["thick"]) ** 2
    if cls in (CAR, BOAT):  # identical silhouette: hull-like body + cabin; ly = 0 at the base
        w, facing = p["w"], p["facing"]
        hb, hc = 0.30 * w, 0.22 * w
        tb = np.minimum(np.maximum(-ly / hb, 0.0), 1.0)  # = np.clip, without its overhead
        body = (ly <= 0) & (ly >= -hb) & (np.abs(lx) <= 0.5 * w * (0.78 + 0.22 * tb))
        tc = np.minimum(np.maximum((-ly - hb) / hc, 0.0), 1.0)
        cx = facing * 0.12 * w
        cabin = (ly < -hb) & (ly >= -hb - hc) & (np.abs(lx - cx) <= 0.25 * w * (1.0 - 0.35 * tc))
        return body | cabin
    raise ValueError(f"no rasteriser for class {cls}")


def _shape_extent(cls: int, p: dict[str, float]) -> tuple[float, float, float, float]:
    """Local bounding box (x0, y0, x1, y1) of a shape, relative to its anchor."""
    if cls in (CAR, BOAT):
        w = p["w"]
        return -0.5 * w - 1, -0.52 * w - 1, 0.5 * w + 1, 1.0
    if cls == WIRE:
        dx, dy = abs(math.cos(p["theta"]) * p["r"]), abs(math.sin(p["theta"]) * p["r"])
        pad = p["thick"] + 1
        return -dx - pad, -dy - pad, dx + pad, dy + pad
    e = 1.25 * p["r"] + p.get("thick", 0) + 1
    return -e, -e, e, e


def _texture(rnd: _Draws, canvas: _Canvas, lx: np.ndarray, ly: np.ndarray,
             h: int, w: int) -> np.ndarray | bool:
    """A pattern in [0, 1] over the object's box (0 = first colour, 1 = second colour).

    Two-colour patterns come as booleans, and ``False`` means flat (first colour only)."""
    x = rnd.u()
    kind = 0 if x < 0.25 else 1 if x < 0.55 else 2 if x < 0.75 else 3 if x < 0.9 else 4
    if kind == 0:  # flat
        return False
    if kind == 1:  # stripes of random period and orientation
        theta = rnd.u(0, np.pi)
        period = rnd.u(3.0, 9.0)
        u = lx * math.cos(theta) + ly * math.sin(theta)
        return np.sin(u * (2 * np.pi / period)) > 0
    if kind == 2:  # noise, fine or blotchy
        return 0.5 + 0.5 * _crop(canvas, "fine" if rnd.u() < 0.5 else "blobs", rnd, h, w)
    if kind == 3:  # linear gradient across the object
        theta = rnd.u(0, 2 * np.pi)
        u = lx * math.cos(theta) + ly * math.sin(theta)
        return 0.5 + u * (1.0 / max(h, w, 2))
    cell = rnd.i(2, 6)  # checker board
    # (floor(lx / cell) + floor(ly / cell)) % 2, from the parities of the two 1-D factors
    return np.floor(lx / cell) % 2 != np.floor(ly / cell) % 2


# --------------------------------------------------------------------------------------
# The default scene
# --------------------------------------------------------------------------------------
def _draw_default(rng: np.random.Generator, size: int, with_depth: bool) -> dict[str, np.ndarray]:
    """One scene: uint8 image [3,S,S], uint8 labels and instance ids [S,S], depth [S,S]."""
    cv = _canvas(size)
    rnd = _Draws(rng)
    S = float(size)
    ys, xs = cv.ys, cv.xs

    # ---- stuff: sky above a (slightly tilted) horizon, ground in 2-3 bands
    hz0 = rnd.u(0.22, 0.45) * S
    tilt = rnd.u(-0.06, 0.06)
    nb = int(rnd.i(2, 4))
    kinds = sorted([GRASS, ROAD, WATER], key=lambda _: rnd.u())[:nb]
    fr = [rnd.u(0.3, 0.7)] if nb == 2 else [rnd.u(0.25, 0.42), rnd.u(0.6, 0.78)]
    bounds = [hz0 + tilt * (xs - np.float32(0.5 * S))]  # [1, S] per boundary, top to bottom
    lo, hi = [hz0 - abs(tilt) * 0.5 * S], [hz0 + abs(tilt) * 0.5 * S]
    for f in fr:
        amp = rnd.u(0.0, 0.02) * S
        b0 = hz0 + f * (S - hz0)
        bounds.append(b0 + amp * np.sin(xs * rnd.u(0.02, 0.12) + rnd.u(0, 6.3)))
        lo.append(b0 - amp)
        hi.append(b0 + amp)
    table = [SKY, *kinds]  # region j lies between boundary j-1 and boundary j

    colours = np.minimum(_STUFF_RGB + rnd.arr(12, -0.06, 0.06).reshape(4, 3), 1.0)
    top = cv.bank_side - size + 1
    offsets = [(rnd.i(0, top), rnd.i(0, top)) for _ in range(4)]
    lab = np.empty((size, size), dtype=np.uint8)
    img = np.empty((3, size, size), dtype=np.float32)  # in 0..255 units until the end
    sky_ramp = (0.3 * 255.0 / hz0) * ys  # the sky gets lighter towards the horizon

    def shading(region: int, r0: int, r1: int) -> np.ndarray:
        """Shading (x 255) of stuff region ``region`` (index into table) on rows r0:r1."""
        kind = table[region]
        oy, ox = offsets[kind]
        win = cv.shading[kind][oy + r0 : oy + r1, ox : ox + size]
        return win + sky_ramp[r0:r1] if kind == SKY else win

    def rows(y: float) -> int:  # first row whose pixel centre is >= y
        return min(max(math.ceil(y - 0.5), 0), size)

    nreg = len(table)
    for j in range(nreg):  # rows that lie entirely inside region j: one colour, one texture
        r0 = rows(hi[j - 1]) if j > 0 else 0
        r1 = rows(lo[j]) if j < nreg - 1 else size
        if r1 > r0:
            lab[r0:r1] = table[j]
            np.multiply(colours[table[j]][:, None, None], shading(j, r0, r1), out=img[:, r0:r1])
    for k in range(nreg - 1):  # rows crossed by boundary k: decide per pixel
        r0, r1 = rows(lo[k]), rows(hi[k])
        if r1 <= r0:
            continue
        below = ys[r0:r1] >= bounds[k]
        lab[r0:r1] = np.where(below, np.uint8(table[k + 1]), np.uint8(table[k]))
        img[:, r0:r1] = np.where(
            below,
            colours[table[k + 1]][:, None, None] * shading(k + 1, r0, r1),
            colours[table[k]][:, None, None] * shading(k, r0, r1),
        )
    tops = hi  # ground band b lies surely below tops[b] ...
    bottoms = lo[1:] + [S]  # ... and above bottoms[b]

    # ---- depth of the background: ground plane depth ~ 1 / (rows below the horizon)
    k_depth = 0.08 * (S - hz0)

    def ground_depth(y: float) -> float:
        return float(min(1.0, k_depth / max(y - hz0, 1e-3)))

    depth = None
    if with_depth:
        depth = np.minimum(1.0, k_depth / np.maximum(ys - bounds[0], 1e-3)).astype(np.float32)
        depth[lab == SKY] = 1.0

    # ---- things: sample all, then paint far to near
    objs: list[tuple[float, int, dict[str, float]]] = []
    for _ in range(int(rnd.i(2, 7))):
        cls = _GENERIC[rnd.i(0, len(_GENERIC))]
        cx, cy = rnd.u(0, S), rnd.u(0, S)
        r = S * math.exp(rnd.u(math.log(0.035), math.log(0.3)))
        p = {"cx": cx, "cy": cy, "theta": rnd.u(0, 2 * np.pi), "thick": 0.0}
        if cls == RING:
            p["r"] = max(r, 4.0)
            p["thick"] = float(rnd.i(1, 4))
        elif cls == WIRE:
            p["r"] = 0.5 * S * rnd.u(0.25, 0.9)
            p["thick"] = float(rnd.i(1, 3))
        else:
            p["r"] = max(r, 3.0)
        behind = 1.0 if cy < hz0 else ground_depth(cy)
        objs.append((behind * rnd.u(0.35, 0.95), cls, p))
    for band in range(nb):
        kind = kinds[band]
        if kind == GRASS:
            continue
        y_lo, y_hi = tops[band] + 1.0, bottoms[band] - 0.5
        for _ in range(int(rnd.i(0, 3)) if y_hi > y_lo else 0):
            yb = rnd.u(y_lo, y_hi)
            near = (yb - hz0) / (S - hz0)
            w = max(6.0, S * rnd.u(0.12, 0.3) * (0.35 + 0.65 * near))
            p = {"cx": rnd.u(0, S), "cy": yb, "w": w, "facing": 1.0 if rnd.u() < 0.5 else -1.0}
            objs.append((0.98 * ground_depth(yb), CAR if kind == ROAD else BOAT, p))
    objs.sort(key=lambda o: -o[0])  # stable: far first

    inst = np.zeros((size, size), dtype=np.uint8)
    n_inst = 0
    boxes: list[tuple[int, int, int, int]] = []  # of the painted instances
    for d_obj, cls, p in objs:
        ex0, ey0, ex1, ey1 = _shape_extent(cls, p)
        x0, x1 = max(int(p["cx"] + ex0), 0), min(int(np.ceil(p["cx"] + ex1)), size)
        y0, y1 = max(int(p["cy"] + ey0), 0), min(int(np.ceil(p["cy"] + ey1)), size)
        if x1 <= x0 or y1 <= y0:
            continue
        lx = xs[:, x0:x1] - np.float32(p["cx"])
        ly = ys[y0:y1] - np.float32(p["cy"])
        m = _shape_mask(cls, lx, ly, p)
        if not np.count_nonzero(m):  # (faster than m.any() on small arrays)
            continue
        h, w = y1 - y0, x1 - x0
        a = rnd.arr(3)
        under = img[:, min(int(p["cy"]), size - 1), min(int(p["cx"]), size - 1)]
        if max(map(abs, (255.0 * a - under).tolist())) < 50.0:  # keep a minimum contrast
            a = 1.0 - a
        b = rnd.arr(3) if rnd.u() < 0.5 else a * rnd.u(0.3, 0.7)
        pattern = _texture(rnd, cv, lx, ly, h, w)
        first, diff = 255.0 * a, 255.0 * (b - a)  # colour = first + diff * pattern
        region = img[:, y0:y1, x0:x1]
        if isinstance(pattern, np.ndarray) and pattern.dtype != bool:  # grey levels
            colour = np.multiply(diff[:, None, None], pattern)
            colour += first[:, None, None]
            np.copyto(region, colour, where=m)
        else:  # flat or two colours: first + diff * 0 == first, first + diff * 1 == first + diff
            np.copyto(region, first[:, None, None], where=m)
            if pattern is not False:
                np.copyto(region, (first + diff)[:, None, None], where=m & pattern)
        n_inst += 1
        boxes.append((y0, y1, x0, x1))
        np.copyto(lab[y0:y1, x0:x1], cls, where=m)
        np.copyto(inst[y0:y1, x0:x1], n_inst, where=m)
        if depth is not None:
            np.copyto(depth[y0:y1, x0:x1], d_obj, where=m)

    # occluded completely? drop and renumber so that ids stay 1..M (an instance's pixels can
    # only lie in its own box, so looking there is enough)
    keep = [k for k, (y0, y1, x0, x1) in enumerate(boxes, 1)
            if np.count_nonzero(inst[y0:y1, x0:x1] == k)]
    if len(keep) < n_inst:
        remap = np.zeros(n_inst + 1, dtype=np.uint8)
        remap[keep] = np.arange(1, len(keep) + 1, dtype=np.uint8)
        inst = remap[inst]

    img += _crop(cv, "sensor", rnd, size, size)  # sensor noise (+ 0.5 to round)
    np.clip(img, 0.0, 255.0, out=img)
    out = {
        "image": img.astype(np.uint8),
        "label": lab,
        "inst": inst,
    }
    if depth is not None:
        out["depth"] = depth.astype(np.float32)
    return out


# --------------------------------------------------------------------------------------
# Medical variants (notebook 08): EM-like touching cells, and 3D volumes with tiny lesions
# --------------------------------------------------------------------------------------
MICROSCOPY_CLASS_NAMES: tuple[str, ...] = ("membrane", "cell")  # 0 = membrane, as in ISBI
MICROSCOPY_PALETTE: np.ndarray = np.array([[200, 30, 60], [225, 225, 205]], dtype=np.uint8)
VOLUME_CLASS_NAMES: tuple[str, ...] = ("background", "lesion")
VOLUME_PALETTE: np.ndarray = np.array([[40, 40, 40], [250, 200, 30]], dtype=np.uint8)
MEMBRANE, CELL = 0, 1
LESION = 1
MAX_LESION_FRACTION = 0.01  # the volume variant's foreground never exceeds 1 % of the voxels


def _smooth_field(rng: np.random.Generator, channels: int, cells: int,
                  shape: tuple[int, ...]) -> np.ndarray:
    """``channels`` smooth random fields of ``shape`` (2D bicubic / 3D trilinear upsampling of
    a ``cells``-per-side normal grid); values roughly in [-2, 2]. Returns [channels, *shape]."""
    low = rng.standard_normal((1, channels, *([max(2, cells)] * len(shape)))).astype(np.float32)
    mode = "bicubic" if len(shape) == 2 else "trilinear"
    up = torch.nn.functional.interpolate(torch.from_numpy(low), size=tuple(shape), mode=mode,
                                         align_corners=False)
    return up[0].numpy()


def _gauss_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2D or 3D float32 array (edges replicated)."""
    r = max(1, int(math.ceil(2.5 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float32)
    k = torch.from_numpy(np.exp(-x * x / (2.0 * sigma * sigma)) / np.exp(
        -x * x / (2.0 * sigma * sigma)).sum())
    nd = a.ndim
    conv = torch.nn.functional.conv2d if nd == 2 else torch.nn.functional.conv3d
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]
    for axis in range(nd):
        shape = [1, 1] + [1] * nd
        shape[2 + axis] = k.numel()
        pad = [0, 0] * nd
        pad[2 * (nd - 1 - axis)] = pad[2 * (nd - 1 - axis) + 1] = r
        t = conv(torch.nn.functional.pad(t, pad, mode="replicate"), k.view(shape))
    return t[0, 0].numpy()


def _draw_microscopy(rng: np.random.Generator, size: int,
                     with_depth: bool) -> dict[str, np.ndarray]:
    """EM-like section of touching cells: uint8 image [1,S,S], labels (0 membrane, 1 cell) and
    instance ids (1..M per cell, 0 on membranes) [S,S].

    Cells are the Voronoi regions of jittered-grid seeds, computed for all pixels at once
    (distance to every seed, nearest and second-nearest by ``argmin``/``partition``) on
    smoothly warped coordinates. A pixel is membrane where the two nearest seeds are almost
    equally far (``d2 - d1 < thickness``, about the membrane width in pixels) and wherever
    a 4-neighbour belongs to another cell, so touching cells are always separated.
    """
    S = size
    spacing = rng.uniform(max(10.0, S / 9), max(14.0, S / 6))  # cell diameter in pixels
    n = int(math.ceil(S / spacing)) + 2
    grid = (np.arange(n, dtype=np.float32) - 0.5) * spacing
    seed_y = (grid[:, None] + rng.uniform(-0.38, 0.38, (n, n)).astype(np.float32) * spacing)
    seed_x = (grid[None, :] + rng.uniform(-0.38, 0.38, (n, n)).astype(np.float32) * spacing)
    warp = _smooth_field(rng, 2, int(S / spacing), (S, S)) * np.float32(0.22 * spacing)
    ys = np.arange(S, dtype=np.float32)[:, None] + 0.5 + warp[0]
    xs = np.arange(S, dtype=np.float32)[None, :] + 0.5 + warp[1]
    d2 = (ys[..., None] - seed_y.ravel()) ** 2 + (xs[..., None] - seed_x.ravel()) ** 2
    nearest = np.argmin(d2, axis=-1)  # [S, S]: the cell of every pixel
    two = np.partition(d2, 1, axis=-1)[..., :2]
    gap = np.sqrt(two[..., 1]) - np.sqrt(two[..., 0])  # ~ 2 x the distance to the border
    thick = rng.uniform(0.5, 1.6) * (1.0 + 0.3 * _smooth_field(rng, 1, 4, (S, S))[0])
    membrane = gap < thick
    membrane[:, :-1] |= nearest[:, 1:] != nearest[:, :-1]  # never two cells side by side
    membrane[:-1, :] |= nearest[1:, :] != nearest[:-1, :]
    label = np.where(membrane, MEMBRANE, CELL).astype(np.uint8)
    uniq, inverse = np.unique(np.where(membrane, -1, nearest), return_inverse=True)
    inst = (inverse.reshape(S, S) + (0 if uniq[0] == -1 else 1)).astype(np.uint8)
    m = int(inst.max())

    # appearance: per-cell brightness, granular cytoplasm, dark organelles, dark membranes
    img = rng.uniform(0.55, 0.78, m + 1).astype(np.float32)[inst]
    img += 0.06 * _smooth_field(rng, 1, S // 6, (S, S))[0]
    k = max(1, S * S // 400)  # mitochondria-like ellipses: dark, but inside cells
    cy, cx = rng.uniform(0, S, k).astype(np.float32), rng.uniform(0, S, k).astype(np.float32)
    ra = rng.uniform(1.5, 0.22 * spacing + 1.5, k).astype(np.float32)
    rb = ra * rng.uniform(0.35, 0.7, k).astype(np.float32)
    theta = rng.uniform(0, np.pi, k).astype(np.float32)
    py = np.arange(S, dtype=np.float32)[:, None, None] + 0.5 - cy
    px = np.arange(S, dtype=np.float32)[None, :, None] + 0.5 - cx
    u = px * np.cos(theta) + py * np.sin(theta)
    v = py * np.cos(theta) - px * np.sin(theta)
    organelle = ((u / ra) ** 2 + (v / rb) ** 2 <= 1.0).any(-1) & ~membrane
    img[organelle] = rng.uniform(0.3, 0.42)
    img[membrane] = rng.uniform(0.12, 0.25)
    img = _gauss_blur(img, rng.uniform(0.5, 0.9))  # the microscope's blur ...
    img += rng.normal(0.0, rng.uniform(0.03, 0.07), (S, S)).astype(np.float32)  # ... and noise
    lo, hi = rng.uniform(0.0, 0.08), rng.uniform(0.9, 1.0)  # contrast
    img = np.clip((lo + (hi - lo) * img) * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    return {"image": img[None], "label": label, "inst": inst}


def _draw_volume(rng: np.random.Generator, size: int,
                 with_depth: bool) -> dict[str, np.ndarray]:
    """A 3D volume [1,S,S,S] uint8 with labels and lesion ids [S,S,S] (1..n, n <= 3).

    An organ-like warped ellipsoid (grey) in a dark surround; inside it 1-3 small brighter
    ellipsoidal lesions (label 1) of 0.2-0.7 % of the volume together, never more than
    ``MAX_LESION_FRACTION`` (the excess, if rasterisation overshoots, is trimmed from the
    lesions' rims); blur and noise on top.
    """
    S = size
    zz = np.arange(S, dtype=np.float32)[:, None, None] + 0.5
    yy = np.arange(S, dtype=np.float32)[None, :, None] + 0.5
    xx = np.arange(S, dtype=np.float32)[None, None, :] + 0.5
    c = rng.uniform(0.42, 0.58, 3) * S
    ax = rng.uniform(0.3, 0.42, 3) * S
    organ_q = ((zz - c[0]) / ax[0]) ** 2 + ((yy - c[1]) / ax[1]) ** 2 + ((xx - c[2]) / ax[2]) ** 2
    organ = organ_q + 0.25 * _smooth_field(rng, 1, 3, (S, S, S))[0] <= 1.0
    img = np.where(organ, np.float32(0.45), np.float32(0.12))
    img += 0.08 * _smooth_field(rng, 1, 4, (S, S, S))[0]
    n = int(rng.integers(1, 4))
    volume = rng.uniform(0.002, 0.007) * S**3 / n  # voxels per lesion
    r = (volume * 3.0 / (4.0 * np.pi)) ** (1.0 / 3.0) * rng.uniform(0.8, 1.2, (n, 1))
    aspect = rng.uniform(0.75, 1.3, (n, 3))
    radii = r * aspect / np.cbrt(aspect.prod(1, keepdims=True))
    dirs = rng.normal(size=(n, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    centres = c + dirs * rng.uniform(0.0, 0.55, (n, 1)) * ax  # well inside the organ
    inst = np.zeros((S, S, S), dtype=np.uint8)
    score = np.full((S, S, S), np.inf, dtype=np.float32)  # normalised radius of the lesion
    for j in range(n):  # one vectorised ellipsoid per lesion (n <= 3)
        q = (((zz - centres[j, 0]) / radii[j, 0]) ** 2 + ((yy - centres[j, 1]) / radii[j, 1]) ** 2
             + ((xx - centres[j, 2]) / radii[j, 2]) ** 2)
        inside = (q <= 1.0) & (q < score)
        inst[inside] = j + 1
        score[inside] = q[inside]
    cap = int(MAX_LESION_FRACTION * S**3)
    if np.count_nonzero(inst) > cap:  # keep the cap's worth of most central voxels
        keep = np.zeros(S**3, dtype=bool)
        keep[np.argpartition(score.ravel(), cap - 1)[:cap]] = True
        inst[~keep.reshape(S, S, S)] = 0
    label = (inst > 0).astype(np.uint8)
    img[label == LESION] += rng.uniform(0.16, 0.24)
    img = _gauss_blur(img, 0.7)
    img += rng.normal(0.0, 0.07, img.shape).astype(np.float32)
    img = np.clip(img * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    return {"image": img[None], "label": label, "inst": inst}


# --------------------------------------------------------------------------------------
# The "context" variant (notebook 05: ParseNet's global context)
# --------------------------------------------------------------------------------------
def _draw_context(rng: np.random.Generator, size: int, with_depth: bool) -> dict[str, np.ndarray]:
    """A scene where only the far-away context tells a car from a boat.

    Sky above a horizon; the ground is grass with one vertical band of **road** or **water**
    along the left or right edge. One car (road scenes) or boat (water scenes) stands on
    the grass on the *other* side, at least ``size // 2`` pixels from the band: the object
    and its whole local surround (grass) are drawn from the same distribution for both
    classes, so nothing near the object says which it is — only the band does (at 160 px
    the gap is 80 px, the radius of the small FCN-32s's receptive field). No depth channel.
    """
    cv = _canvas(size)
    rnd = _Draws(rng)
    S = float(size)
    ys, xs = cv.ys, cv.xs

    hz = rnd.u(0.2, 0.32) * S  # horizon (flat)
    kind = ROAD if rnd.u() < 0.5 else WATER  # the scene: a road or a river
    band = rnd.u(0.1, 0.16) * S  # width of the road / river
    on_left = rnd.u() < 0.5
    colours = np.minimum(_STUFF_RGB + rnd.arr(12, -0.06, 0.06).reshape(4, 3), 1.0)
    top = cv.bank_side - size + 1
    offsets = [(rnd.i(0, top), rnd.i(0, top)) for _ in range(4)]
    lab = np.full((size, size), GRASS, dtype=np.uint8)
    lab[ys[:, 0] < hz] = SKY
    in_band = (xs < band) if on_left else (xs >= S - band)  # [1, S]
    lab[np.broadcast_to(in_band, (size, size)) & (ys >= hz)] = kind
    img = np.empty((3, size, size), dtype=np.float32)  # 0..255 units until the end
    sky_ramp = (0.3 * 255.0 / hz) * ys
    for k in (SKY, GRASS, kind):
        oy, ox = offsets[k]
        shade = cv.shading[k][oy : oy + size, ox : ox + size]
        if k == SKY:
            shade = shade + sky_ramp
        np.copyto(img, colours[k][:, None, None] * shade, where=(lab == k)[None])

    # ---- the object: same silhouette, colours and textures for car and boat
    cls = CAR if kind == ROAD else BOAT
    w = rnd.u(0.18, 0.26) * S
    yb = rnd.u(hz + 0.52 * w + 5.0, S - 1.0)  # base line: the cabin top >= 4 px below the sky
    lo, hi = band + 0.5 * S + 0.5 * w, S - 0.5 * w - 1.0  # distance from the band >= S / 2
    x_far = rnd.u(lo, max(lo, hi))
    p = {"cx": x_far if on_left else S - x_far, "cy": yb, "w": w,
         "facing": 1.0 if rnd.u() < 0.5 else -1.0}
    ex0, ey0, ex1, ey1 = _shape_extent(cls, p)
    x0, x1 = max(int(p["cx"] + ex0), 0), min(int(np.ceil(p["cx"] + ex1)), size)
    y0, y1 = max(int(p["cy"] + ey0), 0), min(int(np.ceil(p["cy"] + ey1)), size)
    lx = xs[:, x0:x1] - np.float32(p["cx"])
    ly = ys[y0:y1] - np.float32(p["cy"])
    m = _shape_mask(cls, lx, ly, p)
    h, wd = y1 - y0, x1 - x0
    a = rnd.arr(3)
    under = img[:, min(int(yb), size - 1), min(int(p["cx"]), size - 1)]
    if max(map(abs, (255.0 * a - under).tolist())) < 50.0:  # keep a minimum contrast
        a = 1.0 - a
    b = rnd.arr(3) if rnd.u() < 0.5 else a * rnd.u(0.3, 0.7)
    pattern = _texture(rnd, cv, lx, ly, h, wd)
    first, diff = 255.0 * a, 255.0 * (b - a)
    region = img[:, y0:y1, x0:x1]
    if isinstance(pattern, np.ndarray) and pattern.dtype != bool:
        np.copyto(region, diff[:, None, None] * pattern + first[:, None, None], where=m)
    else:
        np.copyto(region, first[:, None, None], where=m)
        if pattern is not False:
            np.copyto(region, (first + diff)[:, None, None], where=m & pattern)
    np.copyto(lab[y0:y1, x0:x1], cls, where=m)
    inst = np.zeros((size, size), dtype=np.uint8)
    np.copyto(inst[y0:y1, x0:x1], 1, where=m)

    img += _crop(cv, "sensor", rnd, size, size)  # sensor noise (+ 0.5 to round)
    np.clip(img, 0.0, 255.0, out=img)
    return {"image": img.astype(np.uint8), "label": lab, "inst": inst}


__all__ += ["MICROSCOPY_CLASS_NAMES", "MICROSCOPY_PALETTE", "VOLUME_CLASS_NAMES",
            "VOLUME_PALETTE", "MAX_LESION_FRACTION"]


@dataclass(frozen=True)
class _Variant:
    """One world: its drawing function and what a data set of it looks like."""

    draw: Callable[[np.random.Generator, int, bool], dict[str, np.ndarray]]
    class_names: tuple[str, ...]
    palette: np.ndarray
    image_channels: int = 3
    spatial_dims: int = 2  # 3: volumes [C,D,H,W], semantic targets only
    has_depth: bool = False  # can append a depth channel (with_depth=True)
    size_field: str = "image_size"  # the profile field that gives the default side


#: Append only: a variant's position is part of its random seed.
_VARIANTS: dict[str, _Variant] = {
    "default": _Variant(_draw_default, CLASS_NAMES, PALETTE, has_depth=True),
    "microscopy": _Variant(_draw_microscopy, MICROSCOPY_CLASS_NAMES, MICROSCOPY_PALETTE,
                           image_channels=1),
    "volume": _Variant(_draw_volume, VOLUME_CLASS_NAMES, VOLUME_PALETTE, image_channels=1,
                       spatial_dims=3, size_field="volume_size"),
    "context": _Variant(_draw_context, CLASS_NAMES, PALETTE),
}
VARIANTS: tuple[str, ...] = tuple(_VARIANTS)


# --------------------------------------------------------------------------------------
# The Dataset
# --------------------------------------------------------------------------------------
def _check_choice(value: str, valid: tuple[str, ...] | dict, what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid {what}s are: {', '.join(valid)}")
    return value


class ShapesWorld(Dataset):
    """The embedded synthetic data set (see the module docstring for what it contains).

    Args:
        num_samples: number of images (indices ``0 .. num_samples-1``).
        image_size: side of the square images; ``None`` = the active profile's size.
        seed: selects a different world; with ``split`` and the index it fixes each image.
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint random streams).
        variant: ``"default"``, ``"microscopy"`` (grey EM-like cells, image ``[1,H,W]``,
            classes membrane/cell) or ``"volume"`` (3D, image ``[1,D,H,W]``, mask ``[D,H,W]``,
            ``image_size`` = the cube's side, default the profile's ``volume_size``; only
            ``target="semantic"``, no depth), or ``"context"`` (the shapes classes: one car or
            boat on grass, far from the road or river that alone tells which; no depth).
            See the module docstring.
        with_depth: append a depth channel to the image (``[4,H,W]``) and return ``"depth"``.
        target: ``"semantic"`` -> ``(image, mask)``; ``"all"`` -> a dict with semantic,
            instance and panoptic targets.
        cache: keep the generated tensors in ``config.data_dir()/"cache"`` (written once).
        transform: optional callable applied to the ``(image, mask)`` tuple or the dict.

    Images are float32 in [0, 1] quantised to 8-bit levels (so PNG export is lossless).
    """

    def __init__(
        self,
        num_samples: int,
        image_size: int | None = None,
        seed: int = 0,
        split: str = "train",
        variant: str = "default",
        with_depth: bool = False,
        target: str = "semantic",
        cache: bool = False,
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        self.num_samples = int(num_samples)
        self.variant = _check_choice(variant, VARIANTS, "variant")
        world = self._world = _VARIANTS[self.variant]
        self.image_size = int(image_size or getattr(config.get_profile(), world.size_field))
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")
        self.seed = int(seed)
        self.split = _check_choice(split, SPLITS, "split")
        self.with_depth = bool(with_depth)
        self.target = _check_choice(target, TARGETS, "target")
        if self.with_depth and not world.has_depth:
            raise ValueError(f"with_depth=True needs variant='default' (the {variant!r} "
                             "variant has no depth map)")
        if self.target != "semantic" and world.spatial_dims == 3:
            raise ValueError("the 'volume' variant supports only target='semantic' "
                             f"(image [1,D,H,W], mask [D,H,W]), got target={target!r}")
        self.transform = transform
        self.class_names = world.class_names
        self.palette = world.palette
        self.num_classes = len(self.class_names)
        self.spatial_dims = world.spatial_dims
        self.cache_path: Path | None = None
        self._cached: dict[str, torch.Tensor] | None = None
        if cache:
            self._cached = self._load_or_build_cache()

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (
            f"ShapesWorld(num_samples={self.num_samples}, image_size={self.image_size}, "
            f"seed={self.seed}, split={self.split!r}, variant={self.variant!r}, "
            f"with_depth={self.with_depth}, target={self.target!r})"
        )

    # -- raw arrays -----------------------------------------------------------------
    def _rng(self, index: int) -> np.random.Generator:
        variant_code = VARIANTS.index(self.variant)
        return np.random.default_rng([self.seed, SPLITS[self.split], index, variant_code])

    def raw(self, index: int) -> dict[str, np.ndarray]:
        """The generated arrays of one image: ``image`` uint8 [3,H,W], ``label`` and
        ``inst`` uint8 [H,W] and, with depth, ``depth`` float32 [H,W] (microscopy: image
        [1,H,W]; volume: image [1,D,H,W], label and inst [D,H,W])."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        index = index % self.num_samples if self.num_samples else index
        if self._cached is not None:
            out = {
                "image": self._cached["image"][index].numpy(),
                "label": self._cached["label"][index].numpy(),
                "inst": self._cached["inst"][index].numpy(),
            }
            if self.with_depth:
                out["depth"] = self._cached["depth"][index].numpy()
            return out
        return self._world.draw(self._rng(index), self.image_size, self.with_depth)

    # -- cache ----------------------------------------------------------------------
    def _load_or_build_cache(self) -> dict[str, torch.Tensor]:
        name = (
            f"shapes_v{GENERATOR_VERSION}_{self.variant}_s{self.seed}_{self.split}"
            f"_n{self.num_samples}_{self.image_size}px{'_depth' if self.with_depth else ''}.pt"
        )
        path = config.data_dir() / "cache" / name
        self.cache_path = path
        if path.exists():
            try:
                data = torch.load(path, map_location="cpu", weights_only=True)
                if int(data["image"].shape[0]) == self.num_samples:
                    return data
            except Exception:  # noqa: BLE001 - a broken cache file is simply rebuilt
                pass
        raws = [
            self._world.draw(self._rng(i), self.image_size, self.with_depth)
            for i in range(self.num_samples)
        ]
        s = self.image_size
        grid = (s,) * self.spatial_dims
        data = {
            "image": torch.from_numpy(np.stack([r["image"] for r in raws]))
            if raws else torch.zeros(0, self._world.image_channels, *grid, dtype=torch.uint8),
            "label": torch.from_numpy(np.stack([r["label"] for r in raws]))
            if raws else torch.zeros(0, *grid, dtype=torch.uint8),
            "inst": torch.from_numpy(np.stack([r["inst"] for r in raws]))
            if raws else torch.zeros(0, *grid, dtype=torch.uint8),
        }
        if self.with_depth:
            data["depth"] = (torch.from_numpy(np.stack([r["depth"] for r in raws]))
                             if raws else torch.zeros(0, s, s))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            torch.save(data, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return data

    # -- samples --------------------------------------------------------------------
    def __getitem__(self, index: int) -> Any:
        sample = _to_sample(self.raw(index), self.target)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample


def _to_sample(raw: dict[str, np.ndarray], target: str) -> Any:
    """Tensors (tv_tensors) from the raw arrays of one image."""
    image = torch.from_numpy(raw["image"] * np.float32(1.0 / 255.0))
    depth = torch.from_numpy(raw["depth"])[None] if "depth" in raw else None
    if depth is not None:
        image = torch.cat([image, depth], dim=0)
    label = torch.from_numpy(raw["label"]).long()
    if target == "semantic":
        return tv_tensors.Image(image), tv_tensors.Mask(label)
    inst = torch.from_numpy(raw["inst"]).long()
    m = int(inst.max())
    ids = torch.arange(1, m + 1)
    masks = inst[None] == ids[:, None, None]
    labels = torch.zeros(m + 1, dtype=torch.long).scatter_(0, inst.flatten(), label.flatten())[1:]
    h, w = label.shape
    boxes = boxes_from_masks(masks)
    out = {
        "image": tv_tensors.Image(image),
        "mask": tv_tensors.Mask(label),
        "masks": tv_tensors.Mask(masks),
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
        "labels": labels,
        "instance_ids": tv_tensors.Mask(inst),
        "panoptic": tv_tensors.Mask(label * 1000 + inst),
    }
    if depth is not None:
        out["depth"] = tv_tensors.Mask(depth)
    return out


def foreground(mask: torch.Tensor) -> torch.Tensor:
    """Boolean map of thing pixels (classes 4..11) of a semantic mask; void is not foreground."""
    mask = torch.as_tensor(mask)
    return (mask >= THING_CLASSES[0]) & (mask < NUM_CLASSES)


# --------------------------------------------------------------------------------------
# Export to standard layouts (so the real-format readers can run on synthetic data)
# --------------------------------------------------------------------------------------
def _voc_object_palette() -> list[int]:
    """The standard PASCAL VOC colour map (bit-interleaved), 256 entries."""
    cmap = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap += [r, g, b]
    return cmap


def _class_palette() -> list[int]:
    pal = np.zeros((256, 3), dtype=np.uint8)
    pal[: len(PALETTE)] = PALETTE
    pal[IGNORE_INDEX] = VOID_COLOUR
    return pal.ravel().tolist()


def _sample_names(dataset: ShapesWorld) -> list[str]:
    return [f"{dataset.split}_{i:06d}" for i in range(len(dataset))]


def _require_shapes(dataset: Any) -> ShapesWorld:
    if not isinstance(dataset, ShapesWorld):
        raise ValueError(f"expected a ShapesWorld data set, got {type(dataset).__name__}")
    if dataset.variant != "default":
        raise ValueError(f"VOC/COCO export needs variant='default' (RGB images, the shapes "
                         f"classes), got variant={dataset.variant!r}")
    return dataset


def write_voc(dataset: ShapesWorld, root: str | Path) -> Path:
    """Write ``dataset`` in the PASCAL VOC 2012 segmentation layout under ``root``.

    Creates ``root/VOCdevkit/VOC2012/`` with ``JPEGImages/<id>.png`` (lossless PNG; the
    reader accepts .jpg or .png), ``SegmentationClass/<id>.png`` (palette PNG, class index,
    255 = void), ``SegmentationObject/<id>.png`` (palette PNG, instance id 1..M, 0 = none)
    and ``ImageSets/Segmentation/<split>.txt``, plus ``VOCdevkit/classes.json`` with the
    class names. Returns the ``VOC2012`` folder. The depth channel is not written.
    """
    from PIL import Image

    ds = _require_shapes(dataset)
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    dirs = {k: voc / k for k in ("JPEGImages", "SegmentationClass", "SegmentationObject")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    class_pal, object_pal = _class_palette(), _voc_object_palette()
    names = _sample_names(ds)
    for i, name in enumerate(names):
        raw = ds.raw(i)
        Image.fromarray(np.ascontiguousarray(raw["image"].transpose(1, 2, 0))).save(
            dirs["JPEGImages"] / f"{name}.png"
        )
        size = raw["label"].shape[::-1]
        cls_png = Image.frombytes("P", size, np.ascontiguousarray(raw["label"]).tobytes())
        cls_png.putpalette(class_pal)
        cls_png.save(dirs["SegmentationClass"] / f"{name}.png")
        obj_png = Image.frombytes("P", size, np.ascontiguousarray(raw["inst"]).tobytes())
        obj_png.putpalette(object_pal)
        obj_png.save(dirs["SegmentationObject"] / f"{name}.png")
    (voc / "ImageSets" / "Segmentation" / f"{ds.split}.txt").write_text(
        "".join(n + "\n" for n in names)
    )
    classes = {
        "dataset": "course shapes world",
        "ignore_index": IGNORE_INDEX,
        "classes": [
            {"index": i, "name": n, "rgb": PALETTE[i].tolist()} for i, n in enumerate(CLASS_NAMES)
        ] + [{"index": IGNORE_INDEX, "name": "void", "rgb": list(VOID_COLOUR)}],
    }
    (voc.parent / "classes.json").write_text(json.dumps(classes, indent=1))
    return voc


def write_coco(dataset: ShapesWorld, root: str | Path) -> Path:
    """Write the thing instances of ``dataset`` in COCO format under ``root``.

    Creates ``root/<split>/<id>.png`` (lossless PNG) and
    ``root/annotations/instances_<split>.json`` whose ``segmentation`` fields are compressed
    RLE (the course's own encoder, :func:`course_lib.data.formats.rle_encode`), with
    ``category_id`` = the shapes-world class index (4..11). Returns ``root``.
    """
    from PIL import Image

    ds = _require_shapes(dataset)
    root = Path(root)
    img_dir = root / ds.split
    img_dir.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, name in enumerate(_sample_names(ds)):
        raw = ds.raw(i)
        h, w = raw["label"].shape
        file_name = f"{name}.png"
        Image.fromarray(np.ascontiguousarray(raw["image"].transpose(1, 2, 0))).save(
            img_dir / file_name
        )
        images.append({"id": i + 1, "file_name": file_name, "height": h, "width": w})
        inst = raw["inst"]
        for k in range(1, int(inst.max()) + 1):
            m = inst == k
            cls = int(raw["label"][m][0])
            rle = rle_encode(m)
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": i + 1,
                "category_id": cls,
                "segmentation": rle,
                "area": int(m.sum()),
                "bbox": rle_to_bbox(m),
                "iscrowd": 0,
            })
    coco = {
        "info": {"description": f"course shapes world, split {ds.split}, seed {ds.seed}"},
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": c, "name": CLASS_NAMES[c], "supercategory": "shape"} for c in THING_CLASSES
        ],
    }
    (root / "annotations" / f"instances_{ds.split}.json").write_text(json.dumps(coco))
    return root


# --------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------
def generation_speed(image_size: int = 128, n: int = 500) -> float:
    """Images per second generated on ONE core (semantic target, no cache)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = ShapesWorld(n, image_size=image_size, seed=12345, split="train")
        ds[0]  # build the per-size texture bank outside the timing
        start = time.perf_counter()
        for i in range(n):
            ds[i]
        return n / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
