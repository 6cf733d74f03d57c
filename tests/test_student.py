"""Student copies: solutions stubbed, outputs cleared, and every stub fails its check.

The notebook-level tests are parametrised over ``notebooks/*.ipynb``, so each new notebook
joins them automatically.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from course_lib import classroom, student

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# ----------------------------------------------------------------------------------------
# make_student_copy on a small notebook of our own
# ----------------------------------------------------------------------------------------
SOLVED = '''def double(x):
    """Twice x."""
    ### BEGIN SOLUTION
    y = x * 2
    return y
    ### END SOLUTION


class Box:
    def area(self):
        ### BEGIN SOLUTION
        return 1
        ### END SOLUTION'''


def _toy_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell(SOLVED, execution_count=3)
    code.outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Toy"),
        code,
        nbformat.v4.new_code_cell("from course_lib import grading\n"
                                  "grading.check_close(double(2), 4, name='double')"),
        nbformat.v4.new_markdown_cell("Answer:\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
    ]
    nb.metadata["widgets"] = {"state": {}}
    nbformat.write(nb, path)
    return path


def test_strip_solutions_keeps_indentation_and_names_the_function() -> None:
    text, regions = student.strip_solutions(SOLVED)
    assert regions == 2
    assert text.splitlines() == [
        "def double(x):",
        '    """Twice x."""',
        '    raise NotImplementedError("Exercise: write the body of double()")',
        "",
        "",
        "class Box:",
        "    def area(self):",
        '        raise NotImplementedError("Exercise: write the body of area()")',
    ]
    statements, _ = student.strip_solutions("### BEGIN SOLUTION\nfor i in range(2):\n"
                                            "    print(i)\n### END SOLUTION\nx")
    assert statements == 'raise NotImplementedError("Exercise: write your solution here")\nx'


def test_top_level_answers_become_ellipsis_so_the_cell_runs() -> None:
    source = ("def helper(x):\n    return x\n\n### BEGIN SOLUTION\nanswer = helper(3)\n"
              "low: int = 1\nlow, high = low, 2\n### END SOLUTION\nprint(answer)")
    text, regions = student.strip_solutions(source)
    assert regions == 1
    assert text.splitlines()[3:] == ["answer = ...  # your answer", "low = ...  # your answer",
                                     "high = ...  # your answer", "print(answer)"]
    nested, _ = student.strip_solutions("if True:\n    ### BEGIN SOLUTION\n    k = 2\n"
                                        "    ### END SOLUTION")
    assert nested == "if True:\n    k = ...  # your answer"
    signature, _ = student.strip_solutions('def f(a,\n      b):\n    """Doc."""\n'
                                           "    ### BEGIN SOLUTION\n    return a\n"
                                           "    ### END SOLUTION")
    assert signature.endswith('    raise NotImplementedError("Exercise: write the body of f()")')


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_unbalanced_markers_raise(source: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        student.strip_solutions(source, "toy.ipynb cell 1")


def test_make_student_copy_clears_outputs(tmp_path: Path) -> None:
    src = _toy_notebook(tmp_path / "toy.ipynb")
    dst = tmp_path / "out" / "toy.ipynb"
    assert student.make_student_copy(src, dst) == 3
    nb = nbformat.read(dst, as_version=4)
    assert "y = x * 2" not in nb.cells[1].source and "NotImplementedError" in nb.cells[1].source
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert nb.cells[3].source == "Answer:\nYOUR ANSWER HERE"
    assert "widgets" not in nb.metadata
    original = nbformat.read(src, as_version=4)  # the source is untouched
    assert "y = x * 2" in original.cells[1].source
    with pytest.raises(FileNotFoundError):
        student.make_student_copy(tmp_path / "missing.ipynb", dst)


def test_cli_writes_every_notebook(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src_dir = tmp_path / "nbs"
    src_dir.mkdir()
    _toy_notebook(src_dir / "00_a.ipynb")
    _toy_notebook(src_dir / "01_b.ipynb")
    # the same entry point as `python -m course_lib.student nbs student` (in-process: fast)
    assert student.main([str(src_dir), str(tmp_path / "student")]) == 0
    assert "2 student notebook(s) written" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "student").iterdir()) == ["00_a.ipynb",
                                                                       "01_b.ipynb"]
    # a student's answers survive the next `make lab-student`; a new notebook gets its copy
    answered = tmp_path / "student" / "00_a.ipynb"
    answered.write_text(answered.read_text().replace("NotImplementedError", "MyAnswer"))
    _toy_notebook(src_dir / "02_c.ipynb")
    assert student.main([str(src_dir), str(tmp_path / "student")]) == 0
    out = capsys.readouterr().out
    assert "00_a.ipynb: kept" in out and "1 student notebook(s) written" in out
    assert "MyAnswer" in answered.read_text()
    assert student.main([str(src_dir), str(tmp_path / "student"), "--overwrite"]) == 0
    assert "MyAnswer" not in answered.read_text()
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        student.make_student_copies(tmp_path / "student" / "..", tmp_path / "x")


# ----------------------------------------------------------------------------------------
# Every course notebook
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_exercises_with_checks(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    exercises = classroom.exercise_cells(nb)  # raises for a solution without a check after it
    assert exercises, (f"{path.name} has no '### BEGIN SOLUTION' region (every notebook has "
                       "exercises)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_has_no_solutions_and_no_outputs(path: Path, tmp_path: Path) -> None:
    original = nbformat.read(path, as_version=4)
    dst = tmp_path / path.name
    regions = student.make_student_copy(path, dst)
    assert regions >= 1
    nb = nbformat.read(dst, as_version=4)
    assert len(nb.cells) == len(original.cells)
    for i, (cell, before) in enumerate(zip(nb.cells, original.cells, strict=True)):
        assert student.BEGIN not in cell.source and student.END not in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            if student.BEGIN in before.source:
                pattern = r"[ \t]*### BEGIN SOLUTION\n(.*?)### END SOLUTION"
                solution = re.findall(pattern, before.source, flags=re.S)
                outside = re.sub(pattern, "", before.source, flags=re.S).splitlines()
                kept = cell.source.splitlines()
                for block in solution:
                    for line in block.splitlines():
                        if line.strip():  # no solution line survives (beyond its twins outside)
                            assert kept.count(line) <= outside.count(line), (
                                f"{path.name} cell {i} keeps solution line {line!r}")
                assert "raise NotImplementedError(" in cell.source


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_runs_to_the_end(path: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every exercise unsolved, 'Run All' reaches the last cell; each check says 'not solved'."""
    from nbclient import NotebookClient

    original = nbformat.read(path, as_version=4)
    exercises = classroom.exercise_cells(original)
    dst = tmp_path / path.name
    student.make_student_copy(path, dst)
    nb = nbformat.read(dst, as_version=4)
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)  # a student's run, not nbgrader's
    NotebookClient(nb, kernel_name="python3", timeout=300, allow_errors=True,
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
    for i, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        assert not errors, (
            f"{path.name}: the student copy stops at cell {i} of {len(nb.cells)} with "
            f"{errors[0].ename}: {errors[0].evalue}\n--- cell source ---\n{cell.source}")
    for solutions, check in exercises:
        text = "".join(o.get("text", "") for o in nb.cells[check].outputs
                       if o.output_type == "stream")
        assert "not solved yet" in text, (
            f"{path.name}: check cell {check} (after the exercise in cells {solutions}) did not "
            f"report the unsolved exercise; it printed: {text!r}")
