"""The survey's timeline (Minaee et al. 2021, Fig. 33) drawn from the model registry.

Fig. 33 of the survey places the representative segmentation models since 2014 on a time
axis. :func:`plot_model_timeline` draws the same kind of picture from what the course's
registry knows about each model (:class:`course_lib.models.ModelSpec`: ``name``, ``family``,
``paper``, ``year``): one column per year, the models of a year stacked in it, one colour per
survey family. It takes the specs as an argument (any objects with those four attributes), so
the figure shows exactly the models it is given and this module needs nothing from
:mod:`course_lib.models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib import colormaps

from .figures import CourseFigure

REQUIRED = ("name", "family", "paper", "year")


def timeline_rows(specs: Sequence[Any]) -> list[tuple[int, str, str, str]]:
    """``(year, name, family, paper)`` of every spec, sorted by year, then family, then name.

    Raises ``ValueError`` for no specs, a spec without one of the four attributes, a year that
    is not an int or a name given twice.
    """
    if len(specs) == 0:
        raise ValueError("plot_model_timeline needs at least one model spec, got none")
    rows = []
    for spec in specs:
        missing = [a for a in REQUIRED if not hasattr(spec, a)]
        if missing:
            raise ValueError(f"a model spec needs {', '.join(REQUIRED)}; {spec!r} lacks "
                             f"{', '.join(missing)}")
        if not isinstance(spec.year, int) or isinstance(spec.year, bool):
            raise ValueError(f"model {spec.name!r}: year must be an int, got {spec.year!r}")
        rows.append((spec.year, str(spec.name), str(spec.family), str(spec.paper)))
    names = [r[1] for r in rows]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"model names must be unique, given twice: {', '.join(twice)}")
    return sorted(rows, key=lambda r: (r[0], r[2], r[1]))


def short_citation(paper: str, limit: int = 18) -> str:
    """The authors of a citation, shortened: ``"Long, Shelhamer & Darrell, CVPR 2015"`` →
    ``"Long, Shelhamer & …"``; text in parentheses is dropped."""
    first = paper.split(";")[0].split(" (")[0]  # the first paper, no remark
    authors = first.rsplit(",", 1)[0] if "," in first else first
    return authors if len(authors) <= limit else authors[: limit - 1].rstrip() + "…"


def family_colours(families: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One colour per family (sorted names → ``tab20``, cycling after 20)."""
    cmap = colormaps["tab20"]
    return {f: cmap(i % 20) for i, f in enumerate(sorted(set(families)))}


def plot_model_timeline(specs: Sequence[Any], title: str | None = None) -> CourseFigure:
    """A timeline figure: one column per year that has a model, the year's models stacked as
    coloured labels (name and citation), a legend of the families.

    Args:
        specs: model specs (``name``, ``family``, ``paper``, ``year``), e.g.
            ``[get_spec(n) for n in list_models()]``.
        title: the figure's title (default: how many models and years it shows).
    """
    rows = timeline_rows(specs)
    years = sorted({r[0] for r in rows})
    colours = family_colours([r[2] for r in rows])
    per_year = {y: [r for r in rows if r[0] == y] for y in years}
    tallest = max(len(v) for v in per_year.values())
    fig = CourseFigure(figsize=(max(8.0, 1.55 * len(years)), 1.0 + 0.55 * tallest),
                       layout="constrained")
    ax = fig.add_subplot()
    for column, year in enumerate(years):
        for level, (_, name, family, paper) in enumerate(per_year[year]):
            ax.text(column, level, f"{name}\n{short_citation(paper)}", ha="center", va="center",
                    fontsize=6.5, bbox={"boxstyle": "round,pad=0.25", "fc": colours[family],
                                        "ec": "none", "alpha": 0.9})
    ax.set_xlim(-0.6, len(years) - 0.4)
    ax.set_ylim(-0.7, tallest - 0.3)
    ax.set_xticks(range(len(years)), [str(y) for y in years])
    ax.set_yticks([])
    ax.set_xlabel("year of the paper (registry field `year`)")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    handles = [ax.scatter([], [], marker="s", s=60, color=c, label=f)
               for f, c in colours.items()]
    fig.legend(handles=handles, title="family (module)", loc="outside right upper",
               fontsize=7, title_fontsize=7)
    ax.set_title(title or f"the {len(rows)} models of the course by year ({years[0]}–"
                          f"{years[-1]}), coloured by survey family")
    return fig


__all__ = ["family_colours", "plot_model_timeline", "short_citation", "timeline_rows"]
