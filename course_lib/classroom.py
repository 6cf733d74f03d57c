"""nbgrader support: the course's notebooks as an nbgrader course folder, metadata included.

The notebooks in git carry no nbgrader metadata; this module adds it when it builds the
course folder. Every code cell with a ``### BEGIN SOLUTION`` region becomes a *solution*
cell; the check cell after it (the first code cell calling ``course_lib.grading``) becomes
an *autograded test* cell worth ``points``; a markdown answer region becomes a manually
graded answer. Grade ids are ``exercise-<n>`` (solution) and ``exercise-<n>-check`` (test).

    python -m course_lib.classroom notebooks artifacts/nbgrader        # every notebook
    python -m course_lib.classroom notebooks artifacts/nbgrader 05 08  # some of them

writes ``<course>/nbgrader_config.py`` and ``<course>/source/<NN>/<notebook>.ipynb``; then,
in ``<course>/``: ``nbgrader generate_assignment 05`` (the student version in
``release/05/``), collect submissions into ``submitted/<student>/05/``, and
``nbgrader autograde 05``. nbgrader runs the notebook with ``NBGRADER_EXECUTION`` set, and
``course_lib.grading`` then fails an unsolved exercise's check: 0 points for it, full
points for a check that passes.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

from course_lib.student import BEGIN

__all__ = ["add_nbgrader_metadata", "build_course", "exercise_cells", "is_check_cell"]

SCHEMA_VERSION = 3  # nbgrader's cell-metadata schema (nbgrader 0.6 and later)
_CHECK_CALL = re.compile(r"\bgrading\.\w+\s*\(|\bcourse_lib\.grading\b")

CONFIG = '''\
# nbgrader configuration of the segmentation course (written by course_lib.classroom).
c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "segmentation-course"
# A notebook cell trains for minutes in the standard profile; nbgrader's default is 30 s.
# Grade faster with the quick profile: COURSE_PROFILE=quick nbgrader autograde 05
c.Execute.timeout = 1800
'''


def is_check_cell(cell: nbformat.NotebookNode) -> bool:
    """A code cell that calls ``course_lib.grading``."""
    return cell.cell_type == "code" and bool(_CHECK_CALL.search(cell.source))


def exercise_cells(nb: nbformat.NotebookNode) -> list[tuple[list[int], int]]:
    """([solution cells], check cell) of each exercise, in notebook order.

    A solution cell is a code cell holding a ``### BEGIN SOLUTION`` region; its check cell
    is the first check cell after it. Several solution cells may share one check cell.
    """
    exercises: dict[int, list[int]] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or BEGIN not in cell.source:
            continue
        check = next((j for j in range(i + 1, len(nb.cells)) if is_check_cell(nb.cells[j])),
                     None)
        if check is None:
            raise ValueError(f"solution cell {i} has no check cell after it (a code cell "
                             "calling course_lib.grading)")
        exercises.setdefault(check, []).append(i)
    return [(solutions, check) for check, solutions in sorted(exercises.items())]


def _metadata(grade_id: str, *, solution: bool, grade: bool, locked: bool,
              points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": SCHEMA_VERSION, "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def add_nbgrader_metadata(nb: nbformat.NotebookNode, points: float = 1
                          ) -> list[tuple[str, float]]:
    """Mark solution, autograded-test and answer cells of ``nb`` in place.

    Returns ``[(grade id, points)]`` of the graded cells. Other cells get no nbgrader
    metadata (nbgrader ignores them), and metadata from an earlier run is replaced.
    """
    if points <= 0:
        raise ValueError(f"points must be positive, got {points}")
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    graded: list[tuple[str, float]] = []
    for number, (solutions, check) in enumerate(exercise_cells(nb), start=1):
        grade_id = f"exercise-{number}"
        for k, index in enumerate(solutions):
            suffix = "" if len(solutions) == 1 else f"-part-{k + 1}"
            nb.cells[index].metadata["nbgrader"] = _metadata(
                grade_id + suffix, solution=True, grade=False, locked=False)
        nb.cells[check].metadata["nbgrader"] = _metadata(
            f"{grade_id}-check", solution=False, grade=True, locked=True, points=points)
        graded.append((f"{grade_id}-check", points))
    answers = [c for c in nb.cells if c.cell_type == "markdown" and BEGIN in c.source]
    for number, cell in enumerate(answers, start=1):  # written answers: graded by hand
        cell.metadata["nbgrader"] = _metadata(f"answer-{number}", solution=True, grade=True,
                                              locked=False, points=points)
        graded.append((f"answer-{number}", points))
    return graded


def assignment_id(notebook: Path) -> str:
    """The notebook's number (``05_fcn.ipynb`` → ``05``): one assignment per notebook."""
    match = re.match(r"(\d+)_", notebook.name)
    if not match:
        raise ValueError(f"{notebook.name}: course notebooks are named NN_name.ipynb")
    return match.group(1)


def build_course(src_dir: str | Path, course_dir: str | Path,
                 only: Sequence[str] = (), points: float = 1) -> dict[str, Path]:
    """Write an nbgrader course folder; returns {assignment id: source notebook written}.

    ``only``: notebook numbers or names to include (all notebooks when empty). An existing
    ``nbgrader_config.py`` is kept (a teacher may have edited it).
    """
    src_dir, course_dir = Path(src_dir), Path(course_dir)
    notebooks = sorted(src_dir.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {src_dir}")
    if only:
        chosen = [nb for nb in notebooks
                  if any(nb.name.startswith(key) or nb.stem == key for key in only)]
        missing = [key for key in only
                   if not any(nb.name.startswith(key) or nb.stem == key for nb in notebooks)]
        if missing:
            raise FileNotFoundError(f"no notebook in {src_dir} matches {missing}")
        notebooks = chosen
    course_dir.mkdir(parents=True, exist_ok=True)
    config = course_dir / "nbgrader_config.py"
    if not config.exists():
        config.write_text(CONFIG)
    written: dict[str, Path] = {}
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        add_nbgrader_metadata(nb, points)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)
        key = assignment_id(path)
        dst = course_dir / "source" / key / path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dst)
        written[key] = dst
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.classroom",
        description="Write an nbgrader course folder (source/<NN>/) from the notebooks, with "
                    "nbgrader's solution / autograded-test cell metadata added.")
    parser.add_argument("src", help="folder of notebooks (e.g. notebooks)")
    parser.add_argument("course", help="nbgrader course folder to write (e.g. artifacts/nbgrader)")
    parser.add_argument("only", nargs="*", help="notebook numbers to include (default: all)")
    parser.add_argument("--points", type=float, default=1, help="points per exercise check")
    args = parser.parse_args(argv)
    written = build_course(args.src, args.course, args.only, args.points)
    for key, path in written.items():
        nb = nbformat.read(path, as_version=4)
        checks = sum(1 for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
        print(f"source/{key}/{path.name}: {checks} graded cell(s)")
    print(f"Next, in {args.course}/: nbgrader generate_assignment <NN>, collect submissions "
          "into submitted/<student>/<NN>/, nbgrader autograde <NN>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
