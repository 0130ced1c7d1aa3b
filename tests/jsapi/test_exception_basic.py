"""Port of exception/basic.tentative.any.js: exceptions thrown by wasm and by host functions."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pytest

import asyncwasm

from ._support import subtest
from .wasm_module_builder import (
    WasmModuleBuilder,
    kAnyFuncCode,
    kCatchAllNoRef,
    kCatchAllRef,
    kCatchNoRef,
    kCatchRef,
    kExnRefCode,
    kExprBlock,
    kExprBr,
    kExprCallFunction,
    kExprDrop,
    kExprEnd,
    kExprI32Const,
    kExprLocalGet,
    kExprRefNull,
    kExprReturn,
    kExprThrow,
    kExprThrowRef,
    kExprTryTable,
    kExternRefCode,
    kSig_i_v,
    kSig_r_v,
    kSig_v_a,
    kSig_v_i,
    kSig_v_r,
    kSig_v_v,
    kWasmI32,
    kWasmVoid,
    make_sig,
    wasm_i32_const,
)

JS_FILE = "exception/basic.tentative.any.js"
ADAPTED = {
    "Wasm function throws argument": "JS values as Python ones (undefined dropped, Symbol -> object(), arrow function -> lambda)",
    "Imported JS function throws": "the host function raises a Python exception; the very same object comes out (contract)",
    "Imported JS function throws, Wasm catches and rethrows": "the host function raises a Python exception; the very same object comes out (contract)",
    "try-table uses all four kinds of catch clauses, one of which catches an exception": "the host function raises an asyncwasm.Exception",
}

pytestmark = pytest.mark.asyncio


def assert_throws_wasm(fn: Callable[[], object]) -> None:
    with pytest.raises(asyncwasm.Exception):
        fn()


@subtest("Wasm function throws argument")
async def test_throws_argument(subtest: str) -> None:
    builder = WasmModuleBuilder()
    tag = builder.add_tag(kSig_v_r)
    builder.add_function("throw_param", kSig_v_r).add_body(
        [kExprLocalGet, 0, kExprThrow, tag]
    ).export_func()
    result = await asyncwasm.instantiate(builder.to_buffer(), {})
    for value in [
        None,
        True,
        False,
        "test",
        object(),
        0,
        1,
        4.2,
        math.nan,
        math.inf,
        {},
        lambda: None,
    ]:
        assert_throws_wasm(partial(result.instance.exports.throw_param, value))


@subtest("Wasm function throws null")
async def test_throws_null(subtest: str) -> None:
    builder = WasmModuleBuilder()
    tag = builder.add_tag(kSig_v_a)
    builder.add_function("throw_null", kSig_v_v).add_body(
        [kExprRefNull, kAnyFuncCode, kExprThrow, tag]
    ).export_func()
    result = await asyncwasm.instantiate(builder.to_buffer(), {})
    assert_throws_wasm(result.instance.exports.throw_null)


@subtest("Wasm function throws integer")
async def test_throws_integer(subtest: str) -> None:
    builder = WasmModuleBuilder()
    tag = builder.add_tag(kSig_v_i)
    builder.add_function("throw_int", kSig_v_v).add_body(
        [*wasm_i32_const(7), kExprThrow, tag]
    ).export_func()
    result = await asyncwasm.instantiate(builder.to_buffer(), {})
    assert_throws_wasm(result.instance.exports.throw_int)


class _HostError(Exception):
    pass


@subtest("Imported JS function throws")
async def test_host_throws(subtest: str) -> None:
    builder = WasmModuleBuilder()
    fn_index = builder.add_import("module", "fn", kSig_v_v)
    tag = builder.add_tag(kSig_v_r)
    builder.add_function("catch_exception", kSig_r_v).add_body(
        [
            kExprBlock, kWasmVoid,
            kExprBlock, kExternRefCode,
            kExprTryTable, kWasmVoid, 1,
            kCatchNoRef, tag, 0,
            kExprCallFunction, fn_index,
            kExprEnd,
            kExprBr, 1,
            kExprEnd,
            kExprReturn,
            kExprEnd,
            kExprRefNull, kExternRefCode,
        ]
    ).export_func()  # fmt: skip
    error = _HostError()

    def fn() -> None:
        raise error

    result = await asyncwasm.instantiate(builder.to_buffer(), {"module": {"fn": fn}})
    with pytest.raises(_HostError) as info:
        result.instance.exports.catch_exception()
    assert info.value is error


@subtest("Imported JS function throws, Wasm catches and rethrows")
async def test_host_throws_rethrow(subtest: str) -> None:
    builder = WasmModuleBuilder()
    fn_index = builder.add_import("module", "fn", kSig_v_v)
    builder.add_function("catch_and_rethrow", kSig_r_v).add_body(
        [
            kExprBlock, kWasmVoid,
            kExprBlock, kExnRefCode,
            kExprTryTable, kWasmVoid, 1,
            kCatchAllRef, 0,
            kExprCallFunction, fn_index,
            kExprEnd,
            kExprBr, 1,
            kExprEnd,
            kExprThrowRef,
            kExprEnd,
            kExprRefNull, kExternRefCode,
        ]
    ).export_func()  # fmt: skip
    error = _HostError()

    def fn() -> None:
        raise error

    result = await asyncwasm.instantiate(builder.to_buffer(), {"module": {"fn": fn}})
    with pytest.raises(_HostError) as info:
        result.instance.exports.catch_and_rethrow()
    assert info.value is error


@subtest("try-table uses all four kinds of catch clauses, one of which catches an exception")
async def test_all_catch_clauses(subtest: str) -> None:
    builder = WasmModuleBuilder()
    fn_index = builder.add_import("module", "fn", kSig_v_v)
    tag_i32 = asyncwasm.Tag({"parameters": ["i32"]})
    tag_index = builder.add_imported_tag("module", "tagI32", kSig_v_i)
    exn = asyncwasm.Exception(tag_i32, [42])
    sig_ie_v = builder.add_type(make_sig([], [kWasmI32, kExnRefCode]))
    builder.add_function("all_catch_clauses", kSig_i_v).add_body(
        [
            kExprBlock, kWasmVoid,
            kExprBlock, kExnRefCode,
            kExprBlock, sig_ie_v,
            kExprBlock, kWasmVoid,
            kExprBlock, kWasmI32,
            kExprTryTable, kWasmVoid, 4,
            kCatchNoRef, tag_index, 0,
            kCatchAllNoRef, 1,
            kCatchRef, tag_index, 2,
            kCatchAllRef, 3,
            kExprCallFunction, fn_index,
            kExprEnd,
            kExprBr, 4,
            kExprEnd,
            kExprReturn,
            kExprEnd,
            kExprBr, 2,
            kExprEnd,
            kExprDrop,
            kExprDrop,
            kExprBr, 1,
            kExprEnd,
            kExprDrop,
            kExprEnd,
            kExprI32Const, 0,
        ]
    ).export_func()  # fmt: skip

    def fn() -> None:
        raise exn

    result = await asyncwasm.instantiate(
        builder.to_buffer(), {"module": {"fn": fn, "tagI32": tag_i32}}
    )
    assert result.instance.exports.all_catch_clauses() == 42
