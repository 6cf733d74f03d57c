"""README: each reader's entry exists, and the survey column names sections exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SEED = ROOT.parent / "shared" / "seed" / "000_5e7f6255f9722d1b.txt"  # the developers' copy
MAP_ROW = re.compile(r"^\| (\d\d) \| (.+?) \| (.+?) \| (.+?) \|$", re.M)
CJK = re.compile(r"[\u4e00-\u9fff]")


def map_rows() -> list[tuple[str, str, str]]:
    section = README.split("## Notebook map", 1)[1].split("\n## ", 1)[0]
    return [(m.group(1), m.group(2), m.group(3)) for m in MAP_ROW.finditer(section)]


def seed_heading(survey: str) -> str | None:
    """The Chinese heading in the last ASCII parentheses of a survey cell (None if none)."""
    match = re.search(r" \(([^()]*)\)$", survey)
    return match.group(1) if match and CJK.search(match.group(1)) else None


def test_students_and_teachers_each_have_an_entry() -> None:
    students = README.split("## Students: start here", 1)[1].split("\n## ", 1)[0]
    teachers = README.split("## Teachers: start here", 1)[1].split("\n## ", 1)[0]
    assert "make lab-student" in students and "student/" in students
    assert "make lab " in teachers and "make nbgrader" in teachers
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab-student:", "lab:", "student:", "nbgrader:"):
        assert f"\n{target}" in makefile, f"README names `make {target[:-1]}`, Makefile lacks it"


def test_map_rows_name_the_survey_section_number_and_title() -> None:
    rows = map_rows()
    assert [number for number, _, _ in rows] == [f"{i:02d}" for i in range(20)]
    for number, notebook, survey in rows:
        assert re.match(r"§\d+(\.\d+)* [A-Z]", survey), f"row {number}: {survey!r} lacks '§N Title'"
        chinese = seed_heading(survey)
        english = survey[: -len(chinese) - 3] if chinese else survey
        assert not CJK.search(english), f"row {number}: Chinese outside the parentheses"
        exists = any((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
        assert exists == ("](notebooks/" in notebook), (
            f"row {number}: {notebook!r} must link the notebook if and only if it exists")
        if not exists:
            assert "not written yet" in notebook, f"row {number}: say it is not written yet"


def test_chinese_headings_are_the_seeds_own() -> None:
    if not SEED.is_file():
        pytest.skip(f"the seed (the survey's Chinese summary) is not at {SEED}")
    headings = {line.lstrip("#").strip() for line in SEED.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")}
    for number, _, survey in map_rows():
        chinese = seed_heading(survey)
        if chinese:
            assert chinese in headings, (
                f"row {number}: ({chinese}) is not a heading of the seed, character for "
                "character")
