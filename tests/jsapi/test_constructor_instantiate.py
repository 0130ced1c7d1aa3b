"""Port of constructor/instantiate.any.js: ``await asyncwasm.instantiate(source|module, imports)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

import asyncwasm

from ._instance_cases import CASE_NOTES, CASES, STRAY_ARGUMENT, Case
from ._support import (
    BUFFER_KINDS_ADAPTED,
    NO_STRAY,
    NO_THIS,
    RecordingMapping,
    assert_instance,
    assert_instantiated_source,
    cases,
    growable_shared_buffer,
    resizable_buffer,
    shared_buffer,
    subtest,
)
from .wasm_module_builder import EMPTY_MODULE, INVALID_MODULE, WasmModuleBuilder, kWasmI32

JS_FILE = "constructor/instantiate.any.js"
NOT_APPLICABLE = {
    "Branding": NO_THIS,
    f"{STRAY_ARGUMENT}: BufferSource argument": NO_STRAY,
    f"{STRAY_ARGUMENT}: Module argument": NO_STRAY,
}
ADAPTED = {
    "Invalid arguments": "JS values that are neither BufferSource nor Module mapped to Python ones",
    "Promise type": "Promise -> awaitable",
    "Changing the buffer": "the bytearray is changed after the call and before the await",
    "Synchronous options handling: Module argument": "a Python coroutine runs nothing before it is awaited, so the import lookups are checked after the await (their order is the same)",
    "Synchronous options handling: Buffer argument": "JS getters -> a Mapping recording lookups",
    **BUFFER_KINDS_ADAPTED,
}
for _name, _note in CASE_NOTES.items():
    ADAPTED[f"{_name}: BufferSource argument"] = _note
    ADAPTED[f"{_name}: Module argument"] = _note

pytestmark = pytest.mark.asyncio


@subtest("Missing arguments")
async def test_missing_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        await asyncwasm.instantiate()  # type: ignore[call-overload]


@subtest("Invalid arguments")
@pytest.mark.parametrize(
    "argument",
    [None, True, "", object(), 1, {}, asyncwasm.Module, bytes, list(EMPTY_MODULE)],
    ids=repr,
)
async def test_invalid_arguments(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        await asyncwasm.instantiate(argument)


@subtest("Promise type")
async def test_promise_type(subtest: str) -> None:
    awaitable = asyncwasm.instantiate(EMPTY_MODULE)
    assert inspect.isawaitable(awaitable)
    assert_instantiated_source(await awaitable)


@cases("make", [(f"{name}: BufferSource argument", make) for name, make in CASES])
async def test_buffer_source_argument(subtest: str, make: Callable[[], Case]) -> None:
    case = make()
    result = await asyncwasm.instantiate(case.buffer, *case.args)
    assert_instantiated_source(result, case.exports)
    case.verify(result.instance)


@cases("make", [(f"{name}: Module argument", make) for name, make in CASES])
async def test_module_argument(subtest: str, make: Callable[[], Case]) -> None:
    case = make()
    module = asyncwasm.Module(case.buffer)
    instance = await asyncwasm.instantiate(module, *case.args)
    assert_instance(instance, case.exports)
    case.verify(instance)


def _global_import_module() -> bytes:
    builder = WasmModuleBuilder()
    builder.add_imported_global("module", "global", kWasmI32)
    return builder.to_buffer()


@subtest("Synchronous options handling: Buffer argument")
async def test_synchronous_options_buffer(subtest: str) -> None:
    log: list[str] = []
    imports = RecordingMapping(
        {"module": lambda: RecordingMapping({"global": 0}, log, prefix="module.")}, log
    )
    awaitable = asyncwasm.instantiate(_global_import_module(), imports)
    assert log == []
    result = await awaitable
    assert_instantiated_source(result)
    assert log == ["module", "module.global"]


@subtest("Synchronous options handling: Module argument")
async def test_synchronous_options_module(subtest: str) -> None:
    module = asyncwasm.Module(_global_import_module())
    log: list[str] = []
    imports = RecordingMapping(
        {"module": lambda: RecordingMapping({"global": 0}, log, prefix="module.")}, log
    )
    instance = await asyncwasm.instantiate(module, imports)
    assert log == ["module", "module.global"]
    assert_instance(instance, {})


@subtest("Empty buffer")
async def test_empty_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        await asyncwasm.instantiate(b"")


@subtest("Invalid code")
async def test_invalid_code(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        await asyncwasm.instantiate(INVALID_MODULE)


@subtest("Changing the buffer")
async def test_changing_the_buffer(subtest: str) -> None:
    buffer = bytearray(EMPTY_MODULE)
    assert buffer[0] == 0
    awaitable = asyncwasm.instantiate(buffer)
    buffer[0] = 1
    assert_instantiated_source(await awaitable)


@subtest("SharedArrayBuffer-backed view")
async def test_shared_buffer(subtest: str) -> None:
    assert_instantiated_source(await asyncwasm.instantiate(shared_buffer(EMPTY_MODULE)))


@subtest("Invalid module in SharedArrayBuffer")
async def test_invalid_shared_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        await asyncwasm.instantiate(shared_buffer(INVALID_MODULE))


@subtest("Resizable ArrayBuffer-backed view")
async def test_resizable_buffer(subtest: str) -> None:
    assert_instantiated_source(await asyncwasm.instantiate(resizable_buffer(EMPTY_MODULE)))


@subtest("Invalid module in resizable ArrayBuffer")
async def test_invalid_resizable_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        await asyncwasm.instantiate(resizable_buffer(INVALID_MODULE))


@subtest("Growable SharedArrayBuffer-backed view")
async def test_growable_buffer(subtest: str) -> None:
    assert_instantiated_source(await asyncwasm.instantiate(growable_shared_buffer(EMPTY_MODULE)))


@subtest("Invalid module in growable SharedArrayBuffer")
async def test_invalid_growable_buffer(subtest: str) -> None:
    with pytest.raises(asyncwasm.CompileError):
        await asyncwasm.instantiate(growable_shared_buffer(INVALID_MODULE))
