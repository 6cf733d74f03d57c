"""The pre-training task of :mod:`course_lib.pretrain`: its data, targets, network and scores.

Scenes of a shapes world of its own (world seed ``PRETRAIN_WORLD + seed``, never the scenes a
notebook trains on) and two classification problems on them, with no masks in the loss:
each object is classified from the encoder's features at its centre, and the scene by which
of the twelve classes it shows. Change what this module computes and bump
``pretrain.RECIPE_VERSION``: the cached weights were trained on the old task.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .data.synthetic import NUM_CLASSES, THING_CLASSES, ShapesWorld
from .runtime import evaluating

PRETRAIN_WORLD = 1000  # pre-training scenes come from world seed PRETRAIN_WORLD + seed
MIN_OBJECT_PIXELS = 8  # smaller visible objects are not asked about (a few pixels of a wire)
MIN_SCENE_PIXELS = 4  # a class "appears" in a scene with at least this many pixels


# --------------------------------------------------------------------------------------------
# Targets: objects (class and centre) and scenes (classes present), from the label maps
# --------------------------------------------------------------------------------------------
def scene_tensors(num_images: int, image_size: int, seed: int,
                  split: str = "train") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(images uint8 [N,3,S,S], labels [N,S,S], instance ids [N,S,S])`` of the pre-training
    world (cached under ``data/cache`` like every shapes-world set)."""
    world = ShapesWorld(num_images, image_size=image_size, seed=PRETRAIN_WORLD + seed,
                        split=split, cache=True)
    raws = [world.raw(i) for i in range(len(world))]
    return (torch.stack([torch.from_numpy(r["image"]) for r in raws]),
            torch.stack([torch.from_numpy(r["label"]) for r in raws]).long(),
            torch.stack([torch.from_numpy(r["inst"]) for r in raws]).long())


def object_table(labels: torch.Tensor, instances: torch.Tensor,
                 min_pixels: int = MIN_OBJECT_PIXELS) -> dict[str, torch.Tensor]:
    """Every visible object of at least ``min_pixels`` pixels: ``image`` (index), ``label``
    (0..7 = thing class - 4), ``centre`` ([M, 2] y, x in pixel units, pixel centres at +0.5).

    One pass over all pixels (``index_add_`` keyed by image and instance id), no loop.
    """
    if labels.shape != instances.shape or labels.dim() != 3:
        raise ValueError(f"labels and instances must be [N, H, W] of one shape, got "
                         f"{tuple(labels.shape)} and {tuple(instances.shape)}")
    n, h, w = labels.shape
    ids = int(instances.max()) + 1 if instances.numel() else 1
    key = (torch.arange(n).view(n, 1, 1) * ids + instances).flatten()
    ys = (torch.arange(h, dtype=torch.float64) + 0.5).view(1, h, 1).expand(n, h, w).flatten()
    xs = (torch.arange(w, dtype=torch.float64) + 0.5).view(1, 1, w).expand(n, h, w).flatten()
    slots = n * ids
    count = torch.zeros(slots, dtype=torch.float64).index_add_(0, key, torch.ones_like(ys))
    sum_y = torch.zeros(slots, dtype=torch.float64).index_add_(0, key, ys)
    sum_x = torch.zeros(slots, dtype=torch.float64).index_add_(0, key, xs)
    cls = torch.zeros(slots, dtype=torch.long).scatter_(0, key, labels.flatten())
    keep = ((count >= min_pixels) & (torch.arange(slots) % ids != 0)).nonzero().flatten()
    centre = torch.stack([sum_y[keep] / count[keep], sum_x[keep] / count[keep]], 1).float()
    return {"image": keep // ids, "label": cls[keep] - THING_CLASSES[0], "centre": centre}


def scene_labels(labels: torch.Tensor, min_pixels: int = MIN_SCENE_PIXELS) -> torch.Tensor:
    """Multi-hot [N, 12]: which classes cover at least ``min_pixels`` pixels of each image."""
    flat = labels.flatten(1)
    counts = torch.zeros(len(labels), NUM_CLASSES).scatter_add_(1, flat, torch.ones(flat.shape))
    return (counts >= min_pixels).float()


# --------------------------------------------------------------------------------------------
# The pre-training network: the encoder plus two linear classifiers
# --------------------------------------------------------------------------------------------
def _features(encoder: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    out = encoder(x)
    feats = [out] if isinstance(out, torch.Tensor) else (
        list(out.values()) if isinstance(out, Mapping) else [])
    if not feats or any(not isinstance(f, torch.Tensor) or f.dim() != 4 for f in feats):
        got = (f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor)
               else type(out).__name__)
        raise ValueError("an encoder to pre-train must return a feature map [N, C, h, w] or "
                         f"a dict of them, got {got}")
    return feats


class Classifiers(nn.Module):
    """Encoder + object classifier (features at the object's centre, every stage
    concatenated) + scene classifier (global average of the deepest feature)."""

    def __init__(self, encoder: nn.Module, in_channels: int) -> None:
        super().__init__()
        self.encoder = encoder
        with evaluating(encoder):
            feats = _features(encoder, torch.zeros(1, in_channels, 64, 64))
        self.objects = nn.Linear(sum(f.shape[1] for f in feats), len(THING_CLASSES))
        self.scene = nn.Linear(feats[-1].shape[1], NUM_CLASSES)

    def forward(self, x: torch.Tensor, image: torch.Tensor,
                centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Object logits [M, 8] for objects ``image`` [M] at ``centre`` [M, 2] (y, x pixels)
        and scene logits [N, 12]."""
        feats = _features(self.encoder, x)
        h, w = x.shape[-2:]
        # grid_sample's coordinates: x then y, -1 and 1 at the outer edges of the image
        grid = torch.stack([centre[:, 1] / w, centre[:, 0] / h], 1).mul(2).sub(1).view(-1, 1, 1, 2)
        at_centre = [F.grid_sample(f[image], grid, align_corners=False).flatten(1) for f in feats]
        return self.objects(torch.cat(at_centre, 1)), self.scene(feats[-1].mean((2, 3)))


# --------------------------------------------------------------------------------------------
# Measuring: which objects a batch holds, and the held-out scores
# --------------------------------------------------------------------------------------------
def objects_of(batch: torch.Tensor, objects: dict[str, torch.Tensor],
                num_images: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The objects of the images ``batch`` (indices, no repeats): position in the batch,
    label, centre."""
    position = torch.full((num_images,), -1, dtype=torch.long)
    position[batch] = torch.arange(len(batch))
    mine = position[objects["image"]] >= 0
    return (position[objects["image"][mine]], objects["label"][mine], objects["centre"][mine])


def measure(net: Classifiers, images: torch.Tensor, labels: torch.Tensor,
            instances: torch.Tensor, batch_size: int = 64) -> dict[str, float]:
    """Held-out scores: object accuracy (chance 1/8) and the scene classifier's F1."""
    objects = object_table(labels, instances)
    truth = scene_labels(labels)
    right, total, tp, fp, fn = 0, 0, 0.0, 0.0, 0.0
    device = next(net.parameters()).device
    with evaluating(net):
        for start in range(0, len(images), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(images)))
            where, label, centre = objects_of(idx, objects, len(images))
            x = images[idx].to(device).float() / 255
            obj, scene = net(x, where.to(device), centre.to(device))
            right += int((obj.argmax(1).cpu() == label).sum())
            total += len(label)
            said, true = scene.cpu() > 0, truth[idx] > 0
            tp += float((said & true).sum())
            fp += float((said & ~true).sum())
            fn += float((~said & true).sum())
    return {"object_accuracy": right / max(total, 1),
            "scene_f1": 2 * tp / max(2 * tp + fp + fn, 1.0)}
