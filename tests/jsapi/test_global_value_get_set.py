"""Port of global/value-get-set.any.js: reading and writing ``Global.value``."""

from __future__ import annotations

from collections import ChainMap
from typing import Any

import pytest

import asyncwasm

from ._support import NO_STRAY, NO_THIS, Index, Untouchable, cases, subtest

JS_FILE = "global/value-get-set.any.js"
NOT_APPLICABLE = {
    "Branding": NO_THIS,
    "Stray argument": NO_STRAY,
    "Calling setter without argument": "calling the setter function directly (with no argument) has no Python equivalent",
}
ADAPTED_PATTERNS = {
    r"^Immutable \w+ \(": '`mutable` is read with Python truthiness (None, False, "", 0 -> immutable); setting raises AttributeError or TypeError (contract mapping table)',
    r"^Immutable \w+ with ToNumber side-effects": "the value's __index__/__float__ must not be called",
    r"^Mutable \w+ \(": '`mutable` truthy (True, 1, "x"); "true on prototype" -> a ChainMap whose parent holds mutable; the invalid value is a float for i32/i64 and an object() for f32/f64',
}
ADAPTED = {
    "i64 mutability": '"456" (JS ToBigInt of a string) dropped; invalid values: None, floats (JS Numbers), object() (Symbol); undefined dropped (no Python equivalent)',
    "externref global": "undefined dropped; Symbol -> object(); identity kept",
}

TYPES = ("i32", "i64", "f32", "f64")
IMMUTABLE_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({}, "missing"),
    ({"mutable": None}, "undefined"),
    ({"mutable": None}, "null"),
    ({"mutable": False}, "false"),
    ({"mutable": ""}, "empty string"),
    ({"mutable": 0}, "zero"),
]
MUTABLE_OPTIONS: list[tuple[Any, str]] = [
    ({"mutable": True}, "true"),
    ({"mutable": 1}, "one"),
    ({"mutable": "x"}, "string"),
    ("prototype", "true on prototype"),
]


def _values(type_: str) -> tuple[Any, Any, Any]:
    """(initial, value, invalid) as upstream, in Python."""
    if type_ == "i64":
        return 0, 1, 2.0
    if type_ == "i32":
        return 0, 1, 2.0
    return 0.0, 1.0, object()


def _descriptor(opts: Any, type_: str) -> Any:
    if opts == "prototype":
        return ChainMap({"value": type_}, {"mutable": True})
    return {**opts, "value": type_}


def _check(glob: asyncwasm.Global, expected: Any) -> None:
    assert glob.value == expected
    assert type(glob.value) is type(expected)
    assert glob.value_of() == expected


@cases(
    "type_, opts",
    [(f"Immutable {t} ({n})", t, o) for t in TYPES for o, n in IMMUTABLE_OPTIONS],
)
def test_immutable(subtest: str, type_: str, opts: dict[str, Any]) -> None:
    initial, value, _ = _values(type_)
    glob = asyncwasm.Global(_descriptor(opts, type_))
    _check(glob, initial)
    with pytest.raises((AttributeError, TypeError)):
        glob.value = value
    _check(glob, initial)


@cases(
    "type_, opts",
    [
        (f"Immutable {t} with ToNumber side-effects ({n})", t, o)
        for t in TYPES
        for o, n in IMMUTABLE_OPTIONS
    ],
)
def test_immutable_side_effects(subtest: str, type_: str, opts: dict[str, Any]) -> None:
    initial, _, _ = _values(type_)
    glob = asyncwasm.Global(_descriptor(opts, type_))
    _check(glob, initial)
    with pytest.raises((AttributeError, TypeError)):
        glob.value = Untouchable()
    _check(glob, initial)


@cases(
    "type_, opts",
    [(f"Mutable {t} ({n})", t, o) for t in TYPES for o, n in MUTABLE_OPTIONS],
)
def test_mutable(subtest: str, type_: str, opts: Any) -> None:
    initial, value, invalid = _values(type_)
    glob = asyncwasm.Global(_descriptor(opts, type_))
    _check(glob, initial)
    glob.value = value
    with pytest.raises(TypeError):
        glob.value = invalid
    _check(glob, value)


@subtest("i64 mutability")
def test_i64_mutability(subtest: str) -> None:
    glob = asyncwasm.Global({"value": "i64", "mutable": True})
    assert glob.value == 0
    for given, expected in [
        (123, 123),
        (2**63, -(2**63)),
        (True, 1),
        (False, 0),
        (Index(456), 456),
    ]:
        glob.value = given
        assert glob.value_of() == expected
        assert type(glob.value_of()) is int
    for invalid in [None, 0.0, 1.0, 4.2, object()]:
        with pytest.raises(TypeError):
            glob.value = invalid


@subtest("externref global")
def test_externref(subtest: str) -> None:
    glob = asyncwasm.Global({"value": "externref", "mutable": True})
    for value in [None, True, 1, -0.0, 1.5, -2, object(), "string", {"an": "object"}, lambda: None]:
        glob.value = value
        assert glob.value is value
        assert glob.value_of() is value
