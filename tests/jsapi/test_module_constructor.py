"""Port of module/constructor.any.js: ``asyncwasm.Module(source)`` compiles synchronously."""

from __future__ import annotations

import math

import pytest

import asyncwasm

from ._support import (
    BUFFER_KINDS_ADAPTED,
    NO_EXTENSIBLE,
    NO_LENGTH,
    NO_NEW,
    NO_STRAY,
    class_name_check,
    growable_shared_buffer,
    resizable_buffer,
    shared_buffer,
    subtest,
)
from .wasm_module_builder import EMPTY_MODULE, INVALID_MODULE

JS_FILE = "module/constructor.any.js"
NOT_APPLICABLE = {
    "length": NO_LENGTH,
    "Calling": NO_NEW,
    "Extensibility": NO_EXTENSIBLE,
    "Stray argument": NO_STRAY,
}
ADAPTED = {
    "name": "the class is asyncwasm.Module with __name__ 'Module'",
    "Invalid arguments": "JS non-BufferSource values mapped to Python ones without the buffer protocol",
    "Prototype": "Object.getPrototypeOf -> isinstance",
    **BUFFER_KINDS_ADAPTED,
}


@subtest("name")
def test_name(subtest: str) -> None:
    class_name_check(asyncwasm.Module, "Module")


@subtest("No arguments")
def test_no_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Module()  # type: ignore[call-arg]


@subtest("Invalid arguments")
@pytest.mark.parametrize(
    "argument", [None, True, "test", object(), 7, math.nan, {}, bytes, list(EMPTY_MODULE)], ids=repr
)
def test_invalid_arguments(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Module(argument)


@subtest("Empty buffer")
def test_empty_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        asyncwasm.Module(b"")


@subtest("Invalid code")
def test_invalid_code(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        asyncwasm.Module(INVALID_MODULE)


@subtest("Prototype")
def test_prototype(subtest: str) -> None:
    assert type(asyncwasm.Module(EMPTY_MODULE)) is asyncwasm.Module


@subtest("SharedArrayBuffer-backed view")
def test_shared_buffer(subtest: str) -> None:
    assert isinstance(asyncwasm.Module(shared_buffer(EMPTY_MODULE)), asyncwasm.Module)


@subtest("Invalid module in SharedArrayBuffer")
def test_invalid_shared_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        asyncwasm.Module(shared_buffer(INVALID_MODULE))


@subtest("Resizable ArrayBuffer-backed view")
def test_resizable_buffer(subtest: str) -> None:
    assert isinstance(asyncwasm.Module(resizable_buffer(EMPTY_MODULE)), asyncwasm.Module)


@subtest("Invalid module in resizable ArrayBuffer")
def test_invalid_resizable_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        asyncwasm.Module(resizable_buffer(INVALID_MODULE))


@subtest("Growable SharedArrayBuffer-backed view")
def test_growable_buffer(subtest: str) -> None:
    assert isinstance(asyncwasm.Module(growable_shared_buffer(EMPTY_MODULE)), asyncwasm.Module)


@subtest("Invalid module in growable SharedArrayBuffer")
def test_invalid_growable_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        asyncwasm.Module(growable_shared_buffer(INVALID_MODULE))
