"""Port of exception/constructor.tentative.any.js: ``asyncwasm.Exception(tag, payload)``."""

from __future__ import annotations

import math

import pytest

import asyncwasm

from ._support import NO_LENGTH, NO_NEW, class_name_check, subtest

JS_FILE = "exception/constructor.tentative.any.js"
NOT_APPLICABLE = {"length": NO_LENGTH, "Calling": NO_NEW}
ADAPTED = {
    "name": "the class is asyncwasm.Exception with __name__ 'Exception'",
    "Invalid descriptor argument": "JS values mapped to Python ones that are not a Tag (None, bools, str, object(), 1, NaN, a dict)",
    "Invalid exception argument": "payloads that are not sequences of the right values: an int (JS BigInt), object() (Symbol), and an omitted payload (undefined)",
}


@subtest("name")
def test_name(subtest: str) -> None:
    class_name_check(asyncwasm.Exception, "Exception")


@subtest("No arguments")
def test_no_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Exception()  # type: ignore[call-arg]


@subtest("Invalid descriptor argument")
@pytest.mark.parametrize(
    "argument", [None, False, True, "", "test", object(), 1, math.nan, {}], ids=repr
)
def test_invalid_tag(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Exception(argument)  # type: ignore[call-arg, arg-type]
    with pytest.raises(TypeError):
        asyncwasm.Exception(argument, [])  # type: ignore[arg-type]


@subtest("Invalid exception argument")
def test_invalid_payload(subtest: str) -> None:
    for type_, args in [
        ("i32", (123,)),
        ("i32", (object(),)),
        ("f32", (123,)),
        ("f64", (123,)),
        ("i64", ()),
    ]:
        tag = asyncwasm.Tag({"parameters": [type_]})
        with pytest.raises(TypeError):
            asyncwasm.Exception(tag, *args)  # type: ignore[arg-type]
