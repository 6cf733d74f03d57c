"""course_lib.encoders: the command that builds the course's pre-trained encoders ahead of time
(``make data`` / ``make pretrain``)."""

from __future__ import annotations

import pytest

from course_lib import encoders

# every test writes its caches into its own folder (conftest.own_data_dir). The ``--jobs 2`` path
# (spawned workers) runs in every ``make data``: here it would import the course twice more (20 s).
pytestmark = pytest.mark.usefixtures("own_data_dir")


def test_builds_missing_encoders_then_finds_them_cached(own_data_dir, capsys):
    args = ["--profile", "quick", "--only", "vgg_tiny", "--seeds", "0", "1"]
    encoders.main(args)
    out = capsys.readouterr().out
    assert out.count("pre-trained now") == 2, out
    assert sorted(p.name[-6:] for p in (own_data_dir / "pretrained").glob("vgg_tiny-*.pt")) == [
        "-s0.pt", "-s1.pt"]
    encoders.main(args)
    assert "2 encoder(s), 0 to pre-train" in capsys.readouterr().out


def test_unknown_encoder_names_are_refused(capsys):
    with pytest.raises(SystemExit):
        encoders.main(["--profile", "quick", "--only", "vgg_tinny"])
    assert "unknown encoder(s) ['vgg_tinny']" in capsys.readouterr().err
