"""Library source in notebooks: a notebook shows the library's code instead of pasting it.

:func:`show_source` shows the part that teaches. The library checks its inputs thoroughly
(clear errors for bad shapes, dtypes, class counts ...), which can make a 10-line formula 40
lines long; by default those checks are elided, each run of them replaced by one comment
line (:data:`ELIDED`), and a class's docstring loses its ``Args:`` list (``help(cls)`` shows
it). ``show_source(obj, full=True)`` shows the code exactly as it is in the library.

What counts as an input check (found with :mod:`ast`, so the elided code is never guessed
from text): an ``if`` whose branches only ``raise`` (or only hold checks), an ``assert``, a
call statement of a checking helper (a name such as ``check_channels``, ``_check_input``,
``validate_...``), a loop whose body only checks, and a method named like a checking helper.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import Any

ELIDED = "# ... input checks elided (see the library for the full code)"
ELIDED_AGAIN = "# ... input checks elided"
_CHECK_NAME = re.compile(r"^_*(check|validate|require|ensure)(_|$)")
# Docstring sections about arguments and errors, not about the idea; dropped from a class's
# docstring (its constructor options) and, for ``Raises:``, from a function's too.
_CLASS_SECTIONS = ("Args:", "Arguments:", "Parameters:", "Raises:")
_FUNCTION_SECTIONS = ("Raises:",)


def get_source(obj: Any) -> str:
    """The (dedented) source code of a library function, class, method or module."""
    target = obj.fget if isinstance(obj, property) else obj
    try:
        return textwrap.dedent(inspect.getsource(target))
    except (TypeError, OSError) as error:
        raise ValueError(f"cannot show the source of {obj!r}: {error}") from None


def teaching_source(obj: Any) -> str:
    """The source of ``obj`` without its input checks (see the module docstring)."""
    source = get_source(obj)
    try:
        tree = ast.parse(source)
    except SyntaxError:  # e.g. a lambda's line: show it as it is
        return source
    if len(tree.body) != 1:  # a module: shown whole
        return source
    node = tree.body[0]
    lines = source.splitlines()
    cuts: list[tuple[int, int, list[str]]] = []  # (first line, last line, replacement), 0-based
    if isinstance(node, ast.ClassDef):
        cuts += _docstring_cuts(node, lines, _CLASS_SECTIONS, f"help({node.name})")
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                if _CHECK_NAME.match(item.name):
                    cuts.append(_cut(lines, [item]))
                else:
                    cuts += _function_cuts(item, lines)
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        cuts += _docstring_cuts(node, lines, _FUNCTION_SECTIONS, None)
        cuts += _function_cuts(node, lines)
    else:
        return source
    cuts.sort()
    elided = [i for i, cut in enumerate(cuts) if cut[2] and cut[2][-1].endswith(ELIDED)]
    for i in elided[1:]:  # the first comment says where the code is; the others are short
        first, last, [comment] = cuts[i]
        cuts[i] = (first, last, [comment.replace(ELIDED, ELIDED_AGAIN)])
    for first, last, replacement in reversed(cuts):
        lines[first:last + 1] = replacement
    return "\n".join(lines) + "\n"


def show_source(obj: Any, full: bool = False) -> None:
    """Display a library object's source with syntax highlighting in the notebook.

    Notebooks call ``show_source(build_fcn)`` instead of pasting library code, so the library
    stays the single source of truth. Input checks are elided (one comment line says where);
    ``full=True`` shows the code exactly as it is in the library.
    """
    from IPython.display import Code, display

    display(Code(get_source(obj) if full else teaching_source(obj), language="python"))


def _is_check(stmt: ast.stmt) -> bool:
    """True for a statement that only checks input: it raises on bad input and does nothing
    else."""
    if isinstance(stmt, ast.Assert):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        func = stmt.value.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        return bool(_CHECK_NAME.match(name))
    if isinstance(stmt, ast.If):
        return all(isinstance(s, ast.Raise) or _is_check(s) for s in stmt.body + stmt.orelse)
    if isinstance(stmt, ast.For | ast.While):
        return not stmt.orelse and all(_is_check(s) for s in stmt.body)
    return False


def _function_cuts(func: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]
                   ) -> list[tuple[int, int, list[str]]]:
    """The runs of check statements in a function's body (at any depth), each to be replaced
    by one comment line; a block is never left empty."""
    cuts = []
    for body in _bodies(func):
        if all(_is_check(s) for s in body):
            continue  # its parent is kept (a function that only checks is shown whole)
        run: list[ast.stmt] = []
        for stmt in body + [None]:  # None flushes the last run
            if stmt is not None and _is_check(stmt):
                run.append(stmt)
            elif run:
                cuts.append(_cut(lines, run))
                run = []
    return cuts


def _bodies(func: ast.AST) -> list[list[ast.stmt]]:
    """Every statement list inside a function that is not itself a check (nested functions
    and classes excluded: they are shown as they are)."""
    found = []

    def visit(body: list[ast.stmt]) -> None:
        found.append(body)
        for stmt in body:
            if _is_check(stmt) or isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef
                                             | ast.ClassDef):
                continue
            for field in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, field, None)
                if inner:
                    visit(inner)
            for handler in getattr(stmt, "handlers", []):
                visit(handler.body)

    visit(func.body)
    return found


def _cut(lines: list[str], run: list[ast.stmt]) -> tuple[int, int, list[str]]:
    """Replace statements (and the comment lines right above them) by :data:`ELIDED`."""
    first, last = run[0].lineno - 1, run[-1].end_lineno - 1
    if isinstance(run[0], ast.FunctionDef | ast.AsyncFunctionDef) and run[0].decorator_list:
        first = run[0].decorator_list[0].lineno - 1
    while first > 0 and lines[first - 1].strip().startswith("#"):
        first -= 1
    indent = lines[run[0].lineno - 1][: run[0].col_offset]
    return first, last, [indent + ELIDED]


def _docstring_cuts(node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef,
                    lines: list[str], sections: tuple[str, ...], see: str | None
                    ) -> list[tuple[int, int, list[str]]]:
    """Drop the named sections (``Args:`` ...) from the docstring of ``node``; ``see`` names
    where to read them instead."""
    if not (node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
            and isinstance(node.body[0].value.value, str)):
        return []
    doc = node.body[0]
    start, end = doc.lineno - 1, doc.end_lineno - 1
    if lines[end].strip() not in ('"""', "'''"):
        return []  # the closing quotes end a text line: leave such a docstring whole
    cuts = []
    i = start + 1
    while i < end:
        header = lines[i]
        if header.strip() not in sections:
            i += 1
            continue
        indent = len(header) - len(header.lstrip())
        j = i + 1
        while j < end and (not lines[j].strip()
                           or len(lines[j]) - len(lines[j].lstrip()) > indent):
            j += 1
        last = j - 1
        while last > i and not lines[last].strip():
            last -= 1  # keep the blank line that separates it from what follows
        first = i
        if j >= end and first > start + 1 and not lines[first - 1].strip():
            first -= 1  # the section ended the docstring: drop the blank line above it too
        replacement = ([] if see is None else
                       [" " * indent + f"{header.strip()} see {see}."])
        if replacement and first < i:
            replacement = [""] + replacement
        cuts.append((first, last, replacement))
        i = j
    return cuts
