"""Forbidding the library's own answer: a solution that only calls it fails its check.

``forbidding(targets, within=...)`` replaces each target (a function, a ``Class.method`` or
a class) by a stand-in that raises :class:`DelegatedToLibrary` while the block runs;
``course_lib.grading`` turns that into the check's failure message.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

__all__ = ["DelegatedToLibrary", "forbidding"]


class DelegatedToLibrary(Exception):
    """Raised when an exercise's solution calls a library function that the check forbids."""


def _qualified(target: Any) -> str:
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', target)}"


def _called_from(codes: frozenset[types.CodeType]) -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


def _stand_in(original: Callable, shown: str, codes: frozenset[types.CodeType]) -> Callable:
    def blocked(*args: Any, **kwargs: Any) -> Any:
        if codes and not _called_from(codes):  # the check cell itself may use the library
            return original(*args, **kwargs)
        raise DelegatedToLibrary(
            f"this exercise asks you to write the computation yourself; your solution "
            f"called the library's {shown}")
    return blocked


def _class_attribute(cls: type) -> str:
    """What to block on a class: ``forward`` of a module, else ``__call__`` or ``__init__``."""
    if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
        return "forward"
    return "__call__" if "__call__" in vars(cls) else "__init__"


def _owner_class(function: Callable) -> type | None:
    """The class that defines a method given as ``Class.method`` (None for a plain function)."""
    qualname = getattr(function, "__qualname__", "")
    if "." not in qualname or "<locals>" in qualname:
        return None
    owner: Any = sys.modules.get(getattr(function, "__module__", ""), None)
    for part in qualname.split(".")[:-1]:
        owner = getattr(owner, part, None)
    return owner if isinstance(owner, type) else None


@contextlib.contextmanager
def forbidding(targets: Sequence[Callable], within: Sequence[Callable] = ()) -> Iterator[None]:
    """Make each of ``targets`` raise :class:`DelegatedToLibrary` inside the block.

    A target is a function (replaced in the module that defines it, in every ``course_lib``
    module that imported it by name, and in the notebook's namespace), a method given as
    ``Class.method``, or a class (its ``forward`` for a ``torch.nn.Module``, else its
    ``__call__`` or ``__init__``), so instances made earlier are blocked too.
    ``within``: when given, only calls made while one of these functions runs are blocked
    (the solution's calls), so the check cell may still use the library for its expected
    values. An exercise is about writing the computation: a solution that only calls the
    library's own answer must not pass.
    """
    codes = frozenset(code for fn in within
                      if (code := getattr(fn, "__code__", None)) is not None)
    patched: list[tuple[Any, str, Any, bool]] = []  # (owner, attribute, old value, was own)

    def patch(owner: Any, attribute: str, stand_in: Callable) -> None:
        own = attribute in vars(owner)
        patched.append((owner, attribute, vars(owner).get(attribute), own))
        setattr(owner, attribute, stand_in)

    try:
        for target in targets:
            if isinstance(target, type):
                attribute = _class_attribute(target)
                original = getattr(target, attribute)
                patch(target, attribute, _stand_in(original, _qualified(target), codes))
                continue
            if not callable(target):
                raise TypeError(f"forbid= takes functions, methods or classes, got "
                                f"{type(target).__name__} {target!r}")
            stand_in = _stand_in(target, _qualified(target), codes)
            owner_class = _owner_class(target)
            if owner_class is not None:
                patch(owner_class, target.__name__, stand_in)
            defining = getattr(target, "__module__", None)
            owners = [m for name, m in list(sys.modules.items())
                      if m is not None and (name in ("__main__", defining)
                                            or name.startswith("course_lib"))]
            for owner in owners:
                for attr, value in list(vars(owner).items()):
                    if value is target:
                        patch(owner, attr, stand_in)
        yield
    finally:
        for owner, attr, value, own in reversed(patched):
            if own:
                setattr(owner, attr, value)
            else:
                delattr(owner, attr)
