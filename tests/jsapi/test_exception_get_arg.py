"""Port of exception/getArg.tentative.any.js: ``exception.get_arg(tag, index)``."""

from __future__ import annotations

import math

import pytest

import asyncwasm

from ._support import Index, subtest

JS_FILE = "exception/getArg.tentative.any.js"
ADAPTED = {
    "Invalid exception argument": "JS non-Tag values mapped to Python ones (undefined -> None, Symbol -> object())",
    "Getting out-of-range argument": "undefined -> None, valueOf -> __index__",
    "getArg": "get_arg, and the JS spelling getArg",
}


def _exception() -> tuple[asyncwasm.Tag, asyncwasm.Exception]:
    tag = asyncwasm.Tag({"parameters": []})
    return tag, asyncwasm.Exception(tag, [])


@subtest("Missing arguments")
def test_missing_arguments(subtest: str) -> None:
    tag, exn = _exception()
    with pytest.raises(TypeError):
        exn.get_arg()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        exn.get_arg(tag)  # type: ignore[call-arg]


@subtest("Invalid exception argument")
def test_invalid_tag(subtest: str) -> None:
    _, exn = _exception()
    for argument in [None, True, "", object(), 1, {}]:
        with pytest.raises(TypeError):
            exn.get_arg(argument, 0)  # type: ignore[arg-type]


@subtest("Index out of bounds")
def test_index_out_of_bounds(subtest: str) -> None:
    tag, exn = _exception()
    with pytest.raises(asyncwasm.RangeError):
        exn.get_arg(tag, 1)


@subtest("Getting out-of-range argument")
def test_out_of_range(subtest: str) -> None:
    tag, exn = _exception()
    for value in [
        None,
        math.nan,
        math.inf,
        -math.inf,
        -1,
        0x100000000,
        0x1000000000,
        "0x100000000",
        Index(0x100000000),
    ]:
        with pytest.raises(TypeError):
            exn.get_arg(tag, value)


@subtest("getArg")
def test_get_arg(subtest: str) -> None:
    tag = asyncwasm.Tag({"parameters": ["i32"]})
    exn = asyncwasm.Exception(tag, [42])
    assert exn.get_arg(tag, 0) == 42
    assert exn.getArg(tag, 0) == 42
