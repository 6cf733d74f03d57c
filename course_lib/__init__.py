"""course_lib: the library behind the image-segmentation course.

Every model, metric, loss and plot that the notebooks use lives here, once; the notebooks
import it and show its source. Start with :mod:`course_lib.config` (profiles and device).
"""

from course_lib.config import get_device, get_profile, seed_everything, set_profile

__version__ = "0.1.0"
__all__ = ["get_device", "get_profile", "seed_everything", "set_profile", "__version__"]
