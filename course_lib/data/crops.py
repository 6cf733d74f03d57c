"""Single-object crops of the shapes world: the classification data of survey section 2.

Notebooks 01-04 (CNNs, autoencoders, GANs) learn on small square images of one object each,
cut out of :class:`~course_lib.data.synthetic.ShapesWorld` scenes and labelled by shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .synthetic import CLASS_NAMES, THING_CLASSES, ShapesWorld

# Shape classes of the shapes world used for classification (disk … wire); car and boat look
# identical and are told apart only by their surroundings, so they are left out by default.
SHAPE_CLASSES: tuple[int, ...] = (4, 5, 6, 7, 8, 9)


class ShapeCrops(torch.utils.data.Dataset):
    """Square crops of single thing instances of the shapes world, resized, labelled by shape.

    Each image of ``ShapesWorld(target="all")`` gives boxes, labels and visible masks of its
    objects; every object of a class in ``classes`` whose visible mask has at least
    ``min_area`` pixels becomes one crop: its box is made square (the longer side, plus
    ``margin`` of context on each side) and resampled to ``crop_size`` x ``crop_size`` with
    :func:`torchvision.ops.roi_align` (all crops of an image in one call, no Python loop over
    pixels). The label is the index of the class in ``classes`` (0 … len(classes) - 1).

    All crops are built once and kept in memory: ``.images`` float32 [N, 3, S, S] in [0, 1],
    ``.labels`` int64 [N], ``.class_names``.
    """

    def __init__(
        self,
        num_images: int,
        crop_size: int = 32,
        image_size: int | None = None,
        seed: int = 0,
        split: str = "train",
        classes: Sequence[int] = SHAPE_CLASSES,
        margin: float = 0.15,
        min_area: int = 24,
    ) -> None:
        from torchvision.ops import roi_align  # imported here: importing the models stays light

        for name, value in (("num_images", num_images), ("crop_size", crop_size)):
            if value <= 0:
                raise ValueError(f"ShapeCrops: {name} must be > 0, got {value}")
        bad = [c for c in classes if c not in THING_CLASSES]
        if bad or not classes:
            raise ValueError(
                f"ShapeCrops: classes must be thing classes {THING_CLASSES}, got {tuple(classes)}"
            )
        self.classes = tuple(int(c) for c in classes)
        self.class_names = tuple(CLASS_NAMES[c] for c in self.classes)
        self.crop_size = crop_size
        lookup = torch.full((max(THING_CLASSES) + 1,), -1, dtype=torch.long)
        lookup[list(self.classes)] = torch.arange(len(self.classes))

        world = ShapesWorld(num_images, image_size=image_size, seed=seed, split=split,
                            target="all")
        crops, labels = [], []
        for index in range(len(world)):
            sample = world[index]
            boxes = torch.as_tensor(sample["boxes"], dtype=torch.float32).reshape(-1, 4)
            cls = torch.as_tensor(sample["labels"], dtype=torch.long).reshape(-1)
            if cls.numel() == 0:
                continue
            area = torch.as_tensor(sample["masks"]).flatten(1).sum(1)
            keep = (lookup[cls.clamp(max=len(lookup) - 1)] >= 0) & (area >= min_area)
            if not keep.any():
                continue
            boxes, cls = boxes[keep], cls[keep]
            # Square box around the object's centre, with a margin of context.
            centre = (boxes[:, :2] + boxes[:, 2:]) / 2
            half = (boxes[:, 2:] - boxes[:, :2]).amax(1, keepdim=True) * (0.5 + margin)
            square = torch.cat([centre - half, centre + half], dim=1)
            image = torch.as_tensor(sample["image"], dtype=torch.float32)[:3]
            crops.append(roi_align(image[None], [square], output_size=crop_size,
                                   spatial_scale=1.0, sampling_ratio=2, aligned=True))
            labels.append(lookup[cls])
        if not crops:
            raise ValueError(f"ShapeCrops: no object of classes {self.classes} in "
                             f"{num_images} images; use more images")
        self.images = torch.cat(crops).clamp(0, 1)
        self.labels = torch.cat(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


__all__ = ["SHAPE_CLASSES", "ShapeCrops"]
