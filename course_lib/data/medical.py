"""The shapes world's medical variants (notebook 08): EM-like sections of touching cells
(``variant="microscopy"``) and 3D volumes with tiny lesions (``variant="volume"``)."""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["MICROSCOPY_CLASS_NAMES", "MICROSCOPY_PALETTE", "VOLUME_CLASS_NAMES",
           "VOLUME_PALETTE", "MAX_LESION_FRACTION", "MEMBRANE", "CELL", "LESION"]

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


def draw_microscopy(rng: np.random.Generator, size: int,
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


def draw_volume(rng: np.random.Generator, size: int,
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
