"""The shapes world's RGB-D scene (``ShapesWorld(variant="rgbd")``, notebook 17's RGB-D lesson).

An indoor view in the spirit of NYU-Depth V2: a **wall** facing the camera above a **floor**
that recedes to it, and on them two kinds of thing that **colour alone cannot tell apart**:

* an **object** stands between the camera and the room: its depth (0.1-0.45) is nearer
  than any wall (0.8-1) or floor (0.5 at the camera's feet up to the wall's depth), so its
  outline is a step in the depth map;
* a **picture** is printed on the wall or the floor (a poster, a rug): its depth *is* the
  surface's depth, so the depth map does not see it at all.

Both are drawn by the same code from the same distributions (shape among disk, square,
triangle and star; size, position, two colours and a texture by
:func:`~course_lib.data.shapes.paint_object`), so an RGB image says nothing about which is
which, except that objects, being in front, are painted after the pictures and may cover
them. The depth map (``with_depth=True``) is in [0, 1] (1 = farthest) with a little sensor
noise; without it the variant is a plain 3-channel data set.
"""

from __future__ import annotations

import numpy as np

from course_lib.data.shapes import DISK, SQUARE, STAR, TRIANGLE, Draws, canvas, crop, paint_object

__all__ = ["RGBD_CLASS_NAMES", "RGBD_PALETTE", "RGBD_OBJECT", "RGBD_PICTURE", "draw_rgbd"]

RGBD_CLASS_NAMES: tuple[str, ...] = ("wall", "floor", "object", "picture")
WALL, FLOOR, RGBD_OBJECT, RGBD_PICTURE = range(4)
RGBD_PALETTE: np.ndarray = np.array(
    [[200, 190, 170], [120, 80, 50], [230, 60, 60], [60, 120, 230]], dtype=np.uint8)
_SHAPES = (DISK, SQUARE, TRIANGLE, STAR)
_WALL_RGB = np.array([0.78, 0.74, 0.66], dtype=np.float32)
_FLOOR_RGB = np.array([0.47, 0.33, 0.22], dtype=np.float32)
DEPTH_NOISE = 0.01  # standard size of the sensor noise added to the depth map


def draw_rgbd(rng: np.random.Generator, size: int, with_depth: bool) -> dict[str, np.ndarray]:
    """One indoor scene: uint8 image [3,S,S], uint8 labels and instance ids [S,S] (classes
    :data:`RGBD_CLASS_NAMES`) and, with depth, float32 depth [S,S] in [0, 1]."""
    cv = canvas(size)
    rnd = Draws(rng)
    S = float(size)
    ys = cv.ys

    # ---- the room: a wall at one depth, the floor coming nearer from the wall to the camera
    horizon = rnd.u(0.3, 0.55) * S
    wall_depth = rnd.u(0.8, 1.0)
    near_floor = rnd.u(0.5, 0.6)  # depth of the floor at the bottom row
    on_floor = ys >= horizon  # [S, 1]
    floor_t = np.clip((ys - horizon) / (S - horizon), 0.0, 1.0)
    surface = np.where(on_floor, wall_depth + (near_floor - wall_depth) * floor_t,
                       wall_depth).astype(np.float32)  # [S, 1]: depth behind every pixel

    lab = np.where(on_floor, np.uint8(FLOOR), np.uint8(WALL)).repeat(size, axis=1)
    colours = np.minimum(np.stack([_WALL_RGB, _FLOOR_RGB]) + rnd.arr(6, -0.08, 0.08)
                         .reshape(2, 3), 1.0)
    wall_shade = 255.0 * (1.0 + 0.15 * crop(cv, "blobs", rnd, size, size))
    floor_shade = 255.0 * (1.0 + 0.25 * crop(cv, "blades", rnd, size, size))
    img = np.where(on_floor[None], colours[1][:, None, None] * floor_shade,
                   colours[0][:, None, None] * wall_shade).astype(np.float32)
    depth = np.broadcast_to(surface, (size, size)).copy()

    # ---- things: pictures lie on the surface, objects stand in front of it
    things: list[tuple[float, int, int, dict[str, float]]] = []
    for _ in range(rnd.i(3, 8)):
        cls = RGBD_OBJECT if rnd.u() < 0.5 else RGBD_PICTURE
        shape = _SHAPES[rnd.i(0, len(_SHAPES))]
        p = {"cx": rnd.u(0, S), "cy": rnd.u(0, S), "theta": rnd.u(0, 2 * np.pi),
             "r": max(3.0, S * float(np.exp(rnd.u(np.log(0.06), np.log(0.16))))), "thick": 0.0}
        d = rnd.u(0.1, 0.45)  # objects stand between the camera and the room
        things.append((d if cls == RGBD_OBJECT else 2.0, cls, shape, p))
    things.sort(key=lambda t: -t[0])  # pictures first, then objects far to near

    inst = np.zeros((size, size), dtype=np.uint8)
    n_inst = 0
    for d, cls, shape, p in things:
        painted = paint_object(img, cv, rnd, shape, p)
        if painted is None:
            continue
        (y0, y1, x0, x1), m = painted
        n_inst += 1
        np.copyto(lab[y0:y1, x0:x1], np.uint8(cls), where=m)
        np.copyto(inst[y0:y1, x0:x1], np.uint8(n_inst), where=m)
        if cls == RGBD_OBJECT:
            np.copyto(depth[y0:y1, x0:x1], np.float32(d), where=m)
    # a later object may hide an earlier thing entirely: keep ids 1..M of the visible ones
    visible = np.unique(inst[inst > 0])
    remap = np.zeros(n_inst + 1, dtype=np.uint8)
    remap[visible] = np.arange(1, len(visible) + 1, dtype=np.uint8)
    inst = remap[inst]

    img += crop(cv, "sensor", rnd, size, size)
    np.clip(img, 0.0, 255.0, out=img)
    out = {"image": img.astype(np.uint8), "label": lab, "inst": inst}
    if with_depth:
        noise = DEPTH_NOISE * crop(cv, "fine", rnd, size, size)
        out["depth"] = np.clip(depth + noise, 0.0, 1.0).astype(np.float32)
    return out
