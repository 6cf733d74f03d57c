"""Checks for the exercise cells: the student sees a short message, never grading internals.

An exercise is a function whose body sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION``; the check cell after it calls the function through these helpers::

    grading.check_function(my_conv_output_size, [((32, 3), 30), ((32, 3, 2, 1), 16)],
                           forbid=[basics.conv_output_size])

Three outcomes, each a few lines:

- right: ``✓ my_conv_output_size (2 cases) passed``;
- wrong (or the student's own code raised): :class:`CheckFailed`, whose message names the
  case, its inputs, what was expected and what was got (or the error and the line of the
  student's code that raised it) and a hint. It is an ``AssertionError``, and IPython,
  JupyterLab and nbval show only that message (``_render_traceback_``), not the ~35
  lines of this module's frames;
- not solved yet (the stub's ``raise NotImplementedError``, or an answer left as ``...``):
  ``○ my_conv_output_size: not solved yet (...)`` is printed and the notebook runs on, so a
  student copy runs to its end. Under nbgrader's autograder or validator (environment
  variable ``NBGRADER_EXECUTION``) an unsolved exercise fails its check instead: 0 points.

A check cell that calls the exercise outside ``check_function`` (to build on its result)
wraps its lines in ``with grading.exercise(my_fn, forbid=[...]):`` so the same three
outcomes hold for the whole cell.

``forbid``: library functions, methods or classes that a solution may not call (the
library's own answer to the exercise). Calling one from the solution fails the check.
"""

from __future__ import annotations

import contextlib
import io
import linecache
import os
import sysconfig
import traceback
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from course_lib.forbid import DelegatedToLibrary, forbidding

__all__ = [
    "CheckFailed",
    "DelegatedToLibrary",
    "autograding",
    "check_close",
    "check_dtype",
    "check_equal",
    "check_function",
    "check_shape",
    "check_true",
    "exercise",
    "forbidding",
    "passed",
]

PASS_MARK = "✓"
FAIL_MARK = "✗"
UNSOLVED_MARK = "○"
AUTOGRADE_VAR = "NBGRADER_EXECUTION"  # set by nbgrader's autograde ("autograde") and validate


class CheckFailed(AssertionError):
    """A check's verdict. IPython shows only the message (``_render_traceback_``)."""

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines()


def autograding() -> bool:
    """True under nbgrader's autograder or validator: an unsolved exercise then fails."""
    return bool(os.environ.get(AUTOGRADE_VAR, "").strip())


def passed(name: str) -> None:
    """Print the success line of a check."""
    print(f"{PASS_MARK} {name} passed", flush=True)


def _fail(name: str, expected: str, got: str, hint: str | None = None) -> None:
    lines = [f"{FAIL_MARK} {name} failed", f"  expected: {expected}", f"  got:      {got}"]
    if hint:
        lines.append(f"  hint:     {hint}")
    raise CheckFailed("\n".join(lines))


# ----------------------------------------------------------------------------------------
# Unsolved exercises and the student's own errors
# ----------------------------------------------------------------------------------------
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.add(str(Path(__file__).resolve().parent))  # course_lib itself
    return tuple(os.path.join(os.path.realpath(root), "") for root in roots)


_LIBRARY_ROOTS = _library_roots()


def _is_student_file(filename: str) -> bool:
    """Code written in the notebook (or a test), not in Python, its packages or course_lib."""
    if filename.startswith("<"):
        return filename.startswith("<ipython-input")
    return not os.path.realpath(filename).startswith(_LIBRARY_ROOTS)


def _frames(err: BaseException) -> list[traceback.FrameSummary]:
    return traceback.extract_tb(err.__traceback__)


def _is_unsolved(err: BaseException) -> bool:
    """The stub of an unsolved exercise: ``raise NotImplementedError`` written in the notebook.

    Its message is empty (nbgrader's stub) or starts with "Exercise" (the course's stub), and
    it is raised by notebook code, not by a library (torch raises NotImplementedError for
    operations it lacks: that is an error of the solution, not an unsolved exercise).
    """
    if isinstance(err, _NotAnswered):
        return True
    if not isinstance(err, NotImplementedError):
        return False
    message = str(err).strip()
    if message and not message.startswith("Exercise"):
        return False
    frames = _frames(err)
    return not frames or _is_student_file(frames[-1].filename)


def _task(err: BaseException) -> str:
    message = str(err).strip()
    return message.removeprefix("Exercise:").strip() or "replace the stub with your solution"


def _report_unsolved(label: str, err: BaseException | None = None) -> None:
    """Say that ``label`` is not solved yet; under nbgrader, fail (0 points)."""
    task = _task(err) if err is not None else "replace the ... with your answer"
    if autograding():
        raise CheckFailed(f"{FAIL_MARK} {label}: not solved yet ({task})")
    print(f"{UNSOLVED_MARK} {label}: not solved yet ({task}); the rest of the notebook runs "
          "without it", flush=True)


def _where(err: BaseException) -> str | None:
    """The line of the student's code that raised (or called what raised) ``err``."""
    student = [f for f in _frames(err) if _is_student_file(f.filename)
               and f.name != "<module>"]
    if not student:
        return None
    frame = student[-1]
    line = (frame.line or linecache.getline(frame.filename, frame.lineno or 0)).strip()
    return f"in {frame.name}, line {frame.lineno}: {line}"


def _raised(label: str, err: BaseException, case: str | None = None,
            hint: str | None = None) -> CheckFailed:
    """The failure of a check whose solution raised ``err`` (a message, no traceback)."""
    lines = [f"{FAIL_MARK} {label} failed" + (f" on {case}" if case else ""),
             f"  your code raised {type(err).__name__}: {err}"]
    where = _where(err)
    if where:
        lines.append(f"  {where}")
    if hint:
        lines.append(f"  hint:     {hint}")
    return CheckFailed("\n".join(lines))


class _NotAnswered(NotImplementedError):
    """An answer still left as ``...`` reached a check inside :class:`exercise`."""


def _unanswered(value: Any, name: str) -> bool:
    """True (after saying so) when ``value`` is still ``...``: the stub of a top-level answer."""
    if value is not Ellipsis:
        return False
    if _open_exercises:
        raise _NotAnswered("Exercise: replace the ... with your answer")
    _report_unsolved(name)
    return True


def _shape_of(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor | np.ndarray):
        return tuple(int(s) for s in value.shape)
    return None


def _describe(value: Any, limit: int = 120) -> str:
    if isinstance(value, torch.Tensor | np.ndarray):
        kind = "tensor" if isinstance(value, torch.Tensor) else "array"
        shape, dtype = tuple(value.shape), value.dtype
        count = value.size if isinstance(value, np.ndarray) else value.numel()
        if count <= 8:
            return f"{kind} {value.tolist()} (shape {shape}, dtype {dtype})"
        return f"{kind} of shape {shape}, dtype {dtype}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_true(condition: Any, name: str, expected: str = "True", hint: str | None = None
               ) -> None:
    """Pass when ``condition`` is truthy (for checks no other helper fits)."""
    if _unanswered(condition, name):
        return
    if not bool(condition):
        _fail(name, expected, _describe(condition), hint)
    passed(name)


def check_shape(value: Any, expected: Sequence[int | None], name: str = "shape",
                hint: str | None = None) -> None:
    """The tensor/array has ``expected`` shape; ``None`` or ``-1`` in it matches any size."""
    if _unanswered(value, name):
        return
    shape = _shape_of(value)
    if shape is None:
        _fail(name, f"a tensor of shape {tuple(expected)}", f"a {type(value).__name__}",
              hint or "return a torch.Tensor (not a list or a Python number)")
    want = tuple(expected)
    ok = len(shape) == len(want) and all(w in (None, -1) or w == s for w, s in zip(want, shape,
                                                                                   strict=True))
    if not ok:
        if hint is None:
            if len(shape) != len(want):
                hint = (f"the result has {len(shape)} dimensions but {len(want)} are expected: "
                        "check for a missing/extra batch or channel dimension (unsqueeze/squeeze)")
            elif sorted(shape) == sorted(w for w in want if w is not None) and None not in want:
                hint = "the sizes are right but in the wrong order: check permute/transpose"
            else:
                hint = "check padding, stride and up/down-sampling factors"
        shown = tuple("*" if w in (None, -1) else w for w in want)
        _fail(name, f"shape {shown}", f"shape {shape}", hint)
    passed(name)


def check_dtype(value: Any, expected: torch.dtype | np.dtype | type | str, name: str = "dtype",
                hint: str | None = None) -> None:
    """The tensor/array has dtype ``expected`` (``torch.int64``, ``np.float32``, "float32"...)."""
    if _unanswered(value, name):
        return
    got = getattr(value, "dtype", None)
    if got is None:
        _fail(name, f"dtype {expected}", f"a {type(value).__name__} (no dtype)",
              hint or "return a torch.Tensor")
    if isinstance(got, torch.dtype):
        if isinstance(expected, str):
            want = getattr(torch, expected, None)
        elif isinstance(expected, torch.dtype):
            want = expected
        else:
            want = torch.from_numpy(np.zeros(0, dtype=expected)).dtype
        ok = got == want
    else:
        ok = np.dtype(got) == np.dtype(expected if not isinstance(expected, torch.dtype)
                                       else str(expected).replace("torch.", ""))
    if not ok:
        if hint is None:
            hint = ("class indices are integers: use .long() (argmax already returns int64)"
                    if "int" in str(expected) else "convert with .float() / .to(dtype)")
        _fail(name, f"dtype {expected}", f"dtype {got}", hint)
    passed(name)


def _as_float_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().to(torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def check_close(value: Any, expected: Any, atol: float = 1e-6, rtol: float = 1e-5,
                name: str = "value", hint: str | None = None) -> None:
    """``value`` equals ``expected`` within ``atol + rtol * |expected|`` (numbers, tensors, arrays).

    NaNs must match NaNs. Shapes must agree (no silent broadcasting).
    """
    if _unanswered(value, name):
        return
    try:
        got = _as_float_array(value)
    except (TypeError, ValueError):
        _fail(name, _describe(expected), f"{_describe(value)} (not numeric)",
              hint or "return a number or a tensor")
    want = _as_float_array(expected)
    if got.shape != want.shape:
        _fail(name, f"shape {want.shape}", f"shape {got.shape}",
              hint or "the result has the wrong shape (check dimensions and reductions)")
    close = np.isclose(got, want, atol=atol, rtol=rtol, equal_nan=True)
    if not close.all():
        bad = int((~close).sum())
        if want.ndim == 0:
            expected_text, got_text = f"{float(want):.6g}", f"{float(got):.6g}"
        else:
            diff = np.where(close, 0.0, np.abs(np.nan_to_num(got - want, nan=np.inf)))
            where = np.unravel_index(int(np.argmax(diff)), diff.shape)
            expected_text = f"{_describe(expected)}; at index {tuple(map(int, where))}: " \
                            f"{want[where]:.6g}"
            got_text = (f"{got[where]:.6g} there; {bad} of {want.size} elements differ "
                        f"(tolerance atol={atol:g}, rtol={rtol:g})")
        if hint is None and want.size and np.allclose(got, -want, atol=atol, rtol=rtol):
            hint = "the sign is flipped"
        _fail(name, expected_text, got_text, hint)
    passed(name)


def check_equal(value: Any, expected: Any, name: str = "value", hint: str | None = None) -> None:
    """Exact equality (tensors and arrays compared element-wise, shape included)."""
    if _unanswered(value, name):
        return
    if isinstance(expected, torch.Tensor | np.ndarray) or isinstance(value,
                                                                     torch.Tensor | np.ndarray):
        got_shape, want_shape = np.shape(_as_float_array(value)), np.shape(
            _as_float_array(expected))
        same = got_shape == want_shape and bool(
            np.array_equal(_as_float_array(value), _as_float_array(expected), equal_nan=True))
    else:
        same = value == expected
    if not same:
        _fail(name, _describe(expected), _describe(value), hint)
    passed(name)


def _normalise_case(case: Any) -> tuple[tuple, dict, Any]:
    if isinstance(case, Mapping):
        args = case.get("args", ())
        kwargs = dict(case.get("kwargs", {}))
        if "expected" not in case:
            raise ValueError(f"a check case dict needs an 'expected' key, got keys {list(case)}")
        return (tuple(args) if isinstance(args, list | tuple) else (args,)), kwargs, \
            case["expected"]
    if isinstance(case, tuple) and len(case) == 2:
        args, expected = case
        return (tuple(args) if isinstance(args, list | tuple) else (args,)), {}, expected
    raise ValueError("a case is (args, expected) or {'args': ..., 'kwargs': ..., 'expected': ...}")


# ----------------------------------------------------------------------------------------
# Checking a function on cases, and a whole check cell
# ----------------------------------------------------------------------------------------
_open_exercises: list[exercise] = []


def _call(fn: Callable, args: tuple, kwargs: dict, forbid: Sequence[Callable]) -> Any:
    if not forbid:
        return fn(*args, **kwargs)
    with forbidding(forbid):
        return fn(*args, **kwargs)


def check_function(fn: Callable, cases: Iterable[Any], name: str | None = None,
                   atol: float = 1e-6, rtol: float = 1e-5, hint: str | None = None,
                   forbid: Sequence[Callable] = ()) -> None:
    """Call ``fn`` on each case and compare with the expected result.

    A case is ``(args, expected)`` or ``{"args": (...), "kwargs": {...}, "expected": ...}``.
    ``expected`` may be a callable ``expected(result) -> bool`` for property checks.
    Numbers and tensors are compared with :func:`check_close`, anything else with ``==``.
    ``forbid``: library functions, methods or classes the solution may not call
    (see :func:`forbidding`); compute the expected values with them before the call.
    An unsolved ``fn`` prints "not solved yet" (see the module's docstring).
    """
    label = name or getattr(fn, "__name__", "function")
    cases = list(cases)
    if not cases:
        raise ValueError("check_function needs at least one case")
    for i, case in enumerate(cases):
        args, kwargs, expected = _normalise_case(case)
        call = ", ".join([_describe(a, 40) for a in args]
                         + [f"{k}={_describe(v, 40)}" for k, v in kwargs.items()])
        case_text = f"case {i + 1}: {label}({call})"
        case_name = f"{label} ({case_text})"
        try:
            result = _call(fn, args, kwargs, forbid)
        except DelegatedToLibrary as err:
            _fail(case_name, "your own computation", str(err),
                  hint or "use the building blocks (torch operations), not the finished "
                  "function")
        except Exception as err:
            if _is_unsolved(err):
                if _open_exercises:  # the exercise block reports it once, for the whole cell
                    raise
                _report_unsolved(label, err)
                return
            raise _raised(label, err, case_text, hint) from None
        if result is None and expected is not None:
            _fail(case_name, _describe(expected), "None",
                  hint or "the function returns nothing: did you forget `return`?")
        if callable(expected) and not isinstance(expected, torch.Tensor | np.ndarray):
            if not expected(result):
                wanted = getattr(expected, "__name__", "the check")
                _fail(case_name, f"a result satisfying {wanted}", _describe(result), hint)
            continue
        numeric = isinstance(expected, int | float | torch.Tensor | np.ndarray) and not \
            isinstance(expected, bool)
        if numeric:
            _quiet(check_close, result, expected, atol=atol, rtol=rtol, name=case_name, hint=hint)
        else:
            _quiet(check_equal, result, expected, name=case_name, hint=hint)
    passed(f"{label} ({len(cases)} case{'s' if len(cases) != 1 else ''})")


class exercise(contextlib.AbstractContextManager):  # lower case: `with grading.exercise(...)`
    """A whole check cell as one exercise: ``with grading.exercise(my_fn, forbid=[...]):``.

    Inside the block, an unsolved ``my_fn`` ends the block with one "not solved yet" line
    and the notebook runs on (under nbgrader it fails: 0 points); a call of a ``forbid``
    target from ``my_fn`` fails the check; an error raised in the student's code becomes a
    short message naming the line that raised. Wrong answers fail through the check
    helpers as usual. The cell's own lines may still use the forbidden targets (e.g. for
    expected values): only calls made while one of ``functions`` runs are blocked; with
    no ``functions`` every call inside the block is.
    """

    def __init__(self, *functions: Callable, name: str | None = None,
                 forbid: Sequence[Callable] = ()) -> None:
        if name is None and not functions:
            raise ValueError("grading.exercise needs the exercise's function(s) or a name")
        self.functions = functions
        self.name = name or ", ".join(getattr(f, "__name__", repr(f)) for f in functions)
        self.forbid = tuple(forbid)
        self._forbidding: contextlib.AbstractContextManager | None = None

    def __enter__(self) -> exercise:
        if self.forbid:
            self._forbidding = forbidding(self.forbid, within=self.functions)
            self._forbidding.__enter__()
        _open_exercises.append(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: types.TracebackType | None) -> bool:
        _open_exercises.remove(self)
        if self._forbidding is not None:
            self._forbidding.__exit__(None, None, None)
            self._forbidding = None
        if err is None or isinstance(err, CheckFailed) or not isinstance(err, Exception):
            return False
        if _is_unsolved(err):
            _report_unsolved(self.name, err)
            return True  # the rest of the block needs the solution: skip it, run on
        if isinstance(err, DelegatedToLibrary):
            raise CheckFailed(f"{FAIL_MARK} {self.name} failed\n  {err}\n  hint:     use the "
                              "building blocks (torch operations), not the finished "
                              "function") from None
        if self._raised_in_solution(err):
            raise _raised(self.name, err) from None
        return False  # an error of the check cell itself: the full traceback helps

    def _raised_in_solution(self, err: BaseException) -> bool:
        """Did ``err`` come from the exercise's functions (or what they called)?"""
        codes = {getattr(f, "__code__", None) for f in self.functions} - {None}
        if not codes:
            return _where(err) is not None
        tb = err.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code in codes:
                return True
            tb = tb.tb_next
        return False


def _quiet(check: Callable, *args: Any, **kwargs: Any) -> None:
    """Run a check without printing its own success line."""
    with contextlib.redirect_stdout(io.StringIO()):
        check(*args, **kwargs)
