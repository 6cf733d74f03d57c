"""fetch's checksums (notebook 17): every recorded checksum names where it was published and
equals torchvision's copy; fetch refuses an md5 mismatch, says "not verified" only without a
checksum, and fetches SBD's official layout that its reader then reads (no network: the
'official archive' is a local file)."""

from __future__ import annotations

import hashlib
import re
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from course_lib.data import ShapesWorld, layouts, sources
from course_lib.data.readers_scenes import SBD

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_every_data_set_states_where_its_checksum_was_published():
    for name, src in sources.DATASETS.items():
        assert src.checksum_source, name
        has_checksum = any(sha or md5 for _, sha, md5 in src.archives)
        if has_checksum:
            assert re.search(r"\.py .*commit [0-9a-f]{40}", src.checksum_source), name
        else:
            assert src.checksum_source.startswith("none published"), name
    assert {n for n, s in sources.DATASETS.items()
            if any(md5 for _, _, md5 in s.archives)} == {"voc2012", "sbd"}


def test_recorded_checksums_equal_torchvision_s_tables():
    from torchvision.datasets import SBDataset
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    voc_url, _, voc_md5 = sources.DATASETS["voc2012"].archives[0]
    assert voc_md5 == DATASET_YEAR_DICT["2012"]["md5"]
    assert voc_url.endswith(DATASET_YEAR_DICT["2012"]["filename"])
    sbd_url, _, sbd_md5 = sources.DATASETS["sbd"].archives[0]
    assert (sbd_url, sbd_md5) == (SBDataset.url, SBDataset.md5)


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


def _offline(monkeypatch, archive: Path, md5: str | None) -> None:
    monkeypatch.delenv(sources.MIRROR_VAR, raising=False)
    monkeypatch.setattr(sources, "_host_reachable", lambda url, timeout=5.0: True)
    local = replace(sources.DATASETS["sbd"], archives=((archive.as_uri(), None, md5),))
    monkeypatch.setitem(sources.DATASETS, "sbd", local)


def test_fetch_checks_md5_then_sbd_reader_reads_the_result(tmp_path, monkeypatch, capsys):
    archive, world = _sbd_archive(tmp_path)
    _offline(monkeypatch, archive, hashlib.md5(archive.read_bytes()).hexdigest())
    folder = sources.fetch("sbd", root=tmp_path / "real")
    assert folder == tmp_path / "real" / "SBD"
    assert "not verified" not in capsys.readouterr().out
    ds = SBD(folder, split="train")
    assert len(ds) == 2
    labels = world.raw(1)["label"].astype(np.int64)
    assert np.array_equal(ds[1]["mask"].numpy(), np.where(labels == 255, 0, labels))


def test_fetch_refuses_an_md5_mismatch_and_leaves_nothing(tmp_path, monkeypatch):
    archive, _ = _sbd_archive(tmp_path)
    _offline(monkeypatch, archive, "0" * 32)
    with pytest.raises(ValueError, match=r"md5 mismatch.*expected 0{32}"):
        sources.fetch("sbd", root=tmp_path / "real")
    assert not (tmp_path / "real" / "SBD").exists()
    assert [p.name for p in (tmp_path / "real").iterdir()] == []  # no partial download left


def test_fetch_says_not_verified_only_without_a_checksum(tmp_path, monkeypatch, capsys):
    archive, _ = _sbd_archive(tmp_path)
    _offline(monkeypatch, archive, None)
    sources.fetch("sbd", root=tmp_path / "real")
    assert "not verified" in capsys.readouterr().out
