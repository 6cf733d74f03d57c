"""The survey's timeline figure (viz.timeline): every registered model is placed once, in its
year's column, in its family's colour; bad specs are refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from course_lib.models import get_spec, list_models
from course_lib.viz.timeline import family_colours, plot_model_timeline, timeline_rows


def spec(name: str, family: str, year: int, paper: str = "Someone et al., X 2000"):
    return SimpleNamespace(name=name, family=family, year=year, paper=paper)


def test_every_registered_model_is_placed_once_in_its_year_and_colour() -> None:
    specs = [get_spec(n) for n in list_models()]
    fig = plot_model_timeline(specs)
    ax = fig.axes[0]
    labels = {t.get_text().split("\n")[0]: t for t in ax.texts}
    assert sorted(labels) == sorted(list_models())
    years = sorted({s.year for s in specs})
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == [str(y) for y in years]
    colours = family_colours([s.family for s in specs])
    for s in specs:
        text = labels[s.name]
        assert years[round(text.get_position()[0])] == s.year
        assert text.get_bbox_patch().get_facecolor()[:3] == pytest.approx(
            colours[s.family][:3])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == sorted({s.family for s in specs})
    fig.canvas.draw()  # renders


def test_rows_are_sorted_and_stacked_per_year() -> None:
    specs = [spec("b", "x", 2018), spec("a", "y", 2015), spec("c", "x", 2018)]
    assert [r[1] for r in timeline_rows(specs)] == ["a", "b", "c"]
    ax = plot_model_timeline(specs).axes[0]
    positions = {t.get_text().split("\n")[0]: t.get_position() for t in ax.texts}
    assert positions == {"a": (0, 0), "b": (1, 0), "c": (1, 1)}


@pytest.mark.parametrize("specs, match", [
    ([], "at least one"),
    ([SimpleNamespace(name="a", family="x", paper="p")], "lacks year"),
    ([spec("a", "x", 2018), spec("a", "y", 2019)], "given twice: a"),
    ([SimpleNamespace(name="a", family="x", paper="p", year="2018")], "must be an int"),
])
def test_bad_specs_are_refused(specs, match) -> None:
    with pytest.raises(ValueError, match=match):
        plot_model_timeline(specs)


def test_short_citations_keep_the_authors() -> None:
    from course_lib.viz.timeline import short_citation
    assert short_citation("Yu et al., ECCV 2018") == "Yu et al."
    assert short_citation("Lin et al., CVPR 2017; Kirillov et al., CVPR 2019") == "Lin et al."
    assert short_citation("Wang et al., TPAMI 2020 (HRNetV2)") == "Wang et al."
    assert short_citation("Long, Shelhamer & Darrell, CVPR 2015") == "Long, Shelhamer &…"
