"""Writing the shapes world in standard layouts (PASCAL VOC, COCO), so that the real-format
readers of :mod:`course_lib.data.readers` run on synthetic data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from course_lib.config import IGNORE_INDEX
from course_lib.data.coco_masks import rle_encode, rle_to_bbox
from course_lib.data.shapes import CLASS_NAMES, PALETTE, THING_CLASSES, VOID_COLOUR

if TYPE_CHECKING:
    from course_lib.data.synthetic import ShapesWorld

__all__ = ["write_coco", "write_voc"]


def _class_palette() -> list[int]:
    pal = np.zeros((256, 3), dtype=np.uint8)
    pal[: len(PALETTE)] = PALETTE
    pal[IGNORE_INDEX] = VOID_COLOUR
    return pal.ravel().tolist()


def _sample_names(dataset: ShapesWorld) -> list[str]:
    return [f"{dataset.split}_{i:06d}" for i in range(len(dataset))]


def _require_shapes(dataset: Any) -> ShapesWorld:
    from course_lib.data.synthetic import ShapesWorld  # (synthetic re-exports this module)

    if not isinstance(dataset, ShapesWorld):
        raise ValueError(f"expected a ShapesWorld data set, got {type(dataset).__name__}")
    if dataset.variant != "default":
        raise ValueError(f"VOC/COCO export needs variant='default' (RGB images, the shapes "
                         f"classes), got variant={dataset.variant!r}")
    return dataset


def write_voc(dataset: ShapesWorld, root: str | Path) -> Path:
    """Write ``dataset`` in the PASCAL VOC 2012 segmentation layout under ``root``.

    Creates ``root/VOCdevkit/VOC2012/`` with ``JPEGImages/<id>.png`` (lossless PNG; the
    reader accepts .jpg or .png), ``SegmentationClass/<id>.png`` (palette PNG, class index,
    255 = void), ``SegmentationObject/<id>.png`` (palette PNG, instance id 1..M, 0 = none)
    and ``ImageSets/Segmentation/<split>.txt``, plus ``VOCdevkit/classes.json`` with the
    class names. Returns the ``VOC2012`` folder. The depth channel is not written.
    """
    from PIL import Image

    ds = _require_shapes(dataset)
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    dirs = {k: voc / k for k in ("JPEGImages", "SegmentationClass", "SegmentationObject")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    from course_lib.viz import voc_colormap  # the instance ids' colours, as in VOC

    class_pal, object_pal = _class_palette(), voc_colormap(256).ravel().tolist()
    names = _sample_names(ds)
    for i, name in enumerate(names):
        raw = ds.raw(i)
        Image.fromarray(np.ascontiguousarray(raw["image"].transpose(1, 2, 0))).save(
            dirs["JPEGImages"] / f"{name}.png"
        )
        size = raw["label"].shape[::-1]
        cls_png = Image.frombytes("P", size, np.ascontiguousarray(raw["label"]).tobytes())
        cls_png.putpalette(class_pal)
        cls_png.save(dirs["SegmentationClass"] / f"{name}.png")
        obj_png = Image.frombytes("P", size, np.ascontiguousarray(raw["inst"]).tobytes())
        obj_png.putpalette(object_pal)
        obj_png.save(dirs["SegmentationObject"] / f"{name}.png")
    (voc / "ImageSets" / "Segmentation" / f"{ds.split}.txt").write_text(
        "".join(n + "\n" for n in names)
    )
    classes = {
        "dataset": "course shapes world",
        "ignore_index": IGNORE_INDEX,
        "classes": [
            {"index": i, "name": n, "rgb": PALETTE[i].tolist()} for i, n in enumerate(CLASS_NAMES)
        ] + [{"index": IGNORE_INDEX, "name": "void", "rgb": list(VOID_COLOUR)}],
    }
    (voc.parent / "classes.json").write_text(json.dumps(classes, indent=1))
    return voc


def write_coco(dataset: ShapesWorld, root: str | Path) -> Path:
    """Write the thing instances of ``dataset`` in COCO format under ``root``.

    Creates ``root/<split>/<id>.png`` (lossless PNG) and
    ``root/annotations/instances_<split>.json`` whose ``segmentation`` fields are compressed
    RLE (the course's own encoder, :func:`course_lib.data.coco_masks.rle_encode`), with
    ``category_id`` = the shapes-world class index (4..11). Returns ``root``.
    """
    from PIL import Image

    ds = _require_shapes(dataset)
    root = Path(root)
    img_dir = root / ds.split
    img_dir.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, name in enumerate(_sample_names(ds)):
        raw = ds.raw(i)
        h, w = raw["label"].shape
        file_name = f"{name}.png"
        Image.fromarray(np.ascontiguousarray(raw["image"].transpose(1, 2, 0))).save(
            img_dir / file_name
        )
        images.append({"id": i + 1, "file_name": file_name, "height": h, "width": w})
        inst = raw["inst"]
        for k in range(1, int(inst.max()) + 1):
            m = inst == k
            cls = int(raw["label"][m][0])
            rle = rle_encode(m)
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": i + 1,
                "category_id": cls,
                "segmentation": rle,
                "area": int(m.sum()),
                "bbox": rle_to_bbox(m),
                "iscrowd": 0,
            })
    coco = {
        "info": {"description": f"course shapes world, split {ds.split}, seed {ds.seed}"},
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": c, "name": CLASS_NAMES[c], "supercategory": "shape"} for c in THING_CLASSES
        ],
    }
    (root / "annotations" / f"instances_{ds.split}.json").write_text(json.dumps(coco))
    return root
