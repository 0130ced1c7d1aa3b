"""Port of module/exports.any.js: ``Module.exports(module)``."""

from __future__ import annotations

import pytest

import asyncwasm

from ._descriptors import assert_exports
from ._support import NO_STRAY, NO_THIS, subtest
from .wasm_module_builder import (
    EMPTY_MODULE,
    WasmModuleBuilder,
    kExternalTable,
    kSig_v_v,
    kWasmF64,
    kWasmI32,
    wasm_f64_const,
    wasm_i32_const,
)

JS_FILE = "module/exports.any.js"
NOT_APPLICABLE = {"Branding": NO_THIS, "Stray argument": NO_STRAY}
ADAPTED = {
    "Non-Module arguments": "JS non-Module values mapped to Python ones",
    "Return type": "Array -> list",
    "exports": "descriptor objects (ModuleExportDescriptor) instead of plain objects; fields name and kind checked",
}


@subtest("Missing arguments")
def test_missing_arguments(subtest: str) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Module.exports()  # type: ignore[call-arg]


@subtest("Non-Module arguments")
@pytest.mark.parametrize("argument", [None, True, "", object(), 1, {}, asyncwasm.Module], ids=repr)
def test_non_module_arguments(subtest: str, argument: object) -> None:
    with pytest.raises(TypeError):
        asyncwasm.Module.exports(argument)  # type: ignore[arg-type]


@subtest("Return type")
def test_return_type(subtest: str) -> None:
    assert type(asyncwasm.Module.exports(asyncwasm.Module(EMPTY_MODULE))) is list


@subtest("Empty module")
def test_empty_module(subtest: str) -> None:
    assert_exports(asyncwasm.Module.exports(asyncwasm.Module(EMPTY_MODULE)), [])


@subtest("Empty module: array caching")
def test_array_caching(subtest: str) -> None:
    module = asyncwasm.Module(EMPTY_MODULE)
    assert asyncwasm.Module.exports(module) is not asyncwasm.Module.exports(module)


@subtest("exports")
def test_exports(subtest: str) -> None:
    builder = WasmModuleBuilder()
    builder.add_function("fn", kSig_v_v).add_body([]).export_func()
    builder.add_function("fn2", kSig_v_v).add_body([]).export_func()
    builder.set_table_bounds(1)
    builder.add_export_of_kind("table", kExternalTable, 0)
    builder.add_global(kWasmI32, True, wasm_i32_const(7)).export_as("global")
    builder.add_global(kWasmF64, True, wasm_f64_const(1.2)).export_as("global2")
    builder.add_memory(0, 256, True)
    module = asyncwasm.Module(builder.to_buffer())
    assert_exports(
        asyncwasm.Module.exports(module),
        [
            {"kind": "function", "name": "fn"},
            {"kind": "function", "name": "fn2"},
            {"kind": "table", "name": "table"},
            {"kind": "global", "name": "global"},
            {"kind": "global", "name": "global2"},
            {"kind": "memory", "name": "memory"},
        ],
    )


@subtest("exports with empty name: function")
def test_empty_name_function(subtest: str) -> None:
    builder = WasmModuleBuilder()
    builder.add_function("", kSig_v_v).add_body([]).export_func()
    module = asyncwasm.Module(builder.to_buffer())
    assert_exports(asyncwasm.Module.exports(module), [{"kind": "function", "name": ""}])


@subtest("exports with empty name: table")
def test_empty_name_table(subtest: str) -> None:
    builder = WasmModuleBuilder()
    builder.set_table_bounds(1)
    builder.add_export_of_kind("", kExternalTable, 0)
    module = asyncwasm.Module(builder.to_buffer())
    assert_exports(asyncwasm.Module.exports(module), [{"kind": "table", "name": ""}])


@subtest("exports with empty name: global")
def test_empty_name_global(subtest: str) -> None:
    builder = WasmModuleBuilder()
    builder.add_global(kWasmI32, True, wasm_i32_const(7)).export_as("")
    module = asyncwasm.Module(builder.to_buffer())
    assert_exports(asyncwasm.Module.exports(module), [{"kind": "global", "name": ""}])
