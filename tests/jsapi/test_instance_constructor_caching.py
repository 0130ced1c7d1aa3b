"""Port of instance/constructor-caching.any.js: re-exported imports keep their identity."""

from __future__ import annotations

from typing import Any

import asyncwasm

from ._support import subtest
from .wasm_module_builder import (
    WasmModuleBuilder,
    kExternalGlobal,
    kExternalTable,
    kSig_v_d,
    kWasmI32,
)

JS_FILE = "instance/constructor-caching.any.js"


def _exports() -> Any:
    builder = WasmModuleBuilder()
    builder.add_function("fn", kSig_v_d).add_body([]).export_func()
    builder.set_table_bounds(1)
    builder.add_export_of_kind("table", kExternalTable, 0)
    builder.add_global(kWasmI32, False).export_as("global")
    builder.add_memory(4, 8, True)
    return asyncwasm.Instance(asyncwasm.Module(builder.to_buffer())).exports


@subtest("constructor-caching")
def test_constructor_caching(subtest: str) -> None:
    exports = _exports()
    builder = WasmModuleBuilder()
    function_index = builder.add_import("module", "imported", kSig_v_d)
    builder.add_export("exportedFunction", function_index)
    global_index = builder.add_imported_global("module", "global", kWasmI32)
    builder.add_export_of_kind("exportedGlobal", kExternalGlobal, global_index)
    builder.add_imported_memory("module", "memory", 4)
    builder.export_memory_as("exportedMemory")
    table_index = builder.add_imported_table("module", "table", 1)
    builder.add_export_of_kind("exportedTable", kExternalTable, table_index)
    module = asyncwasm.Module(builder.to_buffer())
    instance = asyncwasm.Instance(
        module,
        {
            "module": {
                "imported": exports.fn,
                "global": exports["global"],
                "memory": exports.memory,
                "table": exports.table,
            }
        },
    )
    assert instance.exports.exportedFunction is exports.fn
    assert instance.exports.exportedGlobal is exports["global"]
    assert instance.exports.exportedMemory is exports.memory
    assert instance.exports.exportedTable is exports.table
