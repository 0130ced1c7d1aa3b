"""Port of tag/constructor.tentative.any.js: ``asyncwasm.Tag(parameters)`` or
``Tag({"parameters": [...]})``."""

from __future__ import annotations

import math

import pytest

import asyncwasm

from ._support import NO_LENGTH, NO_NEW, class_name_check, subtest

JS_FILE = "tag/constructor.tentative.any.js"
NOT_APPLICABLE = {"length": NO_LENGTH, "Calling": NO_NEW}
ADAPTED = {
    "name": "the class is asyncwasm.Tag with __name__ 'Tag'",
    "Invalid descriptor argument": "JS values mapped to Python ones (None, bools, str, object(), 1, NaN, an empty dict); a str is not a sequence of type names",
    "Invalid type parameter": "checked in the descriptor form and the sequence form",
}


@subtest("name")
def test_name(subtest: str) -> None:
    class_name_check(asyncwasm.Tag, "Tag")


@subtest("No arguments")
def test_no_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Tag()  # type: ignore[call-arg]


@subtest("Invalid descriptor argument")
@pytest.mark.parametrize(
    "argument", [None, False, True, "", "test", object(), 1, math.nan, {}], ids=repr
)
def test_invalid_descriptor(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Tag(argument)


@subtest("Invalid type parameter")
@pytest.mark.parametrize("value", ["i16", "i128", "f16", "f128", "u32", "u64", "i32\0"])
def test_invalid_type(subtest: str, value: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Tag({"parameters": [value]})
    with pytest.raises(TypeError):
        asyncwasm.Tag([value])
