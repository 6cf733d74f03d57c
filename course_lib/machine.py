"""CPU threads and machine load: how many threads torch gets, and whether the cores are shared.

:func:`course_lib.config.banner` (the first cell of every notebook) applies the thread count
(:func:`configure_threads`) and shows a warning row when :func:`oversubscription_warnings`
finds one.
"""

from __future__ import annotations

import os

import torch

# Threads: set deliberately, because the default (one per core in every process) makes two
# processes on two cores fight: one training step measured 14x slower (16.7 -> 1.16 steps/s).
THREADS_VAR = "COURSE_THREADS"  # torch's CPU threads; else OMP_NUM_THREADS; else the cores
BUSY_LOAD_FACTOR = 1.5  # a 1-minute load average above this many times the cores is "busy"
_TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before the course changes it


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def thread_setting() -> tuple[int, str]:
    """(threads, where that number comes from): ``COURSE_THREADS``, ``OMP_NUM_THREADS``, cores."""
    for var in (THREADS_VAR, "OMP_NUM_THREADS"):
        raw = os.environ.get(var, "").strip()
        if raw:
            try:
                threads = int(raw)
            except ValueError:
                threads = 0
            if threads < 1:
                raise ValueError(f"{var} must be a positive integer, got {raw!r}")
            return threads, var
    # never more than torch chose by itself at import (it may leave hyperthreads out)
    return min(available_cores(), _TORCH_DEFAULT_THREADS), "the number of cores"


def configure_threads() -> int:
    """Give torch the course's thread count (:func:`thread_setting`) and return it.

    The first cell of every notebook calls it through :func:`course_lib.config.banner`.
    """
    threads, _ = thread_setting()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def machine_load() -> float | None:
    """The 1-minute load average (processes running or waiting), or None where unknown."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return None


def oversubscription_warnings(threads: int | None = None, cores: int | None = None,
                              load: float | None = None) -> list[str]:
    """Why training may run slower here than the README's times (empty when nothing is wrong)."""
    threads = torch.get_num_threads() if threads is None else threads
    cores = available_cores() if cores is None else cores
    load = machine_load() if load is None else load
    found = []
    if threads > cores:
        found.append(f"{threads} threads on {cores} cores: the threads wait for each other "
                     f"(set {THREADS_VAR}={cores} or less)")
    if load is not None and load > BUSY_LOAD_FACTOR * cores:
        found.append(f"the machine is busy (1-minute load {load:.1f} on {cores} cores): "
                     "training runs slower than the README's times while other processes "
                     f"share the cores; give each of several notebooks run at once "
                     f"{THREADS_VAR}=1")
    return found


def banner_threads() -> tuple[str, list[str]]:
    """Apply the course's thread count (:func:`configure_threads`) and describe it for
    :func:`course_lib.config.banner`: (its ``threads`` row, its warning rows)."""
    threads = configure_threads()
    _, source = thread_setting()
    row = f"{threads} (from {source}; {available_cores()} cores; {THREADS_VAR} sets it)"
    return row, oversubscription_warnings(threads)
