"""Student copies of the notebooks: solutions replaced by stubs, outputs cleared.

Solution code sits between lines ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's
markers, so nbgrader works on the same notebooks). Each region, markers included, becomes
a stub at the indentation of the BEGIN line:

- inside a function: ``raise NotImplementedError("Exercise: write the body of f()")``; the
  check cell's ``course_lib.grading`` helpers say "not solved yet" and the notebook runs on;
- at the top level of a cell, where the solution assigns answers (``answer = ...``):
  each assigned name becomes ``name = ...`` (the checks treat ``...`` as not answered yet),
  so the cell itself runs; any other top-level region becomes the ``raise`` (and stops a
  "Run All" there: put such solutions in a function).

    python -m course_lib.student notebooks student     # every notebook → student/
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import tempfile
import textwrap
from pathlib import Path

import nbformat

__all__ = ["BEGIN", "END", "make_student_copy", "make_student_copies", "strip_solutions"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(")


def _enclosing_function(lines: list[str], indent: str) -> str | None:
    """The function whose body holds a line indented by ``indent`` (None outside any)."""
    width = len(indent)
    for line in reversed(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        lead = len(line) - len(line.lstrip())
        if lead < width:  # the header of the block that holds the line
            match = _DEF.match(line)
            if match:
                return match.group(2)
            width = lead
            if width == 0:
                return None
    return None


def _assigned_names(region: list[str]) -> list[str]:
    """Names a top-level solution region assigns (``x = ...``, ``x: int = ...``), in order."""
    try:
        tree = ast.parse(textwrap.dedent("\n".join(region)))
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign) else [])
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name) and leaf.id not in names:
                    names.append(leaf.id)
    return names


def _stub(indent: str, function: str | None, region: list[str]) -> list[str]:
    if function is None:
        names = _assigned_names(region)
        if names:
            return [f"{indent}{name} = ...  # your answer" for name in names]
    task = f"write the body of {function}()" if function else "write your solution here"
    return [f'{indent}raise NotImplementedError("Exercise: {task}")']


def strip_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace every solution region of one cell's source; return (new source, regions)."""
    lines = source.split("\n")
    out: list[str] = []
    region: list[str] = []
    regions = 0
    inside = False
    begin_line = 0
    indent = ""
    function: str | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{where}: line {number}: {BEGIN!r} inside another solution "
                                 f"region (opened on line {begin_line})")
            inside, begin_line, region = True, number, []
            indent = line[: len(line) - len(line.lstrip())]
            function = _enclosing_function(out, indent)
            regions += 1
        elif stripped == END:
            if not inside:
                raise ValueError(f"{where}: line {number}: {END!r} without a {BEGIN!r}")
            inside = False
            out.extend(_stub(indent, function, region))
        elif inside:
            region.append(line)
        else:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN!r} on line {begin_line} is never closed by {END!r}")
    return "\n".join(out), regions


def make_student_copy(src: str | os.PathLike, dst: str | os.PathLike) -> int:
    """Write the student copy of notebook ``src`` to ``dst``; return the number of exercises.

    Solution regions become ``raise NotImplementedError``; every output, execution count
    and saved widget state is cleared.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"notebook not found: {src}")
    nb = nbformat.read(src, as_version=4)
    regions = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source, count = strip_solutions(cell.source, f"{src.name} cell {index}")
            regions += count
            cell.outputs = []
            cell.execution_count = None
        elif BEGIN in cell.source:  # nbgrader-style written answers
            text, count = strip_solutions(cell.source, f"{src.name} cell {index}")
            cell.source = text.replace(
                'raise NotImplementedError("Exercise: write your solution here")',
                "YOUR ANSWER HERE")
            regions += count
    nb.metadata.pop("widgets", None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".ipynb.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            nbformat.write(nb, handle)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return regions


def make_student_copies(src_dir: str | os.PathLike, dst_dir: str | os.PathLike,
                        overwrite: bool = False) -> dict[str, int | None]:
    """Student copies of every ``*.ipynb`` in ``src_dir``; returns {name: exercises}.

    A copy that already exists is kept (it holds the student's answers) and maps to None,
    unless ``overwrite``; notebooks added to the course since get their copy.
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"notebook folder not found: {src_dir}")
    notebooks = sorted(src_dir.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {src_dir}")
    return {nb.name: None if (dst_dir / nb.name).exists() and not overwrite
            else make_student_copy(nb, dst_dir / nb.name) for nb in notebooks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.student",
        description="Write student copies (solutions stubbed, outputs cleared). Copies that "
                    "exist already are kept: they hold a student's answers.")
    parser.add_argument("src", help="folder of notebooks (e.g. notebooks)")
    parser.add_argument("dst", help="output folder (e.g. student)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write every copy again, discarding answers already in dst")
    args = parser.parse_args(argv)
    counts = make_student_copies(args.src, args.dst, overwrite=args.overwrite)
    for name, count in counts.items():
        print(f"{name}: " + (f"{count} exercise(s) stubbed" if count is not None
                             else "kept (it exists; --overwrite replaces it)"))
    written = sum(count is not None for count in counts.values())
    print(f"{written} student notebook(s) written to {args.dst}/, "
          f"{len(counts) - written} kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
