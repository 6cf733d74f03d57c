"""The shapes world's scenes: the default outdoor scene, its "dense" variant (notebook 19) and
the "context" scene of notebook 05.

All draw with the kit of :mod:`course_lib.data.shapes` and return the raw arrays of one
sample: uint8 image [3, S, S], uint8 labels and instance ids [S, S] (and, for the default
scene with ``with_depth``, a float32 depth map [S, S]).
"""

from __future__ import annotations

import math

import numpy as np

from course_lib.data.shapes import (
    BOAT,
    CAR,
    GENERIC,
    GRASS,
    RING,
    ROAD,
    SKY,
    STUFF_RGB,
    WATER,
    WIRE,
    Draws,
    canvas,
    crop,
    paint_object,
)

#: Things per dense scene and vehicles per road or water band (the default scene: 2-6 and 0-2):
#: the same objects, about four times as many, so most of them hide part of another.
DENSE_THINGS = (16, 25)
DENSE_VEHICLES = (2, 6)


def draw_default(rng: np.random.Generator, size: int, with_depth: bool, *,
                 things: tuple[int, int] = (2, 7), vehicles: tuple[int, int] = (0, 3),
                 painted_areas: list[int] | None = None) -> dict[str, np.ndarray]:
    """One scene: uint8 image [3,S,S], uint8 labels and instance ids [S,S], depth [S,S].

    ``things`` and ``vehicles``: ``[low, high)`` of the number of things per scene and of
    cars or boats per road or water band. ``painted_areas``, when given, receives the pixels
    each object covered when it was painted (before nearer objects hid part of it): their
    sum minus the visible object pixels is the occluded area.
    """
    cv = canvas(size)
    rnd = Draws(rng)
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

    colours = np.minimum(STUFF_RGB + rnd.arr(12, -0.06, 0.06).reshape(4, 3), 1.0)
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
    for _ in range(int(rnd.i(*things))):
        cls = GENERIC[rnd.i(0, len(GENERIC))]
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
        for _ in range(int(rnd.i(*vehicles)) if y_hi > y_lo else 0):
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
        painted = paint_object(img, cv, rnd, cls, p)
        if painted is None:
            continue
        (y0, y1, x0, x1), m = painted
        n_inst += 1
        if painted_areas is not None:
            painted_areas.append(int(np.count_nonzero(m)))
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

    img += crop(cv, "sensor", rnd, size, size)  # sensor noise (+ 0.5 to round)
    np.clip(img, 0.0, 255.0, out=img)
    out = {
        "image": img.astype(np.uint8),
        "label": lab,
        "inst": inst,
    }
    if depth is not None:
        out["depth"] = depth.astype(np.float32)
    return out


def draw_dense(rng: np.random.Generator, size: int, with_depth: bool) -> dict[str, np.ndarray]:
    """A dense default scene: the same stuff and objects, :data:`DENSE_THINGS` things and
    :data:`DENSE_VEHICLES` vehicles per band, so objects overlap heavily (notebook 19's
    "more challenging data")."""
    return draw_default(rng, size, with_depth, things=DENSE_THINGS, vehicles=DENSE_VEHICLES)


def draw_context(rng: np.random.Generator, size: int, with_depth: bool) -> dict[str, np.ndarray]:
    """A scene where only the far-away context tells a car from a boat.

    Sky above a horizon; the ground is grass with one vertical band of **road** or **water**
    along the left or right edge. One car (road scenes) or boat (water scenes) stands on
    the grass on the *other* side, at least ``size // 2`` pixels from the band: the object
    and its whole local surround (grass) are drawn from the same distribution for both
    classes, so nothing near the object says which it is — only the band does (at 160 px
    the gap is 80 px, the radius of the small FCN-32s's receptive field). No depth channel.
    """
    cv = canvas(size)
    rnd = Draws(rng)
    S = float(size)
    ys, xs = cv.ys, cv.xs

    hz = rnd.u(0.2, 0.32) * S  # horizon (flat)
    kind = ROAD if rnd.u() < 0.5 else WATER  # the scene: a road or a river
    band = rnd.u(0.1, 0.16) * S  # width of the road / river
    on_left = rnd.u() < 0.5
    colours = np.minimum(STUFF_RGB + rnd.arr(12, -0.06, 0.06).reshape(4, 3), 1.0)
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
    painted = paint_object(img, cv, rnd, cls, p)
    assert painted is not None  # the object lies well inside the image (see above)
    (y0, y1, x0, x1), m = painted
    np.copyto(lab[y0:y1, x0:x1], cls, where=m)
    inst = np.zeros((size, size), dtype=np.uint8)
    np.copyto(inst[y0:y1, x0:x1], 1, where=m)

    img += crop(cv, "sensor", rnd, size, size)  # sensor noise (+ 0.5 to round)
    np.clip(img, 0.0, 255.0, out=img)
    return {"image": img.astype(np.uint8), "label": lab, "inst": inst}

