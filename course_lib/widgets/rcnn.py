"""Inside a Mask R-CNN, one object at a time (notebook 10).

:class:`MaskRCNNExplorer` shows, for the object you pick, the way Mask R-CNN found it (He et
al. 2017, Fig. 1): the **proposal** the RPN offered and the box the box head refined it into,
the **RoI** as RoIAlign reads it (the 14x14 bins on the pyramid level FPN's Eq. 1 picked),
the mask head's **28x28** mask of the object's class, and that mask **pasted back** into the
image (resized into the box, thresholded at 0.5), next to the ground truth when given.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch import nn
from torchvision.ops import box_iou

from course_lib import viz
from course_lib.runtime import evaluating, model_device
from course_lib.widgets.base import Explorer


class MaskRCNNExplorer(Explorer):
    """Pick an image and one of its detections; see its proposal, RoI, 28x28 mask, paste.

    Args:
        model: a :class:`~course_lib.models.rcnn.MaskRCNN` (or PANet), trained.
        images: the images to browse (``[C, H, W]`` floats in [0, 1]).
        targets: optional ground truth per image (``"masks"``), for the mask IoU shown.
        class_names: names of the labels (0 = background).
        score_threshold: detections below it are not offered.
    """

    def __init__(self, model: nn.Module, images: Sequence[torch.Tensor],
                 targets: Sequence[dict[str, torch.Tensor]] | None = None,
                 class_names: Sequence[str] | None = None, score_threshold: float = 0.5) -> None:
        if not hasattr(model, "explain"):
            raise ValueError(f"model must be a MaskRCNN (with .explain), got "
                             f"{type(model).__name__}")
        if len(images) == 0:
            raise ValueError("images is empty")
        if targets is not None and len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.model, self.images, self.targets = model, list(images), targets
        self.class_names = list(class_names) if class_names is not None else None
        self.score_threshold = float(score_threshold)
        self._cache: dict[int, dict[str, Any]] = {}
        self.index = W.IntSlider(value=0, min=0, max=len(self.images) - 1, description="image",
                                 continuous_update=False)
        self.object = W.IntSlider(value=0, min=0, max=0, description="object",
                                  continuous_update=False)
        self.picture = W.Image(format="png")
        self.table = W.HTML()
        self.widget = W.VBox([W.HBox([self.index, self.object]), self.picture, self.table])
        self.index.observe(self._on_image, names="value")
        self.object.observe(self._update, names="value")
        self._on_image()

    # -- data -------------------------------------------------------------------------------
    def analysis(self, index: int | None = None) -> dict[str, Any]:
        """The model's view of one image: its detections above the threshold (best first)
        with their proposals, levels and 28x28 masks, and each one's mask IoU with the best
        matching ground-truth object (NaN without targets)."""
        i = self.index.value if index is None else int(index)
        if i not in self._cache:
            image = self.images[i]
            with evaluating(self.model):
                info = self.model.explain([image.to(model_device(self.model))])
            d = {k: v.cpu() for k, v in info["detections"][0].items()}
            keep = d["scores"] >= self.score_threshold
            entry = {k: v[keep] for k, v in d.items()}
            entry["proposal"] = info["proposals"][0].cpu()[info["sources"][0].cpu()[keep]]
            entry["masks28"] = info["masks28"][0].cpu()[keep][:, 0]
            entry["level"] = info["levels"][0].cpu()[keep]
            entry["iou"] = torch.full((int(keep.sum()),), float("nan"))
            if self.targets is not None and len(self.targets[i]["masks"]) and keep.any():
                pred = entry["masks"][:, 0] >= 0.5
                gt = self.targets[i]["masks"].bool()
                inter = (pred[:, None] & gt[None]).flatten(2).sum(2).double()
                union = (pred[:, None] | gt[None]).flatten(2).sum(2).double()
                entry["iou"] = (inter / union.clamp(min=1)).max(1).values
            self._cache[i] = entry
        return self._cache[i]

    def _name(self, label: int) -> str:
        if self.class_names is not None and 0 <= label < len(self.class_names):
            return self.class_names[label]
        return str(label)

    # -- views ------------------------------------------------------------------------------
    def figure(self) -> Any:
        """Image with all detections; the picked one's proposal → box, RoI bins, 28x28, paste."""
        a, i = self.analysis(), self.index.value
        image = viz.to_numpy_image(self.images[i])
        fig = viz.CourseFigure(figsize=(15.5, 3.6), layout="constrained")
        axes = fig.subplots(1, 5)
        axes[0].imshow(image)
        axes[0].set_title(f"image {i}: {len(a['boxes'])} detections >= {self.score_threshold}")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        if len(a["boxes"]) == 0:
            for ax in axes[1:]:
                ax.set_axis_off()
            axes[2].text(0.5, 0.5, "no detection above the threshold", ha="center")
            return fig
        k = min(self.object.value, len(a["boxes"]) - 1)
        for j, box in enumerate(a["boxes"].tolist()):
            picked = j == k
            axes[0].add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False,
                                        edgecolor="yellow" if picked else "white",
                                        linewidth=2.2 if picked else 0.8))
        box, prop = a["boxes"][k].tolist(), a["proposal"][k].tolist()
        label, score, level = int(a["labels"][k]), float(a["scores"][k]), int(a["level"][k])
        # the crop around proposal and box
        x0, y0 = max(0, int(min(box[0], prop[0])) - 4), max(0, int(min(box[1], prop[1])) - 4)
        x1 = min(image.shape[1], int(max(box[2], prop[2])) + 5)
        y1 = min(image.shape[0], int(max(box[3], prop[3])) + 5)
        for ax in axes[1:3]:
            ax.imshow(image[y0:y1, x0:x1], extent=(x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5))
        axes[1].add_patch(Rectangle(prop[:2], prop[2] - prop[0], prop[3] - prop[1], fill=False,
                                    edgecolor="cyan", linestyle="--", linewidth=1.8,
                                    label="RPN proposal"))
        axes[1].add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False,
                                    edgecolor="yellow", linewidth=1.8, label="refined box"))
        axes[1].legend(loc="lower center", fontsize=7, bbox_to_anchor=(0.5, -0.25), ncol=2)
        axes[1].set_title("proposal → box head")
        bins = 14  # the mask branch's RoIAlign grid
        for t in np.linspace(0, 1, bins + 1):
            axes[2].plot([box[0] + t * (box[2] - box[0])] * 2, [box[1], box[3]], color="yellow",
                         linewidth=0.4)
            axes[2].plot([box[0], box[2]], [box[1] + t * (box[3] - box[1])] * 2, color="yellow",
                         linewidth=0.4)
        axes[2].set_title(f"RoI: {bins}x{bins} RoIAlign bins\non P{level + 2} "
                          f"(stride {2 ** (level + 2)})", fontsize=9)
        im = axes[3].imshow(a["masks28"][k].numpy(), cmap="magma", vmin=0, vmax=1)
        fig.colorbar(im, ax=axes[3], fraction=0.046, label="mask probability")
        axes[3].set_title(f"28x28 mask of '{self._name(label)}' ({score:.2f})", fontsize=9)
        pasted = a["masks"][k, 0].numpy()
        axes[4].imshow(image)
        axes[4].contour(pasted, levels=[0.5], colors=["yellow"], linewidths=1.5)
        iou = float(a["iou"][k])
        if self.targets is not None and len(self.targets[i]["masks"]):
            gt = self.targets[i]["masks"].bool()
            best = int(box_iou(a["boxes"][k : k + 1], self.targets[i]["boxes"].float()).argmax())
            axes[4].contour(gt[best].float().numpy(), levels=[0.5], colors=["cyan"],
                            linewidths=1.0, linestyles="--")
        axes[4].set_title("pasted back (yellow)" + ("" if np.isnan(iou) else
                                                    f", ground truth (cyan)\nmask IoU {iou:.2f}"),
                          fontsize=9)
        return fig

    def table_html(self) -> str:
        """The image's detections: class, score, level, proposal, box, mask IoU."""
        a = self.analysis()
        rows = []
        for j in range(len(a["boxes"])):
            mark = ("<b>", "</b>") if j == self.object.value else ("", "")
            iou = float(a["iou"][j])
            rows.append(
                f"<tr><td>{mark[0]}{j}{mark[1]}</td><td>{html.escape(self._name(int(a['labels'][j])))}"
                f"</td><td>{float(a['scores'][j]):.2f}</td><td>P{int(a['level'][j]) + 2}</td>"
                f"<td>{[round(v) for v in a['proposal'][j].tolist()]}</td>"
                f"<td>{[round(v) for v in a['boxes'][j].tolist()]}</td>"
                f"<td>{'–' if np.isnan(iou) else f'{iou:.2f}'}</td></tr>")
        head = ("<tr><th>#</th><th>class</th><th>score</th><th>level</th><th>proposal</th>"
                "<th>box</th><th>mask IoU</th></tr>")
        return "<table>" + head + "".join(rows) + "</table>"

    def _on_image(self, change: Any = None) -> None:
        n = len(self.analysis()["boxes"])
        self.object.max = max(n - 1, 0)
        self.object.value = 0
        self._update()

    def _update(self, change: Any = None) -> None:
        self.picture.value = self.to_png()
        self.table.value = self.table_html()


__all__ = ["MaskRCNNExplorer"]
