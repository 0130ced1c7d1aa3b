"""Traps (issue #3, part 7): ``asyncwasm.RuntimeError`` with ``.trap``, short messages, the engine's
exception chained, on every engine under test."""

from __future__ import annotations

import pytest
from _wat import wat

import asyncwasm
from asyncwasm import Instance, Module

TRAPS = {
    "unreachable": "unreachable",
    "integer_divide_by_zero": "i32.const 1 i32.const 0 i32.div_s drop",
    "integer_overflow": "i32.const 0x80000000 i32.const -1 i32.div_s drop",
    "invalid_conversion_to_integer": "f32.const nan i32.trunc_f32_s drop",
    "out_of_bounds_memory_access": "i32.const 65536 i32.load drop",
    "out_of_bounds_table_access": "i32.const 10 call_indirect (type $v)",
    "indirect_call_to_null": "i32.const 1 call_indirect (type $v)",
    "indirect_call_type_mismatch": "i32.const 5 i32.const 0 call_indirect (type $i)",
    "stack_overflow": "call $recurse",
}

MODULE = wat(
    "(module (type $v (func)) (type $i (func (param i32)))"
    " (memory 1) (table 2 funcref) (elem (i32.const 0) $nop)"
    " (func $nop) (func $recurse call $recurse)"
    + "".join(f' (func (export "{name}") {body})' for name, body in TRAPS.items())
    + ' (func (export "ok") (result i32) i32.const 1))'
)


@pytest.fixture
def exports(runtime: asyncwasm.Runtime) -> asyncwasm.Exports:
    return Instance(Module(MODULE)).exports


@pytest.mark.parametrize("kind", list(TRAPS))
def test_trap_kinds(exports: asyncwasm.Exports, kind: str) -> None:
    with pytest.raises(asyncwasm.RuntimeError) as info:
        getattr(exports, kind)()
    error = info.value
    assert error.trap == kind
    assert isinstance(error, asyncwasm.WebAssemblyError)
    assert not isinstance(error, asyncwasm.Exception)
    # the engine's own exception is kept as the cause, and never escapes by itself
    assert error.__cause__ is not None
    assert type(error.__cause__).__module__.split(".")[0] in {"wasmtime", "builtins"}
    assert len(str(error)) <= 3000
    assert exports.ok() == 1  # the instance is still usable after a trap


def test_stack_overflow_message_is_short(exports: asyncwasm.Exports) -> None:
    """wasmer lists every frame of a stack overflow (15 MB): the message must be cut."""
    with pytest.raises(asyncwasm.RuntimeError) as info:
        exports.stack_overflow()
    assert len(str(info.value)) <= 3000
    assert len(repr(info.value)) <= 3100


# Exports "run", which calls the imported env.f.
CALLS_IMPORTED_F = wat(
    """
    (module (import "env" "f" (func $f))
      (func (export "run") (result i32) call $f i32.const 1))
    """
)


def test_trap_through_a_host_function(
    runtime: asyncwasm.Runtime, exports: asyncwasm.Exports
) -> None:
    module = Module(CALLS_IMPORTED_F)
    outer = Instance(module, {"env": {"f": exports.unreachable}}).exports
    with pytest.raises(asyncwasm.RuntimeError) as info:
        outer.run()
    assert info.value.trap == "unreachable"


def test_trap_from_wasm_called_by_python_called_by_wasm(
    runtime: asyncwasm.Runtime, exports: asyncwasm.Exports
) -> None:
    module = Module(CALLS_IMPORTED_F)
    seen: list[BaseException] = []

    def host() -> None:
        try:
            exports.integer_divide_by_zero()
        except asyncwasm.RuntimeError as exc:
            seen.append(exc)
            raise

    outer = Instance(module, {"env": {"f": host}}).exports
    with pytest.raises(asyncwasm.RuntimeError) as info:
        outer.run()
    assert info.value is seen[0]
    assert info.value.trap == "integer_divide_by_zero"


def test_runtime_error_is_not_pythons() -> None:
    assert asyncwasm.RuntimeError is not RuntimeError  # type: ignore[comparison-overlap]
    assert not issubclass(asyncwasm.RuntimeError, RuntimeError)
    assert "RuntimeError" not in asyncwasm.__all__
    error = asyncwasm.RuntimeError("x" * 100_000, trap="unreachable")
    assert len(str(error)) < 2100
    assert error.trap == "unreachable"
