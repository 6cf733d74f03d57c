"""Data: the embedded synthetic "shapes world", readers for real formats, joint transforms.

* :mod:`course_lib.data.synthetic` - :class:`ShapesWorld` and its class constants, drawn by
  :mod:`~course_lib.data.shapes`, :mod:`~course_lib.data.scenes` and
  :mod:`~course_lib.data.medical`, written to VOC/COCO layouts by :mod:`~course_lib.data.export`;
* :mod:`course_lib.data.formats` - the real formats: VOC, COCO, CamVid, EM and Penn-Fudan
  readers (:mod:`~course_lib.data.readers`), COCO RLE and polygons
  (:mod:`~course_lib.data.coco_masks`), ``fetch`` (:mod:`~course_lib.data.sources`);
* :mod:`course_lib.data.transforms` - joint image + mask augmentation (torchvision v2).
"""

from course_lib.data.formats import (
    DATASETS,
    CamVid,
    COCOInstances,
    EMStack,
    PennFudanPed,
    VOCSegmentation,
    fetch,
)
from course_lib.data.synthetic import (
    CLASS_NAMES,
    CONTEXT_PAIR,
    NUM_CLASSES,
    PALETTE,
    STUFF_CLASSES,
    THIN_CLASSES,
    THING_CLASSES,
    ShapesWorld,
    foreground,
    generation_speed,
    write_coco,
    write_voc,
)
from course_lib.data.transforms import ElasticDeform, eval_transforms, train_transforms

__all__ = [
    "CLASS_NAMES",
    "CONTEXT_PAIR",
    "NUM_CLASSES",
    "PALETTE",
    "STUFF_CLASSES",
    "THIN_CLASSES",
    "THING_CLASSES",
    "ShapesWorld",
    "foreground",
    "generation_speed",
    "write_coco",
    "write_voc",
    "DATASETS",
    "CamVid",
    "COCOInstances",
    "EMStack",
    "PennFudanPed",
    "VOCSegmentation",
    "fetch",
    "ElasticDeform",
    "eval_transforms",
    "train_transforms",
]
