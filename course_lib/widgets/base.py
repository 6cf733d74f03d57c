"""What every explorer shares: the widget + static-PNG display, and a class legend.

Every explorer has

- ``.widget``: the ipywidgets box to interact with in JupyterLab;
- ``.show_static()``: displays the current view as a PNG picture;
- ``.to_png()``: the current view's PNG bytes (what the tests compare);

and displays itself with *both* the live widget view and a static ``image/png``, so a
notebook exported to HTML or executed under nbval still carries a picture.
Pictures are rendered to PNG bytes inside an :class:`ipywidgets.Image`, so a change of
the controls changes the ``<img>`` in the page. A new explorer subclasses
:class:`Explorer` and implements ``figure()``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from course_lib import viz
from course_lib.viz.colours import legend_handles


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (a front end that may render widgets is attached)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipywidgets
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class Explorer:
    """Shared display logic: widget view + static PNG in one mime bundle."""

    widget: W.Widget

    def figure(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_png(self) -> bytes:
        """The current view as PNG bytes."""
        return render(self.figure())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(self.to_png()).decode("ascii")
        bundle.setdefault("text/plain", f"<{type(self).__name__}>")
        return bundle

    def show_static(self) -> None:
        """Display the current view as a plain PNG picture (no widget needed)."""
        from IPython.display import Image, display

        display(Image(data=self.to_png(), format="png"))


def render(fig: Any) -> bytes:
    return viz.figure_to_png(fig, dpi=80)


def class_legend(fig: Any, label_maps: Sequence[torch.Tensor], num_classes: int,
                  palette: np.ndarray, class_names: Sequence[str] | None) -> None:
    """A legend of the classes that occur in any of ``label_maps`` (labels >= K left out)."""
    seen = torch.unique(torch.cat([m.flatten() for m in label_maps])).tolist()
    handles = legend_handles(np.array([k for k in seen if 0 <= k < num_classes], dtype=int),
                             palette, class_names)
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=7, title="classes")


__all__ = ["Explorer", "class_legend", "in_notebook_kernel", "render"]
