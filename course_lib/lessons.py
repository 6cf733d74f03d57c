"""Lessons as data: each measured claim of a notebook, its numbers and the condition it meets.

A notebook states a lesson once, right after the experiment that measures it::

    lessons.lesson("FCN-8s draws sharper boundaries than FCN-32s",
                   "fcn8s > fcn32s + 0.05", fcn8s=0.43, fcn32s=0.24)

and shows its lessons with :func:`table`. The condition is a Python expression over the
named numbers, so the table shows exactly what is checked. In the ``quick`` profile (and in
smoke runs) the models are too small for the effects, so lessons are recorded and shown but
not enforced; in ``standard`` and ``full`` a lesson that does not hold fails its cell with a
message naming it. Every enforced lesson must hold for ``COURSE_SEED`` 0, 1 and 2; a claim
that holds on some seeds only is stated with :func:`observation`, which is never enforced.

When ``COURSE_LESSON_LOG`` names a file, every lesson is also appended to it as one JSON
line: the course book (``make book``) gathers them into its index. ``COURSE_LESSONS=record``
records without enforcing in every profile: a run that measures how each lesson fares over
the seeds 0, 1 and 2 then sees every number instead of stopping at the first failure.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from course_lib import config

LOG_VAR = "COURSE_LESSON_LOG"
MODE_VAR = "COURSE_LESSONS"  # "record": never enforce (measuring lessons over seeds)

# The names a condition may use besides its numbers: enough for comparisons, nothing more.
_SAFE_BUILTINS = {"abs": abs, "min": min, "max": max, "all": all, "any": any, "len": len,
                  "round": round, "math": math}


class LessonFailed(AssertionError):
    """An enforced lesson whose condition does not hold on this run."""


@dataclass(repr=False)
class Lesson:
    """One claim, the numbers measured for it, and whether its condition held.

    In a notebook a lesson shows itself as one row of the lesson table (the last expression
    of the cell that measured it).
    """

    claim: str
    condition: str  # a Python expression over ``numbers``; "" for an observation
    numbers: dict[str, float]
    holds: bool | None  # None for an observation (nothing to check)
    enforced: bool
    profile: str
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.holds is None:
            return "observed"
        if self.condition and any(math.isnan(v) for v in self.numbers.values()):
            return "not judged (a number is NaN)"
        if self.holds:
            return "holds" if self.enforced else "holds (not enforced)"
        return "FAILS" if self.enforced else "does not hold (not enforced)"

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_format(v)}" for k, v in self.numbers.items())
        return (f"[{self.status}] {self.claim}: {shown}"
                + (f"  ({self.condition})" if self.condition else ""))

    def _repr_html_(self) -> str:
        return table_html([self])


_recorded: list[Lesson] = []


def enforced() -> bool:
    """Lessons are enforced in ``standard`` and ``full``; never in smoke runs or record mode."""
    recording = os.environ.get(MODE_VAR, "").strip().lower() == "record"
    return config.profile_name() != "quick" and not config.smoke() and not recording


def _check_numbers(claim: str, numbers: dict[str, Any]) -> dict[str, float]:
    if not numbers:
        raise ValueError(f"lesson {claim!r} needs at least one measured number (name=value)")
    checked = {}
    for name, value in numbers.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"lesson {claim!r}: {name} must be a number, got "
                            f"{type(value).__name__} {value!r}") from None
        checked[name] = number
    return checked


def _evaluate(claim: str, condition: str, numbers: dict[str, float]) -> bool:
    try:
        result = eval(condition, {"__builtins__": _SAFE_BUILTINS}, dict(numbers))  # noqa: S307
    except NameError as err:
        raise ValueError(f"lesson {claim!r}: condition {condition!r} uses a name that is not one "
                         f"of its numbers ({', '.join(numbers)}): {err}") from None
    if not isinstance(result, bool):
        raise TypeError(f"lesson {claim!r}: condition {condition!r} must give True or False, "
                        f"got {result!r}")
    return result


def _record(entry: Lesson) -> None:
    _recorded.append(entry)
    log = os.environ.get(LOG_VAR)
    if log:
        with Path(log).open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")


def lesson(claim: str, condition: str, **numbers: float) -> Lesson:
    """Record the claim ``claim``, measured by ``numbers``, that must satisfy ``condition``.

    Raises :class:`LessonFailed` when the condition is false and lessons are enforced.
    """
    values = _check_numbers(claim, numbers)
    holds = _evaluate(claim, condition, values)  # also for NaN: a typo is reported anyway
    missing = [name for name, value in values.items() if math.isnan(value)]
    if missing:
        # a tiny run (quick, smoke) may leave a class unseen; a real run must measure it
        if enforced():
            raise ValueError(f"lesson {claim!r}: {', '.join(missing)} is NaN, so the claim "
                             f"cannot be judged")
        holds = False
    entry = Lesson(claim, condition, values, holds, enforced(), config.profile_name(),
                   config.course_seed())
    _record(entry)
    if entry.enforced and not holds:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        raise LessonFailed(f"lesson not met: {claim!r} needs {condition} but measured {shown} "
                           f"(profile {entry.profile}, seed {entry.seed})")
    return entry


def observation(claim: str, **numbers: float) -> Lesson:
    """Record a measured number that is shown but never enforced (e.g. it varies by seed)."""
    entry = Lesson(claim, "", _check_numbers(claim, numbers), None, False,
                   config.profile_name(), config.course_seed())
    _record(entry)
    return entry


def recorded() -> list[Lesson]:
    """The lessons recorded in this process so far, in order."""
    return list(_recorded)


def clear() -> None:
    """Forget the recorded lessons (tests; a notebook re-run from the top)."""
    _recorded.clear()


def _format(value: float) -> str:
    return f"{int(value):,}" if value.is_integer() and abs(value) >= 1000 else f"{value:.4g}"


def read_log(path: str | os.PathLike) -> list[Lesson]:
    """The lessons a ``COURSE_LESSON_LOG`` file holds, in the order they were recorded."""
    entries = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(Lesson(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as err:
            raise ValueError(f"{path}, line {number}: not a lesson record ({err})") from None
    return entries


def _footnote(entries: list[Lesson]) -> str:
    if not entries:
        return "no lessons recorded"
    profiles = ", ".join(sorted({e.profile for e in entries}))
    seeds = ", ".join(str(s) for s in sorted({e.seed for e in entries}))
    checked = any(e.enforced for e in entries) or all(e.holds is None for e in entries)
    return (f"profile {profiles}, seed {seeds}"
            + ("" if checked else " — lessons are recorded, not enforced, here"))


def table_html(entries: list[Lesson] | None = None) -> str:
    """An HTML table of lessons: claim, numbers, condition, status."""
    entries = list(_recorded if entries is None else entries)
    rows = []
    for e in entries:
        numbers = ", ".join(f"{html.escape(k)} = {_format(v)}" for k, v in e.numbers.items())
        colour = {"holds": "#1a7f37", "FAILS": "#cf222e"}.get(e.status, "#57606a")
        rows.append(f"<tr><td>{html.escape(e.claim)}</td><td>{numbers}</td>"
                    f"<td><code>{html.escape(e.condition) or '–'}</code></td>"
                    f"<td style='color:{colour}'>{e.status}</td></tr>")
    head = "<tr><th>lesson</th><th>measured</th><th>condition</th><th>status</th></tr>"
    return ("<table class='course-lessons'>" + head + "".join(rows) + "</table>"
            f"<p><small>{html.escape(_footnote(entries))}</small></p>")


class _Table:
    def __init__(self, entries: list[Lesson]) -> None:
        self.entries = entries

    def _repr_html_(self) -> str:
        return table_html(self.entries)

    def __repr__(self) -> str:
        return "\n".join(repr(e) for e in self.entries)


def table() -> _Table:
    """This notebook's lessons so far, displayed as a table (the last expression of a cell)."""
    return _Table(recorded())


__all__ = ["Lesson", "LessonFailed", "clear", "enforced", "lesson", "observation", "read_log",
           "recorded", "table", "table_html"]
