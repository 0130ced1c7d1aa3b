"""Port of exception/is.tentative.any.js: ``exception.is_(tag)`` (JS ``is``)."""

from __future__ import annotations

import pytest

import asyncwasm

from ._support import subtest

JS_FILE = "exception/is.tentative.any.js"
ADAPTED = {
    "Invalid exception argument": "JS non-Tag values mapped to Python ones (undefined -> None, Symbol -> object())",
    "is": "is_ (is is a Python keyword), and the JS spelling through getattr",
}


def _exception() -> asyncwasm.Exception:
    return asyncwasm.Exception(asyncwasm.Tag({"parameters": []}), [])


@subtest("Missing arguments")
def test_missing_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        _exception().is_()  # type: ignore[call-arg]


@subtest("Invalid exception argument")
def test_invalid_tag(subtest: str) -> None:
    exn = _exception()
    for argument in [None, True, "", object(), 1, {}]:
        with pytest.raises(TypeError):
            exn.is_(argument)  # type: ignore[arg-type]


@subtest("is")
def test_is(subtest: str) -> None:
    tag1 = asyncwasm.Tag({"parameters": ["i32"]})
    tag2 = asyncwasm.Tag({"parameters": ["i32"]})
    exn = asyncwasm.Exception(tag1, [42])
    assert exn.is_(tag1) is True
    assert exn.is_(tag2) is False
    assert getattr(exn, "is")(tag1) is True
