"""The course book: every notebook executed, rendered to HTML, with its lessons in one index.

    python -m course_lib.book                 # every notebook, standard profile (make book)
    python -m course_lib.book 05              # one notebook (make book NB=05)
    python -m course_lib.book all --profile full --smoke --out artifacts/smoke --no-html
    python -m course_lib.book --jobs 2        # two notebooks at a time (make book JOBS=2)

Each notebook runs in a fresh ``python3`` kernel started by nbclient (the kernel a student
gets), with ``COURSE_PROFILE`` set and ``COURSE_LESSON_LOG`` pointing at a file of its own;
everything else in the environment, ``COURSE_SEED`` and ``COURSE_DATA_MIRROR`` included,
reaches the kernel unchanged. The notebooks run one after another, or ``--jobs N`` at a time
(each in a worker process of its own, its kernel with ``OMP_NUM_THREADS`` = cores // N); a
notebook that declares in its metadata that it reads another notebook's output
(``metadata["course"]["depends_on"] = ["05"]``: 06 loads the FCN that 05 saved) starts only
after that notebook has finished; a notebook whose code loads another notebook's checkpoint
(``"checkpoints" / f"05_...``) without declaring it is refused with an error that says what to
add. With ``--jobs`` the notebooks that took longest last time start first (the times of
each kind of run are kept in ``notebooks/book_seconds.json``; ``--save-seconds`` updates it), so
that the workers finish together instead of one long notebook running alone at the end.
For each notebook the book keeps,
under ``--out`` (default ``artifacts/book/``):

- ``<name>.ipynb`` — the executed copy (also when a cell failed), and ``<name>.html``
  (nbconvert's lab template) unless ``--no-html``;
- ``lessons/<name>.jsonl`` — every lesson the notebook stated;
- ``records/<name>.json`` — status, wall time, the kernel's peak resident memory, error.

``index.html`` then lists every notebook of the course (the map: number, title, links), with
the latest record of each one, built in this run or an earlier one, and its lesson table. The
exit status is 1 when a notebook of this run failed — a cell error or a lesson that does not
hold — and 0 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import time
from concurrent import futures
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from course_lib import lessons
from course_lib.config import PROFILES, SEED_VAR, SMOKE_VAR
from course_lib.run_notebook import REPO_ROOT, execute, find_notebooks

__all__ = ["Record", "build", "declared_dependencies", "depends_on", "main", "notebook_title",
           "write_index"]

DEFAULT_OUT = REPO_ROOT / "artifacts" / "book"
MIRROR_VAR = "COURSE_DATA_MIRROR"  # real data sets (notebook 08); see course_lib.data.formats


@dataclass
class Record:
    """One notebook's entry in the book."""

    name: str  # file stem, e.g. "05_fcn"
    title: str
    ok: bool
    seconds: float
    peak_rss_bytes: int | None
    error: str | None
    profile: str
    seed: str
    smoke: bool
    built: str  # ISO time stamp of the run
    html: str | None  # file name inside the book folder
    lessons: list[dict] = field(default_factory=list)  # as written to COURSE_LESSON_LOG

    def lesson_entries(self) -> list[lessons.Lesson]:
        return [lessons.Lesson(**row) for row in self.lessons]


def notebook_title(path: Path) -> str:
    """The first ``# `` heading of a notebook's first markdown cell (else its file name)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
            break
    return path.stem


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _render_html(notebook: Path, target: Path) -> None:
    """nbconvert's lab page; a widget that also carries a static PNG shows the PNG.

    A widget view needs the widget manager's JavaScript from a CDN to draw; the course's
    explorers put a picture of their current view beside it, which any browser shows.
    """
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and "image/png" in data:
                del data[WIDGET_VIEW]
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    target.write_text(body, encoding="utf-8")


def build_one(path: Path, out: Path, profile: str, *, smoke: bool = False, timeout: int = 1200,
              render: bool = True, threads: int | None = None) -> Record:
    """Execute one notebook into the book folder ``out`` and return (and save) its record.

    ``threads`` sets the kernel's ``OMP_NUM_THREADS`` (left as inherited when None).
    """
    (out / "lessons").mkdir(parents=True, exist_ok=True)
    (out / "records").mkdir(parents=True, exist_ok=True)
    log = out / "lessons" / f"{path.stem}.jsonl"
    log.unlink(missing_ok=True)
    env = {"COURSE_PROFILE": profile, lessons.LOG_VAR: str(log.resolve()),
           SMOKE_VAR: "1" if smoke else None}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    built = datetime.datetime.now().isoformat(timespec="seconds")
    result = execute(path, out, timeout=timeout, env=env)
    page = None
    if render:
        page = f"{path.stem}.html"
        try:
            _render_html(result.saved, out / page)
        except Exception as failure:  # the book goes on; the record says why there is no page
            page = None
            result.error = (result.error or "") + f"\n(HTML rendering failed: {failure})"
    rows = [asdict(e) for e in lessons.read_log(log)] if log.exists() else []
    record = Record(name=path.stem, title=notebook_title(path), ok=result.ok,
                    seconds=result.seconds, peak_rss_bytes=result.peak_rss_bytes,
                    error=result.error, profile=profile, seed=os.environ.get(SEED_VAR, "0"),
                    smoke=smoke, built=built, html=page, lessons=rows)
    (out / "records" / f"{path.stem}.json").write_text(
        json.dumps(asdict(record), indent=1, ensure_ascii=False), encoding="utf-8")
    return record


def _load_records(out: Path) -> dict[str, Record]:
    records = {}
    for file in sorted((out / "records").glob("*.json")):
        try:
            records[file.stem] = Record(**json.loads(file.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError):
            continue  # a record from an older book format: rebuilt with the notebook
    return records


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _mib(value: int | None) -> str:
    return "–" if value is None else f"{value / 2**20:,.0f} MiB"


def _counts(entries: list[lessons.Lesson]) -> str:
    checked = [e for e in entries if e.holds is not None]
    held = sum(bool(e.holds) for e in checked)
    observed = len(entries) - len(checked)
    return f"{held}/{len(checked)} hold" + (f", {observed} observed" if observed else "")


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1f2328}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;
padding:.3em .6em;vertical-align:top;text-align:left}th{background:#f6f8fa}
.num{text-align:right;white-space:nowrap}.fail{color:#cf222e;font-weight:bold}.ok{color:#1a7f37}
pre{white-space:pre-wrap;background:#fff8f8;border:1px solid #f5c2c7;padding:.5em;font-size:85%}
h2{margin-top:2em;border-bottom:1px solid #d0d7de}small{color:#57606a}"""


def write_index(out: Path, notebooks: list[Path], this_run: list[Record], *,
                total_seconds: float) -> Path:
    """Write ``out/index.html``: the notebook map, every record's numbers and lesson table."""
    records = _load_records(out)
    run_names = {r.name for r in this_run}
    failed = [r.name for r in this_run if not r.ok]
    first = this_run[0] if this_run else None
    head = (f"<p>This run: {len(this_run)} notebook(s) in {total_seconds / 60:.1f} min"
            + (f", profile <b>{first.profile}</b>{' (smoke)' if first.smoke else ''}, "
               f"COURSE_SEED {html.escape(first.seed)}" if first else "")
            + (f" — <span class='fail'>failed: {html.escape(', '.join(failed))}</span>"
               if failed else " — <span class='ok'>every cell ran, every lesson held</span>")
            + f".<br><small>{html.escape(platform.platform())}, {os.cpu_count()} CPU(s), "
            f"python {platform.python_version()}, commit {html.escape(_git_commit() or '?')}, "
            f"{MIRROR_VAR}={html.escape(os.environ.get(MIRROR_VAR) or 'not set')}</small></p>")
    rows, sections = [], []
    for path in notebooks:
        record = records.get(path.stem)
        number = path.stem.split("_", 1)[0]
        if record is None:
            rows.append(f"<tr><td>{number}</td><td>{html.escape(notebook_title(path))}</td>"
                        "<td colspan='5'><small>not built yet</small></td></tr>")
            continue
        entries = record.lesson_entries()
        link = (f"<a href='{html.escape(record.html)}'>{html.escape(record.title)}</a>"
                if record.html else html.escape(record.title))
        status = "<span class='ok'>ok</span>" if record.ok else "<span class='fail'>FAILED</span>"
        earlier = "" if record.name in run_names else f"<br><small>built {record.built}</small>"
        rows.append(f"<tr><td>{number}</td><td>{link} <small>(<a href='{record.name}.ipynb'>"
                    f"ipynb</a>)</small>{earlier}</td><td>{status}</td>"
                    f"<td class='num'>{record.seconds / 60:.1f} min</td>"
                    f"<td class='num'>{_mib(record.peak_rss_bytes)}</td>"
                    f"<td>{_counts(entries)}</td><td><a href='#{record.name}'>table</a></td></tr>")
        error = f"<pre>{html.escape(record.error)}</pre>" if record.error else ""
        sections.append(f"<h2 id='{record.name}'>{html.escape(record.title)}</h2>{error}"
                        + lessons.table_html(entries))
    table = ("<table><tr><th>#</th><th>notebook</th><th>status</th><th>wall time</th>"
             "<th>peak memory (kernel RSS)</th><th>lessons</th><th></th></tr>"
             + "".join(rows) + "</table>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>The course book</title>"
            f"<style>{_STYLE}</style></head><body><h1>The course book</h1>{head}{table}"
            "<p><small>Lessons: a claim, its measured numbers and the condition they must meet "
            "(<code>course_lib.lessons</code>); enforced in <code>standard</code> and "
            "<code>full</code>, recorded only in <code>quick</code> and smoke runs; observations "
            "are shown, never enforced.</small></p>" + "".join(sections) + "</body></html>")
    target = out / "index.html"
    target.write_text(page, encoding="utf-8")
    return target


# Where a notebook states what it needs: the numbers of the notebooks whose output (e.g. a
# checkpoint) it reads, e.g. notebook 06: {"course": {"depends_on": ["05"]}}.
METADATA_KEY = "course"
DEPENDS_KEY = "depends_on"
# A checkpoint another notebook wrote, as the code spells it: data_dir() / "checkpoints" /
# f"05_fcn32s_{run_tag()}.pt". Only a guard: a load that the metadata does not declare is
# refused (it would let --jobs start the notebook before the one that writes the file).
CHECKPOINT_OF = re.compile(r"""["']checkpoints["']\s*/\s*f?["'](\d+)_""")


def _number(path: Path) -> str:
    return path.stem.split("_", 1)[0]


def declared_dependencies(path: Path) -> list[str]:
    """The notebook numbers in ``metadata["course"]["depends_on"]`` (``[]`` when absent).

    Raises ValueError when the entry is not a list of two-digit numbers other than the
    notebook's own, or when the code loads another notebook's checkpoint it does not declare.
    """
    nb = nbformat.read(path, as_version=4)
    declared = nb.metadata.get(METADATA_KEY, {}).get(DEPENDS_KEY, [])
    where = f'{path.name}: metadata["{METADATA_KEY}"]["{DEPENDS_KEY}"]'
    if not isinstance(declared, list) or not all(
            isinstance(n, str) and len(n) == 2 and n.isdigit() for n in declared):
        raise ValueError(f"{where} must be a list of two-digit notebook numbers such as "
                         f'["05"], got {declared!r}')
    if _number(path) in declared:
        raise ValueError(f"{where} names the notebook itself ({_number(path)!r})")
    loaded = sorted({f"{int(m.group(1)):02d}" for cell in nb.cells if cell.cell_type == "code"
                     for m in CHECKPOINT_OF.finditer(cell.source)} - {_number(path)})
    missing = [n for n in loaded if n not in declared]
    if missing:
        raise ValueError(
            f"{path.name} loads the checkpoint of notebook(s) {', '.join(missing)} but its "
            f"metadata does not say so: add {json.dumps(sorted(set(declared) | set(missing)))} "
            f'as metadata["{METADATA_KEY}"]["{DEPENDS_KEY}"] (the book runs it after them)')
    return list(declared)


def depends_on(path: Path, others: list[Path]) -> list[Path]:
    """The notebooks among ``others`` that ``path`` declares it depends on (its metadata).

    A declared notebook that is not among ``others`` (not built in this run) is not waited
    for; one that is not in ``path``'s folder at all is an error (a wrong number).
    """
    declared = declared_dependencies(path)
    present = {_number(p) for p in path.parent.glob("*.ipynb")} | {_number(p) for p in others}
    unknown = [n for n in declared if n not in present]
    if unknown:
        raise ValueError(f"{path.name} declares depends_on {unknown} but there is no notebook "
                         f"numbered so in {path.parent}")
    return [other for other in others if other != path and _number(other) in declared]


def _in_dependency_order(paths: list[Path], waits: dict[Path, list[Path]]) -> list[Path]:
    """``paths`` in their order, except that each comes after the notebooks it waits for."""
    ordered: list[Path] = []
    visiting: set[Path] = set()

    def place(path: Path) -> None:
        if path in ordered:
            return
        if path in visiting:
            raise ValueError(f"notebooks depend on each other in a cycle through {path.name}")
        visiting.add(path)
        for first in waits[path]:
            place(first)
        visiting.discard(path)
        ordered.append(path)

    for path in paths:
        place(path)
    return ordered


# The wall time of each notebook in the last run of each kind ("standard", "full-smoke", ...),
# beside the notebooks: {"standard": {"05_fcn": 180.2, ...}}. Only a scheduling hint.
SECONDS_FILE = "book_seconds.json"


def _run_kind(profile: str, smoke: bool) -> str:
    return f"{profile}-smoke" if smoke else profile


def expected_seconds(notebook_dir: Path, profile: str, smoke: bool = False) -> dict[str, float]:
    """Each notebook's wall time in the last saved run of this kind ({} when none is saved)."""
    file = notebook_dir / SECONDS_FILE
    if not file.exists():
        return {}
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{file} is not valid JSON ({err}); delete it or fix it") from err
    return {str(k): float(v) for k, v in saved.get(_run_kind(profile, smoke), {}).items()}


def save_seconds(notebook_dir: Path, records: list[Record]) -> Path:
    """Merge the wall times of the successful ``records`` into ``notebook_dir``'s
    :data:`SECONDS_FILE` (written atomically)."""
    file = notebook_dir / SECONDS_FILE
    saved = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
    for record in records:
        if record.ok:
            kind = saved.setdefault(_run_kind(record.profile, record.smoke), {})
            kind[record.name] = round(record.seconds, 1)
    saved = {kind: dict(sorted(times.items())) for kind, times in sorted(saved.items())}
    partial = file.with_suffix(".json.partial")
    partial.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, file)
    return file


def longest_first(paths: list[Path], expected: dict[str, float]) -> list[Path]:
    """``paths`` by expected wall time, longest first; a notebook never timed counts as the
    longest (it may be), ties keep their order. Longest-processing-time-first scheduling: the
    workers of ``--jobs`` then end close together."""
    return sorted(paths, key=lambda p: -expected.get(p.stem, float("inf")))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def build(specs: list[str], profile: str = "standard", out: str | os.PathLike | None = None, *,
          smoke: bool = False, timeout: int = 1200, render: bool = True,
          notebook_dir: str | os.PathLike | None = None, jobs: int = 1) -> list[Record]:
    """Build the book for the notebooks matching ``specs`` ("all", numbers, names, paths).

    ``jobs`` notebooks run at a time, each kernel with ``OMP_NUM_THREADS`` = cores // jobs
    (at least 1); with ``jobs=1`` they run one after another in this process and the kernels
    inherit ``OMP_NUM_THREADS``. The records come back in notebook order.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles are: {', '.join(PROFILES)}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    folder = Path(out) if out is not None else DEFAULT_OUT
    chosen: list[Path] = []
    for spec in specs or ["all"]:
        chosen += [p for p in find_notebooks(spec, notebook_dir) if p not in chosen]
    chosen.sort(key=lambda p: p.name)
    waits = {path: depends_on(path, chosen) for path in chosen}  # refuses undeclared loads
    chosen = _in_dependency_order(chosen, waits)  # e.g. 05 before 06: 06 reads 05's FCN
    everything = find_notebooks("all", notebook_dir or chosen[0].parent)
    start = time.perf_counter()
    done: list[Record] = []
    options = {"smoke": smoke, "timeout": timeout, "render": render}

    def started(path: Path) -> None:
        print(f"[book] {path.name} ({profile}{', smoke' if smoke else ''}) ...", flush=True)

    def finished(record: Record) -> None:
        done.append(record)
        shown = f"{record.seconds:.1f} s, peak {_mib(record.peak_rss_bytes)}, lessons " \
                f"{_counts(record.lesson_entries())}"
        print(f"[book] {record.name}.ipynb: {'ok' if record.ok else 'FAILED'} ({shown})",
              flush=True)
        if record.error:
            print(record.error, flush=True)
        write_index(folder, everything, done, total_seconds=time.perf_counter() - start)

    if jobs == 1:
        for path in chosen:
            started(path)
            finished(build_one(path, folder, profile, **options))
    else:
        threads = max(1, _cores() // jobs)
        expected = expected_seconds(chosen[0].parent, profile, smoke)
        pending, running, complete = list(chosen), {}, set()
        # worker processes: each has an environment of its own for the kernel it starts
        with futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")
                                         ) as pool:
            while pending or running:
                ready = longest_first([p for p in pending if all(d in complete for d in waits[p])],
                                      expected)
                for path in ready[:jobs - len(running)]:
                    pending.remove(path)
                    started(path)
                    running[pool.submit(build_one, path, folder, profile, threads=threads,
                                        **options)] = path
                ended, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for job in ended:
                    complete.add(running.pop(job))
                    finished(job.result())
    return sorted(done, key=lambda record: record.name)  # notebook order


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.book",
                                     description="Execute notebooks into the course book.")
    parser.add_argument("notebooks", nargs="*", default=["all"],
                        help='numbers ("05"), names, paths, or "all" (the default)')
    parser.add_argument("--profile", default="standard", choices=sorted(PROFILES))
    parser.add_argument("--smoke", action="store_true",
                        help="COURSE_SMOKE=1: every loop capped at 2 steps, lessons not enforced")
    parser.add_argument("--out", default=None, help=f"book folder (default {DEFAULT_OUT})")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML pages")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks at a time (default 1), "
                        "each kernel with OMP_NUM_THREADS = cores // jobs")
    parser.add_argument("--save-seconds", action="store_true", help=f"write the wall times "
                        f"into the notebooks' {SECONDS_FILE} (the order of the next --jobs run)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    start = time.perf_counter()
    records = build(args.notebooks, args.profile, args.out, smoke=args.smoke,
                    timeout=args.timeout, render=not args.no_html, jobs=args.jobs)
    failed = [r.name for r in records if not r.ok]
    if args.save_seconds and records:
        saved = save_seconds(REPO_ROOT / "notebooks", records)
        print(f"[book] wall times saved in {saved}", flush=True)
    folder = Path(args.out) if args.out else DEFAULT_OUT
    print(f"[book] {len(records)} notebook(s) in {time.perf_counter() - start:.1f} s, "
          f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}; "
          f"index: {folder / 'index.html'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
