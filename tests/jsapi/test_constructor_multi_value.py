"""Port of constructor/multi-value.any.js: several results cross the boundary as a tuple."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import asyncwasm

from ._support import subtest
from .wasm_module_builder import (
    WasmModuleBuilder,
    kExprCallFunction,
    kExprDrop,
    kExprLocalGet,
    kExprReturn,
    kSig_i_v,
    kWasmF64,
    kWasmI32,
    make_sig,
    wasm_f64_const,
    wasm_i32_const,
)

JS_FILE = "constructor/multi-value.any.js"
ADAPTED = {
    "multiple return values from wasm to js": "JS Array -> Python tuple (contract)",
    "multiple return values from js to wasm": "the host returns a Python iterable; the JS iterator-protocol steps (@@iterator, next, done, value, valueOf) become __iter__/__next__ calls and __index__ on the i32 value",
}

pytestmark = pytest.mark.asyncio

TYPE_IF_FI = make_sig([kWasmF64, kWasmI32], [kWasmI32, kWasmF64])


@subtest("multiple return values from wasm to js")
async def test_from_wasm(subtest: str) -> None:
    builder = WasmModuleBuilder()
    builder.add_function("swap", TYPE_IF_FI).add_body(
        [kExprLocalGet, 1, kExprLocalGet, 0, kExprReturn]
    ).export_func()
    result = await asyncwasm.instantiate(builder.to_buffer())
    swapped = result.instance.exports.swap(4.2, 7)
    assert type(swapped) is tuple
    assert swapped == (7, 4.2)


@subtest("multiple return values inside wasm")
async def test_inside_wasm(subtest: str) -> None:
    builder = WasmModuleBuilder()
    swap = builder.add_function("swap", TYPE_IF_FI).add_body(
        [kExprLocalGet, 1, kExprLocalGet, 0, kExprReturn]
    )
    builder.add_function("callswap", kSig_i_v).add_body(
        [
            *wasm_f64_const(4.2),
            *wasm_i32_const(7),
            kExprCallFunction,
            swap.index,
            kExprDrop,
            kExprReturn,
        ]
    ).export_func()
    result = await asyncwasm.instantiate(builder.to_buffer())
    assert result.instance.exports.callswap() == 7


@subtest("multiple return values from js to wasm")
async def test_from_host(subtest: str) -> None:
    builder = WasmModuleBuilder()
    fn_index = builder.add_import("module", "fn", TYPE_IF_FI)
    builder.add_function("callfn", kSig_i_v).add_body(
        [
            *wasm_f64_const(4.2),
            *wasm_i32_const(7),
            kExprCallFunction,
            fn_index,
            kExprDrop,
            kExprReturn,
        ]
    ).export_func()
    actual: list[str] = []

    class Value:
        def __init__(self, n: int) -> None:
            self.n = n

        def __index__(self) -> int:
            actual.append(f"__index__ {self.n}")
            return 2

    class Results:
        def __iter__(self) -> Iterator[object]:
            actual.append("__iter__")
            return self.iterator()

        def iterator(self) -> Iterator[object]:
            for j, value in enumerate([Value(1), 7.3], start=1):
                actual.append(f"__next__ {j}")
                yield value
            actual.append("__next__ 3 (StopIteration)")

    def fn(f64: float, i32: int) -> Results:
        assert f64 == 4.2
        assert i32 == 7
        return Results()

    result = await asyncwasm.instantiate(builder.to_buffer(), {"module": {"fn": fn}})
    assert result.instance.exports.callfn() == 2
    # Like JS: the whole iterable is consumed before any value is converted.
    assert actual == [
        "__iter__",
        "__next__ 1",
        "__next__ 2",
        "__next__ 3 (StopIteration)",
        "__index__ 1",
    ]
