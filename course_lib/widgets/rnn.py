"""Explorer of notebook 12: type or pick a referring expression, see the mask it gets."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from course_lib import viz
from course_lib.config import IGNORE_INDEX
from course_lib.data.referring import ReferringShapes, encode, evaluate, parse
from course_lib.runtime import evaluating, model_device
from course_lib.widgets.base import Explorer

__all__ = ["ReferringExplorer"]

_MARK = np.array([[0, 0, 0], [255, 40, 40]], dtype=np.uint8)  # class 1: the object named


class ReferringExplorer(Explorer):
    """A scene, an expression, and the object the referring model segments for it.

    The slider picks a scene of a :class:`~course_lib.data.referring.ReferringShapes`; the
    drop-down lists the expressions generated for it; the text box takes any expression of
    the grammar (an unknown word or a malformed phrase is explained, not guessed). The
    picture shows the image, the model's probability of "the object meant" at every pixel,
    and the object that the expression's meaning picks out in this scene (when it picks out
    exactly one) with the IoU of the predicted mask.

    ``model(image, tokens)`` must return logits [N, 2, H, W] (class 1 = the object meant),
    as :class:`course_lib.models.rnn.ReferringSegmenter` does.
    """

    def __init__(self, model: torch.nn.Module, dataset: ReferringShapes, scene: int = 0) -> None:
        if not isinstance(dataset, ReferringShapes):
            raise ValueError(f"dataset must be a ReferringShapes, got {type(dataset).__name__}")
        if not 0 <= scene < len(dataset.world):
            raise ValueError(f"scene must lie in 0..{len(dataset.world) - 1}, got {scene}")
        self.model, self.dataset = model, dataset
        self.scene = W.IntSlider(value=scene, min=0, max=len(dataset.world) - 1,
                                 description="scene", continuous_update=False)
        self.pick = W.Dropdown(description="pick", layout=W.Layout(width="420px"))
        self.text = W.Text(description="type", continuous_update=False,
                           layout=W.Layout(width="420px"))
        self.message = W.HTML()
        self.picture = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.scene, self.pick]), self.text, self.message,
                              self.picture])
        self._fill_choices()
        self.scene.observe(self._on_scene, names="value")
        self.pick.observe(self._on_pick, names="value")
        self.text.observe(self._update, names="value")
        self._update()

    # -- what the picture shows -----------------------------------------------------------
    def probability(self, text: str | None = None) -> torch.Tensor:
        """The model's probability [H, W] of "the object meant" for ``text`` on this scene."""
        tokens = encode(self.text.value if text is None else text)[None]
        image = self.dataset.model_input(self.scene.value)[None]
        device = model_device(self.model)
        with evaluating(self.model):
            logits = self.model(image.to(device), tokens.to(device))
        return logits.float().softmax(1)[0, 1].cpu()

    def meaning(self, text: str | None = None) -> tuple[int | None, str]:
        """``(object id, explanation)``: the object the expression's meaning picks out in this
        scene (``None`` when it names none, several, or cannot be read)."""
        text = self.text.value if text is None else text
        try:
            expression = parse(text)
        except ValueError as err:
            return None, str(err)
        objects = self.dataset.objects(self.scene.value)
        verdicts = evaluate(expression, objects, self.dataset.image_size)
        sure = [k for k, v in verdicts.items() if v is True]
        unsure = [k for k, v in verdicts.items() if v is None]
        if len(sure) == 1 and not unsure:
            return sure[0], f"names exactly one object of this scene (instance {sure[0]})"
        if not sure and not unsure:
            return None, "names no object of this scene"
        return None, (f"is ambiguous here: {len(sure)} objects match and {len(unsure)} are "
                      "borderline")

    def figure(self) -> Any:
        scene, text = self.scene.value, self.text.value
        image = self.dataset.image(scene)
        fig = viz.CourseFigure(figsize=(10.5, 3.6), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, 3)).ravel()
        axes[0].imshow(viz.to_numpy_image(image))
        axes[0].set_title(f"scene {scene}")
        target, _ = self.meaning(text)
        try:
            prob = self.probability(text)
        except ValueError:
            prob = None
        if prob is not None:
            shown = axes[1].imshow(prob.numpy(), cmap="magma", vmin=0, vmax=1)
            axes[1].contour((prob >= 0.5).numpy().astype(float), levels=[0.5], colors="cyan",
                            linewidths=1)
            fig.colorbar(shown, ax=axes[1], fraction=0.046, label="P(object meant)")
        axes[1].set_title(f"model: {text!r}" if prob is not None else "model: (no expression)",
                          fontsize=9)
        if target is not None:
            truth = self.dataset.object_mask(scene, target)
            marked = torch.where(truth, 1, IGNORE_INDEX)  # the rest keeps the plain image
            axes[2].imshow(viz.overlay(image, marked, palette=_MARK, alpha=0.6))
            title = "the object it names"
            if prob is not None:
                pred = prob >= 0.5
                iou = (pred & truth).sum().item() / max((pred | truth).sum().item(), 1)
                title += f" (IoU {iou:.2f})"
            axes[2].set_title(title, fontsize=9)
        else:
            axes[2].imshow(viz.to_numpy_image(image) * 0.4)
            axes[2].set_title("no single object named", fontsize=9)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        return fig

    # -- controls -------------------------------------------------------------------------
    def _fill_choices(self) -> None:
        choices = self.dataset.expressions(self.scene.value)
        self.pick.options = choices
        if choices:
            self.pick.value = choices[0]
        # a scene without generated expressions starts empty, not with the last scene's words
        self.text.value = choices[0] if choices else ""

    def _on_scene(self, change: Any = None) -> None:
        self._fill_choices()
        self._update()

    def _on_pick(self, change: Any = None) -> None:
        if self.pick.value:
            self.text.value = self.pick.value

    def _update(self, change: Any = None) -> None:
        _, explanation = self.meaning()
        self.message.value = f"<b>{html.escape(self.text.value)}</b>: {html.escape(explanation)}"
        self.picture.value = self.to_png()
