"""Execute notebooks in a chosen profile and keep the executed copies.

    python -m course_lib.run_notebook 00 --profile standard   # notebooks/00_*.ipynb
    python -m course_lib.run_notebook all --profile quick

Each notebook runs with nbclient (kernel ``python3``, ``COURSE_PROFILE`` set, working
directory ``notebooks/``); the executed notebook is saved to
``artifacts/executed/<name>.ipynb`` (also when a cell fails) and the wall time is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from course_lib.config import PROFILES

__all__ = ["REPO_ROOT", "find_notebooks", "run_notebook", "main"]

REPO_ROOT = Path(__file__).resolve().parent.parent


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


def run_notebook(path: str | os.PathLike, profile: str = "standard",
                 out_dir: str | os.PathLike | None = None, timeout: int = 3600,
                 allow_errors: bool = False) -> tuple[Path, float]:
    """Execute one notebook; return (saved executed copy, wall seconds).

    Raises nbclient's ``CellExecutionError`` after saving the partial notebook when a cell
    fails (unless ``allow_errors``).
    """
    from nbclient import NotebookClient

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles are: {', '.join(PROFILES)}")
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    out = Path(out_dir) if out_dir is not None else REPO_ROOT / "artifacts" / "executed"
    out.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout,
                            allow_errors=allow_errors,
                            resources={"metadata": {"path": str(path.parent)}})
    previous = os.environ.get("COURSE_PROFILE")
    os.environ["COURSE_PROFILE"] = profile  # the kernel inherits this process's environment
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        seconds = time.perf_counter() - start
        if previous is None:
            os.environ.pop("COURSE_PROFILE", None)
        else:
            os.environ["COURSE_PROFILE"] = previous
        target = out / path.name
        fd, tmp = tempfile.mkstemp(dir=out, suffix=".ipynb.tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            nbformat.write(nb, handle)
        os.replace(tmp, target)
    return target, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.run_notebook",
                                     description="Execute notebooks in a profile.")
    parser.add_argument("notebook", help='number ("00"), name, path, or "all"')
    parser.add_argument("--profile", default="standard", choices=sorted(PROFILES))
    parser.add_argument("--out", default=None, help="folder for executed copies "
                        "(default artifacts/executed)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    failures = 0
    total = 0.0
    for path in find_notebooks(args.notebook):
        print(f"running {path.name} (profile {args.profile}) ...", flush=True)
        start = time.perf_counter()
        try:
            saved, seconds = run_notebook(path, args.profile, args.out, args.timeout)
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
