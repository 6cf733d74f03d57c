"""Library source in notebooks: a notebook shows the library's code instead of pasting it."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any


def get_source(obj: Any) -> str:
    """The (dedented) source code of a library function, class, method or module."""
    target = obj.fget if isinstance(obj, property) else obj
    try:
        return textwrap.dedent(inspect.getsource(target))
    except (TypeError, OSError) as error:
        raise ValueError(f"cannot show the source of {obj!r}: {error}") from None


def show_source(obj: Any) -> None:
    """Display a library object's source with syntax highlighting in the notebook.

    Notebooks call ``show_source(build_fcn)`` instead of pasting library code, so the library
    stays the single source of truth.
    """
    from IPython.display import Code, display

    display(Code(get_source(obj), language="python"))
