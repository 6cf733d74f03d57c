"""Classic (pre-deep-learning) segmentation methods, the survey's starting point.

The survey's introduction lists the early methods deep learning replaced: thresholding,
histogram-based grouping, region growing, k-means clustering and watershed methods.
Notebook 00 runs each one on the shapes world and scores it against a small CNN.

Every function here is vectorised with torch: whole-image tensor operations, with Python
loops only over *iterations* of an iterative algorithm (Lloyd steps, dilation steps,
erosion steps), never over pixels. Morphology is done with max-pooling: a 3x3 max-pool
is a dilation with a 3x3 square, and ``-maxpool(-x)`` is an erosion.

Conventions: images are float tensors ``[3, H, W]`` (or ``[H, W]`` grey) with values in
[0, 1], or integer tensors with values 0..255; numpy arrays are accepted too. Masks are
bool ``[H, W]``; label maps are int64 ``[H, W]`` with 0 meaning "no object".

The modules: :mod:`~course_lib.classic.pixels` (grey levels, thresholds, k-means),
:mod:`~course_lib.classic.regions` (region growing), :mod:`~course_lib.classic.morphology`
(components, distance transform, watershed) and :mod:`~course_lib.classic.oracles`
(ground-truth-assisted scoring).
"""

from .morphology import distance_transform, label_components, watershed_split
from .oracles import best_polarity, majority_foreground
from .pixels import (
    gray_histogram,
    kmeans_segment,
    otsu_threshold,
    threshold_segment,
    to_gray,
)
from .regions import border_seeds, region_growing, seeded_region_growing

__all__ = [
    "to_gray",
    "gray_histogram",
    "otsu_threshold",
    "threshold_segment",
    "kmeans_segment",
    "region_growing",
    "seeded_region_growing",
    "border_seeds",
    "best_polarity",
    "majority_foreground",
    "label_components",
    "distance_transform",
    "watershed_split",
]
