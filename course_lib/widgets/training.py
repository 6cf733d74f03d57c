"""Live training curves: what ``fit(..., monitor=TrainingMonitor())`` shows after each epoch."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W

from course_lib import viz
from course_lib.viz.figures import history_dict
from course_lib.widgets.base import Explorer, in_notebook_kernel

__all__ = ["TrainingMonitor"]


class TrainingMonitor(Explorer):
    """Live training curves: pass it to ``fit(..., monitor=TrainingMonitor())``.

    In a Jupyter kernel it displays itself on the first ``update`` and redraws the curves
    (widget view + static PNG) after every epoch; elsewhere it prints one line per epoch.
    """

    def __init__(self, title: str | None = None, live: bool | None = None) -> None:
        self.title = title
        self.live = in_notebook_kernel() if live is None else live
        self.history: dict[str, list] = {}
        self.picture = W.Image(format="png")
        self.status = W.HTML("waiting for the first epoch…")
        self.widget = W.VBox([self.status, self.picture])
        self._handle: Any = None
        self._shown = False  # displayed by the notebook itself (cell value)
        self._printed = 0

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        self._shown = True
        return super()._repr_mimebundle_(include=include, exclude=exclude)

    def update(self, history: Any) -> None:
        """Record the latest history (a ``History`` or its ``.as_dict()``) and redraw."""
        self.history = history_dict(history)
        epochs = len(self.history.get("train_loss", []))
        self.status.value = self._summary(epochs - 1) if epochs else "no epoch yet"
        if self.live:
            self.picture.value = self.to_png()
            from IPython.display import display

            if self._handle is not None:
                self._handle.update(self)  # refreshes the static PNG kept in the notebook
            elif not self._shown:
                self._handle = display(self, display_id=True)
        else:
            for i in range(self._printed, epochs):
                print(self._summary(i, plain=True), flush=True)
            self._printed = epochs

    def _summary(self, i: int, plain: bool = False) -> str:
        parts = []
        for key, label in (("train_loss", "train loss"), ("val_loss", "val loss"),
                           ("val_miou", "val mIoU"), ("val_pixel_accuracy", "val PA"),
                           ("lr", "lr")):
            values = self.history.get(key, [])
            if i < len(values) and values[i] is not None:
                fmt = ".2e" if key == "lr" else ".4f"
                parts.append(f"{label} {float(values[i]):{fmt}}")
        epoch_list = self.history.get("epoch", [])
        epoch = epoch_list[i] if i < len(epoch_list) else i + 1
        text = f"epoch {epoch}: " + ", ".join(parts)
        return text if plain else f"<b>{html.escape(text)}</b>"

    def figure(self) -> Any:
        """The curves so far."""
        return viz.plot_history(self.history or {"epoch": []}, title=self.title)
