"""Argument checks shared by the constructors: JS WebIDL rules restated for Python."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Final

from ._exceptions import RangeError

MISSING: Final = object()
"""Stands for an argument that was not passed (JS ``undefined``)."""

_U32_MAX: Final = 2**32 - 1
_U64_MAX: Final = 2**64 - 1


def enforce_range(value: object, what: str, *, bits: int = 32) -> int:
    """WebIDL ``[EnforceRange] unsigned long`` (or ``long long`` for 64 bits): an ``int`` in
    range, else ``TypeError`` (as JS throws TypeError, not RangeError, here)."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise TypeError(f"{what} must be an integer, not {value!r}")
        number = int(value)
    else:
        try:
            number = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{what} must be an integer, not {type(value).__name__}") from None
    limit = _U32_MAX if bits == 32 else _U64_MAX
    if not 0 <= number <= limit:
        raise TypeError(f"{what} must be in [0, {limit}], not {number}")
    return number


def descriptor_field(descriptor: Mapping[str, object], key: str, *, required: bool) -> object:
    """A field of a JS-style descriptor dict; ``TypeError`` when a required one is missing.

    Read with one lookup, as JS does with [[Get]] (never a membership test first): a missing key
    is ``KeyError``. Constructors read fields in the JS order (WebIDL dictionary members are
    converted in lexicographic order, each converted right after it is read)."""
    try:
        return descriptor[key]
    except KeyError:
        if required:
            raise TypeError(f"the descriptor has no {key!r} field") from None
        return MISSING


def check_limits(initial: int, maximum: int | None, cap: int, what: str) -> None:
    """JS RangeError rules for sizes: within ``cap``, and maximum not below initial."""
    if initial > cap:
        raise RangeError(f"{what}: initial size {initial} is above the limit {cap}")
    if maximum is not None:
        if maximum > cap:
            raise RangeError(f"{what}: maximum size {maximum} is above the limit {cap}")
        if maximum < initial:
            raise RangeError(f"{what}: maximum size {maximum} is below the initial size {initial}")


def optional_size(value: object, what: str) -> int | None:
    """An optional size argument: ``None`` when omitted or ``None``, else ``enforce_range``."""
    return None if value is None or value is MISSING else enforce_range(value, what)


def descriptor_limits(descriptor: Mapping[str, object]) -> tuple[int, int | None]:
    """The sizes of a ``Memory`` or ``Table`` descriptor: ``"initial"``, ``"maximum"``, and
    ``"minimum"`` (the type-reflection proposal's spelling) when there is no ``"initial"``,
    each read and converted in the JS order."""
    initial = descriptor_field(descriptor, "initial", required=False)
    first = None if initial is MISSING else enforce_range(initial, "initial")
    last = optional_size(descriptor_field(descriptor, "maximum", required=False), "maximum")
    if first is None:
        minimum = descriptor_field(descriptor, "minimum", required=False)
        if minimum is MISSING:
            raise TypeError("the descriptor has no 'initial' field")
        first = enforce_range(minimum, "minimum")
    return first, last
