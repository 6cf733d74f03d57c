"""Checks for the exercise cells: clear messages when wrong, a clear tick when right.

An exercise is a function whose body sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION``; the check cell after it calls the function and these helpers::

    out = my_conv_output_size(32, kernel=3, stride=2, padding=1)
    grading.check_close(out, 16, name="conv output size")

A failed check raises :class:`AssertionError` saying what was expected, what was got and
a hint; a passed check prints ``✓ <name> passed``. Errors raised *by the student's
function* (e.g. the ``NotImplementedError`` of an unsolved exercise) are not hidden.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "check_close",
    "check_dtype",
    "check_equal",
    "check_function",
    "check_shape",
    "check_true",
    "forbidding",
    "passed",
]

PASS_MARK = "✓"
FAIL_MARK = "✗"


def passed(name: str) -> None:
    """Print the success line of a check."""
    print(f"{PASS_MARK} {name} passed", flush=True)


def _fail(name: str, expected: str, got: str, hint: str | None = None) -> None:
    lines = [f"{FAIL_MARK} {name} failed", f"  expected: {expected}", f"  got:      {got}"]
    if hint:
        lines.append(f"  hint:     {hint}")
    raise AssertionError("\n".join(lines))


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
    if not bool(condition):
        _fail(name, expected, _describe(condition), hint)
    passed(name)


def check_shape(value: Any, expected: Sequence[int | None], name: str = "shape",
                hint: str | None = None) -> None:
    """The tensor/array has ``expected`` shape; ``None`` or ``-1`` in it matches any size."""
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


class DelegatedToLibrary(Exception):
    """Raised when an exercise's solution calls a library function that the check forbids."""


@contextlib.contextmanager
def forbidding(functions: Sequence[Callable]) -> Iterator[None]:
    """Make each of ``functions`` raise :class:`DelegatedToLibrary` inside the block.

    The function is replaced where a solution can reach it: in the module that defines it,
    in every ``course_lib`` module that imported it by name, and in the notebook's namespace.
    An exercise is about writing the computation, so a solution that only calls the
    library's own answer must not pass.
    """
    patched: list[tuple[Any, str, Any]] = []

    def blocked_version(original: Callable) -> Callable:
        def blocked(*args: Any, **kwargs: Any) -> Any:
            raise DelegatedToLibrary(
                f"this exercise asks you to write the computation yourself; your solution "
                f"called the library's {original.__module__}.{original.__name__}")
        return blocked

    try:
        for original in functions:
            stand_in = blocked_version(original)
            owners = [m for name, m in list(sys.modules.items())
                      if m is not None and (name == "__main__" or name.startswith("course_lib"))]
            for owner in owners:
                for attr, value in list(vars(owner).items()):
                    if value is original:
                        patched.append((owner, attr, value))
                        setattr(owner, attr, stand_in)
        yield
    finally:
        for owner, attr, value in reversed(patched):
            setattr(owner, attr, value)


def check_function(fn: Callable, cases: Iterable[Any], name: str | None = None,
                   atol: float = 1e-6, rtol: float = 1e-5, hint: str | None = None,
                   forbid: Sequence[Callable] = ()) -> None:
    """Call ``fn`` on each case and compare with the expected result.

    A case is ``(args, expected)`` or ``{"args": (...), "kwargs": {...}, "expected": ...}``.
    ``expected`` may be a callable ``expected(result) -> bool`` for property checks.
    Numbers and tensors are compared with :func:`check_close`, anything else with ``==``.
    ``forbid``: library functions the solution may not call (see :func:`forbidding`).
    """
    label = name or getattr(fn, "__name__", "function")
    cases = list(cases)
    if not cases:
        raise ValueError("check_function needs at least one case")
    if forbid:
        with forbidding(forbid):
            try:
                check_function(fn, cases, name=label, atol=atol, rtol=rtol, hint=hint)
            except DelegatedToLibrary as err:
                _fail(label, "your own computation", str(err),
                      "use the building blocks (torch operations), not the finished function")
        return
    for i, case in enumerate(cases):
        args, kwargs, expected = _normalise_case(case)
        call = ", ".join([_describe(a, 40) for a in args]
                         + [f"{k}={_describe(v, 40)}" for k, v in kwargs.items()])
        result = fn(*args, **kwargs)  # the student's own errors propagate unchanged
        if result is None and expected is not None:
            _fail(f"{label} (case {i + 1}: {label}({call}))", _describe(expected), "None",
                  hint or "the function returns nothing: did you forget `return`?")
        if callable(expected) and not isinstance(expected, torch.Tensor | np.ndarray):
            if not expected(result):
                _fail(f"{label} (case {i + 1}: {label}({call}))",
                      f"a result satisfying {getattr(expected, '__name__', 'the check')}",
                      _describe(result), hint)
            continue
        numeric = isinstance(expected, int | float | torch.Tensor | np.ndarray) and not \
            isinstance(expected, bool)
        case_name = f"{label} (case {i + 1}: {label}({call}))"
        if numeric:
            _quiet(check_close, result, expected, atol=atol, rtol=rtol, name=case_name, hint=hint)
        else:
            _quiet(check_equal, result, expected, name=case_name, hint=hint)
    passed(f"{label} ({len(cases)} case{'s' if len(cases) != 1 else ''})")


def _quiet(check: Callable, *args: Any, **kwargs: Any) -> None:
    """Run a check without printing its own success line."""
    with contextlib.redirect_stdout(io.StringIO()):
        check(*args, **kwargs)
