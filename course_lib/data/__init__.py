"""Data: the embedded synthetic "shapes world", readers for real formats, joint transforms.

* :mod:`course_lib.data.synthetic` - :class:`ShapesWorld` and its class constants, drawn by
  :mod:`~course_lib.data.shapes`, :mod:`~course_lib.data.scenes` and
  :mod:`~course_lib.data.medical`, written to VOC/COCO layouts by :mod:`~course_lib.data.export`;
* :mod:`course_lib.data.formats` - the real formats: VOC, COCO, CamVid, EM and Penn-Fudan
  readers (:mod:`~course_lib.data.readers`), COCO RLE and polygons
  (:mod:`~course_lib.data.coco_masks`), ``fetch`` (:mod:`~course_lib.data.sources`);
* :mod:`course_lib.data.readers_scenes` and :mod:`~course_lib.data.readers_rgbd_em` - the
  survey's scene data sets (Cityscapes, ADE20K, PASCAL Context, SBD) and NYU-Depth V2 and
  the ISBI 2012 TIFF stacks in their official layouts;
  :mod:`~course_lib.data.layouts` writes the shapes world in those layouts;
* :mod:`course_lib.data.catalogue` - one record per data set of the survey's §4;
  :mod:`~course_lib.data.balance` - pixel share per class and objects per image;
* :mod:`course_lib.data.transforms` - joint image + mask augmentation (torchvision v2).
"""

from course_lib.data.balance import mask_of, objects_per_image, pixel_shares
from course_lib.data.catalogue import CATALOGUE, catalogue_table
from course_lib.data.formats import (
    DATASETS,
    CamVid,
    COCOInstances,
    EMStack,
    PennFudanPed,
    VOCSegmentation,
    fetch,
)
from course_lib.data.layouts import (
    write_ade20k,
    write_cityscapes,
    write_isbi2012,
    write_nyu_depth,
    write_pascal_context,
    write_sbd,
)
from course_lib.data.readers_rgbd_em import NYU40_CLASSES, ISBI2012Stack, NYUDepthV2
from course_lib.data.readers_scenes import (
    ADE20K,
    ADE20K_CLASSES,
    CITYSCAPES_TRAIN_CLASSES,
    PASCAL_CONTEXT59_CLASSES,
    SBD,
    Cityscapes,
    PascalContext,
    cityscapes_train_ids,
)
from course_lib.data.synthetic import (
    CLASS_NAMES,
    CONTEXT_PAIR,
    NUM_CLASSES,
    PALETTE,
    RGBD_CLASS_NAMES,
    RGBD_PALETTE,
    STUFF_CLASSES,
    THIN_CLASSES,
    THING_CLASSES,
    ShapesWorld,
    foreground,
    generation_speed,
    things_vs_stuff,
    write_coco,
    write_voc,
)
from course_lib.data.transforms import ElasticDeform, eval_transforms, train_transforms

__all__ = [
    "CLASS_NAMES",
    "CONTEXT_PAIR",
    "NUM_CLASSES",
    "PALETTE",
    "RGBD_CLASS_NAMES",
    "RGBD_PALETTE",
    "STUFF_CLASSES",
    "THIN_CLASSES",
    "THING_CLASSES",
    "ShapesWorld",
    "foreground",
    "generation_speed",
    "things_vs_stuff",
    "write_coco",
    "write_voc",
    "DATASETS",
    "CamVid",
    "COCOInstances",
    "EMStack",
    "PennFudanPed",
    "VOCSegmentation",
    "fetch",
    "ADE20K",
    "ADE20K_CLASSES",
    "CITYSCAPES_TRAIN_CLASSES",
    "Cityscapes",
    "ISBI2012Stack",
    "NYU40_CLASSES",
    "NYUDepthV2",
    "PASCAL_CONTEXT59_CLASSES",
    "PascalContext",
    "SBD",
    "cityscapes_train_ids",
    "write_ade20k",
    "write_cityscapes",
    "write_isbi2012",
    "write_nyu_depth",
    "write_pascal_context",
    "write_sbd",
    "CATALOGUE",
    "catalogue_table",
    "mask_of",
    "objects_per_image",
    "pixel_shares",
    "ElasticDeform",
    "eval_transforms",
    "train_transforms",
]
