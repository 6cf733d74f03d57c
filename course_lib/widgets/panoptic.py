"""Inside Panoptic-DeepLab, one image at a time (notebook 16).

:class:`PanopticExplorer` draws what the three heads predicted (Cheng et al. 2020, Fig. 2): the
**centre heat-map** with the centres that keypoint NMS keeps at the chosen threshold, the
**offsets** (arrows from thing pixels towards their centre), and the **panoptic segmentation**
that grouping and merging make of them, next to the ground truth with its PQ. Move the
threshold and watch centres (and so objects) appear, merge or vanish.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from course_lib import viz
from course_lib.metrics.panoptic import panoptic_quality
from course_lib.models.panoptic.grouping import LABEL_DIVISOR, find_centers, panoptic_prediction
from course_lib.widgets.base import Explorer


def segment_colours(panoptic: torch.Tensor, seed: int = 0) -> np.ndarray:
    """An RGB picture [H, W, 3] of a panoptic id map: one random colour per segment, stuff
    darker, void black."""
    ids, inverse = torch.unique(panoptic, return_inverse=True)
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0.3, 1.0, (len(ids), 3))
    stuff = (ids % LABEL_DIVISOR == 0).numpy()
    colours[stuff] *= 0.35
    colours[(ids // LABEL_DIVISOR == 255).numpy()] = 0.0
    return colours[inverse.numpy()]


class PanopticExplorer(Explorer):
    """Pick an image and the centre threshold; see heat-map, centres, offsets, segments.

    Args:
        images: the images [N, C, H, W] in [0, 1].
        outputs: Panoptic-DeepLab's outputs for them (``"out"``, ``"center"``, ``"offset"``,
            e.g. from :func:`course_lib.models.panoptic.predict_outputs`).
        things: the thing classes; num_classes: ``K`` (for the PQ).
        truth: optional ground-truth panoptic ids [N, H, W].
        nms_kernel: keypoint NMS window.
    """

    def __init__(self, images: torch.Tensor, outputs: dict[str, torch.Tensor],
                 things: Sequence[int], num_classes: int, truth: torch.Tensor | None = None,
                 nms_kernel: int = 5) -> None:
        missing = {"out", "center", "offset"} - set(outputs)
        if missing:
            raise ValueError(f"outputs needs 'out', 'center' and 'offset', missing "
                             f"{sorted(missing)}")
        n = len(outputs["out"])
        if len(images) != n or (truth is not None and len(truth) != n) or n == 0:
            raise ValueError(f"{len(images)} images for {n} outputs"
                             + ("" if truth is None else f" and {len(truth)} truths"))
        self.images, self.outputs, self.truth = images, outputs, truth
        self.things, self.num_classes, self.nms_kernel = tuple(things), num_classes, nms_kernel
        self.index = W.IntSlider(value=0, min=0, max=n - 1, description="image",
                                 continuous_update=False)
        self.threshold = W.FloatSlider(value=0.1, min=0.02, max=0.9, step=0.02,
                                       description="centre ≥", continuous_update=False)
        self.picture = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.index, self.threshold]), self.picture])
        self.index.observe(self._update, names="value")
        self.threshold.observe(self._update, names="value")
        self._update()

    def analysis(self) -> dict[str, Any]:
        """The current image's centres [C, 2], panoptic ids [H, W] and (with truth) its PQ."""
        i, threshold = self.index.value, float(self.threshold.value)
        one = {k: v[i: i + 1] for k, v in self.outputs.items()}
        panoptic = panoptic_prediction(one, self.things, threshold, self.nms_kernel)[0]
        result = {"centers": find_centers(one["center"][0], threshold, self.nms_kernel),
                  "panoptic": panoptic}
        if self.truth is not None:
            result["pq"] = panoptic_quality(panoptic[None], self.truth[i: i + 1],
                                            self.num_classes, self.things)
        return result

    def figure(self) -> Any:
        a, i = self.analysis(), self.index.value
        fig = viz.CourseFigure(figsize=(15, 3.4), layout="constrained")
        axes = fig.subplots(1, 5 if self.truth is not None else 4)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0].imshow(viz.to_numpy_image(self.images[i]))
        axes[0].set_title(f"image {i}")
        heat = axes[1].imshow(self.outputs["center"][i, 0].numpy(), cmap="magma", vmin=0,
                              vmax=1)
        centers = a["centers"].numpy()
        if len(centers):
            axes[1].scatter(centers[:, 1], centers[:, 0], s=30, c="cyan", marker="x",
                            label="centres kept")
            axes[1].legend(loc="lower right", fontsize=7)
        axes[1].set_title(f"centre heat-map: {len(centers)} centres ≥ "
                          f"{self.threshold.value:.2f}", fontsize=9)
        fig.colorbar(heat, ax=axes[1], shrink=0.8)
        offset = self.outputs["offset"][i].numpy()
        h, w = offset.shape[1:]
        step = max(1, h // 16)
        ys, xs = np.mgrid[0:h:step, 0:w:step]
        thing = np.isin(self.outputs["out"][i].argmax(0).numpy(), self.things)[ys, xs]
        axes[2].imshow(viz.to_numpy_image(self.images[i]), alpha=0.4)
        axes[2].quiver(xs[thing], ys[thing], offset[1][ys, xs][thing], offset[0][ys, xs][thing],
                       angles="xy", scale_units="xy", scale=1, color="red", width=0.006)
        axes[2].set_title("offsets of thing pixels (→ centre)", fontsize=9)
        axes[3].imshow(segment_colours(a["panoptic"]))
        predicted = a["panoptic"]
        objects = len(torch.unique(predicted[predicted % LABEL_DIVISOR > 0]))
        axes[3].set_title(f"prediction: {objects} objects", fontsize=9)
        if self.truth is not None:
            truth = self.truth[i]
            axes[4].imshow(segment_colours(truth))
            objects = len(torch.unique(truth[truth % LABEL_DIVISOR > 0]))
            pq = a["pq"]["all"]["pq"]
            axes[4].set_title(f"truth: {objects} objects; PQ of this image {pq:.2f}",
                              fontsize=9)
        return fig

    def _update(self, change: Any = None) -> None:
        self.picture.value = self.to_png()


__all__ = ["PanopticExplorer", "segment_colours"]
