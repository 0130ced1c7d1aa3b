"""Port of constructor/compile.any.js: ``await asyncwasm.compile(source)``."""

from __future__ import annotations

import inspect

import pytest

import asyncwasm

from ._support import (
    BUFFER_KINDS_ADAPTED,
    NO_STRAY,
    NO_THIS,
    assert_module,
    growable_shared_buffer,
    resizable_buffer,
    shared_buffer,
    subtest,
)
from .wasm_module_builder import EMPTY_MODULE, INVALID_MODULE

JS_FILE = "constructor/compile.any.js"
NOT_APPLICABLE = {
    "Branding": NO_THIS,
    "Stray argument": NO_STRAY,
}
ADAPTED = {
    "Invalid arguments": "JS non-BufferSource values mapped to Python ones without the buffer protocol",
    "Promise type": "Promise -> awaitable: compile() returns an awaitable",
    "Changing the buffer": "the bytearray is changed after the call and before the await",
    **BUFFER_KINDS_ADAPTED,
}

pytestmark = pytest.mark.asyncio


@subtest("Missing argument")
async def test_missing_argument(subtest: str) -> None:
    with pytest.raises(TypeError):
        await asyncwasm.compile()  # type: ignore[call-arg]


@subtest("Invalid arguments")
@pytest.mark.parametrize(
    "argument", [None, True, "", object(), 1, {}, bytes, list(EMPTY_MODULE)], ids=repr
)
async def test_invalid_arguments(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        await asyncwasm.compile(argument)


@subtest("Promise type")
async def test_promise_type(subtest: str) -> None:
    awaitable = asyncwasm.compile(EMPTY_MODULE)
    assert inspect.isawaitable(awaitable)
    assert_module(await awaitable)


@subtest("Empty buffer")
async def test_empty_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        await asyncwasm.compile(b"")


@subtest("Invalid code")
async def test_invalid_code(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        await asyncwasm.compile(INVALID_MODULE)


@subtest("Result type")
async def test_result_type(subtest: str) -> None:
    assert_module(await asyncwasm.compile(EMPTY_MODULE))


@subtest("Changing the buffer")
async def test_changing_the_buffer(subtest: str) -> None:
    buffer = bytearray(EMPTY_MODULE)
    assert buffer[0] == 0
    awaitable = asyncwasm.compile(buffer)
    buffer[0] = 1
    assert_module(await awaitable)


@subtest("SharedArrayBuffer-backed view")
async def test_shared_buffer(subtest: str) -> None:
    assert_module(await asyncwasm.compile(shared_buffer(EMPTY_MODULE)))


@subtest("Invalid module in SharedArrayBuffer")
async def test_invalid_shared_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        await asyncwasm.compile(shared_buffer(INVALID_MODULE))


@subtest("Resizable ArrayBuffer-backed view")
async def test_resizable_buffer(subtest: str) -> None:
    assert_module(await asyncwasm.compile(resizable_buffer(EMPTY_MODULE)))


@subtest("Invalid module in resizable ArrayBuffer")
async def test_invalid_resizable_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        await asyncwasm.compile(resizable_buffer(INVALID_MODULE))


@subtest("Growable SharedArrayBuffer-backed view")
async def test_growable_buffer(subtest: str) -> None:
    assert_module(await asyncwasm.compile(growable_shared_buffer(EMPTY_MODULE)))


@subtest("Invalid module in growable SharedArrayBuffer")
async def test_invalid_growable_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        await asyncwasm.compile(growable_shared_buffer(INVALID_MODULE))
