"""nbgrader on the course's notebooks: metadata from course_lib.classroom, then real nbgrader.

``generate_assignment`` and ``autograde`` run on one course notebook (smoke run of the
quick profile, so the notebook executes in seconds): the solved submission earns every
point, the unsolved student version none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib import classroom, student

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
GRADED_NOTEBOOK = "18"  # two exercises (Exercise 1 has a delegation case in test_grading)


def _toy(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from course_lib import grading"),
        nbformat.v4.new_code_cell("def a():\n    ### BEGIN SOLUTION\n    return 1\n"
                                  "    ### END SOLUTION"),
        nbformat.v4.new_code_cell("def b():\n    ### BEGIN SOLUTION\n    return 2\n"
                                  "    ### END SOLUTION"),
        nbformat.v4.new_code_cell("grading.check_equal(a() + b(), 3)"),
        nbformat.v4.new_markdown_cell("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
        nbformat.v4.new_code_cell("print('the end')"),
    ]
    nb.cells[5].metadata["nbgrader"] = {"grade": True}  # stale metadata is replaced
    nbformat.write(nb, path)
    return path


def test_metadata_marks_solutions_checks_and_answers(tmp_path: Path) -> None:
    nb = nbformat.read(_toy(tmp_path / "03_toy.ipynb"), as_version=4)
    graded = classroom.add_nbgrader_metadata(nb, points=2)
    assert graded == [("exercise-1-check", 2), ("answer-1", 2)]
    meta = [c.metadata.get("nbgrader") for c in nb.cells]
    assert meta[0] is None and meta[5] is None
    assert [meta[1]["grade_id"], meta[2]["grade_id"]] == ["exercise-1-part-1",
                                                          "exercise-1-part-2"]
    assert meta[1]["solution"] and not meta[1]["grade"] and not meta[1]["locked"]
    assert meta[3] == {"grade": True, "grade_id": "exercise-1-check", "locked": True,
                       "points": 2, "schema_version": 3, "solution": False, "task": False}
    assert meta[4]["solution"] and meta[4]["grade"]  # a written answer: graded by hand
    with pytest.raises(ValueError, match="points must be positive"):
        classroom.add_nbgrader_metadata(nb, points=0)
    nb.cells = nb.cells[:3]  # solutions without a check cell after them
    with pytest.raises(ValueError, match="solution cell 1 has no check cell"):
        classroom.add_nbgrader_metadata(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_course_notebook_gets_valid_nbgrader_metadata(path: Path) -> None:
    from nbgrader.nbgraderformat import MetadataValidator

    nb = nbformat.read(path, as_version=4)
    graded = classroom.add_nbgrader_metadata(nb)
    assert graded, f"{path.name}: no graded cell (every notebook has exercises)"
    MetadataValidator().validate_nb(nb)  # nbgrader's own schema check (raises when invalid)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate grade ids {ids}"
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and student.BEGIN in cell.source:
            assert meta.get("solution"), f"{path.name}: a solution cell is not marked"
        if meta.get("grade") and cell.cell_type == "code":
            assert classroom.is_check_cell(cell) and meta["points"] > 0


def test_build_course_writes_config_and_one_folder_per_notebook(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture
                                                                 ) -> None:
    src = tmp_path / "nbs"
    src.mkdir()
    _toy(src / "03_toy.ipynb")
    _toy(src / "04_other.ipynb")
    course = tmp_path / "course"
    assert classroom.main([str(src), str(course), "04"]) == 0
    assert "source/04/04_other.ipynb: 2 graded cell(s)" in capsys.readouterr().out
    assert sorted(p.relative_to(course).as_posix() for p in course.rglob("*.*")) == [
        "nbgrader_config.py", "source/04/04_other.ipynb"]
    assert "c.Execute.timeout" in (course / "nbgrader_config.py").read_text()
    (course / "nbgrader_config.py").write_text("# the teacher's own\n")
    classroom.build_course(src, course)
    assert (course / "source" / "03" / "03_toy.ipynb").is_file()
    assert (course / "nbgrader_config.py").read_text() == "# the teacher's own\n"
    with pytest.raises(FileNotFoundError, match=r"matches \['07'\]"):
        classroom.build_course(src, course, only=["07"])


def _nbgrader(course: Path, *args: str) -> None:
    # nbgrader runs the `alembic` command of its environment: put the venv's bin/ on PATH
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.slow
def test_nbgrader_generate_and_autograde_give_full_and_zero_marks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbgrader.api import Gradebook

    monkeypatch.setenv("COURSE_PROFILE", "quick")
    monkeypatch.setenv("COURSE_SMOKE", "1")  # every loop 2 steps: the checks, not the lessons
    course = tmp_path / "course"
    source = classroom.build_course(NOTEBOOK_DIR, course, only=[GRADED_NOTEBOOK])
    name = source[GRADED_NOTEBOOK].name
    _nbgrader(course, "generate_assignment", GRADED_NOTEBOOK)
    released = course / "release" / GRADED_NOTEBOOK / name
    assert "raise NotImplementedError()" in released.read_text()  # nbgrader's own stubs
    for who, notebook in (("solved", source[GRADED_NOTEBOOK]), ("unsolved", released)):
        folder = course / "submitted" / who / GRADED_NOTEBOOK
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / name)
    _nbgrader(course, "autograde", GRADED_NOTEBOOK)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        solved = gradebook.find_submission(GRADED_NOTEBOOK, "solved")
        unsolved = gradebook.find_submission(GRADED_NOTEBOOK, "unsolved")
        checks = len([c for c in nbformat.read(source[GRADED_NOTEBOOK], as_version=4).cells
                      if c.metadata.get("nbgrader", {}).get("grade")])
        assert solved.max_score == unsolved.max_score == checks >= 2
        assert solved.score == checks, "the solved notebook lost points"
        assert unsolved.score == 0, "the unsolved student version earned points"
    graded = nbformat.read(course / "autograded" / "unsolved" / GRADED_NOTEBOOK / name,
                           as_version=4)
    for cell in graded.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            shown = "\n".join("\n".join(o.get("traceback", [])) for o in cell.outputs)
            assert "not solved yet" in shown and "site-packages" not in shown
