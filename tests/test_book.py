"""The course book builder on tiny notebooks: index, lesson gathering, failure exit code."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import nbformat
import pytest

from course_lib import book, lessons

pytestmark = pytest.mark.slow  # starts three small kernels (~10 s)
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5"
         "ErkJggg==")  # a 1x1 PNG


def _notebook(path: Path, title: str, sources: list[str], depends_on: object = None) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nA tiny notebook.")]
    notebook.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    if depends_on is not None:
        notebook.metadata["course"] = {"depends_on": depends_on}
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int, str]:
    """Three notebooks, one failing on an enforced lesson; (folder, book, exit code, output)."""
    folder = tmp_path_factory.mktemp("notebooks")
    _notebook(folder / "00_good.ipynb", "00 · Good news", [
        "import os\nfrom course_lib import lessons\n"
        "print(os.environ['COURSE_PROFILE'], os.environ.get('COURSE_DATA_MIRROR'))",
        "lessons.lesson('two beats one', 'a > b', a=2.0, b=1.0)\n"
        "lessons.observation('a number that varies', x=0.25)\n"
        "big = bytearray(64 * 2**20)  # the kernel's peak memory must show it",
        "lessons.table()",
        "from IPython.display import display\n"  # a widget view with a static picture beside it
        f"view = {{'model_id': 'x', 'version_major': 2, 'version_minor': 0}}\n"
        f"display({{'{book.WIDGET_VIEW}': view, 'image/png': '{PIXEL}'}}, raw=True)"])
    _notebook(folder / "01_bad.ipynb", "01 · Bad news", [
        "from course_lib import lessons\n"
        "lessons.lesson('one beats two', 'a > b', a=1.0, b=2.0)",
        "print('never reached')"])
    _notebook(folder / "02_later.ipynb", "02 · Not built", ["1 + 1"])
    out = folder.parent / "book"
    stream = io.StringIO()
    with contextlib.redirect_stdout(stream):
        code = book.main([str(folder / "00_good.ipynb"), str(folder / "01_bad.ipynb"),
                          "--out", str(out), "--timeout", "120"])
    return folder, out, code, stream.getvalue()


def test_a_failing_lesson_fails_the_book(built: tuple[Path, Path, int, str]) -> None:
    _, out, code, output = built
    assert code == 1
    assert "01_bad.ipynb: FAILED" in output and "00_good.ipynb: ok" in output
    record = json.loads((out / "records" / "01_bad.json").read_text())
    assert not record["ok"] and "LessonFailed" in record["error"]
    assert "one beats two" in record["error"]
    executed = nbformat.read(out / "01_bad.ipynb", as_version=4)  # kept for inspection
    assert executed.cells[1].outputs and not executed.cells[2].outputs


def test_lessons_are_gathered_per_notebook(built: tuple[Path, Path, int, str]) -> None:
    _, out, _, _ = built
    good = lessons.read_log(out / "lessons" / "00_good.jsonl")
    assert [(e.claim, e.status) for e in good] == [("two beats one", "holds"),
                                                   ("a number that varies", "observed")]
    assert all(e.profile == "standard" and e.enforced == (e.holds is not None) for e in good)
    record = json.loads((out / "records" / "00_good.json").read_text())
    assert [row["claim"] for row in record["lessons"]] == ["two beats one", "a number that varies"]
    assert record["ok"] and record["profile"] == "standard" and record["seconds"] > 0
    if Path("/proc/self/status").exists():  # the kernel allocated 64 MiB on top of Python
        assert record["peak_rss_bytes"] > 64 * 2**20
    bad = lessons.read_log(out / "lessons" / "01_bad.jsonl")
    assert [e.status for e in bad] == ["FAILS"]


def test_index_lists_every_notebook_with_times_memory_and_lessons(
        built: tuple[Path, Path, int, str]) -> None:
    _, out, _, _ = built
    page = (out / "index.html").read_text()
    for text in ("00 · Good news", "01 · Bad news", "02 · Not built", "not built yet",
                 "href='00_good.html'", "href='01_bad.ipynb'", "FAILED", "MiB",
                 "two beats one", "a &gt; b", "one beats two", "LessonFailed",
                 "a number that varies", "1/1 hold, 1 observed", "0/1 hold"):
        assert text in page, text
    assert (out / "00_good.html").stat().st_size > 10_000  # nbconvert's page, outputs included
    html_page = (out / "00_good.html").read_text()
    assert "two beats one" in html_page and "standard" in html_page
    assert f"data:image/png;base64,{PIXEL}" in html_page  # the picture, not the widget view


def test_one_notebook_rebuilds_and_the_index_keeps_the_others(
        built: tuple[Path, Path, int, str], capsys: pytest.CaptureFixture) -> None:
    folder, out, _, _ = built
    code = book.main([str(folder / "00_good.ipynb"), "--out", str(out), "--no-html",
                      "--profile", "quick"])
    assert code == 0
    page = (out / "index.html").read_text()
    assert "01 · Bad news" in page and "FAILED" in page  # the earlier record is still shown
    assert "built " in page  # ... marked with its build time
    assert json.loads((out / "records" / "00_good.json").read_text())["profile"] == "quick"
    assert "lessons are recorded, not enforced" in page  # quick: the good notebook's table
    assert "1 notebook(s)" in capsys.readouterr().out


def test_title_and_bad_profile() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        book.build(["all"], profile="huge")
    assert book.notebook_title(Path(__file__).parent.parent / "notebooks" / "05_fcn.ipynb"
                               ).startswith("05 · ")  # the first "# " heading, not the name


WAIT_FOR = """import json, os, time
from pathlib import Path
Path('{me}.started').touch()
deadline = time.time() + 120
while not Path('{other}.started').exists():  # only when both run at once
    assert time.time() < deadline, 'the other notebook never started: not run in parallel'
    time.sleep(0.1)
time.sleep({linger})
Path('{me}.json').write_text(json.dumps(os.environ.get('OMP_NUM_THREADS')))
Path('{me}.done').touch()"""


def test_jobs_run_notebooks_side_by_side_and_in_order_of_their_dependencies(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--jobs 2: 00 and 01 wait for each other (so they must run at once), 02 loads what 00
    wrote and declares it (so it must start after 00, not after 01, which ends first); the
    index and the records stay in notebook order, each kernel has cores // 2 threads."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "00_first.ipynb", "00 · First", [
        WAIT_FOR.format(me="00", other="01", linger=5)])
    _notebook(folder / "01_second.ipynb", "01 · Second", [
        WAIT_FOR.format(me="01", other="00", linger=0)])
    _notebook(folder / "02_third.ipynb", "02 · Third", [
        "from pathlib import Path\n"
        "checkpoint = Path('.') / 'checkpoints' / '00_first.pt'\n"
        "assert Path('00.done').exists(), 'started before notebook 00 had finished'"],
        depends_on=["00"])
    assert book.depends_on(folder / "02_third.ipynb", sorted(folder.glob("*.ipynb"))) == [
        folder / "00_first.ipynb"]
    out = tmp_path / "book"
    records = book.build(["all"], "quick", out, notebook_dir=folder, timeout=180, render=False,
                         jobs=2)
    output = capsys.readouterr().out
    assert [r.name for r in records] == ["00_first", "01_second", "02_third"]
    assert all(r.ok for r in records), [r.error for r in records]
    assert output.index("01_second.ipynb: ok") < output.index("00_first.ipynb: ok")
    threads = str(max(1, book._cores() // 2))
    assert json.loads((folder / "00.json").read_text()) == threads
    assert json.loads((folder / "01.json").read_text()) == threads
    page = (out / "index.html").read_text()
    positions = [page.index(title) for title in ("00 · First", "01 · Second", "02 · Third")]
    assert positions == sorted(positions)
    assert page.count(" min</td>") == 3 and "3 notebook(s)" in page
    for record in records:
        saved = json.loads((out / "records" / f"{record.name}.json").read_text())
        assert saved["ok"] and saved["seconds"] > 0


def test_jobs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="jobs must be at least 1, got 0"):
        book.build(["all"], jobs=0)


def test_a_declared_dependency_orders_the_build_one_at_a_time(tmp_path: Path) -> None:
    """jobs=1: 00 reads what 01 writes and says so, so 01 runs first (not in number order)."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "00_reader.ipynb", "00 · Reader", [
        "from pathlib import Path\n"
        "assert Path('01.done').exists(), 'ran before notebook 01, which it depends on'"],
        depends_on=["01"])
    _notebook(folder / "01_writer.ipynb", "01 · Writer", [
        "from pathlib import Path\nPath('01.done').touch()"])
    records = book.build(["all"], "quick", tmp_path / "book", notebook_dir=folder,
                         timeout=120, render=False)
    assert [r.name for r in records] == ["00_reader", "01_writer"]  # notebook order
    assert all(r.ok for r in records), [r.error for r in records]


def _loads_05(folder: Path, name: str = "06_user.ipynb", depends_on: object = None) -> Path:
    """A notebook that loads notebook 05's checkpoint, as notebook 06 does."""
    return _notebook(folder / name, "06 · User", [
        'ckpt = data_dir() / "checkpoints" / f"05_fcn32s_{run_tag()}.pt"'], depends_on)


def test_an_undeclared_checkpoint_load_is_refused_with_what_to_add(tmp_path: Path) -> None:
    writer = _notebook(tmp_path / "05_writer.ipynb", "05 · Writer", ["1 + 1"])
    user = _loads_05(tmp_path)
    with pytest.raises(ValueError, match=r'06_user.ipynb loads the checkpoint of notebook\(s\) '
                       r'05 .* add \["05"\] as metadata\["course"\]\["depends_on"\]'):
        book.depends_on(user, [writer, user])
    with pytest.raises(ValueError, match="loads the checkpoint of notebook"):  # before any kernel
        book.build(["all"], "quick", tmp_path / "book", notebook_dir=tmp_path, render=False)
    wrong = _loads_05(tmp_path, "07_wrong.ipynb", depends_on=["04"])  # declares another one
    with pytest.raises(ValueError, match="07_wrong.ipynb loads the checkpoint of notebook"):
        book.depends_on(wrong, [writer, wrong])
    declared = _loads_05(tmp_path, "08_declared.ipynb", depends_on=["05"])
    assert book.depends_on(declared, [writer, user, declared]) == [writer]
    assert book.depends_on(declared, [declared]) == []  # 05 not built in this run: no wait


@pytest.mark.parametrize(("declared", "message"), [
    ("05", "must be a list of two-digit notebook numbers"),
    ([5], "must be a list of two-digit notebook numbers"),
    (["5"], "must be a list of two-digit notebook numbers"),
    (["06"], "names the notebook itself"),
    (["05", "42"], r"declares depends_on \['42'\] but there is no notebook numbered so"),
])
def test_malformed_or_wrong_metadata_is_refused(tmp_path: Path, declared: object,
                                                message: str) -> None:
    writer = _notebook(tmp_path / "05_writer.ipynb", "05 · Writer", ["1 + 1"])
    user = _loads_05(tmp_path, depends_on=declared)
    with pytest.raises(ValueError, match=message):
        book.depends_on(user, [writer, user])


def test_the_course_notebooks_declare_the_checkpoints_they_load() -> None:
    """Every notebook of the course passes the check; 06 runs after 05, whose FCN it loads."""
    folder = Path(__file__).parent.parent / "notebooks"
    notebooks = sorted(folder.glob("*.ipynb"))
    declared = {path.stem[:2]: book.declared_dependencies(path) for path in notebooks}
    assert declared["06"] == ["05"]
    assert {n: d for n, d in declared.items() if d} == {"04": ["01"], "06": ["05"]}
    crf = next(path for path in notebooks if path.stem.startswith("06_"))
    assert [p.stem[:2] for p in book.depends_on(crf, notebooks)] == ["05"]


def test_a_kernel_that_dies_before_the_first_cell_is_started_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two kernels started at once can race for one TCP port (make smoke JOBS=2 lost 01 so)."""
    import nbclient

    from course_lib import run_notebook

    real_start = nbclient.NotebookClient.async_start_new_kernel
    starts: list[int] = []

    async def flaky_start(self: nbclient.NotebookClient, **kwargs: object) -> None:
        starts.append(1)
        if len(starts) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info (Address in use)")
        await real_start(self, **kwargs)

    monkeypatch.setattr(nbclient.NotebookClient, "async_start_new_kernel", flaky_start)
    path = _notebook(tmp_path / "00_one.ipynb", "00 · One", ["print(6 * 7)"])
    result = run_notebook.execute(path, tmp_path / "out", timeout=120)
    assert result.ok, result.error
    assert len(starts) == 2
    outputs = nbformat.read(result.saved, as_version=4).cells[1].outputs
    assert outputs[0]["text"].strip() == "42"


def test_a_failing_cell_is_not_run_again(tmp_path: Path) -> None:
    """A cell that fails once the kernel runs is the notebook's error, reported, never retried."""
    from course_lib import run_notebook

    path = _notebook(tmp_path / "00_fails.ipynb", "00 · Fails", [
        "from pathlib import Path\nPath('ran').open('a').write('x')\nraise ValueError('boom')"])
    result = run_notebook.execute(path, tmp_path / "out", timeout=120)
    assert not result.ok and "boom" in result.error
    assert (tmp_path / "ran").read_text() == "x"


def _record(name: str, seconds: float, ok: bool = True, smoke: bool = False) -> book.Record:
    return book.Record(name=name, title=name, ok=ok, seconds=seconds, peak_rss_bytes=None,
                       error=None, profile="full" if smoke else "standard", seed="0",
                       smoke=smoke, built="", html=None, lessons=[])


def test_saved_wall_times_order_the_next_parallel_run_longest_first(tmp_path: Path) -> None:
    paths = [tmp_path / f"{n}.ipynb" for n in ("00_a", "01_b", "02_c", "03_d")]
    assert book.expected_seconds(tmp_path, "standard") == {}
    assert book.longest_first(paths, {}) == paths  # nothing known: notebook order
    book.save_seconds(tmp_path, [_record("00_a", 10), _record("01_b", 99.94),
                                 _record("02_c", 50, ok=False), _record("03_d", 30, smoke=True)])
    standard = book.expected_seconds(tmp_path, "standard")
    assert standard == {"00_a": 10.0, "01_b": 99.9}  # a failed run is no measure
    assert book.expected_seconds(tmp_path, "full", smoke=True) == {"03_d": 30.0}
    # never timed (02, 03 in standard) first, then the longest; ties keep their order
    assert [p.stem for p in book.longest_first(paths, standard)] == ["02_c", "03_d", "01_b",
                                                                     "00_a"]
    book.save_seconds(tmp_path, [_record("00_a", 200)])  # merged, not replaced
    assert book.expected_seconds(tmp_path, "standard") == {"00_a": 200.0, "01_b": 99.9}
    (tmp_path / book.SECONDS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        book.expected_seconds(tmp_path, "standard")
