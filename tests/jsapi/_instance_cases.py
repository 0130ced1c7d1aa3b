"""Python version of upstream's instanceTestFactory.js: the cases shared by
instance/constructor.any.js and constructor/instantiate.any.js.

Each case builds ``(buffer, args, exports, verify)``: ``args`` are the extra positional arguments
after the module (``()`` = imports omitted), ``exports`` what ``assert_instance`` expects and
``verify(instance)`` the case's own checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

import asyncwasm

from ._support import Index, RecordingMapping
from .wasm_module_builder import (
    EMPTY_MODULE,
    WasmModuleBuilder,
    kExprCallFunction,
    kExprGlobalGet,
    kExprI32Const,
    kExprI64Const,
    kExprLocalGet,
    kExprReturn,
    kExternalGlobal,
    kExternalTable,
    kSig_i_i,
    kSig_i_v,
    kSig_l_l,
    kSig_l_ll,
    kSig_l_v,
    kSig_v_d,
    kSig_v_i,
    kSig_v_l,
    kSig_v_v,
    kWasmF64,
    kWasmI32,
    kWasmI64,
    wasm_f64_const,
    wasm_i32_const,
)


@dataclass
class Case:
    buffer: bytes
    args: tuple[Any, ...] = ()
    exports: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    verify: Callable[[Any], None] = lambda instance: None


def _memory() -> asyncwasm.Memory:
    return asyncwasm.Memory({"initial": 64, "maximum": 128})


def _table() -> asyncwasm.Table:
    return asyncwasm.Table({"element": "anyfunc", "initial": 64, "maximum": 128})


def empty_without_imports() -> Case:
    return Case(EMPTY_MODULE)


def empty_with_undefined_imports() -> Case:
    return Case(EMPTY_MODULE, (None,))


def empty_with_empty_imports() -> Case:
    return Case(EMPTY_MODULE, ({},))


def getter_order() -> Case:
    builder = WasmModuleBuilder()
    builder.add_imported_global("module", "global1", kWasmI32)
    builder.add_imported_global("module2", "global3", kWasmI32)
    builder.add_imported_memory("module", "memory", 0, 128)
    builder.add_imported_global("module", "global2", kWasmI32)
    log: list[str] = []
    module = lambda: RecordingMapping(  # noqa: E731
        {"global1": 0, "global2": 0, "memory": _memory}, log, prefix="module."
    )
    module2 = lambda: RecordingMapping({"global3": 0}, log, prefix="module2.")  # noqa: E731
    imports = RecordingMapping({"module": module, "module2": module2}, log)
    expected = [
        "module",
        "module.global1",
        "module2",
        "module2.global3",
        "module",
        "module.memory",
        "module",
        "module.global2",
    ]

    def verify(instance: Any) -> None:
        assert log == expected

    return Case(builder.to_buffer(), (imports,), {}, verify)


def imports() -> Case:
    builder = WasmModuleBuilder()
    builder.add_import("module", "fn", kSig_v_v)
    builder.add_imported_global("module", "global", kWasmI32)
    builder.add_imported_memory("module", "memory", 0, 128)
    builder.add_imported_table("module", "table", 0, 128)

    def module2() -> Any:
        pytest.fail("Should not get modules that are not imported")

    imports = RecordingMapping(
        {
            "module": {"fn": lambda: None, "global": 0, "memory": _memory(), "table": _table()},
            "module2": module2,
        }
    )
    return Case(builder.to_buffer(), (imports,))


def imports_with_empty_module_names() -> Case:
    builder = WasmModuleBuilder()
    builder.add_import("", "fn", kSig_v_v)
    builder.add_imported_global("", "global", kWasmI32)
    builder.add_imported_memory("", "memory", 0, 128)
    builder.add_imported_table("", "table", 0, 128)
    imports = {"": {"fn": lambda: None, "global": 0, "memory": _memory(), "table": _table()}}
    return Case(builder.to_buffer(), (imports,))


def imports_with_empty_names() -> Case:
    builder = WasmModuleBuilder()
    builder.add_import("a", "", kSig_v_v)
    builder.add_imported_global("b", "", kWasmI32)
    builder.add_imported_memory("c", "", 0, 128)
    builder.add_imported_table("d", "", 0, 128)
    imports = {
        "a": {"": lambda: None},
        "b": {"": 0},
        "c": {"": _memory()},
        "d": {"": _table()},
    }
    return Case(builder.to_buffer(), (imports,))


def exports_empty_name_function() -> Case:
    builder = WasmModuleBuilder()
    builder.add_function("", kSig_v_d).add_body([]).export_func()
    return Case(builder.to_buffer(), (), {"": {"kind": "function"}})


def exports_empty_name_table() -> Case:
    builder = WasmModuleBuilder()
    builder.set_table_bounds(1)
    builder.add_export_of_kind("", kExternalTable, 0)
    return Case(builder.to_buffer(), (), {"": {"kind": "table", "length": 1}})


def exports_empty_name_global() -> Case:
    builder = WasmModuleBuilder()
    builder.add_global(kWasmI32, True, wasm_i32_const(7)).export_as("")
    return Case(builder.to_buffer(), (), {"": {"kind": "global", "value": 7}})


def no_imports() -> Case:
    builder = WasmModuleBuilder()
    builder.add_function("fn", kSig_v_d).add_body([]).export_func()
    builder.add_function("fn2", kSig_v_v).add_body([]).export_func()
    builder.set_table_bounds(1)
    builder.add_export_of_kind("table", kExternalTable, 0)
    builder.add_global(kWasmI32, True, wasm_i32_const(7)).export_as("global")
    builder.add_global(kWasmF64, True, wasm_f64_const(1.2)).export_as("global2")
    builder.add_memory(4, 8, True)
    exports: dict[str, dict[str, Any]] = {
        "fn": {"kind": "function"},
        "fn2": {"kind": "function"},
        "table": {"kind": "table", "length": 1},
        "global": {"kind": "global", "value": 7},
        "global2": {"kind": "global", "value": 1.2},
        "memory": {"kind": "memory", "size": 4},
    }
    return Case(builder.to_buffer(), (), exports)


def exports_and_imports() -> Case:
    value = 102
    builder = WasmModuleBuilder()
    index = builder.add_imported_global("module", "global", kWasmI32)
    builder.add_function("fn", kSig_i_v).add_body(
        [kExprGlobalGet, index, kExprReturn]
    ).export_func()

    def verify(instance: Any) -> None:
        assert instance.exports.fn() == value

    return Case(
        builder.to_buffer(), ({"module": {"global": value}},), {"fn": {"kind": "function"}}, verify
    )


def i64_exports_and_imports() -> Case:
    value = 102
    builder = WasmModuleBuilder()
    index = builder.add_imported_global("module", "global", kWasmI64)
    builder.add_function("fn", kSig_l_v).add_body(
        [kExprGlobalGet, index, kExprReturn]
    ).export_func()
    index2 = builder.add_imported_global("module", "global2", kWasmI64)
    builder.add_export_of_kind("global", kExternalGlobal, index2)
    imports = {"module": {"global": value, "global2": 2**63}}
    exports: dict[str, dict[str, Any]] = {
        "fn": {"kind": "function"},
        "global": {"kind": "global", "value": -(2**63)},
    }

    def verify(instance: Any) -> None:
        assert instance.exports.fn() == value

    return Case(builder.to_buffer(), (imports,), exports, verify)


def _calling_import(
    sig: Any, body_prefix: list[int], result_sig: Any
) -> tuple[WasmModuleBuilder, int]:
    builder = WasmModuleBuilder()
    fn_index = builder.add_import("module", "fn", sig)
    builder.add_function("fn2", result_sig).add_body(
        [*body_prefix, kExprCallFunction, fn_index, kExprReturn]
    ).export_func()
    return builder, fn_index


def import_i32_returning_function() -> Case:
    # JS returns a BigInt to an i32 result; Python's counterpart of a wrong-kind number is float.
    builder, _ = _calling_import(kSig_i_v, [], kSig_v_v)
    called = []

    def fn() -> float:
        called.append(True)
        return 6.0

    def verify(instance: Any) -> None:
        with pytest.raises(TypeError):
            instance.exports.fn2()
        assert called, "Should have called into Python"

    return Case(
        builder.to_buffer(), ({"module": {"fn": fn}},), {"fn2": {"kind": "function"}}, verify
    )


def import_i32_function() -> Case:
    builder, _ = _calling_import(kSig_i_i, [kExprI32Const, 0x66], kSig_i_v)
    called = []

    def fn(n: int) -> Index:
        called.append(True)
        assert n == -26
        return Index(6)

    def verify(instance: Any) -> None:
        assert instance.exports.fn2() == 6
        assert called, "Should have called into Python"

    return Case(
        builder.to_buffer(), ({"module": {"fn": fn}},), {"fn2": {"kind": "function"}}, verify
    )


def import_i64_returning_function() -> Case:
    # JS returns a Number to an i64 result; the Python counterpart is a float.
    builder, _ = _calling_import(kSig_l_v, [], kSig_v_v)
    called = []

    def fn() -> float:
        called.append(True)
        return 6.0

    def verify(instance: Any) -> None:
        with pytest.raises(TypeError):
            instance.exports.fn2()
        assert called, "Should have called into Python"

    return Case(
        builder.to_buffer(), ({"module": {"fn": fn}},), {"fn2": {"kind": "function"}}, verify
    )


def import_i64_function() -> Case:
    builder, _ = _calling_import(kSig_l_l, [kExprI64Const, 0x66], kSig_l_v)
    called = []

    def fn(n: int) -> Index:
        called.append(True)
        assert n == -26
        return Index(6)

    def verify(instance: Any) -> None:
        assert instance.exports.fn2() == 6
        assert called, "Should have called into Python"

    return Case(
        builder.to_buffer(), ({"module": {"fn": fn}},), {"fn2": {"kind": "function"}}, verify
    )


def import_i32_taking_function() -> Case:
    builder = WasmModuleBuilder()
    builder.add_function("fn", kSig_v_i).add_body([kExprReturn]).export_func()

    def verify(instance: Any) -> None:
        with pytest.raises(TypeError):
            instance.exports.fn(6.0)

    return Case(builder.to_buffer(), (), {"fn": {"kind": "function"}}, verify)


def import_i64_taking_function() -> Case:
    builder = WasmModuleBuilder()
    builder.add_function("fn", kSig_v_l).add_body([kExprReturn]).export_func()

    def verify(instance: Any) -> None:
        with pytest.raises(TypeError):
            instance.exports.fn(6.0)

    return Case(builder.to_buffer(), (), {"fn": {"kind": "function"}}, verify)


def export_i64_returning_function() -> Case:
    builder = WasmModuleBuilder()
    builder.add_function("fn", kSig_l_v).add_body([kExprI64Const, 0x66, kExprReturn]).export_func()

    def verify(instance: Any) -> None:
        result = instance.exports.fn()
        assert type(result) is int
        assert result == -26

    return Case(builder.to_buffer(), (), {"fn": {"kind": "function"}}, verify)


def _mutable_global_import(
    value_type: str, wasm_type: int, sig: Any, initial: int, after: int
) -> Case:
    value = asyncwasm.Global({"value": value_type, "mutable": True}, initial)
    builder = WasmModuleBuilder()
    index = builder.add_imported_global("module", "global", wasm_type, True)
    builder.add_function("fn", sig).add_body([kExprGlobalGet, index, kExprReturn]).export_func()

    def verify(instance: Any) -> None:
        assert instance.exports.fn() == initial
        value.value = after
        assert instance.exports.fn() == after

    return Case(
        builder.to_buffer(), ({"module": {"global": value}},), {"fn": {"kind": "function"}}, verify
    )


def i32_mutable_global_import() -> Case:
    return _mutable_global_import("i32", kWasmI32, kSig_i_v, 102, 201)


def i64_mutable_global_import() -> Case:
    return _mutable_global_import("i64", kWasmI64, kSig_l_v, 102, 201)


def multiple_i64_arguments() -> Case:
    builder = WasmModuleBuilder()
    builder.add_function("fn", kSig_l_ll).add_body([kExprLocalGet, 1]).export_func()

    def verify(instance: Any) -> None:
        fn = instance.exports.fn
        assert fn(1, 0) == 0
        assert fn(1, 123) == 123
        assert fn(1, -123) == -123
        assert fn(1, Index(5)) == 5
        with pytest.raises(TypeError):
            fn(1, 5.0)

    return Case(builder.to_buffer(), (), {"fn": {"kind": "function"}}, verify)


def stray_argument() -> Case:  # pragma: no cover - not applicable (see NOT_APPLICABLE)
    return Case(EMPTY_MODULE, ({}, {}))


CASES: list[tuple[str, Callable[[], Case]]] = [
    ("Empty module without imports argument", empty_without_imports),
    ("Empty module with undefined imports argument", empty_with_undefined_imports),
    ("Empty module with empty imports argument", empty_with_empty_imports),
    ("getter order for imports object", getter_order),
    ("imports", imports),
    ("imports with empty module names", imports_with_empty_module_names),
    ("imports with empty names", imports_with_empty_names),
    ("exports with empty name: function", exports_empty_name_function),
    ("exports with empty name: table", exports_empty_name_table),
    ("exports with empty name: global", exports_empty_name_global),
    ("No imports", no_imports),
    ("exports and imports", exports_and_imports),
    ("i64 exports and imports", i64_exports_and_imports),
    ("import with i32-returning function", import_i32_returning_function),
    ("import with function that takes and returns i32", import_i32_function),
    ("import with i64-returning function", import_i64_returning_function),
    ("import with function that takes and returns i64", import_i64_function),
    ("import with i32-taking function", import_i32_taking_function),
    ("import with i64-taking function", import_i64_taking_function),
    ("export i64-returning function", export_i64_returning_function),
    ("i32 mutable WebAssembly.Global import", i32_mutable_global_import),
    ("i64 mutable WebAssembly.Global import", i64_mutable_global_import),
    ("Multiple i64 arguments", multiple_i64_arguments),
]

CASE_NOTES = {
    "Empty module with undefined imports argument": "undefined imports -> None",
    "getter order for imports object": "JS getters -> a Mapping recording each key looked up; same expected order",
    "imports": "JS function -> Python callable; the unreachable getter for an unimported module -> a mapping value that fails the test if looked up",
    "import with i32-returning function": "the wrong-kind return value (BigInt for i32 in JS) is a float in Python; expects TypeError",
    "import with function that takes and returns i32": "the host returns an object with __index__ (JS valueOf)",
    "import with i64-returning function": "the wrong-kind return value (Number for i64 in JS) is a float in Python; expects TypeError",
    "import with function that takes and returns i64": "the host returns an object with __index__ (JS valueOf returning a BigInt)",
    "import with i32-taking function": "argument of the wrong kind (BigInt in JS) is a float in Python; expects TypeError",
    "import with i64-taking function": "argument of the wrong kind (Number in JS) is a float in Python; expects TypeError",
    "Multiple i64 arguments": 'the string "5" (JS ToBigInt) becomes an object with __index__; the Number 5 that must fail becomes the float 5.0',
    "exports with empty name: function": "exported function name/length (Function.name/length) not checked: no Python equivalent",
    "No imports": "exported function name/length (Function.name/length) not checked: no Python equivalent",
}
STRAY_ARGUMENT = "stray argument"
