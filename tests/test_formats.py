"""Format readers on the real sample data (skipped when absent), COCO RLE / polygon decoding
against pycocotools, clear errors, and fetch through a mirror folder (never the network)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

from course_lib.data import formats as fm

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REAL = Path(os.environ.get("COURSE_DATA_MIRROR")
            or Path(__file__).resolve().parents[2] / "shared" / "data" / "real")


def real(folder: str) -> Path:
    path = REAL / folder
    if not path.exists():
        pytest.skip(f"real sample data not found at {path} (set COURSE_DATA_MIRROR)")
    return path


# ---------------------------------------------------------------- RLE and polygons
def test_rle_encode_matches_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    for i in range(60):
        h, w = rng.integers(1, 40, size=2)
        m = rng.random((h, w)) < rng.random()
        if i % 4 == 0:  # long runs -> multi-char values and negative deltas
            m = np.zeros((h, w), bool)
            m[rng.integers(0, h):, rng.integers(0, w):] = True
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        mine = fm.rle_encode(m)
        assert mine["counts"] == ref["counts"].decode() and mine["size"] == [h, w]
        assert np.array_equal(fm.rle_decode(mine), m)
        assert fm.rle_to_bbox(m) == [int(v) for v in mask_utils.toBbox(ref)]
    big = np.zeros((300, 400), bool)
    big[10:290, 5:395] = True
    assert fm.rle_encode(big)["counts"] == mask_utils.encode(np.asfortranarray(
        big.astype(np.uint8)))["counts"].decode()


def test_uncompressed_rle_and_string_roundtrip():
    counts = [3, 2, 4, 1, 2]  # 12 pixels, 3 x 4
    m = fm.rle_decode({"size": [3, 4], "counts": counts})
    assert m.shape == (3, 4) and m.sum() == 3
    s = fm.counts_to_string(counts)
    assert fm.string_to_counts(s).tolist() == counts
    assert np.array_equal(fm.rle_decode({"size": [3, 4], "counts": s}), m)
    with pytest.raises(ValueError, match="sum"):
        fm.rle_decode({"size": [3, 4], "counts": [1, 2]})


def test_polygons_match_pycocotools_exactly():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    h, w = 37, 53
    for i in range(80):
        n = int(rng.integers(3, 9))
        poly = rng.uniform(-5, 60, size=2 * n)
        if i % 5 == 0:
            poly = np.round(poly)  # integer vertices, axis-aligned edges
        if i % 7 == 0:
            poly[2:4] = poly[0:2]  # a repeated vertex
        polys = [poly.tolist(), rng.uniform(0, 40, size=8).tolist()]
        ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
        assert np.array_equal(fm.polygons_to_mask(polys, h, w), ref.astype(bool)), i
    box = [[3.5, 4.0, 10.0, 7.5]]  # pycocotools reads a 4-number list as a box
    ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(np.array(box), h, w)))
    assert np.array_equal(fm.polygons_to_mask(box, h, w), ref.astype(bool))


def test_coco_tiny_all_annotations_match_pycocotools():
    coco_mod = pytest.importorskip("pycocotools.coco")
    root = real("coco_tiny")
    coco = coco_mod.COCO(str(root / "annotations" / "instances_train2017.json"))
    kinds = set()
    for ann in coco.dataset["annotations"]:
        img = coco.imgs[ann["image_id"]]
        mine = fm.ann_to_mask(ann["segmentation"], img["height"], img["width"])
        assert np.array_equal(mine, coco.annToMask(ann).astype(bool)), ann["id"]
        kinds.add(type(ann["segmentation"]).__name__)
    assert kinds == {"list", "dict"}  # polygons and uncompressed RLE both covered


def test_coco_reader_on_real_data():
    coco_mod = pytest.importorskip("pycocotools.coco")
    root = real("coco_tiny")
    ds = fm.COCOInstances(root, split="train2017")
    coco = coco_mod.COCO(str(root / "annotations" / "instances_train2017.json"))
    assert len(ds) == 50 and ds.class_names[0] == "background" and len(ds.class_names) == 81
    crowd_seen = False
    for i in [0, 1, 2] + [k for k, (_, anns) in enumerate(ds.items)
                          if any(a["iscrowd"] for a in anns)][:1]:
        s = ds[i]
        info, anns = ds.items[i]
        assert isinstance(s["image"], tv_tensors.Image) and s["image"].dtype == torch.uint8
        assert s["image"].shape == (3, info["height"], info["width"])
        assert s["masks"].shape[0] == len(anns) == len(s["labels"]) == len(s["boxes"])
        for m, lab, ann in zip(s["masks"], s["labels"], anns, strict=True):
            assert np.array_equal(m.numpy(), coco.annToMask(ann).astype(bool))
            assert ds.class_names[lab] == coco.cats[ann["category_id"]]["name"]
            assert ds.category_ids[lab] == ann["category_id"]
        keep = s["masks"].flatten(1).any(1)
        assert torch.equal(s["boxes"][keep], masks_to_boxes(s["masks"][keep]))
        assert s["mask"].shape == s["image"].shape[1:]
        crowd_seen |= bool(s["iscrowd"].any())
        if s["iscrowd"].any():
            assert (s["mask"] == 255).any()
    assert crowd_seen


# ---------------------------------------------------------------- other readers
def test_voc_reader_on_real_sample():
    ds = fm.VOCSegmentation(real("VOCdevkit"), split="train")
    assert len(ds) == 1 and ds.class_names[12] == "dog"
    s = ds[0]
    assert s["image"].shape == (3, 375, 500) and s["image"].dtype == torch.uint8
    assert set(s["mask"].unique().tolist()) == {0, 9, 12, 255}
    assert s["labels"].tolist() == [12, 9]  # object 1 = dog, object 2 = chair
    assert s["masks"].shape == (2, 375, 500)
    assert torch.equal(s["boxes"].as_subclass(torch.Tensor), masks_to_boxes(s["masks"]))
    # the same reader accepts VOCdevkit's parent, VOCdevkit and VOC2012
    assert len(fm.VOCSegmentation(real("VOCdevkit") / "VOC2012")) == 1
    with pytest.raises(FileNotFoundError, match="val.txt"):
        fm.VOCSegmentation(real("VOCdevkit"), split="val")


def test_camvid_reader_on_real_data():
    root = real("CamVid")
    train, val = fm.CamVid(root, "train"), fm.CamVid(root.parent, "val")
    assert len(train) == 30 and len(val) == 10 and train.num_classes == 11
    values = set()
    for i in (0, 5, 12, 29):
        s = train[i]
        assert s["image"].shape == (3, 360, 480) and s["mask"].shape == (360, 480)
        values |= set(s["mask"].unique().tolist())
    assert 11 not in values and 255 in values and values - {255} <= set(range(11))


def test_em_readers_on_real_data():
    sstem = fm.EMStack(real("drosophila_vnc_sstem"), kind="sstem")
    assert len(sstem) == 10
    s = sstem[0]
    assert s["image"].shape == (1, 1024, 1024) and s["image"].dtype == torch.uint8
    assert set(s["mask"].unique().tolist()) == {0, 1}
    frac = float(s["mask"].float().mean())
    assert 0.05 < frac < 0.6, "membranes are a minority of the pixels"
    isbi = fm.EMStack(real("isbi2012_em"), kind="isbi")
    assert len(isbi) == 5
    t = isbi[0]
    assert t["image"].shape == (1, 512, 512) and "mask" not in t
    assert isbi.volume().shape == (5, 512, 512)
    with pytest.raises(ValueError, match="sstem"):
        fm.EMStack(real("isbi2012_em"), kind="cells")


def test_pennfudan_reader_on_real_data():
    root = real("PennFudanPed")
    ds = fm.PennFudanPed(root)
    assert len(ds) == 20
    total = 0
    for i in range(len(ds)):
        s = ds[i]
        ids = np.asarray(Image.open(ds.items[i][1]))
        n = len(np.unique(ids)) - 1
        assert s["masks"].shape[0] == n and s["labels"].tolist() == [1] * n
        assert torch.equal(s["boxes"].as_subclass(torch.Tensor), masks_to_boxes(s["masks"]))
        assert torch.equal(s["mask"], (s["masks"].any(0)).long())
        total += n
    assert total == 43  # as the README of the sample says


# ---------------------------------------------------------------- errors
def _camvid_layout(root: Path, image_size=(8, 6), mask_size=(8, 6)) -> Path:
    for d in ("train", "trainannot"):
        (root / d).mkdir(parents=True)
    Image.fromarray(np.zeros((image_size[1], image_size[0], 3), np.uint8)).save(
        root / "train" / "a.png")
    Image.fromarray(np.full((mask_size[1], mask_size[0]), 11, np.uint8)).save(
        root / "trainannot" / "a.png")
    return root


def test_errors_name_the_problem(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        fm.CamVid(missing)
    ok = fm.CamVid(_camvid_layout(tmp_path / "ok"))
    assert set(ok[0]["mask"].unique().tolist()) == {255}
    bad = fm.CamVid(_camvid_layout(tmp_path / "bad", mask_size=(7, 6)))
    with pytest.raises(ValueError, match=r"8x6.*7x6"):
        bad[0]
    corrupt = _camvid_layout(tmp_path / "corrupt")
    (corrupt / "train" / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="a.png"):
        fm.CamVid(corrupt)[0]
    (tmp_path / "nolabel" / "train").mkdir(parents=True)
    (tmp_path / "nolabel" / "trainannot").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "nolabel" / "train" / "x.png")
    with pytest.raises(FileNotFoundError, match="x.png"):
        fm.CamVid(tmp_path / "nolabel")
    with pytest.raises(FileNotFoundError, match="instances_val"):
        fm.COCOInstances(tmp_path, split="val")


# ---------------------------------------------------------------- fetch
def test_fetch_links_from_mirror_and_checks_layout(tmp_path, monkeypatch):
    if not REAL.exists():
        pytest.skip(f"real sample data not found at {REAL}")
    monkeypatch.setenv(fm.MIRROR_VAR, str(REAL))
    for name, src in fm.DATASETS.items():
        path = fm.fetch(name, root=tmp_path / "real")
        assert path == tmp_path / "real" / src.folder
        assert all((path / r).exists() for r in src.required), name
    assert fm.fetch("PennFudanPed", root=tmp_path / "real") == tmp_path / "real" / "PennFudanPed"
    assert len(fm.PennFudanPed(tmp_path / "real")) == 20
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    monkeypatch.setenv(fm.MIRROR_VAR, str(empty))
    with pytest.raises(FileNotFoundError, match="CamVid"):
        fm.fetch("camvid", root=tmp_path / "other")


def test_fetch_without_mirror_or_download_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv(fm.MIRROR_VAR, raising=False)
    with pytest.raises(RuntimeError, match=fm.MIRROR_VAR):
        fm.fetch("pennfudan", root=tmp_path, download=False)
    with pytest.raises(ValueError, match="pennfudan"):
        fm.fetch("imagenet", root=tmp_path)


def test_registry_is_complete():
    for src in fm.DATASETS.values():
        assert src.archives and all(u.startswith("http") for u, _, _ in src.archives)
        for _, sha, md5 in src.archives:
            assert sha is None or len(sha) == 64
            assert md5 is None or len(md5) == 32
        assert src.required and src.folder and src.citation and src.licence
    json.dumps({k: v.folder for k, v in fm.DATASETS.items()})


def _local_archive_source(tmp_path: Path, sha256: str | None) -> fm.DatasetSource:
    """A data set whose 'official archive' is a tar.gz on this disk (file:// URL)."""
    import hashlib
    import tarfile

    payload = tmp_path / "payload" / "toy" / "images"
    payload.mkdir(parents=True)
    (payload / "0.png").write_bytes(b"not really a png")
    archive = tmp_path / "toy.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "payload" / "toy", arcname="toy")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    return fm.DatasetSource(
        name="toy", folder="toy", archives=((archive.as_uri(), sha256 or digest, None),),
        extract="toy", required=("images/0.png",), reader="none", citation="-", licence="-")


def test_fetch_downloads_checks_the_checksum_and_extracts(tmp_path, monkeypatch):
    monkeypatch.delenv(fm.MIRROR_VAR, raising=False)
    monkeypatch.setattr(fm, "_host_reachable", lambda url, timeout=5.0: True)
    monkeypatch.setitem(fm.DATASETS, "toy", _local_archive_source(tmp_path, sha256=None))
    folder = fm.fetch("toy", root=tmp_path / "real")
    assert (folder / "images" / "0.png").read_bytes() == b"not really a png"


def test_fetch_rejects_an_archive_with_the_wrong_checksum(tmp_path, monkeypatch):
    monkeypatch.delenv(fm.MIRROR_VAR, raising=False)
    monkeypatch.setattr(fm, "_host_reachable", lambda url, timeout=5.0: True)
    monkeypatch.setitem(fm.DATASETS, "toy", _local_archive_source(tmp_path, sha256="0" * 64))
    with pytest.raises(ValueError, match="sha256 mismatch"):
        fm.fetch("toy", root=tmp_path / "real")
    assert not (tmp_path / "real" / "toy").exists()
