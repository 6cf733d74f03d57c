"""course_lib.encoders: the command that builds the course's pre-trained encoders ahead of time
(``make data`` / ``make pretrain``)."""

from __future__ import annotations

import pytest

from course_lib import encoders


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """Caches go to a folder of the test's own. (``--jobs 2``, spawned workers, runs in every
    ``make data``: importing the course twice more would cost this test 20 s.)"""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    return tmp_path


def test_builds_missing_encoders_then_finds_them_cached(data_dir, capsys):
    args = ["--profile", "quick", "--only", "vgg_tiny", "--seeds", "0", "1"]
    encoders.main(args)
    out = capsys.readouterr().out
    assert out.count("pre-trained now") == 2, out
    assert sorted(p.name[-6:] for p in (data_dir / "pretrained").glob("vgg_tiny-*.pt")) == [
        "-s0.pt", "-s1.pt"]
    encoders.main(args)
    assert "2 encoder(s), 0 to pre-train" in capsys.readouterr().out


def test_unknown_encoder_names_are_refused(capsys):
    with pytest.raises(SystemExit):
        encoders.main(["--profile", "quick", "--only", "vgg_tinny"])
    assert "unknown encoder(s) ['vgg_tinny']" in capsys.readouterr().err
