"""fetch's checksums (notebook 17): every recorded checksum cites the address that publishes
it (torchvision's tables are compared with the installed torchvision), every file without one
says "none published"; fetch refuses a mismatch of any recorded algorithm, says "not verified"
only without a checksum, takes hand-downloaded files (Cityscapes needs a login), and fetches
SBD's and Cityscapes' official layouts that their readers then read (no network: the
'official archives' are local files)."""

from __future__ import annotations

import hashlib
import re
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from course_lib.data import ShapesWorld, catalogue, layouts, sources
from course_lib.data.readers_scenes import SBD, Cityscapes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_every_fetchable_file_has_a_cited_checksum_or_a_none_published_note():
    for name, src in sources.DATASETS.items():
        for archive in src.archives:
            if archive.verified:  # the address of the page or file that publishes it
                assert re.match(r"https://\S+", archive.source), (name, archive.name)
                assert "none published" not in archive.source, (name, archive.name)
            else:
                assert archive.source.startswith("none published: "), (name, archive.name)
    verified = {n for n, s in sources.DATASETS.items() if all(a.verified for a in s.archives)}
    assert verified == {"voc2012", "sbd", "ade20k", "cityscapes", "pascal_context"}
    fetchable = {r.fetch for r in catalogue.CATALOGUE if r.fetch}
    assert {"ade20k", "cityscapes", "pascal_context", "nyu_depth_v2"} <= fetchable
    assert sources.DATASETS["nyu_depth_v2"].archives[0].name == "nyu_depth_v2_labeled.mat"


def test_recorded_checksums_equal_torchvision_s_tables():
    from torchvision.datasets import SBDataset
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    for name, year in (("voc2012", "2012"), ("pascal_context", "2010")):
        voc = sources.DATASETS[name].archives[0]
        assert voc.md5 == DATASET_YEAR_DICT[year]["md5"], name
        assert voc.name == DATASET_YEAR_DICT[year]["filename"], name
    sbd = sources.DATASETS["sbd"].archives[0]
    assert (sbd.url, sbd.md5) == (SBDataset.url, SBDataset.md5)


def _sbd_archive(tmp_path: Path) -> tuple[Path, ShapesWorld]:
    """benchmark.tgz as published: benchmark_RELEASE/dataset/{img,cls,train.txt,val.txt}."""
    world = ShapesWorld(2, image_size=24, seed=5, split="train")
    staging = tmp_path / "staging"
    layouts.write_sbd(world, staging)
    (staging / "benchmark_RELEASE" / "dataset" / "val.txt").write_text("")
    archive = tmp_path / "benchmark.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "benchmark_RELEASE", arcname="benchmark_RELEASE")
    return archive, world


def _offline(monkeypatch, archive: Path, **checksums: str | None) -> None:
    monkeypatch.delenv(sources.MIRROR_VAR, raising=False)
    monkeypatch.setattr(sources, "_host_reachable", lambda url, timeout=5.0: True)
    published = sources.DATASETS["sbd"].archives[0]
    local = replace(sources.DATASETS["sbd"], archives=(published._replace(
        url=archive.as_uri(), **{"sha256": None, "md5": None, "sha1": None, **checksums}),))
    monkeypatch.setitem(sources.DATASETS, "sbd", local)


def test_fetch_checks_md5_then_sbd_reader_reads_the_result(tmp_path, monkeypatch, capsys):
    archive, world = _sbd_archive(tmp_path)
    _offline(monkeypatch, archive, md5=hashlib.md5(archive.read_bytes()).hexdigest())
    folder = sources.fetch("sbd", root=tmp_path / "real")
    assert folder == tmp_path / "real" / "SBD"
    assert "not verified" not in capsys.readouterr().out
    ds = SBD(folder, split="train")
    assert len(ds) == 2
    labels = world.raw(1)["label"].astype(np.int64)
    assert np.array_equal(ds[1]["mask"].numpy(), np.where(labels == 255, 0, labels))


@pytest.mark.parametrize("algorithm", ["md5", "sha256", "sha1"])
def test_fetch_refuses_a_mismatch_and_leaves_nothing(tmp_path, monkeypatch, algorithm):
    archive, _ = _sbd_archive(tmp_path)
    wrong = "0" * len(hashlib.new(algorithm).hexdigest())
    _offline(monkeypatch, archive, **{algorithm: wrong})
    with pytest.raises(ValueError, match=rf"{algorithm} mismatch.*expected 0+ as published"):
        sources.fetch("sbd", root=tmp_path / "real")
    assert not (tmp_path / "real" / "SBD").exists()
    assert [p.name for p in (tmp_path / "real").iterdir()] == []  # no partial download left


def test_fetch_says_not_verified_only_without_a_checksum(tmp_path, monkeypatch, capsys):
    archive, _ = _sbd_archive(tmp_path)
    _offline(monkeypatch, archive)
    sources.fetch("sbd", root=tmp_path / "real")
    assert "not verified" in capsys.readouterr().out


def test_verify_checks_a_file_against_the_published_value(tmp_path, capsys):
    path = tmp_path / "ADEChallengeData2016.zip"
    path.write_bytes(b"a truncated download")
    ade = sources.DATASETS["ade20k"].archives[0]
    with pytest.raises(ValueError, match=r"sha256 mismatch for ADEChallengeData2016\.zip"):
        sources.verify(path, ade)  # not the published file: refused
    good = ade._replace(sha256=hashlib.sha256(path.read_bytes()).hexdigest().upper())
    assert sources.verify(path, good) is True
    nyu = sources.DATASETS["nyu_depth_v2"].archives[0]
    assert sources.verify(path, nyu) is False and "not verified" in capsys.readouterr().out


def _cityscapes_zips(folder: Path, tmp_path: Path) -> ShapesWorld:
    """gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip as the site serves them."""
    world = ShapesWorld(2, image_size=24, seed=3, split="train")
    staging = layouts.write_cityscapes(world, tmp_path / "staging")
    layouts.write_cityscapes(ShapesWorld(1, image_size=24, seed=4, split="val"), staging)
    folder.mkdir()
    for top, zip_name in (("gtFine", "gtFine_trainvaltest.zip"),
                          ("leftImg8bit", "leftImg8bit_trainvaltest.zip")):
        with zipfile.ZipFile(folder / zip_name, "w") as z:
            for f in sorted((staging / top).rglob("*.png")):
                z.write(f, f.relative_to(staging).as_posix())
    return world


def test_cityscapes_needs_a_login_and_checks_the_archives_you_downloaded(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.MIRROR_VAR, raising=False)
    with pytest.raises(RuntimeError, match=r"registration.*log in at https://www\.cityscapes"):
        sources.fetch("cityscapes", root=tmp_path / "real")
    downloads = tmp_path / "downloads"
    world = _cityscapes_zips(downloads, tmp_path)
    with pytest.raises(ValueError, match="md5 mismatch for gtFine_trainvaltest.zip"):
        sources.fetch("cityscapes", root=tmp_path / "real", archive_dir=downloads)
    assert [p.name for p in (tmp_path / "real").iterdir()] == []
    src = sources.DATASETS["cityscapes"]
    ours = tuple(a._replace(md5=hashlib.md5((downloads / a.name).read_bytes()).hexdigest())
                 for a in src.archives)
    monkeypatch.setitem(sources.DATASETS, "cityscapes", replace(src, archives=ours))
    folder = sources.fetch("cityscapes", root=tmp_path / "real", archive_dir=downloads)
    assert folder == tmp_path / "real" / "cityscapes"
    ds = Cityscapes(folder, split="train")
    assert len(ds) == 2 and len(Cityscapes(folder, split="val")) == 1
    assert np.array_equal(ds[1]["mask"].numpy(), world.raw(1)["label"].astype(np.int64))
    with pytest.raises(FileNotFoundError, match="lacks leftImg8bit_trainvaltest.zip"):
        (downloads / "leftImg8bit_trainvaltest.zip").unlink()
        sources.fetch("cityscapes", root=tmp_path / "other", archive_dir=downloads)


def test_a_plain_file_lands_in_the_extracted_folder(tmp_path, monkeypatch):
    """PASCAL Context: a tar plus a JSON that must sit inside VOCdevkit/VOC2010."""
    monkeypatch.delenv(sources.MIRROR_VAR, raising=False)
    downloads = tmp_path / "downloads"
    (tmp_path / "VOCdevkit" / "VOC2010" / "JPEGImages").mkdir(parents=True)
    (tmp_path / "VOCdevkit" / "VOC2010" / "JPEGImages" / "2008_000002.jpg").write_bytes(b"jpg")
    downloads.mkdir()
    with tarfile.open(downloads / "VOCtrainval_03-May-2010.tar", "w") as tar:
        tar.add(tmp_path / "VOCdevkit", arcname="VOCdevkit")
    (downloads / "trainval_merged.json").write_text('{"images": []}')
    src = sources.DATASETS["pascal_context"]
    ours = tuple(a._replace(md5=None, sha1=hashlib.sha1((downloads / a.name).read_bytes())
                            .hexdigest()) for a in src.archives)
    monkeypatch.setitem(sources.DATASETS, "pascal_context", replace(src, archives=ours))
    folder = sources.fetch("pascal_context", root=tmp_path / "real", archive_dir=downloads)
    assert (folder / "trainval_merged.json").read_text() == '{"images": []}'
    assert (folder / "JPEGImages" / "2008_000002.jpg").read_bytes() == b"jpg"
