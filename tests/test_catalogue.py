"""The catalogue of the survey's data sets (notebook 17): complete records, 15 + 6, the
fetch and reader names it claims exist, and its Markdown / HTML tables."""

from __future__ import annotations

import re
from dataclasses import fields, replace

import pytest

from course_lib.data import catalogue as cat
from course_lib.data import sources

SURVEY_2D = ("PASCAL VOC", "PASCAL Context", "MS COCO", "Cityscapes", "ADE20K", "SiftFlow",
             "Stanford Background", "BSD", "YouTube-Objects", "CamVid", "KITTI", "SBD",
             "PASCAL Part", "SYNTHIA", "Adobe Portrait")
SURVEY_25D = ("NYU-Depth V2", "SUN-3D", "SUN RGB-D", "ScanNet", "Stanford 2D-3D", "UW RGB-D")


def test_the_survey_s_15_2d_and_6_2_5d_data_sets_in_order():
    for kind, expected in (("2D", SURVEY_2D), ("2.5D", SURVEY_25D)):
        names = [r.name for r in cat.records(kind)]
        assert len(names) == len(expected)
        for name, wanted in zip(names, expected, strict=True):
            assert name.startswith(wanted), (name, wanted)
    assert len(cat.records()) == 21 == len({r.name for r in cat.CATALOGUE})


def test_every_record_is_complete_and_its_links_exist():
    cat.check_catalogue()
    for rec in cat.CATALOGUE:
        for f in fields(rec):
            if f.name not in ("fetch", "reader"):
                assert getattr(rec, f.name).strip(), (rec.name, f.name)
        assert rec.url.startswith("http"), rec.name
        assert "survey §4" in rec.source, rec.name
    fetched = {r.fetch for r in cat.CATALOGUE if r.fetch}
    assert fetched == {"voc2012", "coco_tiny", "camvid", "sbd", "ade20k", "cityscapes",
                       "pascal_context", "nyu_depth_v2"}
    assert fetched <= set(sources.DATASETS)
    read = {r.reader for r in cat.CATALOGUE if r.reader}
    assert {"Cityscapes", "ADE20K", "PascalContext", "SBD", "NYUDepthV2"} <= read


@pytest.mark.parametrize("broken", [
    {"licence": " "},
    {"fetch": "imagenet"},
    {"reader": "NoSuchReader"},
    {"kind": "3D"},
])
def test_check_catalogue_names_the_broken_record(monkeypatch, broken):
    bad = replace(cat.CATALOGUE[3], **broken)
    monkeypatch.setattr(cat, "CATALOGUE", (*cat.CATALOGUE[:3], bad, *cat.CATALOGUE[4:]))
    with pytest.raises(ValueError, match="Cityscapes"):
        cat.check_catalogue()


def test_markdown_table_has_one_row_per_record_and_every_column():
    md = cat.catalogue_table("2D")
    lines = md.splitlines()
    assert len(lines) == 2 + 15
    assert lines[0].count("|") == len(cat.COLUMNS) + 1
    for line, rec in zip(lines[2:], cat.records("2D"), strict=True):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == len(cat.COLUMNS)
        assert cells[0] == rec.name and cells[7] == f"<{rec.url}>"
        assert cells[8] == (rec.fetch or "-") and cells[9] == (rec.reader or "-")
    assert len(cat.catalogue_table("2.5D").splitlines()) == 2 + 6


def test_html_table_escapes_and_links():
    page = cat.catalogue_table("2.5D", fmt="html")
    assert page.count("<tr>") == 1 + 6 and page.count("<th>") == len(cat.COLUMNS)
    assert '<a href="https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html">' in page
    odd = replace(cat.CATALOGUE[0], name="A <b> & C")
    assert "A &lt;b&gt; &amp; C" in cat._cell(odd, "name", "html")
    with pytest.raises(ValueError, match="fmt"):
        cat.catalogue_table(fmt="latex")
    with pytest.raises(ValueError, match="3D"):
        cat.records("3D")
