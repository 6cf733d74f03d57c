"""`.ci/run`, the CI's entry point, stops at once with a clear message on a full disk."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ci_run_refuses_to_start_without_the_disk_space_it_needs(tmp_path: Path) -> None:
    # A `make` that only reports being called: should the check let the run through, the
    # test fails in a second instead of starting the whole CI inside itself.
    fake_make = tmp_path / "make"
    fake_make.write_text("#!/bin/sh\necho 'make was called'\nexit 3\n")
    fake_make.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "CI_NEEDED_GB": str(10**9)}
    run = subprocess.run(["bash", str(REPO / ".ci" / "run")], env=env, capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "make was called" not in run.stdout
    assert f"the run needs about {10**9} GB" in run.stderr
    assert "GB free on the disk of" in run.stdout
