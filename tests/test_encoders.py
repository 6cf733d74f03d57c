"""course_lib.encoders: the command that builds the course's pre-trained encoders ahead of time
(``make data`` / ``make pretrain``)."""

from __future__ import annotations

import pytest
import torch

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


def test_each_build_runs_on_one_thread_and_the_caller_keeps_its_own(monkeypatch):
    """Float sums differ with the thread count (the standard VGG came out up to 20 apart with 1
    and 2 threads), so every build uses one: ``make data`` gives the same weights on any machine."""
    seen = []

    def record_threads(encoder, seed, recipe, verbose):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop after recording")

    monkeypatch.setattr(encoders, "load_pretrained", record_threads)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="stop after recording"):
            encoders.main(["--profile", "quick", "--only", "vgg_tiny", "--seeds", "0"])
        assert torch.get_num_threads() == 2  # restored, though the build failed
    finally:
        torch.set_num_threads(threads)
    assert seen == [1]
