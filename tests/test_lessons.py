"""Lessons: recorded in every profile, enforced in standard/full, never in smoke runs."""

from __future__ import annotations

import json

import pytest

from course_lib import config, lessons


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    lessons.clear()
    monkeypatch.delenv(config.SMOKE_VAR, raising=False)
    monkeypatch.delenv(lessons.LOG_VAR, raising=False)
    monkeypatch.delenv(lessons.MODE_VAR, raising=False)


def test_a_lesson_that_holds_is_recorded_with_its_numbers() -> None:
    with config.using_profile("standard"):
        entry = lessons.lesson("skips sharpen boundaries", "fcn8s > fcn32s + 0.05",
                               fcn8s=0.43, fcn32s=0.24)
    assert entry.holds and entry.enforced and entry.status == "holds"
    assert entry.numbers == {"fcn8s": 0.43, "fcn32s": 0.24}
    assert lessons.recorded() == [entry]


def test_an_enforced_lesson_that_fails_names_the_claim_and_numbers() -> None:
    with config.using_profile("standard"), pytest.raises(lessons.LessonFailed) as info:
        lessons.lesson("skips sharpen boundaries", "fcn8s > fcn32s + 0.05",
                       fcn8s=0.26, fcn32s=0.24)
    message = str(info.value)
    assert "skips sharpen boundaries" in message and "fcn8s=0.26" in message
    assert lessons.recorded()[0].status == "FAILS"


@pytest.mark.parametrize("profile, smoke", [("quick", ""), ("full", "1"), ("standard", "1")])
def test_quick_and_smoke_runs_record_but_do_not_enforce(
        profile: str, smoke: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.SMOKE_VAR, smoke)
    with config.using_profile(profile):
        entry = lessons.lesson("a claim", "a > b", a=0.1, b=0.2)
    assert entry.holds is False and not entry.enforced
    assert entry.status == "does not hold (not enforced)"


def test_record_mode_measures_without_enforcing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lessons.MODE_VAR, "record")
    with config.using_profile("standard"):
        entry = lessons.lesson("a claim", "a > b", a=0.1, b=0.2)
    assert entry.holds is False and not entry.enforced
    monkeypatch.setenv(lessons.MODE_VAR, "")
    with config.using_profile("standard"), pytest.raises(lessons.LessonFailed):
        lessons.lesson("a claim", "a > b", a=0.1, b=0.2)


def test_bad_conditions_and_numbers_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="not one of its numbers"):
        lessons.lesson("typo", "a > c", a=1.0, b=2.0)
    with pytest.raises(TypeError, match="True or False"):
        lessons.lesson("not a test", "a + b", a=1.0, b=2.0)
    with config.using_profile("standard"), pytest.raises(ValueError, match="a is NaN"):
        lessons.lesson("nan", "a > 0", a=float("nan"))
    with config.using_profile("quick"):  # a tiny run may leave a class unseen: recorded
        entry = lessons.lesson("nan", "a > 0", a=float("nan"), b=1.0)
        assert entry.status == "not judged (a number is NaN)" and not entry.holds
        assert lessons.observation("nan", a=float("nan")).status == "observed"
    with pytest.raises(TypeError, match="must be a number"):
        lessons.lesson("list", "a > 0", a=[1, 2])
    with pytest.raises(ValueError, match="at least one"):
        lessons.lesson("nothing", "True")
    with pytest.raises(ValueError):  # no builtins beyond the safe ones
        lessons.lesson("escape", "__import__('os') is None", a=1.0)


def test_observations_are_never_enforced_and_the_log_collects_everything(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "lessons.jsonl"
    monkeypatch.setenv(lessons.LOG_VAR, str(log))
    with config.using_profile("standard"):
        lessons.observation("ratio varies by seed", ratio=1.3)
        lessons.lesson("a wins", "a > b", a=2.0, b=1.0)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["claim"] for r in rows] == ["ratio varies by seed", "a wins"]
    assert rows[0]["holds"] is None and rows[1]["holds"] is True
    html = lessons.table()._repr_html_()
    assert "ratio varies by seed" in html and "a &gt; b" in html and "observed" in html
    assert "[holds] a wins" in repr(lessons.table())


def test_a_lesson_shows_itself_as_a_table_row_and_a_log_reads_back(tmp_path,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    log = tmp_path / "lessons.jsonl"
    monkeypatch.setenv(lessons.LOG_VAR, str(log))
    monkeypatch.delenv(config.SEED_VAR, raising=False)
    with config.using_profile("standard"):
        entry = lessons.lesson("skips sharpen", "fcn8s > fcn32s", fcn8s=0.43, fcn32s=0.24)
    assert repr(entry) == "[holds] skips sharpen: fcn8s=0.43, fcn32s=0.24  (fcn8s > fcn32s)"
    assert "<table" in entry._repr_html_() and "profile standard, seed 0" in entry._repr_html_()
    assert lessons.read_log(log) == [entry]
    log.write_text("not json\n")
    with pytest.raises(ValueError, match="line 1: not a lesson record"):
        lessons.read_log(log)
