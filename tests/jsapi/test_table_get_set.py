"""Port of table/get-set.any.js: ``table.get(i)`` and ``table.set(i, value=<default>)``."""

from __future__ import annotations

import math

import pytest

import asyncwasm

from ._functions import exported_fn, exported_functions
from ._support import (
    MEMORY64,
    NO_STRAY,
    NO_THIS,
    OUT_OF_RANGE_INDEX,
    Index,
    assert_equal_to_array,
    cases,
    subtest,
)

JS_FILE = "table/get-set.any.js"
NOT_APPLICABLE = {
    "Branding: get": NO_THIS,
    "Branding: set": NO_THIS,
    "Stray argument": NO_STRAY,
}
NOT_APPLICABLE_PATTERNS = {r"\(i64\)": MEMORY64}
ADAPTED = {
    "Setting non-function": "JS values mapped to Python ones (None is null and valid, so it is left out; Symbol -> object(); {} -> dict)",
    "Setting non-wasm function": "a Python function",
    "Setting non-wasm arrow function": "a Python lambda",
    "Order of argument conversion": "valueOf -> __index__; called once before the value is rejected",
    "Arguments for externref table set": "set(0) with the value omitted stores the default (None, JS undefined)",
    "Getting out-of-range argument: undefined": "undefined -> None",
    "Setting out-of-range argument: undefined": "undefined -> None",
    'Getting out-of-range argument: object "[object Object]"': "valueOf -> __index__",
    'Setting out-of-range argument: object "[object Object]"': "valueOf -> __index__",
}


def _table(initial: int) -> asyncwasm.Table:
    return asyncwasm.Table({"element": "anyfunc", "initial": initial})


@subtest("Missing arguments: get")
def test_missing_get(subtest: str) -> None:
    with pytest.raises(TypeError):
        _table(5).get()  # type: ignore[call-arg]


@subtest("Missing arguments: set")
def test_missing_set(subtest: str) -> None:
    with pytest.raises(TypeError):
        _table(5).set()  # type: ignore[call-arg]


@subtest("Basic")
def test_basic(subtest: str) -> None:
    table = _table(5)
    assert_equal_to_array(table, [None] * 5)
    functions = exported_functions()
    fn, fn2 = functions.fn, functions.fn2
    assert table.set(0, fn) is None, "set() returns None."  # type: ignore[func-returns-value]
    table.set(2, fn2)
    table.set(4, fn)
    assert_equal_to_array(table, [fn, None, fn2, None, fn])
    table.set(0, None)
    assert_equal_to_array(table, [None, None, fn2, None, fn])


@subtest("Growing")
def test_growing(subtest: str) -> None:
    table = _table(5)
    assert_equal_to_array(table, [None] * 5)
    functions = exported_functions()
    fn, fn2 = functions.fn, functions.fn2
    table.set(0, fn)
    table.set(2, fn2)
    table.set(4, fn)
    assert_equal_to_array(table, [fn, None, fn2, None, fn])
    table.grow(4)
    assert_equal_to_array(table, [fn, None, fn2, None, fn, None, None, None, None])


@subtest("Setting out-of-bounds")
def test_setting_out_of_bounds(subtest: str) -> None:
    table = _table(5)
    fn = exported_functions().fn
    with pytest.raises(TypeError):
        table.set(-1, fn)
    with pytest.raises(asyncwasm.RangeError):
        table.set(5, fn)
    assert_equal_to_array(table, [None] * 5)


@subtest("Setting non-function")
@pytest.mark.parametrize("argument", [True, False, "test", object(), 7, math.nan, {}], ids=repr)
def test_setting_non_function(subtest: str, argument: object) -> None:
    table = _table(1)
    with pytest.raises(TypeError):
        table.set(0, argument)
    assert_equal_to_array(table, [None])


@subtest("Setting non-wasm function")
def test_setting_python_function(subtest: str) -> None:
    table = _table(1)

    def fn() -> None:
        pass

    with pytest.raises(TypeError):
        table.set(0, fn)
    assert_equal_to_array(table, [None])


@subtest("Setting non-wasm arrow function")
def test_setting_lambda(subtest: str) -> None:
    table = _table(1)
    with pytest.raises(TypeError):
        table.set(0, lambda: None)
    assert_equal_to_array(table, [None])


OUT_OF_RANGE = OUT_OF_RANGE_INDEX


@cases("value", [(f"Getting out-of-range argument: {n}", v) for n, v in OUT_OF_RANGE])
def test_get_out_of_range(subtest: str, value: object) -> None:
    with pytest.raises(TypeError):
        _table(1).get(value)


@cases("value", [(f"Setting out-of-range argument: {n}", v) for n, v in OUT_OF_RANGE])
def test_set_out_of_range(subtest: str, value: object) -> None:
    with pytest.raises(TypeError):
        _table(1).set(value, None)


@subtest("Order of argument conversion")
def test_order_of_argument_conversion(subtest: str) -> None:
    table = _table(1)
    log: list[str] = []
    with pytest.raises(TypeError):
        table.set(Index(0, log), {})
    assert log == [" __index__"]


@subtest("Arguments for anyfunc table set")
def test_anyfunc_set(subtest: str) -> None:
    fn = exported_fn()
    table = asyncwasm.Table({"element": "anyfunc", "initial": 1}, fn)
    assert table.get(0) is fn
    table.set(0)
    assert table.get(0) is None
    table.set(0, fn)
    assert table.get(0) is fn
    with pytest.raises(TypeError):
        table.set(0, {})
    with pytest.raises(TypeError):
        table.set(0, 37)


@subtest("Arguments for externref table set")
def test_externref_set(subtest: str) -> None:
    test_object = object()
    table = asyncwasm.Table({"element": "externref", "initial": 1}, test_object)
    assert table.get(0) is test_object
    table.set(0)
    assert table.get(0) is None
    table.set(0, test_object)
    assert table.get(0) is test_object
    table.set(0, 37)
    assert table.get(0) == 37
