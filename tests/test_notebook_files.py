"""Notebook files as committed: clean, runnable by anyone, titled after the survey.

Parametrised over ``notebooks/*.ipynb``; also tests ``python -m course_lib.run_notebook``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from course_lib import run_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# The survey's section number of each notebook and the seed's heading for it, character for
# character (the seed: the survey's Chinese summary the course follows; its heading for the
# introduction is English, so 00 has no Chinese in its title).
SEED = ROOT.parent / "shared" / "seed" / "000_5e7f6255f9722d1b.txt"  # the developers' copy
SECTIONS: dict[str, tuple[str, str | None]] = {
    "00": ("1", None), "01": ("2.1", "卷积神经网络（CNNs）"),
    "02": ("2.2", "递归神经网络（RNNs）和 长短期记忆网络（LSTM）"),
    "03": ("2.3", "编码器-解码器和自动编码器模型"), "04": ("2.4", "生成对抗网络（GANs）"),
    "05": ("3.1", "全卷积模型"), "06": ("3.2", "带有图形模型的卷积神经网络"),
    "07": ("3.3.1", "一般的图像分割"), "08": ("3.3.2", "医学和生物医学的图像分割"),
    "09": ("3.4", "基于多尺度和金字塔网络模型"), "10": ("3.5", "基于 R-CNN 模型"),
    "11": ("3.6", "空洞卷积模型"), "12": ("3.7", "基于 RNN 的模型"),
    "13": ("3.8", "基于注意力的模型"), "14": ("3.9", "生成模型和对抗训练"),
    "15": ("3.10", "带有活动轮廓模型的卷积神经网络模型"), "16": ("3.11", "其他模型"),
    "17": ("4", "数据集"), "18": ("5.1", "图像分割模型的度量"), "19": ("6", "机遇和挑战"),
}
CJK = re.compile(r"[\u4e00-\u9fff]")
TITLE = re.compile(r"# (\d\d) · §(\d+(?:\.\d+)*) ([A-Z].*)")
SEED_HEADING = re.compile(r" \(([^()]*)\)$")  # the last ASCII (...): full-width （） inside


def seed_heading(title: str) -> str | None:
    """The Chinese heading in the title's last ASCII parentheses (None if none)."""
    match = SEED_HEADING.search(title)
    return match.group(1) if match and CJK.search(match.group(1)) else None


ids = [p.stem for p in NOTEBOOKS]


@pytest.fixture(params=NOTEBOOKS, ids=ids)
def nb(request: pytest.FixtureRequest) -> nbformat.NotebookNode:
    notebook = nbformat.read(request.param, as_version=4)
    notebook.metadata["_path"] = request.param.name
    return notebook


def test_notebook_is_valid_nbformat(nb: nbformat.NotebookNode) -> None:
    name = nb.metadata.pop("_path")
    nbformat.validate(nb)
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", name), f"{name}: use NN_snake_case.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_every_cell_has_its_own_id(path: Path) -> None:
    """nbformat 4.5 cells carry an id: nbformat invents a missing one with a warning today and
    will refuse it later (a cell inserted by a script without one), so it is checked on the
    file itself."""
    cell_ids = [cell.get("id") for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    missing = [i for i, cell_id in enumerate(cell_ids) if cell_id is None]
    assert not missing, f"{path.name}: cells {missing} have no id"
    assert len(set(cell_ids)) == len(cell_ids), f"{path.name}: two cells share an id"


def test_outputs_are_stripped(nb: nbformat.NotebookNode) -> None:
    name = nb.metadata["_path"]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {i} is committed with outputs"
            assert cell.execution_count is None, f"{name} cell {i} has an execution count"
    assert "widgets" not in nb.metadata, f"{name} is committed with saved widget state"


def test_kernelspec_is_python3(nb: nbformat.NotebookNode) -> None:
    kernelspec = nb.metadata.get("kernelspec", {})
    assert kernelspec.get("name") == "python3", (
        f"{nb.metadata['_path']}: kernelspec name is {kernelspec.get('name')!r}, not 'python3'")


def test_first_code_cell_prints_the_banner(nb: nbformat.NotebookNode) -> None:
    first = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert re.search(r"print\(\s*banner\(\)\s*\)", first.source), (
        f"{nb.metadata['_path']}: the first code cell must print config.banner()")


def test_title_names_the_survey_section_and_the_seed_heading(nb: nbformat.NotebookNode
                                                              ) -> None:
    name = nb.metadata["_path"]
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{name}: the first cell must be the markdown title"
    title = next((line for line in first.source.splitlines() if line.startswith("# ")), None)
    assert title, f"{name}: the first cell has no '# ' title line"
    match = TITLE.fullmatch(title)
    assert match, f"{name}: title {title!r} is not '# NN · §N.N English title (seed heading)'"
    number, section, rest = match.groups()
    assert number == name[:2], f"{name}: title {title!r} names notebook {number}"
    want_section, want_heading = SECTIONS[number]
    assert section == want_section, f"{name}: title {title!r} should name §{want_section}"
    heading = seed_heading(title)
    assert heading == want_heading, (
        f"{name}: title {title!r} should end with ({want_heading}), the seed's heading exactly"
        if want_heading else f"{name}: the seed's heading of §1 is English: no Chinese in "
        f"{title!r}")
    english = rest[: -len(heading) - 3] if heading else rest
    assert not CJK.search(english), f"{name}: Chinese outside the parentheses in {title!r}"


def test_section_headings_are_the_seeds_own() -> None:
    if not SEED.is_file():
        pytest.skip(f"the seed (the survey's Chinese summary) is not at {SEED}")
    headings = {line.lstrip("#").strip() for line in SEED.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")}
    for number, (_, heading) in SECTIONS.items():
        if heading is not None:
            assert heading in headings, (
                f"notebook {number}: ({heading}) is not a heading of the seed, character for "
                "character")


def test_every_notebook_is_on_both_course_maps(nb: nbformat.NotebookNode) -> None:
    name = nb.metadata["_path"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"(notebooks/{name})" in readme, f"README's notebook map does not link {name}"
    intro = nbformat.read(ROOT / "notebooks" / "00_introduction.ipynb", as_version=4)
    course_map = "\n".join(c.source for c in intro.cells if "course map" in c.source.lower())
    assert f"]({name})" in course_map, f"notebook 00's course map does not link {name}"


# ----------------------------------------------------------------------------------------
# run_notebook
# ----------------------------------------------------------------------------------------
def _write(path: Path, sources: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, path)
    return path


def test_find_notebooks(tmp_path: Path) -> None:
    for name in ("00_intro.ipynb", "01_cnn.ipynb", "18_metrics.ipynb"):
        _write(tmp_path / name, ["1"])
    assert [p.name for p in run_notebook.find_notebooks("00", tmp_path)] == ["00_intro.ipynb"]
    assert [p.name for p in run_notebook.find_notebooks("18", tmp_path)] == ["18_metrics.ipynb"]
    assert len(run_notebook.find_notebooks("all", tmp_path)) == 3
    assert run_notebook.find_notebooks("01_cnn", tmp_path)[0].name == "01_cnn.ipynb"
    with pytest.raises(FileNotFoundError, match="no notebook matches '07'"):
        run_notebook.find_notebooks("07", tmp_path)


def test_run_notebook_sets_profile_and_cwd(tmp_path: Path, capsys: pytest.CaptureFixture
                                           ) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    path = _write(folder / "00_probe.ipynb",
                  ["import os\nprint(os.environ['COURSE_PROFILE'], os.getcwd())"])
    saved, seconds = run_notebook.run_notebook(path, "quick", out_dir=tmp_path / "executed")
    assert saved == tmp_path / "executed" / "00_probe.ipynb" and seconds > 0
    output = nbformat.read(saved, as_version=4).cells[0].outputs[0]["text"]
    assert output.split() == ["quick", str(folder)]
    with pytest.raises(ValueError, match="unknown profile"):
        run_notebook.run_notebook(path, "huge")
    _write(folder / "01_broken.ipynb", ["1 / 0"])
    code = run_notebook.main([str(folder / "01_broken.ipynb"), "--profile", "quick",
                              "--out", str(tmp_path / "executed")])
    assert code == 1
    out = capsys.readouterr().out
    assert "FAILED 01_broken.ipynb after" in out and "CellExecutionError" in out
    assert (tmp_path / "executed" / "01_broken.ipynb").is_file()  # kept for inspection


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_notebook_leaves_a_temporary_folder_behind(path: Path) -> None:
    """``tempfile.mkdtemp`` is never removed: every run of the notebook (nbval, the book, each
    student) would leave its folder in /tmp. ``TemporaryDirectory`` goes when the kernel stops."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    leaking = [i for i, source in enumerate(sources) if "mkdtemp(" in source]
    assert not leaking, f"{path.name}: code cells {leaking} call mkdtemp (use TemporaryDirectory)"


EXERCISE_HEADING = re.compile(r"#+ .*\bExercise\b.*")
NUMBERED_EXERCISE = re.compile(r"### Exercise (\d+) — \S")


def test_exercises_are_numbered_one_style_in_order(nb: nbformat.NotebookNode) -> None:
    """Every exercise heading reads "### Exercise N — title", N = 1, 2, ... in order, under
    a "## Exercises" heading where the exercises are a section of their own."""
    headings = [line for cell in nb.cells if cell.cell_type == "markdown"
                for line in cell.source.splitlines() if EXERCISE_HEADING.fullmatch(line)]
    numbered = [line for line in headings if line != "## Exercises"]
    name = nb.metadata["_path"]
    assert numbered, f"{name} has no exercise"
    odd = [line for line in numbered if not NUMBERED_EXERCISE.match(line)]
    assert not odd, f"{name}: exercise headings not in the '### Exercise N — title' style: {odd}"
    numbers = [int(NUMBERED_EXERCISE.match(line).group(1)) for line in numbered]
    assert numbers == list(range(1, len(numbers) + 1)), f"{name}: exercises numbered {numbers}"
