"""Error messages a person can read (issue 9, item 6): a trap's message starts with its reason;
link errors name types in wasm's own syntax, whatever the engine."""

from __future__ import annotations

import pytest
from _wat import wat

import asyncwasm
from asyncwasm._engines import available_engines
from asyncwasm._types import FuncType, GlobalType, Limits, MemoryType, TableType, TagType, wasm_text

IMPORTS = wat(
    '(module (import "e" "m" (memory 2 3))'
    ' (import "e" "f" (func (param i32) (result i32)))'
    ' (import "e" "g" (global (mut i32))))'
)
EXPORTS = wat(
    '(module (memory (export "mem") 1 2) (table (export "tab") 1 funcref)'
    ' (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)'
    ' (func (export "boom") unreachable))'
)


@pytest.mark.parametrize(
    ("t", "text"),
    [
        (FuncType((), ()), "(func)"),
        (FuncType(("i32", "anyfunc"), ("f64",)), "(func (param i32 funcref) (result f64))"),
        (MemoryType(Limits(1, 2)), "(memory 1 2)"),
        (MemoryType(Limits(1), shared=False, memory64=True), "(memory i64 1)"),
        (MemoryType(Limits(1, 4), shared=True), "(memory 1 4 shared)"),
        (TableType("anyfunc", Limits(0, 10)), "(table 0 10 funcref)"),
        (GlobalType("i64", mutable=False), "(global i64)"),
        (GlobalType("externref", mutable=True), "(global (mut externref))"),
        (TagType(("i32",)), "(tag (param i32))"),
        (TagType(()), "(tag)"),
    ],
)
def test_types_in_wasm_syntax(t: object, text: str) -> None:
    assert wasm_text(t) == text  # type: ignore[arg-type]


def _link(runtime: asyncwasm.Runtime, **given: object) -> str:
    module = asyncwasm.Module(IMPORTS)
    imports = {
        "m": asyncwasm.Memory(2, 3),
        "f": lambda x: x,
        "g": asyncwasm.Global("i32", 0, mutable=True),
        **given,
    }
    with pytest.raises(asyncwasm.LinkError) as info:
        asyncwasm.Instance(module, {"e": imports})
    return str(info.value)


def test_memory_link_error_in_wasm_syntax(runtime: asyncwasm.Runtime) -> None:
    assert _link(runtime, m=asyncwasm.Memory(1)) == (
        "import e.m: expected (memory 2 3), got (memory 1)"
    )
    # No maximum does not match an import that has one.
    assert _link(runtime, m=asyncwasm.Memory(2)) == (
        "import e.m: expected (memory 2 3), got (memory 2)"
    )


def test_global_link_error_in_wasm_syntax(runtime: asyncwasm.Runtime) -> None:
    assert _link(runtime, g=asyncwasm.Global("i64", 0, mutable=True)) == (
        "import e.g: expected (global (mut i32)), got (global (mut i64))"
    )
    assert _link(runtime, g=asyncwasm.Global("i32", 0)) == (
        "import e.g: expected (global (mut i32)), got (global i32)"
    )


def test_function_link_error_in_wasm_syntax(runtime: asyncwasm.Runtime) -> None:
    add = asyncwasm.Instance(asyncwasm.Module(EXPORTS)).exports.add
    assert _link(runtime, f=add) == (
        "import e.f: expected (func (param i32) (result i32)), "
        "got (func (param i32 i32) (result i32))"
    )


def test_table_link_error_in_wasm_syntax(runtime: asyncwasm.Runtime) -> None:
    table = asyncwasm.Instance(asyncwasm.Module(EXPORTS)).exports.tab
    module = asyncwasm.Module(wat('(module (import "e" "t" (table 2 funcref)))'))
    with pytest.raises(asyncwasm.LinkError) as info:
        asyncwasm.Instance(module, {"e": {"t": table}})
    assert str(info.value) == "import e.t: expected (table 2 funcref), got (table 1 funcref)"


def test_no_engine_debug_output_in_link_errors(runtime: asyncwasm.Runtime) -> None:
    message = _link(runtime, m=asyncwasm.Memory(1, 2))
    assert "MemoryType" not in message
    assert "minimum" not in message
    assert message == "import e.m: expected (memory 2 3), got (memory 1 2)"


def test_matching_objects_still_link(runtime: asyncwasm.Runtime) -> None:
    module = asyncwasm.Module(IMPORTS)
    memory = asyncwasm.Memory(2, 3)
    asyncwasm.Instance(
        module, {"e": {"m": memory, "f": abs, "g": asyncwasm.Global("i32", 0, mutable=True)}}
    )
    # A larger current size and a smaller maximum match too.
    asyncwasm.Instance(
        module,
        {
            "e": {
                "m": asyncwasm.Memory(3, 3),
                "f": abs,
                "g": asyncwasm.Global("i32", 1, mutable=True),
            }
        },
    )


def test_trap_message_starts_with_its_reason(runtime: asyncwasm.Runtime) -> None:
    boom = asyncwasm.Instance(asyncwasm.Module(EXPORTS)).exports.boom
    with pytest.raises(asyncwasm.RuntimeError) as info:
        boom()
    message = str(info.value)
    assert info.value.trap == "unreachable"
    first_line = message.splitlines()[0]
    assert "unreachable" in first_line
    assert not first_line.startswith("error while executing")
    if runtime.engine == "wasmtime":
        # The backtrace is kept, after the reason.
        assert "wasm backtrace:" in message
        assert message.index("unreachable") < message.index("wasm backtrace:")


@pytest.mark.skipif("wasmtime" not in available_engines(), reason="wasmtime does not import")
def test_reason_first_rewrites_wasmtimes_layout() -> None:
    from asyncwasm._engines._wasmtime import reason_first

    raw = (
        "error while executing at wasm backtrace:\n"
        "    0:     0x44 - <unknown>!<wasm function 1>\n\n"
        "Caused by:\n    wasm trap: integer divide by zero\n"
    )
    assert reason_first(raw) == (
        "wasm trap: integer divide by zero\nwasm backtrace:\n"
        "    0:     0x44 - <unknown>!<wasm function 1>"
    )
    assert reason_first("plain message") == "plain message"
