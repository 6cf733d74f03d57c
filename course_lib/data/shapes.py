"""The shapes world's classes and its drawing kit: canvases, random draws, shape
rasterisers, textures, and painting one object into a scene.

Every rasteriser works on a local coordinate grid restricted to the object's bounding box
(NumPy broadcasting, no loop over pixels); :func:`paint_object` is the one place where an
object gets its colours and texture, for every scene of :mod:`course_lib.data.scenes`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "STUFF_CLASSES",
    "THING_CLASSES",
    "THIN_CLASSES",
    "CLASS_GROUPS",
    "CONTEXT_PAIR",
    "PALETTE",
    "VOID_COLOUR",
]

CLASS_NAMES: tuple[str, ...] = (
    "sky", "grass", "road", "water",
    "disk", "square", "triangle", "star", "ring", "wire", "car", "boat",
)
NUM_CLASSES = len(CLASS_NAMES)
STUFF_CLASSES: tuple[int, ...] = (0, 1, 2, 3)
THING_CLASSES: tuple[int, ...] = tuple(range(4, NUM_CLASSES))
THIN_CLASSES: tuple[int, ...] = (8, 9)  # ring, wire
#: The two kinds of class, for per-group scores (``metrics.group_iou``): regions and objects.
CLASS_GROUPS: dict[str, tuple[int, ...]] = {"stuff": STUFF_CLASSES, "things": THING_CLASSES}
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

SKY, GRASS, ROAD, WATER = 0, 1, 2, 3
DISK, SQUARE, TRIANGLE, STAR, RING, WIRE, CAR, BOAT = range(4, 12)
GENERIC = (DISK, SQUARE, TRIANGLE, STAR, RING, WIRE)
STUFF_RGB = np.array(  # base colours of the stuff regions (jittered per image)
    [[0.42, 0.62, 0.92], [0.30, 0.55, 0.22], [0.42, 0.42, 0.44], [0.16, 0.36, 0.62]],
    dtype=np.float32,
)


# --------------------------------------------------------------------------------------
# Per-size constants: coordinate grids and a bank of textures (fixed seed, made once)
# --------------------------------------------------------------------------------------
class Canvas:
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


_CANVASES: dict[int, Canvas] = {}


def canvas(size: int) -> Canvas:
    if size not in _CANVASES:
        _CANVASES[size] = Canvas(size)
    return _CANVASES[size]


class Draws:
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


def crop(canvas: Canvas, name: str, rnd: Draws, h: int, w: int) -> np.ndarray:
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


def shape_mask(cls: int, lx: np.ndarray, ly: np.ndarray, p: dict[str, float]) -> np.ndarray:
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


def shape_extent(cls: int, p: dict[str, float]) -> tuple[float, float, float, float]:
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


def texture(rnd: Draws, canvas: Canvas, lx: np.ndarray, ly: np.ndarray,
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
        return 0.5 + 0.5 * crop(canvas, "fine" if rnd.u() < 0.5 else "blobs", rnd, h, w)
    if kind == 3:  # linear gradient across the object
        theta = rnd.u(0, 2 * np.pi)
        u = lx * math.cos(theta) + ly * math.sin(theta)
        return 0.5 + u * (1.0 / max(h, w, 2))
    cell = rnd.i(2, 6)  # checker board
    # (floor(lx / cell) + floor(ly / cell)) % 2, from the parities of the two 1-D factors
    return np.floor(lx / cell) % 2 != np.floor(ly / cell) % 2


def paint_object(img: np.ndarray, cv: Canvas, rnd: Draws, cls: int, p: dict[str, float]
                 ) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Paint thing ``cls`` with parameters ``p`` (anchor ``cx``, ``cy``) into ``img``
    [3, S, S] (0..255 units): two random colours, the first at least a little apart from
    what lies under the anchor, and a random texture between them.

    Returns the object's box ``(y0, y1, x0, x1)`` and its mask inside that box, or ``None``
    (nothing drawn, nothing drawn at random) when no pixel of it falls inside the image.
    """
    size = img.shape[-1]
    ex0, ey0, ex1, ey1 = shape_extent(cls, p)
    x0, x1 = max(int(p["cx"] + ex0), 0), min(int(np.ceil(p["cx"] + ex1)), size)
    y0, y1 = max(int(p["cy"] + ey0), 0), min(int(np.ceil(p["cy"] + ey1)), size)
    if x1 <= x0 or y1 <= y0:
        return None
    lx = cv.xs[:, x0:x1] - np.float32(p["cx"])
    ly = cv.ys[y0:y1] - np.float32(p["cy"])
    m = shape_mask(cls, lx, ly, p)
    if not np.count_nonzero(m):  # (faster than m.any() on small arrays)
        return None
    h, w = y1 - y0, x1 - x0
    a = rnd.arr(3)
    under = img[:, min(int(p["cy"]), size - 1), min(int(p["cx"]), size - 1)]
    if max(map(abs, (255.0 * a - under).tolist())) < 50.0:  # keep a minimum contrast
        a = 1.0 - a
    b = rnd.arr(3) if rnd.u() < 0.5 else a * rnd.u(0.3, 0.7)
    pattern = texture(rnd, cv, lx, ly, h, w)
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
    return (y0, y1, x0, x1), m
