"""Mapping an engine's exceptions to asyncwasm's: one helper for both engines.

The idea is httpcore's ``map_exceptions``: a block runs under a table from engine exception
types to translations, and whatever the block raises leaves it translated, with the engine's
message kept (shortened: engine messages can be megabytes) and the original chained as
``__cause__``. asyncwasm's own errors always pass through untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TypeAlias

from .._exceptions import RangeError, WebAssemblyError, shorten

__all__ = ["ErrorMap", "Translate", "map_exceptions", "mapped", "message_as"]

Translate: TypeAlias = Callable[[BaseException], "BaseException | None"]
"""Turns an engine exception into asyncwasm's, or ``None`` to let it propagate as it is."""
ErrorMap: TypeAlias = Mapping[type[BaseException], Translate]
"""Engine exception types to translations, tried in order (put subclasses first)."""


def message_as(cls: Callable[[str], BaseException]) -> Translate:
    """A translation to ``cls`` with the engine's message, shortened."""

    def translate(error: BaseException) -> BaseException:
        return cls(shorten(str(error)))

    return translate


def mapped(error: BaseException, mapping: ErrorMap) -> BaseException | None:
    """The asyncwasm exception for ``error``, or ``None`` when it must propagate as it is."""
    if isinstance(error, (WebAssemblyError, RangeError)):
        return None
    for from_type, translate in mapping.items():
        if isinstance(error, from_type):
            return translate(error)
    return None


@contextlib.contextmanager
def map_exceptions(mapping: ErrorMap) -> Iterator[None]:
    """Translate the exceptions the block raises by ``mapping`` (see :func:`mapped`)."""
    try:
        yield
    except BaseException as error:
        translated = mapped(error, mapping)
        if translated is None:
            raise
        raise translated from error
