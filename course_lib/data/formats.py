"""Readers for the real data sets' own file layouts, COCO run-length encoding, and ``fetch``.

Every reader is a ``torch.utils.data.Dataset`` whose items are dicts of tv_tensors:

* ``"image"``: ``tv_tensors.Image`` uint8 ``[3,H,W]`` (``[1,H,W]`` for electron microscopy);
* ``"mask"``: ``tv_tensors.Mask`` int64 ``[H,W]``, class index per pixel, **255 = void**;
* instance data sets add ``"masks"`` (``Mask`` bool ``[M,H,W]``), ``"boxes"``
  (``BoundingBoxes`` XYXY ``[M,4]``, the tight box of each mask in inclusive pixel indices,
  as ``torchvision.ops.masks_to_boxes`` gives) and ``"labels"`` (int64 ``[M]``).

Readers: :class:`VOCSegmentation`, :class:`COCOInstances`, :class:`CamVid`, :class:`EMStack`,
:class:`PennFudanPed`. COCO masks (polygons, compressed and uncompressed RLE) are decoded by
vectorised code that reproduces ``pycocotools`` bit for bit (the tests check it).

:func:`fetch` puts a data set under ``config.data_dir()/"real"``: from a local mirror folder
(``COURSE_DATA_MIRROR``) when set, else by downloading the official archive.

The code lives in :mod:`~course_lib.data.readers`, :mod:`~course_lib.data.coco_masks` and
:mod:`~course_lib.data.sources`; this module gathers their names.
"""

# Every public name of the three modules, exactly their __all__ (no second list to keep in step).
from course_lib.data import coco_masks, readers, sources
from course_lib.data.coco_masks import *  # noqa: F403
from course_lib.data.readers import *  # noqa: F403
from course_lib.data.sources import *  # noqa: F403

__all__ = [*readers.__all__, *coco_masks.__all__, *sources.__all__]
