"""fetch: through a mirror folder or a local 'download' (never the network), checksums, clear
errors, and a complete registry of data set sources."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from course_lib.data import sources
from course_lib.data.readers import PennFudanPed

REAL = Path(os.environ.get("COURSE_DATA_MIRROR")
            or Path(__file__).resolve().parents[2] / "shared" / "data" / "real")


def test_fetch_links_from_mirror_and_checks_layout(tmp_path, monkeypatch):
    if not REAL.exists():
        pytest.skip(f"real sample data not found at {REAL}")
    monkeypatch.setenv(sources.MIRROR_VAR, str(REAL))
    present = [name for name, src in sources.DATASETS.items() if (REAL / src.folder).exists()]
    assert {"voc2012", "camvid", "pennfudan"} <= set(present)  # the samples of shared/data/real
    for name in present:
        src = sources.DATASETS[name]
        path = sources.fetch(name, root=tmp_path / "real")
        assert path == tmp_path / "real" / src.folder
        assert all((path / r).exists() for r in src.required), name
    fetched = sources.fetch("PennFudanPed", root=tmp_path / "real")
    assert fetched == tmp_path / "real" / "PennFudanPed"
    assert len(PennFudanPed(tmp_path / "real")) == 20
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    monkeypatch.setenv(sources.MIRROR_VAR, str(empty))
    with pytest.raises(FileNotFoundError, match="CamVid"):
        sources.fetch("camvid", root=tmp_path / "other")


def test_fetch_without_mirror_or_download_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.MIRROR_VAR, raising=False)
    with pytest.raises(RuntimeError, match=sources.MIRROR_VAR):
        sources.fetch("pennfudan", root=tmp_path, download=False)
    with pytest.raises(ValueError, match="pennfudan"):
        sources.fetch("imagenet", root=tmp_path)


def test_registry_is_complete():
    for src in sources.DATASETS.values():
        assert src.archives and all(a.url.startswith("http") for a in src.archives)
        for a in src.archives:
            assert a.sha256 is None or len(a.sha256) == 64
            assert a.md5 is None or len(a.md5) == 32
            assert a.sha1 is None or len(a.sha1) == 40
        assert src.required and src.folder and src.citation and src.licence
    json.dumps({k: v.folder for k, v in sources.DATASETS.items()})


def _local_archive_source(tmp_path: Path, sha256: str | None) -> sources.DatasetSource:
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
    return sources.DatasetSource(
        name="toy", folder="toy",
        archives=(sources.Archive(archive.as_uri(), sha256=sha256 or digest),),
        extract="toy", required=("images/0.png",), reader="none", citation="-", licence="-")


def test_fetch_downloads_checks_the_checksum_and_extracts(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.MIRROR_VAR, raising=False)
    monkeypatch.setattr(sources, "_host_reachable", lambda url, timeout=5.0: True)
    monkeypatch.setitem(sources.DATASETS, "toy", _local_archive_source(tmp_path, sha256=None))
    folder = sources.fetch("toy", root=tmp_path / "real")
    assert (folder / "images" / "0.png").read_bytes() == b"not really a png"


def test_fetch_rejects_an_archive_with_the_wrong_checksum(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.MIRROR_VAR, raising=False)
    monkeypatch.setattr(sources, "_host_reachable", lambda url, timeout=5.0: True)
    monkeypatch.setitem(sources.DATASETS, "toy", _local_archive_source(tmp_path, sha256="0" * 64))
    with pytest.raises(ValueError, match="sha256 mismatch"):
        sources.fetch("toy", root=tmp_path / "real")
    assert not (tmp_path / "real" / "toy").exists()


# --------------------------------------------------------------------------------------
# fetch never deletes what the course did not create
# --------------------------------------------------------------------------------------
def _toy_mirror(tmp_path: Path) -> Path:
    """A mirror folder holding a complete copy of the 'toy' data set."""
    images = tmp_path / "mirror" / "toy" / "images"
    images.mkdir(parents=True)
    (images / "0.png").write_bytes(b"mirror copy")
    return tmp_path / "mirror"


def _users_incomplete_folder(root: Path) -> Path:
    """root/toy as a user left it: their own notes, and images/ without the required file."""
    target = root / "toy"
    (target / "images").mkdir(parents=True)
    (target / "my_notes.txt").write_text("mine")
    return target


def test_fetch_from_a_mirror_refuses_to_replace_an_incomplete_user_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(sources.DATASETS, "toy", _local_archive_source(tmp_path, sha256=None))
    monkeypatch.setenv(sources.MIRROR_VAR, str(_toy_mirror(tmp_path)))
    target = _users_incomplete_folder(tmp_path / "real")
    with pytest.raises(FileExistsError, match=rf"{target}.*images/0\.png"):
        sources.fetch("toy", root=tmp_path / "real")
    assert not target.is_symlink() and (target / "my_notes.txt").read_text() == "mine"
    # What fetch may replace: an empty folder, or a link it made to an older mirror copy.
    (target / "my_notes.txt").unlink()
    (target / "images").rmdir()
    assert sources.fetch("toy", root=tmp_path / "real") == target and target.is_symlink()
    old = tmp_path / "old_mirror" / "toy"
    old.mkdir(parents=True)
    target.unlink()
    target.symlink_to(old, target_is_directory=True)
    sources.fetch("toy", root=tmp_path / "real")
    assert (target / "images" / "0.png").read_bytes() == b"mirror copy" and old.is_dir()


def test_fetch_download_refuses_to_replace_an_incomplete_user_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.MIRROR_VAR, raising=False)
    monkeypatch.setattr(sources, "_host_reachable", lambda url, timeout=5.0: True)
    monkeypatch.setitem(sources.DATASETS, "toy", _local_archive_source(tmp_path, sha256=None))
    target = _users_incomplete_folder(tmp_path / "real")
    with pytest.raises(FileExistsError, match=rf"{target}.*images/0\.png"):
        sources.fetch("toy", root=tmp_path / "real")
    assert (target / "my_notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["toy"]  # no download left
