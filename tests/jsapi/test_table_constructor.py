"""Port of table/constructor.any.js: ``asyncwasm.Table(element, initial, maximum=None,
value=<default>)`` or ``Table({"element": ..., "initial": ...}, value)``."""

from __future__ import annotations

import math

import pytest

import asyncwasm

from ._functions import exported_fn
from ._support import (
    MEMORY64,
    NO_JS_COERCION,
    NO_LENGTH,
    NO_NEW,
    NO_STRAY,
    OUT_OF_RANGE_U32,
    Index,
    RecordingMapping,
    assert_table,
    cases,
    class_name_check,
    subtest,
)

JS_FILE = "table/constructor.any.js"
NOT_APPLICABLE = {
    "length": NO_LENGTH,
    "Calling": NO_NEW,
    "Stray argument": NO_STRAY,
    "Type conversion for descriptor.element": "JS ToString of an object for `element` has no Python equivalent (no str coercion)",
    "Table with i32 address constructor": MEMORY64,
    "Unknown table address": MEMORY64,
    "Table with string value for initial": NO_JS_COERCION,
    "Table with string value for maximum": NO_JS_COERCION,
    "initialize table with a wrong initial type": MEMORY64 + " (BigInt sizes)",
    "initialize table with a wrong maximum type": MEMORY64 + " (BigInt sizes)",
    "initialize table with a wrong initial type (i64)": MEMORY64,
    "initialize table with a wrong maximum type (i64)": MEMORY64,
}
ADAPTED = {
    "name": "the class is asyncwasm.Table with __name__ 'Table'",
    "Invalid descriptor argument": 'JS values mapped to Python ones that are not a descriptor (None, bools, "", "test", object(), 1, NaN, an empty dict)',
    "Undefined initial value in descriptor": "undefined -> None",
    "Undefined element value in descriptor": "undefined -> None",
    "Proxy descriptor": "a Mapping whose `in` fails the test (JS [[HasProperty]] must not be used)",
    "Order of evaluation for descriptor": "JS getters -> a Mapping recording lookups, valueOf -> __index__; `element` is a str (no toString); the memory64 `address` member is not looked for",
    "initialize externref table with default value": "{} -> object(); identity kept",
    "initialize anyfunc table with a bad default value": "{} -> dict, a str, an int",
    "Table with boolean value for initial": "bool is an int in Python",
    "Table with boolean value for maximum": "bool is an int in Python",
}
ADAPTED_PATTERNS = {
    r"^Out-of-range (initial|maximum) value in descriptor: ": "checked in the descriptor form and in the positional form",
}


@subtest("name")
def test_name(subtest: str) -> None:
    class_name_check(asyncwasm.Table, "Table")


@subtest("No arguments")
def test_no_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Table()  # type: ignore[call-arg]


@subtest("Empty descriptor")
def test_empty_descriptor(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Table({})


@subtest("Invalid descriptor argument")
@pytest.mark.parametrize(
    "argument", [None, False, True, "", "test", object(), 1, math.nan, {}], ids=repr
)
def test_invalid_descriptor(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Table(argument)


@subtest("Undefined initial value in descriptor")
def test_undefined_initial(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Table({"element": "anyfunc", "initial": None})


@subtest("Undefined element value in descriptor")
def test_undefined_element(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Table({"element": None, "initial": 0})


OUT_OF_RANGE = OUT_OF_RANGE_U32


@cases("value", [(f"Out-of-range initial value in descriptor: {n}", v) for n, v in OUT_OF_RANGE])
def test_out_of_range_initial(subtest: str, value: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Table({"element": "anyfunc", "initial": value})
    with pytest.raises(TypeError):
        asyncwasm.Table("anyfunc", value)


@cases("value", [(f"Out-of-range maximum value in descriptor: {n}", v) for n, v in OUT_OF_RANGE])
def test_out_of_range_maximum(subtest: str, value: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Table({"element": "anyfunc", "initial": 0, "maximum": value})
    with pytest.raises(TypeError):
        asyncwasm.Table("anyfunc", 0, value)


@subtest("Initial value exceeds maximum")
def test_initial_exceeds_maximum(subtest: str) -> None:
    with pytest.raises(asyncwasm.RangeError):
        asyncwasm.Table({"element": "anyfunc", "initial": 10, "maximum": 9})


@subtest("Basic (zero)")
def test_basic_zero(subtest: str) -> None:
    assert_table(asyncwasm.Table({"element": "anyfunc", "initial": 0}), 0)


@subtest("Basic (non-zero)")
def test_basic_non_zero(subtest: str) -> None:
    assert_table(asyncwasm.Table({"element": "anyfunc", "initial": 5}), 5)
    assert_table(asyncwasm.Table("anyfunc", 5), 5)


@subtest("Proxy descriptor")
def test_proxy_descriptor(subtest: str) -> None:
    descriptor = RecordingMapping(
        {"element": "anyfunc", "initial": 0, "maximum": 0}, contains_fails=True
    )
    assert_table(asyncwasm.Table(descriptor), 0)


@subtest("Order of evaluation for descriptor")
def test_order_of_evaluation(subtest: str) -> None:
    log: list[str] = []
    descriptor = RecordingMapping(
        {
            "maximum": lambda: Index(1, log, "maximum"),
            "initial": lambda: Index(1, log, "initial"),
            "element": "anyfunc",
        },
        log,
    )
    asyncwasm.Table(descriptor)
    assert [e for e in log if e.split()[0] in ("element", "initial", "maximum")] == [
        "element",
        "initial",
        "initial __index__",
        "maximum",
        "maximum __index__",
    ]


@subtest("initialize externref table with default value")
def test_externref_default(subtest: str) -> None:
    test_object = object()
    table = asyncwasm.Table({"element": "externref", "initial": 3}, test_object)
    assert table.length == 3
    for i in range(3):
        assert table.get(i) is test_object


@subtest("initialize table with a wrong element value")
def test_wrong_element(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Table({"element": "i32", "initial": 3})


@subtest("initialize anyfunc table with default value")
def test_anyfunc_default(subtest: str) -> None:
    fn = exported_fn()
    table = asyncwasm.Table({"element": "anyfunc", "initial": 3}, fn)
    assert table.length == 3
    for i in range(3):
        assert table.get(i) is fn


@subtest("initialize anyfunc table with a bad default value")
def test_anyfunc_bad_default(subtest: str) -> None:
    argument = {"element": "anyfunc", "initial": 3}
    value: object
    for value in ({}, "cannot be used as a wasm function", 37):
        with pytest.raises(TypeError):
            asyncwasm.Table(argument, value)


@subtest("Table with boolean value for initial")
def test_boolean_initial(subtest: str) -> None:
    assert asyncwasm.Table({"element": "anyfunc", "initial": True}).length == 1


@subtest("Table with boolean value for maximum")
def test_boolean_maximum(subtest: str) -> None:
    table = asyncwasm.Table({"element": "anyfunc", "initial": 0, "maximum": True})
    table.grow(1)
    assert table.length == 1
