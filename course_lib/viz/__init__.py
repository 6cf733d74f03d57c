"""Static pictures for the notebooks: palettes, overlays, grids, curves, confusion matrices.

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` built with the
object-oriented Figure API (not ``pyplot``), so a figure is drawn exactly once: when it is
the value of a notebook cell (or when you call :func:`figure_to_png` / ``fig.savefig``).
Masks are class-index maps (``int`` tensors or arrays ``[H, W]``); the void label
:data:`course_lib.config.IGNORE_INDEX` (255) is drawn in a neutral colour.

The modules: :mod:`~course_lib.viz.colours` (palettes, coloured masks, overlays),
:mod:`~course_lib.viz.figures` (the ``plot_*`` figures) and :mod:`~course_lib.viz.source`
(``show_source``).
"""

from .colours import (
    ERROR_COLOR,
    PALETTES,
    VOID_COLOR,
    colorize,
    error_map,
    get_palette,
    overlay,
    to_numpy_image,
    voc_colormap,
)
from .figures import (
    CourseFigure,
    draw_instance_masks,
    figure_to_png,
    plot_confusion_matrix,
    plot_history,
    plot_instances,
    plot_loss_terms,
    plot_metric_table,
    plot_model_predictions,
    plot_segmentation_grid,
    running_mean,
)
from .source import get_source, show_source

__all__ = [
    "ERROR_COLOR",
    "PALETTES",
    "VOID_COLOR",
    "CourseFigure",
    "colorize",
    "draw_instance_masks",
    "error_map",
    "figure_to_png",
    "get_palette",
    "get_source",
    "overlay",
    "plot_confusion_matrix",
    "plot_history",
    "plot_instances",
    "plot_loss_terms",
    "plot_metric_table",
    "plot_model_predictions",
    "plot_segmentation_grid",
    "running_mean",
    "show_source",
    "to_numpy_image",
    "voc_colormap",
]
