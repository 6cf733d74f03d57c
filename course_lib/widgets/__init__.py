"""Interactive explorers for the notebooks (ipywidgets 8), each with a static fallback.

One module per concern: :mod:`~course_lib.widgets.base` (the display logic every explorer
shares), :mod:`~course_lib.widgets.features` (feature maps),
:mod:`~course_lib.widgets.predictions` (a model's predictions, several models compared),
:mod:`~course_lib.widgets.training` (live training curves), :mod:`~course_lib.widgets.crf`
(mean-field iterations), :mod:`~course_lib.widgets.volume` (3D slices) and
:mod:`~course_lib.widgets.receptive_field` (effective receptive fields). The families' own
explorers live in ``course_lib/widgets/<family>.py``.

Every explorer has a live ``.widget``, ``.show_static()`` and ``.to_png()`` (see
:mod:`~course_lib.widgets.base`).
"""

from course_lib.widgets.base import in_notebook_kernel
from course_lib.widgets.crf import CRFIterationViewer
from course_lib.widgets.features import FeatureMapExplorer
from course_lib.widgets.predictions import ModelComparer, PredictionBrowser
from course_lib.widgets.receptive_field import ReceptiveFieldExplorer
from course_lib.widgets.training import TrainingMonitor
from course_lib.widgets.volume import SliceViewer

__all__ = [
    "CRFIterationViewer",
    "FeatureMapExplorer",
    "ModelComparer",
    "PredictionBrowser",
    "ReceptiveFieldExplorer",
    "SliceViewer",
    "TrainingMonitor",
    "in_notebook_kernel",
]
