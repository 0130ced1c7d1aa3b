"""Port of table/grow.any.js: ``table.grow(delta, value=<default>)``."""

from __future__ import annotations

import pytest

import asyncwasm

from ._functions import exported_fn
from ._support import (
    NO_STRAY,
    NO_THIS,
    OUT_OF_RANGE_INDEX,
    assert_equal_to_array,
    cases,
    subtest,
)

JS_FILE = "table/grow.any.js"
NOT_APPLICABLE = {"Branding": NO_THIS, "Stray argument": NO_STRAY}
ADAPTED = {
    "Out-of-range argument: undefined": "undefined -> None",
    'Out-of-range argument: object "[object Object]"': "valueOf -> __index__",
    "Grow with non-function argument": "{} -> dict",
    "Grow with JS-function argument": "a Python lambda",
}


def _nulls(n: int) -> list[None]:
    return [None] * n


@subtest("Missing arguments")
def test_missing_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Table({"element": "anyfunc", "initial": 5}).grow()  # type: ignore[call-arg]


@subtest("Basic i32")
def test_basic(subtest: str) -> None:
    table = asyncwasm.Table({"element": "anyfunc", "initial": 5})
    assert_equal_to_array(table, _nulls(5))
    assert table.grow(3) == 5
    assert_equal_to_array(table, _nulls(8))


@subtest("Reached maximum (i32)")
def test_reached_maximum(subtest: str) -> None:
    table = asyncwasm.Table({"element": "anyfunc", "initial": 3, "maximum": 5})
    assert_equal_to_array(table, _nulls(3))
    assert table.grow(2) == 3
    assert_equal_to_array(table, _nulls(5))


@subtest("Exceeded maximum (i32)")
def test_exceeded_maximum(subtest: str) -> None:
    table = asyncwasm.Table({"element": "anyfunc", "initial": 2, "maximum": 5})
    assert_equal_to_array(table, _nulls(2))
    with pytest.raises(asyncwasm.RangeError):
        table.grow(4)
    assert_equal_to_array(table, _nulls(2))


OUT_OF_RANGE = OUT_OF_RANGE_INDEX


@cases("value", [(f"Out-of-range argument: {n}", v) for n, v in OUT_OF_RANGE])
def test_out_of_range(subtest: str, value: object) -> None:
    table = asyncwasm.Table({"element": "anyfunc", "initial": 1})
    with pytest.raises(TypeError):
        table.grow(value)


@subtest("Grow with exported-function argument")
def test_grow_with_function(subtest: str) -> None:
    table = asyncwasm.Table({"element": "anyfunc", "initial": 1})
    fn = exported_fn()
    assert table.grow(2, fn) == 1
    assert table.get(0) is None
    assert table.get(1) is fn
    assert table.get(2) is fn


@subtest("Grow with non-function argument")
def test_grow_with_non_function(subtest: str) -> None:
    table = asyncwasm.Table({"element": "anyfunc", "initial": 1})
    with pytest.raises(TypeError):
        table.grow(2, {})


@subtest("Grow with JS-function argument")
def test_grow_with_python_function(subtest: str) -> None:
    table = asyncwasm.Table({"element": "anyfunc", "initial": 1})
    with pytest.raises(TypeError):
        table.grow(2, lambda: True)
