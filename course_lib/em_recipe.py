"""EM membranes at full resolution, as the U-Net paper trained them (Ronneberger et al. 2015).

The recipe of the paper's Sec. 3, on the Drosophila VNC ssTEM sections (Gerhard et al. 2013;
1024 x 1024 px, 4.6 nm per pixel): train on sections 0-6 with random crops, elastic
deformation (the paper's key augmentation for few training images) and the border weight map
(Eq. 2: touching cells are separated by heavily weighted membrane pixels), then predict the
held-out sections 7-9 with overlap-tile inference (Fig. 2: each tile keeps only its centre,
the image border is extended by mirroring) and score membrane F1 and the ISBI 2012 pixel
error (the fraction of misclassified pixels of the binary map; Arganda-Carreras et al. 2015).

``python -m course_lib.em_recipe [--budget-s 240] [--ablate] [--curve]`` prints a Markdown
table; ``--ablate`` adds one row per ingredient taken away. Every model trains for the same
wall-clock budget; evaluation time is not counted.

Deviations from the paper: a small U-Net (width 16, "same" padding; the paper: width 64,
unpadded), Adam instead of SGD with momentum 0.99, torchvision's smooth elastic field
(:class:`~course_lib.data.transforms.ElasticDeform`) instead of a 3 x 3 grid of random
displacements, and the border term computed window by window (exact up to weights < 1e-3).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy import ndimage
from torchvision import tv_tensors

from course_lib import config
from course_lib.data.readers import EMStack
from course_lib.data.transforms import ElasticDeform
from course_lib.losses import unet_weight_map
from course_lib.metrics.confusion import confusion_matrix
from course_lib.metrics.scores import pixel_accuracy, precision_recall_f1
from course_lib.models.unet import UNet
from course_lib.tiling import predict_tiled
from course_lib.train.step import optimizer_step

__all__ = ["VARIANTS", "Recipe", "border_weights", "load_sections", "membrane_scores",
           "predict_sections", "random_crop", "run_variant", "train_recipe"]

TRAIN_SECTIONS = tuple(range(7))
TEST_SECTIONS = (7, 8, 9)
STRIDE = 16  # the U-Net's total stride (depth 4): tiles start at multiples of it


@dataclass(frozen=True)
class Recipe:
    """One training and inference configuration (the full recipe by default)."""

    elastic: bool = True  # elastic deformation of every crop
    weight_map: bool = True  # the border weight map (U-Net Eq. 2) in the loss
    overlap: int = 64  # overlap-tile inference; 0 = plain non-overlapping tiles
    scale: int = 1  # 2 = train and predict at half resolution, score at full
    crop: int = 256
    batch: int = 2
    tile: int = 256
    width: int = 16
    lr: float = 2e-3


VARIANTS: dict[str, Recipe] = {
    "full recipe": Recipe(),
    "without elastic deformation": Recipe(elastic=False),
    "without the weight map": Recipe(weight_map=False),
    "without overlap-tile (plain tiles)": Recipe(overlap=0),
    "at half resolution": Recipe(scale=2),
}


# ------------------------------------------------------------------------------------------
# Data: sections, border weights, crops
# ------------------------------------------------------------------------------------------
def default_root() -> Path:
    """``COURSE_DATA_MIRROR`` when set, else ``config.data_dir()/"real"``."""
    return Path(os.environ.get("COURSE_DATA_MIRROR") or config.data_dir() / "real")


def load_sections(root: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """All ssTEM sections: images float ``[D, H, W]`` in [0, 1], membranes bool ``[D, H, W]``.

    Raises FileNotFoundError (from :class:`EMStack`) naming the folder when the data is absent.
    """
    stack = EMStack(root, kind="sstem")
    items = [stack[i] for i in range(len(stack))]
    images = torch.stack([it["image"][0] for it in items]).float() / 255
    membranes = torch.stack([it["mask"] for it in items]).bool()
    return images, membranes


def border_weights(membranes: torch.Tensor, class_weights: tuple[float, float],
                   window: int = 128, margin: int = 24) -> torch.Tensor:
    """U-Net's weight map ``[H, W]`` of one section (cells = connected non-membrane regions).

    :func:`course_lib.losses.unet_weight_map` on overlapping windows: each ``window`` square
    is computed with ``margin`` pixels of context, enough for the border term
    ``w0 exp(-(d1 + d2)^2 / 2 sigma^2)`` (w0 = 10, sigma = 5) to be exact up to < 1e-3 (it is
    below that once d1 + d2 > 24), while one 1024^2 pass would need a distance transform of
    the whole section per cell. ``class_weights``: (membrane, cell), the paper's ``w_c``.
    """
    if membranes.dim() != 2 or membranes.dtype != torch.bool:
        raise ValueError(f"membranes must be a bool [H, W] map, got {membranes.dtype} "
                         f"{tuple(membranes.shape)}")
    cells, _ = ndimage.label(~membranes.numpy())
    ids = torch.from_numpy(cells).long()
    height, width = ids.shape
    out = torch.empty(height, width)
    for r in range(0, height, window):
        for c in range(0, width, window):
            r0, c0 = max(r - margin, 0), max(c - margin, 0)
            part = unet_weight_map(ids[r0:r + window + margin, c0:c + window + margin],
                                   class_weights=class_weights)
            out[r:r + window, c:c + window] = part[r - r0:r - r0 + window, c - c0:c - c0 + window]
    return out


def balanced_class_weights(membranes: torch.Tensor) -> tuple[float, float]:
    """``w_c`` = (membrane, cell) = ``N / (2 * count)``: both classes weigh the same in total."""
    share = membranes.float().mean().item()
    return 0.5 / share, 0.5 / (1 - share)


def random_crop(image: torch.Tensor, label: torch.Tensor, weight: torch.Tensor, size: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same random ``size`` square of image, label and weight map (all ``[H, W]``)."""
    if not image.shape == label.shape == weight.shape:
        raise ValueError(f"image, label and weight must share [H, W], got {tuple(image.shape)}, "
                         f"{tuple(label.shape)}, {tuple(weight.shape)}")
    height, width = image.shape
    if size > min(height, width):
        raise ValueError(f"crop {size} is larger than the section {height}x{width}")
    r = int(torch.randint(height - size + 1, (1,), generator=generator))
    c = int(torch.randint(width - size + 1, (1,), generator=generator))
    window = (slice(r, r + size), slice(c, c + size))
    return image[window], label[window], weight[window]


def downscale(images: torch.Tensor, membranes: torch.Tensor, scale: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sections at ``1/scale`` resolution: images area-averaged, membrane where >= half of
    the block is membrane."""
    if scale == 1:
        return images, membranes
    pooled = F.avg_pool2d(torch.stack([images, membranes.float()], 1), scale)
    return pooled[:, 0], pooled[:, 1] >= 0.5


# ------------------------------------------------------------------------------------------
# Training and inference
# ------------------------------------------------------------------------------------------
def train_recipe(recipe: Recipe, images: torch.Tensor, membranes: torch.Tensor,
                 budget_s: float, seed: int = 0, max_steps: int | None = None,
                 on_time: Callable[[torch.nn.Module, float], None] | None = None,
                 report_every_s: float = 60.0) -> tuple[torch.nn.Module, float, int]:
    """Train a U-Net on ``images``/``membranes`` ``[D, H, W]`` for ``budget_s`` seconds of
    training (or ``max_steps``; smoke runs stop after 2). ``on_time(model, seconds)`` is
    called every ``report_every_s`` training seconds (its time is not counted).

    Returns the model, the training seconds and the number of steps.
    """
    config.seed_everything(seed)
    device = config.get_device()
    images, membranes = downscale(images, membranes, recipe.scale)
    mean, std = images.mean().item(), images.std().item()
    if recipe.weight_map:
        wc = balanced_class_weights(membranes)
        weights = torch.stack([border_weights(m, wc) for m in membranes])
    else:
        weights = torch.ones(images.shape)
    model = UNet(in_channels=1, num_classes=2, width=recipe.width).to(device)
    model.normalisation = (mean, std)  # the inference uses the training statistics
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    scaler = config.grad_scaler(device)
    elastic = ElasticDeform(alpha=40.0, sigma=6.0, p=1.0)
    generator = torch.Generator().manual_seed(seed)
    steps, trained, next_report = 0, 0.0, report_every_s
    limit = config.cap_steps(max_steps if max_steps is not None else sys.maxsize)
    model.train()
    while steps < limit and trained < budget_s:
        start = time.perf_counter()
        picks = torch.randint(len(images), (recipe.batch,), generator=generator).tolist()
        crops = [random_crop(images[i], membranes[i], weights[i], recipe.crop, generator)
                 for i in picks]
        if recipe.elastic:
            crops = [elastic(tv_tensors.Image(x[None]),
                             tv_tensors.Mask(torch.stack([y.float(), w])))
                     for x, y, w in crops]
            crops = [(x[0], m[0], m[1]) for x, m in crops]
        x = ((torch.stack([c[0] for c in crops])[:, None] - mean) / std).to(device)
        y = torch.stack([c[1] for c in crops]).long().to(device)
        w = torch.stack([c[2] for c in crops]).to(device)
        with config.autocast(device):
            pixel_loss = F.cross_entropy(model(x).float(), y, reduction="none")
        loss = (pixel_loss * w).sum() / w.sum()
        optimizer_step(loss, optimizer, scaler)
        steps += 1
        trained += time.perf_counter() - start
        if on_time is not None and trained >= next_report:
            on_time(model, trained)
            model.train()
            next_report += report_every_s
    return model, trained, steps


def predict_sections(model: torch.nn.Module, images: torch.Tensor, recipe: Recipe
                     ) -> torch.Tensor:
    """Membrane maps bool ``[D, H, W]`` at the images' full resolution.

    Overlap-tile (``recipe.overlap > 0``): the section is mirrored by ``overlap / 2`` at its
    border and predicted on tiles overlapping by ``overlap`` (each pixel from the tile whose
    centre is nearest); plain tiles: side by side, each predicted from its own pixels only.
    """
    device = config.get_device()
    mean, std = model.normalisation
    pad = recipe.overlap // 2
    maps = []
    for image in images:
        small = downscale(image[None], image[None] > 0, recipe.scale)[0][0]
        x = ((small - mean) / std)[None, None]
        x = F.pad(x, (pad,) * 4, mode="reflect")[0].to(device) if pad else x[0].to(device)
        with config.autocast(device):
            logits = predict_tiled(model, x, recipe.tile, recipe.overlap, batch_size=4).float()
        logits = logits[:, pad:logits.shape[1] - pad, pad:logits.shape[2] - pad]
        if recipe.scale != 1:
            logits = F.interpolate(logits[None], size=image.shape, mode="bilinear",
                                   align_corners=False)[0]
        maps.append((logits.argmax(0) == 1).cpu())
    return torch.stack(maps)


def membrane_scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Membrane F1 (membrane = the positive class) and the ISBI 2012 pixel error (the share of
    pixels whose binary label is wrong) of bool membrane maps of the same shape."""
    if pred.shape != target.shape or pred.dtype != torch.bool or target.dtype != torch.bool:
        raise ValueError(f"pred and target must be bool maps of one shape, got {pred.dtype} "
                         f"{tuple(pred.shape)} and {target.dtype} {tuple(target.shape)}")
    cm = confusion_matrix(pred.long(), target.long(), num_classes=2, ignore_index=None)
    return {"f1": float(precision_recall_f1(cm)[2][1]), "pixel_error": 1 - pixel_accuracy(cm)}


def split_sections(count: int) -> tuple[list[int], list[int]]:
    """Sections 0-6 for training and 7-9 for the test (the last one for a smaller stack)."""
    if count < 2:
        raise ValueError(f"need at least 2 sections (train and test), got {count}")
    if count > max(TEST_SECTIONS):
        return list(TRAIN_SECTIONS), list(TEST_SECTIONS)
    return list(range(count - 1)), [count - 1]


def run_variant(recipe: Recipe, images: torch.Tensor, membranes: torch.Tensor, budget_s: float,
                seed: int = 0, curve: bool = False) -> dict[str, object]:
    """Train on sections 0-6, score on 7-9: ``{"f1", "pixel_error", "seconds", "steps",
    "curve"}`` (``curve``: (training seconds, F1) every 60 s when asked)."""
    train, test = split_sections(len(images))
    points: list[tuple[float, float]] = []

    def record(model: torch.nn.Module, seconds: float) -> None:
        pred = predict_sections(model, images[test], recipe)
        points.append((round(seconds), membrane_scores(pred, membranes[test])["f1"]))

    model, seconds, steps = train_recipe(
        recipe, images[train], membranes[train], budget_s, seed,
        on_time=record if curve else None, report_every_s=60.0)
    scores = membrane_scores(predict_sections(model, images[test], recipe), membranes[test])
    return {**scores, "seconds": seconds, "steps": steps, "curve": points, "model": model}


def markdown_table(rows: dict[str, dict[str, object]]) -> str:
    lines = ["| variant | membrane F1 | pixel error | training s | steps |",
             "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['f1']:.3f} | {r['pixel_error']:.4f} | {r['seconds']:.0f} | "
              f"{r['steps']} |" for name, r in rows.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None,
                        help="folder holding drosophila_vnc_sstem (default: COURSE_DATA_MIRROR "
                             "or data/real)")
    parser.add_argument("--budget-s", type=float, default=240.0)
    parser.add_argument("--ablate", action="store_true", help="add the ablation rows")
    parser.add_argument("--curve", action="store_true", help="F1 every 60 training seconds")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    root = args.root or default_root()
    try:
        images, membranes = load_sections(root)
    except FileNotFoundError as err:
        print(f"em_recipe skipped: the ssTEM sections are not available ({err}). Put the "
              "drosophila_vnc_sstem folder there, set COURSE_DATA_MIRROR, or run "
              "course_lib.data.sources.fetch('sstem').")
        return 0
    seed = config.course_seed() if args.seed is None else args.seed
    names = list(VARIANTS) if args.ablate else ["full recipe"]
    rows: dict[str, dict[str, object]] = {}
    for name in names:
        recipe = VARIANTS[name]
        if recipe == replace(VARIANTS["full recipe"], overlap=recipe.overlap) and rows:
            # inference-only variant: the full recipe's model, predicted another way
            full = rows["full recipe"]
            test = split_sections(len(images))[1]
            pred = predict_sections(full["model"], images[test], recipe)
            rows[name] = {**full, **membrane_scores(pred, membranes[test])}
        else:
            rows[name] = run_variant(recipe, images, membranes, args.budget_s, seed,
                                     curve=args.curve and name == "full recipe")
        print(f"{name}: F1 {rows[name]['f1']:.3f}, pixel error {rows[name]['pixel_error']:.4f}, "
              f"{rows[name]['seconds']:.0f} s, {rows[name]['steps']} steps", flush=True)
    if rows["full recipe"]["curve"]:
        print("F1 vs training seconds (full recipe):",
              ", ".join(f"{s} s: {f:.3f}" for s, f in rows["full recipe"]["curve"]))
    print(f"\nssTEM sections 0-6 -> 7-9, 1024 x 1024, seed {seed}, device "
          f"{config.get_device()}, {torch.get_num_threads()} thread(s):\n")
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
