"""Execute notebooks in a chosen profile and keep the executed copies.

    python -m course_lib.run_notebook 00 --profile standard   # notebooks/00_*.ipynb
    python -m course_lib.run_notebook all --profile quick
    python -m course_lib.run_notebook 05 --profile full --smoke --seed 1

Each notebook runs with nbclient (kernel ``python3``, working directory ``notebooks/``) in an
environment that sets ``COURSE_PROFILE`` (and ``COURSE_SEED`` / ``COURSE_SMOKE`` when asked);
everything else, ``COURSE_DATA_MIRROR`` included, is inherited. The executed notebook is saved
to ``artifacts/executed/<name>.ipynb`` (also when a cell fails) and the wall time is printed.
:func:`execute` also measures the kernel's peak resident memory (Linux: ``VmHWM``); the course
book (:mod:`course_lib.book`) builds on it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_lib.config import PROFILES, SEED_VAR, SMOKE_VAR

__all__ = ["REPO_ROOT", "Execution", "execute", "find_notebooks", "kernel_environment",
           "run_notebook", "main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
KERNEL_START_ATTEMPTS = 3  # a kernel that fails before its first cell is started again


@dataclass
class Execution:
    """What running one notebook gave: the saved copy, its time, memory and first error."""

    saved: Path
    seconds: float
    peak_rss_bytes: int | None  # the kernel's high-water mark of resident memory, when known
    error: str | None  # None when every cell ran; else the failing cell's error, shortened

    @property
    def ok(self) -> bool:
        return self.error is None


def find_notebooks(spec: str, notebook_dir: str | os.PathLike | None = None) -> list[Path]:
    """Notebooks matching ``spec``: "all", a number ("00", "5"), a name or a path."""
    folder = Path(notebook_dir) if notebook_dir is not None else REPO_ROOT / "notebooks"
    candidate = Path(spec)
    if candidate.suffix == ".ipynb" and candidate.is_file():
        return [candidate]
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder not found: {folder}")
    everything = sorted(folder.glob("*.ipynb"))
    if spec == "all":
        found = everything
    elif spec.isdigit():
        found = sorted(folder.glob(f"{int(spec):02d}_*.ipynb"))
    else:
        found = [p for p in everything if p.stem == spec or p.name == spec]
    if not found:
        names = ", ".join(p.name for p in everything) or "none"
        raise FileNotFoundError(f"no notebook matches {spec!r} in {folder} (have: {names})")
    return found


@contextlib.contextmanager
def kernel_environment(**variables: str | None) -> Iterator[None]:
    """Set (or, with ``None``, remove) environment variables for the kernels started inside.

    The kernel inherits this process's environment; the previous values come back afterwards.
    """
    before = {name: os.environ.get(name) for name in variables}
    try:
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _peak_rss(pid: int | None) -> int | None:
    """The high-water mark of a process's resident memory in bytes (Linux), else None."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _short_error(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # nbclient's CellExecutionError ends with the exception line; keep the end that says why
    return f"{type(error).__name__}: " + "\n".join(lines[-12:])[-3000:]


def _execute_once(path: Path, *, timeout: int, allow_errors: bool,
                  env: dict[str, str | None], peak: list[int]
                  ) -> tuple[nbformat.NotebookNode, str | None, bool]:
    """One kernel's run: (the notebook as executed, the error or None, whether a cell began)."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout, allow_errors=allow_errors,
                            resources={"metadata": {"path": str(path.parent)}})
    began: list[bool] = []

    def after_cell(**_: object) -> None:  # the kernel is alive here: read its high-water mark
        provisioner = getattr(client.km, "provisioner", None)
        value = _peak_rss(getattr(provisioner, "pid", None))
        if value is not None:
            peak.append(value)

    client.on_cell_start = lambda **_: began.append(True)
    client.on_cell_executed = after_cell
    try:
        with kernel_environment(**env):
            client.execute()
    except Exception as failure:  # a failing cell, a dead kernel, a timeout: reported, kept
        return nb, _short_error(failure), bool(began)
    return nb, None, True


def execute(path: str | os.PathLike, out_dir: str | os.PathLike, *, timeout: int = 3600,
            allow_errors: bool = False, env: dict[str, str | None] | None = None) -> Execution:
    """Execute one notebook with nbclient; save the executed copy (also on failure) to ``out_dir``.

    ``env`` adds environment variables for the kernel (``None`` removes one). A failing cell
    does not raise here: the returned :class:`Execution` carries the error. A kernel that dies
    before the first cell begins is started again (up to ``KERNEL_START_ATTEMPTS`` kernels):
    kernels started at the same moment can race for the same TCP port, and nothing has run yet.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    peak: list[int] = []
    start = time.perf_counter()
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        nb, error, began = _execute_once(path, timeout=timeout, allow_errors=allow_errors,
                                         env=env or {}, peak=peak)
        if error is None or began or attempt == KERNEL_START_ATTEMPTS:
            break
        print(f"[run_notebook] {path.name}: the kernel did not start (attempt {attempt} of "
              f"{KERNEL_START_ATTEMPTS}), starting a fresh one: {error.splitlines()[0][:200]}",
              file=sys.stderr, flush=True)
        time.sleep(attempt)
    seconds = time.perf_counter() - start
    target = out / path.name
    fd, tmp = tempfile.mkstemp(dir=out, suffix=".ipynb.tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        nbformat.write(nb, handle)
    os.replace(tmp, target)
    return Execution(target, seconds, max(peak) if peak else None, error)


def run_notebook(path: str | os.PathLike, profile: str = "standard",
                 out_dir: str | os.PathLike | None = None, timeout: int = 3600,
                 allow_errors: bool = False, *, seed: int | None = None,
                 smoke: bool | None = None) -> tuple[Path, float]:
    """Execute one notebook in ``profile``; return (saved executed copy, wall seconds).

    ``seed`` and ``smoke`` set ``COURSE_SEED`` and ``COURSE_SMOKE`` for the kernel; left at
    None, the kernel inherits them from this process.

    Raises nbclient's ``CellExecutionError`` (as a ``RuntimeError`` naming the cell) after
    saving the partial notebook when a cell fails, unless ``allow_errors``.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles are: {', '.join(PROFILES)}")
    out = Path(out_dir) if out_dir is not None else REPO_ROOT / "artifacts" / "executed"
    env: dict[str, str | None] = {"COURSE_PROFILE": profile}
    if smoke is not None:
        env[SMOKE_VAR] = "1" if smoke else None
    if seed is not None:
        env[SEED_VAR] = str(seed)
    result = execute(path, out, timeout=timeout, allow_errors=allow_errors, env=env)
    if not result.ok:
        raise RuntimeError(f"{Path(path).name} failed (executed copy: {result.saved}):\n"
                           f"{result.error}")
    return result.saved, result.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.run_notebook",
                                     description="Execute notebooks in a profile.")
    parser.add_argument("notebook", help='number ("00"), name, path, or "all"')
    parser.add_argument("--profile", default="standard", choices=sorted(PROFILES))
    parser.add_argument("--seed", type=int, default=None, help="COURSE_SEED for the kernels")
    parser.add_argument("--smoke", action="store_true", default=None, help="COURSE_SMOKE=1: "
                        "every loop capped at 2 steps, tiny data, lessons recorded only")
    parser.add_argument("--out", default=None, help="folder for executed copies "
                        "(default artifacts/executed)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    failures = 0
    total = 0.0
    for path in find_notebooks(args.notebook):
        print(f"running {path.name} (profile {args.profile}"
              f"{', smoke' if args.smoke else ''}) ...", flush=True)
        start = time.perf_counter()
        try:
            saved, seconds = run_notebook(path, args.profile, args.out, args.timeout,
                                          seed=args.seed, smoke=args.smoke)
        except Exception as error:  # report and go on with the next notebook
            failures += 1
            print(f"FAILED {path.name} after {time.perf_counter() - start:.1f} s: "
                  f"{type(error).__name__}: {str(error)[-2000:]}", flush=True)
            continue
        total += seconds
        print(f"{path.name}: {seconds:.1f} s wall time -> {saved}", flush=True)
    print(f"done: {failures} failure(s), {total:.1f} s in total", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
