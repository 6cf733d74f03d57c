"""course_lib.machine: the CPU thread count and the oversubscription warnings."""

from __future__ import annotations

import pytest
import torch

from course_lib import machine


def test_threads_come_from_course_threads_then_omp_then_cores(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.delenv(machine.THREADS_VAR, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = min(machine.available_cores(), machine._TORCH_DEFAULT_THREADS)
    assert machine.thread_setting() == (cores, "the number of cores")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert machine.thread_setting() == (3, "OMP_NUM_THREADS")
    monkeypatch.setenv(machine.THREADS_VAR, "2")
    assert machine.thread_setting() == (2, "COURSE_THREADS")
    try:
        assert machine.configure_threads() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    for bad in ("0", "two"):
        monkeypatch.setenv(machine.THREADS_VAR, bad)
        with pytest.raises(ValueError, match=f"COURSE_THREADS must be a positive integer, "
                                             f"got '{bad}'"):
            machine.thread_setting()


def test_oversubscription_is_reported() -> None:
    assert machine.oversubscription_warnings(threads=2, cores=2, load=1.9) == []
    busy = machine.oversubscription_warnings(threads=2, cores=2, load=4.2)
    assert len(busy) == 1 and "busy (1-minute load 4.2 on 2 cores)" in busy[0]
    too_many = machine.oversubscription_warnings(threads=8, cores=2, load=0.5)
    assert len(too_many) == 1 and "8 threads on 2 cores" in too_many[0]
