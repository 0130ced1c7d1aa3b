"""Port of limits.any.js: the JS API's implementation limits (JS API spec, "Limits").

Each static limit is checked at ``minimum``, at the ``limit`` and ``over limit`` with validate,
``Module()`` and ``compile()``. Modules at or over a limit are large (a million types,
functions, ...; 1 GiB for the module size), so those subtests are marked ``limits`` (deselected on wasmer, whose compiler kills the process on some of them).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest

import asyncwasm

from ._support import subtest
from .wasm_module_builder import (
    WasmModuleBuilder,
    kExprNop,
    kExprUnreachable,
    kSig_i_i,
    kSig_i_ii,
    kSig_i_v,
    kSig_v_v,
    kWasmH0,
    kWasmH1,
    kWasmH2,
    kWasmH3,
    kWasmI32,
    kWasmV0,
    kWasmV1,
    kWasmV2,
    kWasmV3,
    make_sig,
    wasm_i32_const,
    wasm_signed_leb,
)

JS_FILE = "limits.any.js"
ADAPTED = {
    "Async instantiate initial table size over limit": "upstream returns before checking anything (its check is dead code); here instantiation must fail with RangeError, as in the synchronous subtest",
    "Instantiate maximum table size over limit": "upstream calls an undefined assertEquals; here grow() must return -1",
    "Async instantiate maximum table size over limit.": "",
}
ADAPTED.pop("Async instantiate maximum table size over limit.")

kJSEmbeddingMaxTypes = 1000000
kJSEmbeddingMaxFunctions = 1000000
kJSEmbeddingMaxImports = 1000000
kJSEmbeddingMaxExports = 1000000
kJSEmbeddingMaxGlobals = 1000000
kJSEmbeddingMaxDataSegments = 100000
kJSEmbeddingMaxModuleSize = 1024 * 1024 * 1024
kJSEmbeddingMaxFunctionSize = 7654321
kJSEmbeddingMaxFunctionLocals = 50000
kJSEmbeddingMaxFunctionParams = 1000
kJSEmbeddingMaxFunctionReturns = 1000
kJSEmbeddingMaxElementSegments = 10000000
kJSEmbeddingMaxTables = 100000
kJSEmbeddingMaxMemories = 1
kJSEmbeddingMaxTableSize = 10000000


def _types(b: WasmModuleBuilder, count: int) -> None:
    for _ in range(count):
        b.add_type(kSig_i_i)


def _functions(b: WasmModuleBuilder, count: int) -> None:
    type_ = b.add_type(kSig_v_v)
    for _ in range(count):
        b.add_function(None, type_).add_body([])


def _imports(b: WasmModuleBuilder, count: int) -> None:
    type_ = b.add_type(kSig_v_v)
    for _ in range(count):
        b.add_import("", "", type_)


def _exports(b: WasmModuleBuilder, count: int) -> None:
    type_ = b.add_type(kSig_v_v)
    f = b.add_function(None, type_).add_body([])
    for i in range(count):
        b.add_export(f"f{i}", f.index)


def _globals(b: WasmModuleBuilder, count: int) -> None:
    for _ in range(count):
        b.add_global(kWasmI32, True)


def _data_segments(b: WasmModuleBuilder, count: int) -> None:
    b.add_memory(1, 1, False)
    for _ in range(count):
        b.add_data_segment(0, b"")


def _function_size(b: WasmModuleBuilder, count: int) -> None:
    type_ = b.add_type(kSig_v_v)
    b.add_function(None, type_).add_body([kExprNop] * (count - 2))


def _function_locals(b: WasmModuleBuilder, count: int) -> None:
    type_ = b.add_type(kSig_v_v)
    b.add_function(None, type_).add_locals(i32_count=count).add_body([])


def _function_params(b: WasmModuleBuilder, count: int) -> None:
    b.add_type(make_sig([kWasmI32] * count, []))


def _function_params_locals(b: WasmModuleBuilder, count: int) -> None:
    type_ = b.add_type(kSig_i_ii)
    b.add_function(None, type_).add_locals(i32_count=count).add_body([kExprUnreachable])


def _function_returns(b: WasmModuleBuilder, count: int) -> None:
    b.add_type(make_sig([], [kWasmI32] * count))


def _element_segments(b: WasmModuleBuilder, count: int) -> None:
    b.set_table_bounds(1, 1)
    for _ in range(count):
        b.add_element_segment(0, 0, False, [])


def _tables(b: WasmModuleBuilder, count: int) -> None:
    for _ in range(count):
        b.add_imported_table("", "", 1, 1)


def _memories(b: WasmModuleBuilder, count: int) -> None:
    for _ in range(count):
        b.add_imported_memory("", "", 1, 1)


LIMITS: list[tuple[str, int, int, Callable[[WasmModuleBuilder, int], None]]] = [
    ("types", 1, kJSEmbeddingMaxTypes, _types),
    ("functions", 1, kJSEmbeddingMaxFunctions, _functions),
    ("imports", 1, kJSEmbeddingMaxImports, _imports),
    ("exports", 1, kJSEmbeddingMaxExports, _exports),
    ("globals", 1, kJSEmbeddingMaxGlobals, _globals),
    ("data segments", 1, kJSEmbeddingMaxDataSegments, _data_segments),
    ("function size", 2, kJSEmbeddingMaxFunctionSize, _function_size),
    ("function locals", 1, kJSEmbeddingMaxFunctionLocals, _function_locals),
    ("function params", 1, kJSEmbeddingMaxFunctionParams, _function_params),
    ("function params+locals", 1, kJSEmbeddingMaxFunctionLocals - 2, _function_params_locals),
    ("function returns", 0, kJSEmbeddingMaxFunctionReturns, _function_returns),
    ("element segments", 1, kJSEmbeddingMaxElementSegments, _element_segments),
    ("tables", 0, kJSEmbeddingMaxTables, _tables),
    ("memories", 0, kJSEmbeddingMaxMemories, _memories),
]
GENERATORS = {name: gen for name, _, _, gen in LIMITS}


@cache
def _buffer(name: str, count: int) -> bytes:
    builder = WasmModuleBuilder()
    GENERATORS[name](builder, count)
    return builder.to_buffer()


def _static_rows() -> list[object]:
    rows: list[object] = []
    for name, minimum, limit, _ in LIMITS:
        for which, count, ok in (
            ("minimum", minimum, True),
            ("limit", limit, True),
            ("over limit", limit + 1, False),
        ):
            # "function params" at its limit is small; everything else at a limit is big.
            marks = [] if which == "minimum" else [pytest.mark.limits]
            for mode in ("Validate", "Compile", "Async compile"):
                sub = f"{mode} {name} {which}"
                rows.append(pytest.param(sub, mode, name, count, ok, id=sub, marks=marks))
    return rows


async def _check(mode: str, buffer: bytes | bytearray, ok: bool) -> None:
    """Upstream's three ways to meet a limit: validate, the Module constructor, compile()."""
    if mode == "Validate":
        assert asyncwasm.validate(buffer) is ok
    elif mode == "Compile":
        if ok:
            asyncwasm.Module(buffer)
        else:
            with pytest.raises(asyncwasm.CompileError):
                asyncwasm.Module(buffer)
    elif ok:
        await asyncwasm.compile(buffer)
    else:
        with pytest.raises(asyncwasm.CompileError):
            await asyncwasm.compile(buffer)


@pytest.mark.parametrize(("subtest", "mode", "name", "count", "ok"), _static_rows())
@pytest.mark.asyncio
async def test_static_limit(subtest: str, mode: str, name: str, count: int, ok: bool) -> None:
    buffer = _buffer(name, count)
    await _check(mode, buffer, ok)


def _initial_table_module() -> bytes:
    builder = WasmModuleBuilder()
    builder.set_table_bounds(kJSEmbeddingMaxTableSize + 1)
    return builder.to_buffer()


def _maximum_table_module() -> bytes:
    builder = WasmModuleBuilder()
    builder.set_table_bounds(1, kJSEmbeddingMaxTableSize + 1)
    builder.add_function("grow", kSig_i_v).add_body(wasm_i32_const(-1)).export_func()
    return builder.to_buffer()


DYNAMIC = [
    ("initial table size", _initial_table_module, False),
    ("maximum table size", _maximum_table_module, True),
]


@pytest.mark.parametrize(
    ("subtest", "make"),
    [
        pytest.param(
            f"Validate {n} beyond its dynamic limit", m, id=f"Validate {n} beyond its dynamic limit"
        )
        for n, m, _ in DYNAMIC
    ],
)
def test_dynamic_validate(subtest: str, make: Callable[[], bytes]) -> None:
    assert asyncwasm.validate(make()) is True


@pytest.mark.parametrize(
    ("subtest", "make"),
    [
        pytest.param(
            f"Compile {n} beyond its dynamic limit", m, id=f"Compile {n} beyond its dynamic limit"
        )
        for n, m, _ in DYNAMIC
    ],
)
def test_dynamic_compile(subtest: str, make: Callable[[], bytes]) -> None:
    asyncwasm.Module(make())


@pytest.mark.parametrize(
    ("subtest", "make"),
    [
        pytest.param(
            f"Async compile {n} beyond its dynamic limit.",
            m,
            id=f"Async compile {n} beyond its dynamic limit.",
        )
        for n, m, _ in DYNAMIC
    ],
)
@pytest.mark.asyncio
async def test_dynamic_async_compile(subtest: str, make: Callable[[], bytes]) -> None:
    await asyncwasm.compile(make())


@pytest.mark.parametrize(
    ("subtest", "make", "succeeds"),
    [
        pytest.param(f"Instantiate {n} over limit", m, s, id=f"Instantiate {n} over limit")
        for n, m, s in DYNAMIC
    ],
)
def test_dynamic_instantiate(subtest: str, make: Callable[[], bytes], succeeds: bool) -> None:
    module = asyncwasm.Module(make())
    if succeeds:
        assert asyncwasm.Instance(module, {}).exports.grow() == -1
    else:
        with pytest.raises(asyncwasm.RangeError):
            asyncwasm.Instance(module, {})


@pytest.mark.parametrize(
    ("subtest", "make", "succeeds"),
    [
        pytest.param(
            f"Async instantiate {n} over limit", m, s, id=f"Async instantiate {n} over limit"
        )
        for n, m, s in DYNAMIC
    ],
)
@pytest.mark.asyncio
async def test_dynamic_async_instantiate(
    subtest: str, make: Callable[[], bytes], succeeds: bool
) -> None:
    if succeeds:
        result = await asyncwasm.instantiate(make(), {})
        assert result.instance.exports.grow() == -1
    else:
        with pytest.raises(asyncwasm.RangeError):
            await asyncwasm.instantiate(make(), {})


@subtest("Grow WebAssembly.Table object beyond the embedder-defined limit")
def test_grow_table_beyond_limit(subtest: str) -> None:
    with pytest.raises(asyncwasm.RangeError):
        asyncwasm.Table({"element": "anyfunc", "initial": kJSEmbeddingMaxTableSize + 1})
    table = asyncwasm.Table(
        {"initial": 1, "maximum": kJSEmbeddingMaxTableSize + 1, "element": "anyfunc"}
    )
    with pytest.raises(asyncwasm.RangeError):
        table.grow(kJSEmbeddingMaxTableSize)


def _sized_module(size: int) -> bytearray:
    """A module of exactly ``size`` bytes: the header and one nameless-length custom section."""
    header = bytes([kWasmH0, kWasmH1, kWasmH2, kWasmH3, kWasmV0, kWasmV1, kWasmV2, kWasmV3, 0])
    section_length = size - len(header) - len(wasm_signed_leb(size))
    buffer = bytearray(size)
    length_bytes = bytes(wasm_signed_leb(section_length))
    buffer[: len(header)] = header
    buffer[len(header) : len(header) + len(length_bytes)] = length_bytes
    return buffer


SIZES = [
    ("module size limit", kJSEmbeddingMaxModuleSize, True),
    ("module size over limit", kJSEmbeddingMaxModuleSize + 1, False),
]


@pytest.mark.limits
@pytest.mark.parametrize(
    ("subtest", "mode", "size", "ok"),
    [
        pytest.param(f"{mode} {n}", mode, s, ok, id=f"{mode} {n}")
        for n, s, ok in SIZES
        for mode in ("Validate", "Compile", "Async compile")
    ],
)
@pytest.mark.asyncio
async def test_module_size(subtest: str, mode: str, size: int, ok: bool) -> None:
    buffer = _sized_module(size)
    await _check(mode, buffer, ok)
