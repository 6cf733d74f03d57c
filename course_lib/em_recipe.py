"""EM membranes at full resolution, as the U-Net paper trained them (Ronneberger et al. 2015).

The recipe of the paper's Sec. 3, on the Drosophila VNC ssTEM sections (Gerhard et al. 2013;
1024 x 1024 px, 4.6 nm per pixel): train on sections 0-6 with random crops, elastic
deformation (the paper's key augmentation for few training images) and the border weight map
(Eq. 2: touching cells are separated by heavily weighted membrane pixels), then predict the
held-out sections 7-9 with overlap-tile inference (Fig. 2: each tile keeps only its centre,
the image border is extended by mirroring) and score membrane F1 and the ISBI 2012 pixel
error (the fraction of misclassified pixels of the binary map; Arganda-Carreras et al. 2015).

``python -m course_lib.em_recipe [--seconds 240] [--ablation] [--curve]`` prints a Markdown
table; ``--ablation`` adds one row per ingredient taken away (or added) and writes the table to
``artifacts/em/ablation.md``. Every model trains for the same wall-clock budget (the fair
comparison when an ingredient costs time); evaluation time is not counted.
:func:`cell_scores` scores notebook 08's cell/membrane models (cells and membranes at a
quarter of this resolution, the microscopy world) as pixels and as separated cells.

The elastic deformation is the paper's: random displacements on a coarse 3 x 3 grid (10 px
standard deviation) interpolated bicubically to every pixel, applied to a whole batch at once
with ``grid_sample`` (about 2 ms per crop, where a smooth per-pixel field costs 150 ms on the
CPU).

Deviations from the paper: a small U-Net (width 16, "same" padding, GroupNorm; the paper:
width 64, unpadded), Adam with a cosine learning rate decayed to zero over the time budget
instead of SGD with momentum 0.99, the weight map's class-balance term ``w_c`` left out by
default (``balance=False``: it trades membrane precision for recall and lowers F1; the border
term ``w0 exp(-(d1 + d2)^2 / 2 sigma^2)`` stays) and computed window by window (exact up to
weights < 1e-3).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy import ndimage

from course_lib import config
from course_lib.classic.pixels import otsu_threshold
from course_lib.data.medical import CELL, MEMBRANE
from course_lib.data.readers import EMStack
from course_lib.losses import pixel_weighted_cross_entropy, unet_weight_map
from course_lib.metrics.confusion import confusion_matrix
from course_lib.metrics.objects import objects_separated
from course_lib.metrics.scores import pixel_accuracy, precision_recall_f1, segmentation_metrics
from course_lib.models.unet import UNet
from course_lib.runtime import on_device
from course_lib.tiling import predict_tiled
from course_lib.train.evaluation import predict
from course_lib.train.step import optimizer_step

__all__ = ["VARIANTS", "Recipe", "border_weights", "cell_scores", "elastic_batch", "load_sections",
           "membrane_scores", "otsu_membranes", "predict_sections", "random_crop", "run_variant",
           "scheduled_lr", "split_sections", "train_recipe"]

TRAIN_SECTIONS = tuple(range(7))
TEST_SECTIONS = (7, 8, 9)
STRIDE = 16  # the U-Net's total stride (depth 4): tiles start at multiples of it


@dataclass(frozen=True)
class Recipe:
    """One training and inference configuration (the full recipe by default)."""

    elastic: bool = True  # elastic deformation of every crop
    weight_map: bool = True  # the border weight map (U-Net Eq. 2) in the loss
    balance: bool = False  # the weight map's class-balance term w_c (membrane vs cell)
    schedule: bool = True  # cosine learning rate to zero over the budget; False = constant
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
    "with the class-balance term": Recipe(balance=True),
    "without the learning-rate schedule": Recipe(schedule=False),
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


def elastic_batch(batch: torch.Tensor, generator: torch.Generator, grid: int = 3,
                  std_px: float = 10.0) -> torch.Tensor:
    """The U-Net paper's elastic deformation of ``batch`` ``[N, C, H, W]`` (one field per
    sample, shared by its channels): displacements drawn from N(0, ``std_px``^2) on a coarse
    ``grid`` x ``grid`` lattice, upsampled bicubically to every pixel, then each output pixel
    samples the input bilinearly at its displaced position (mirrored at the border).

    Channels that hold labels are interpolated too: threshold them afterwards.
    """
    if batch.dim() != 4:
        raise ValueError(f"batch must be [N, C, H, W], got {tuple(batch.shape)}")
    n, _, height, width = batch.shape
    coarse = torch.randn(n, 2, grid, grid, generator=generator) * std_px
    shift = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    # grid_sample's coordinates run from -1 to 1 over side - 1 pixels (align_corners=True)
    shift = torch.stack([shift[:, 0] * 2 / (width - 1), shift[:, 1] * 2 / (height - 1)], -1)
    ys = torch.linspace(-1, 1, height).view(1, height, 1).expand(n, height, width)
    xs = torch.linspace(-1, 1, width).view(1, 1, width).expand(n, height, width)
    where = torch.stack([xs, ys], -1) + shift.to(batch.dtype)
    return F.grid_sample(batch, where, mode="bilinear", padding_mode="reflection",
                         align_corners=True)


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
def scheduled_lr(recipe: Recipe, done: float) -> float:
    """The learning rate when the fraction ``done`` of the budget is spent: cosine from
    ``recipe.lr`` to zero (``recipe.schedule``), else constant. Short budgets gain most from
    the decay: the last steps average out Adam's noise instead of adding to it."""
    if not recipe.schedule:
        return recipe.lr
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * min(max(done, 0.0), 1.0)))


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
        wc = balanced_class_weights(membranes) if recipe.balance else (1.0, 1.0)
        weights = torch.stack([border_weights(m, wc) for m in membranes])
    else:
        weights = torch.ones(images.shape)
    model = UNet(in_channels=1, num_classes=2, width=recipe.width)
    model.normalisation = (mean, std)  # the inference uses the training statistics
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    scaler = config.grad_scaler(device)
    generator = torch.Generator().manual_seed(seed)
    steps, trained, next_report = 0, 0.0, report_every_s
    limit = config.cap_steps(max_steps if max_steps is not None else sys.maxsize)
    with on_device(device, model):
        model.train()
        while steps < limit and trained < budget_s:
            start = time.perf_counter()
            picks = torch.randint(len(images), (recipe.batch,), generator=generator).tolist()
            windows = [random_crop(images[i], membranes[i], weights[i], recipe.crop, generator)
                       for i in picks]
            # [batch, 3 = image/membrane/weight, crop, crop]: one deformation moves all three
            crops = torch.stack([torch.stack([x, y.float(), w]) for x, y, w in windows])
            if recipe.elastic:
                crops = elastic_batch(crops, generator)
            x = ((crops[:, :1] - mean) / std).to(device)
            y = (crops[:, 1] >= 0.5).long().to(device)
            w = crops[:, 2].to(device)
            for group in optimizer.param_groups:  # done: the time or the steps, whichever is ahead
                group["lr"] = scheduled_lr(recipe, max(trained / budget_s, steps / limit))
            with config.autocast(device):
                logits = model(x).float()
            loss = pixel_weighted_cross_entropy(logits, y, w)
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
    with on_device(device, model):
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


def otsu_membranes(images: torch.Tensor) -> torch.Tensor:
    """The classic baseline: each section ``[D, H, W]`` thresholded at its own Otsu level,
    membrane = the dark class (bool ``[D, H, W]``)."""
    if images.dim() != 3 or not images.is_floating_point():
        raise ValueError(f"images must be float [D, H, W] in [0, 1], got {images.dtype} "
                         f"{tuple(images.shape)}")
    return torch.stack([image <= otsu_threshold(image) for image in images])


def membrane_scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Membrane F1 (membrane = the positive class) and the ISBI 2012 pixel error (the share of
    pixels whose binary label is wrong) of bool membrane maps of the same shape."""
    if pred.shape != target.shape or pred.dtype != torch.bool or target.dtype != torch.bool:
        raise ValueError(f"pred and target must be bool maps of one shape, got {pred.dtype} "
                         f"{tuple(pred.shape)} and {target.dtype} {tuple(target.shape)}")
    cm = confusion_matrix(pred.long(), target.long(), num_classes=2, ignore_index=None)
    return {"f1": float(precision_recall_f1(cm)[2][1]), "pixel_error": 1 - pixel_accuracy(cm)}


def cell_scores(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                instance_ids: torch.Tensor | None = None
                ) -> tuple[dict[str, float], torch.Tensor]:
    """Notebook 08's scores of a cell/membrane model, and its prediction ``[N, H, W]``.

    ``labels`` ``[N, H, W]``: 0 = membrane, 1 = cell (the microscopy world's and the
    down-sampled ssTEM sections' convention). Returns ``{"cell IoU", "membrane F1",
    "membrane recall"}`` and, given the true cells' ``instance_ids``, ``"cells separated"``:
    the share of cells that one connected predicted cell region overlaps with IoU > 0.5
    (:func:`course_lib.metrics.objects_separated`), the error that U-Net's border weight map
    targets and pixel scores barely see.
    """
    if images.dim() != 4 or labels.shape != (len(images), *images.shape[-2:]):
        raise ValueError(f"expected images [N, C, H, W] and labels [N, H, W] of the same N, H, "
                         f"W, got {tuple(images.shape)} and {tuple(labels.shape)}")
    if instance_ids is not None and instance_ids.shape != labels.shape:
        raise ValueError(f"instance_ids must be [N, H, W] like labels {tuple(labels.shape)}, "
                         f"got {tuple(instance_ids.shape)}")
    pred = predict(model, images)
    met = segmentation_metrics(confusion_matrix(pred, labels, 2))
    out = {"cell IoU": float(met["iou"][CELL]), "membrane F1": float(met["f1"][MEMBRANE]),
           "membrane recall": float(met["recall"][MEMBRANE])}
    if instance_ids is not None:
        out["cells separated"] = objects_separated(pred == CELL, instance_ids)
    return out, pred


def split_sections(count: int) -> tuple[list[int], list[int]]:
    """Sections 0-6 for training and 7-9 for the test (the last one for a smaller stack)."""
    if count < 2:
        raise ValueError(f"need at least 2 sections (train and test), got {count}")
    if count > max(TEST_SECTIONS):
        return list(TRAIN_SECTIONS), list(TEST_SECTIONS)
    return list(range(count - 1)), [count - 1]


def run_variant(recipe: Recipe, images: torch.Tensor, membranes: torch.Tensor, budget_s: float,
                seed: int = 0, curve: bool = False, max_steps: int | None = None
                ) -> dict[str, object]:
    """Train on sections 0-6 (``budget_s`` seconds or ``max_steps``), score on 7-9:
    ``{"f1", "pixel_error", "seconds", "steps", "curve", "model", "prediction"}``
    (``curve``: (training seconds, F1) every 60 s when asked)."""
    train, test = split_sections(len(images))
    points: list[tuple[float, float]] = []

    def record(model: torch.nn.Module, seconds: float) -> None:
        pred = predict_sections(model, images[test], recipe)
        points.append((round(seconds), membrane_scores(pred, membranes[test])["f1"]))

    model, seconds, steps = train_recipe(
        recipe, images[train], membranes[train], budget_s, seed, max_steps=max_steps,
        on_time=record if curve else None, report_every_s=60.0)
    prediction = predict_sections(model, images[test], recipe)
    scores = membrane_scores(prediction, membranes[test])
    return {**scores, "seconds": seconds, "steps": steps, "curve": points, "model": model,
            "prediction": prediction}


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
    parser.add_argument("--seconds", "--budget-s", dest="budget_s", type=float, default=240.0,
                        help="training seconds per model (default 240)")
    parser.add_argument("--ablation", "--ablate", dest="ablate", action="store_true",
                        help="add the ablation rows and write artifacts/em/ablation.md")
    parser.add_argument("--out", type=Path, default=Path("artifacts/em"),
                        help="folder for ablation.md (with --ablation)")
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
    started = time.perf_counter()
    test = split_sections(len(images))[1]
    rows: dict[str, dict[str, object]] = {
        "Otsu threshold (classic baseline, no training)": {
            **membrane_scores(otsu_membranes(images[test]), membranes[test]),
            "seconds": 0.0, "steps": 0}}
    for name in names:
        recipe = VARIANTS[name]
        if name != "full recipe" and recipe == replace(VARIANTS["full recipe"],
                                                       overlap=recipe.overlap):
            # inference-only variant: the full recipe's model, predicted another way
            full = rows["full recipe"]
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
    total = time.perf_counter() - started
    heading = (f"ssTEM sections 0-6 -> 7-9, 1024 x 1024, seed {seed}, device "
               f"{config.get_device()}, {torch.get_num_threads()} thread(s), "
               f"{args.budget_s:.0f} s of training per model; total wall time {total:.0f} s")
    table = markdown_table(rows)
    print(f"\n{heading}:\n\n{table}")
    if args.ablate:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "ablation.md").write_text(f"{heading}.\n\n{table}\n")
        print(f"\nwritten to {args.out / 'ablation.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
