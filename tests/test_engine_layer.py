"""Tests of the internal engine interface (``asyncwasm._engines._base.Engine``).

Written against the interface only, so they run on every engine; where an engine lacks an
optional capability (``engine.features``) the test asserts ``NotSupportedError`` instead.
"""

from __future__ import annotations

import gc
import math
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from _wat import wat

from asyncwasm._engines import Engine, UncaughtWasmException, get_engine
from asyncwasm._engines._base import FuncHandle, WasmThrowable
from asyncwasm._engines._base import Thrown as ThrownValue
from asyncwasm._exceptions import (
    CompileError,
    LinkError,
    NotSupportedError,
    RangeError,
    RuntimeError,
)
from asyncwasm._types import (
    FuncType,
    GlobalType,
    Limits,
    MemoryType,
    TableType,
    TagType,
)

NOARGS = FuncType((), ())


@pytest.fixture
def eng(engine: str) -> Engine:
    return get_engine(engine)


def _instance(
    e: Engine, text: str, imports: Sequence[Any] = (), store: Any = None
) -> tuple[Any, list[Any]]:
    store = e.new_store() if store is None else store
    module = e.compile(store if e.module_needs_store else None, wat(text))
    inst = e.instantiate(store, module, list(imports))
    return store, e.instance_exports(store, inst)


def _func(value: object) -> FuncHandle:
    """``value`` as a function handle: what the engine gives for a function must be one."""
    assert isinstance(value, FuncHandle), value
    return value


# -- modules --------------------------------------------------------------------------------------

ADD = '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
ADD_T = FuncType(("i32", "i32"), ("i32",))


def test_validate_compile_serialize_roundtrip(eng: Engine) -> None:
    wasm = wat(ADD)
    assert eng.validate(wasm) is None
    store = eng.new_store()
    where = store if eng.module_needs_store else None
    module = eng.compile(where, wasm)
    artifact = eng.serialize(module)
    assert isinstance(artifact, bytes)
    again = eng.deserialize(where, artifact)
    (export,) = eng.instance_exports(store, eng.instantiate(store, again, []))
    add = _func(export)
    assert eng.call(store, add, ADD_T, [2, 40]) == (42,)
    assert eng.call(store, add, ADD_T, [2**31 - 1, 1]) == (-(2**31),)


def test_compile_artifact_loads(eng: Engine) -> None:
    artifact = type(eng).compile_artifact(wat(ADD))
    store = eng.new_store()
    module = eng.deserialize(store if eng.module_needs_store else None, artifact)
    (export,) = eng.instance_exports(store, eng.instantiate(store, module, []))
    assert eng.call(store, _func(export), ADD_T, [1, 2]) == (3,)


def test_cache_key_and_version(eng: Engine) -> None:
    key = eng.cache_key()
    assert eng.name in key
    assert eng.version in key
    assert eng.cache_key() == key


INVALID = b"\0asm\x01\0\0\0" + bytes([10, 4, 1, 2, 0, 0x6A])  # code section without a func section


@pytest.mark.parametrize(
    "wasm",
    [
        pytest.param(wat("(module (func (result i32) i64.const 0))"), id="type-mismatch"),
        pytest.param(b"\0asm\x01\0\0\0\xff", id="malformed"),
        pytest.param(b"\0asm\x01\0\0\0" + bytes([1, 5, 1, 0x60, 0, 0]), id="truncated"),
    ],
)
def test_compile_error_mapping(eng: Engine, wasm: bytes) -> None:
    message = eng.validate(wasm)
    assert isinstance(message, str)
    assert message
    store = eng.new_store()
    with pytest.raises(CompileError) as info:
        eng.compile(store if eng.module_needs_store else None, wasm)
    assert info.value.__cause__ is not None or info.value.__context__ is not None
    assert "wasmtime" not in type(info.value).__module__
    with pytest.raises(CompileError):
        type(eng).compile_artifact(wasm)


def test_instantiate_link_error_for_wrong_import_type(eng: Engine) -> None:
    store = eng.new_store()
    module = eng.compile(
        store if eng.module_needs_store else None,
        wat('(module (import "m" "f" (func (param i32))))'),
    )
    wrong = eng.func_new(store, FuncType(("i64",), ()), lambda x: ())
    with pytest.raises(LinkError):
        eng.instantiate(store, module, [wrong])


# -- imports of every kind ------------------------------------------------------------------------


def test_instantiate_with_each_import_kind(eng: Engine) -> None:
    store = eng.new_store()
    log: list[int] = []

    def record(x: int) -> tuple[()]:
        log.append(x)
        return ()

    func = eng.func_new(store, FuncType(("i32",), ()), record)
    mem = eng.memory_new(store, MemoryType(Limits(1, 2)))
    glob = eng.global_new(store, GlobalType("i32", True), 5)
    imports: list[Any] = [func, mem, glob]
    text = """
      (import "m" "f" (func $f (param i32)))
      (import "m" "mem" (memory 1 2))
      (import "m" "g" (global $g (mut i32)))
    """
    body = """
      (func (export "run")
        global.get $g call $f
        (i32.store8 (i32.const 3) (i32.const 77))
        (global.set $g (i32.const 9)))
    """
    if eng.features.host_tables:
        imports.append(eng.table_new(store, TableType("anyfunc", Limits(2)), None))
        text += '(import "m" "t" (table 2 funcref))'
        body += '(func (export "tsize") (result i32) table.size 0)'
    if eng.features.exceptions:
        imports.append(eng.tag_new(store, TagType(("i32",))))
        text += '(import "m" "tag" (tag (param i32)))'
    _, exports = _instance(eng, f"(module {text} {body})", imports, store)
    eng.call(store, exports[0], NOARGS, [])
    assert log == [5]
    assert eng.memory_view(store, mem)[3] == 77
    assert eng.global_get(store, glob) == 9
    if eng.features.host_tables:
        assert eng.call(store, exports[1], FuncType((), ("i32",)), []) == (2,)


# -- host functions and values -----------------------------------------------------------------

NUMBER_CASES = [
    ("i32", [0, 1, -1, 2**31 - 1, -(2**31)]),
    ("i64", [0, -1, 2**63 - 1, -(2**63)]),
    ("f32", [0.0, 1.5, -2.25, math.inf, 2.0**127]),
    ("f64", [0.0, 0.1, -1e300, math.inf, 5e-324]),
]


@pytest.mark.parametrize(("vtype", "values"), NUMBER_CASES, ids=[c[0] for c in NUMBER_CASES])
def test_host_function_number_types(eng: Engine, vtype: str, values: list[Any]) -> None:
    store = eng.new_store()
    ftype = FuncType((vtype,), (vtype,))
    received: list[Any] = []

    def host(x: Any) -> Sequence[Any]:
        received.append(x)
        return (x,)

    f = eng.func_new(store, ftype, host)
    _, (g,) = _instance(
        eng,
        f'(module (import "m" "f" (func $f (param {vtype}) (result {vtype})))'
        f' (func (export "g") (param {vtype}) (result {vtype}) local.get 0 call $f))',
        [f],
        store,
    )
    for value in values:
        (out,) = eng.call(store, g, ftype, [value])
        assert type(out) is type(value)
        assert out == value
        assert received[-1] == value
    # NaN crosses as a NaN (payloads may be canonicalised)
    if vtype.startswith("f"):
        (out,) = eng.call(store, g, ftype, [math.nan])
        assert isinstance(out, float)
        assert math.isnan(out)


def test_multi_value_host_and_call(eng: Engine) -> None:
    store = eng.new_store()
    ftype = FuncType(("i32", "i64", "f64"), ("f64", "i64", "i32"))
    f = eng.func_new(store, ftype, lambda a, b, c: (c, b, a))
    _, (g,) = _instance(
        eng,
        '(module (import "m" "f" (func $f (param i32 i64 f64) (result f64 i64 i32)))'
        ' (func (export "g") (param i32 i64 f64) (result f64 i64 i32)'
        " local.get 0 local.get 1 local.get 2 call $f))",
        [f],
        store,
    )
    assert eng.call(store, g, ftype, [1, -2, 3.5]) == (3.5, -2, 1)


def test_v128_values(eng: Engine) -> None:
    store = eng.new_store()
    ftype = FuncType(("v128",), ("v128",))
    if not eng.features.v128:
        with pytest.raises(NotSupportedError):
            eng.func_new(store, ftype, lambda x: (x,))
        return
    f = eng.func_new(store, ftype, lambda x: (x ^ 1,))
    _, (g,) = _instance(
        eng,
        '(module (import "m" "f" (func $f (param v128) (result v128)))'
        ' (func (export "g") (param v128) (result v128) local.get 0 call $f))',
        [f],
        store,
    )
    for value in (0, 1, 2**128 - 1, 0x0102030405060708090A0B0C0D0E0F10):
        assert eng.call(store, g, ftype, [value]) == (value ^ 1,)


def test_host_function_exception_is_same_object(eng: Engine) -> None:
    store = eng.new_store()
    error = ValueError("from the host")

    def host() -> Sequence[Any]:
        raise error

    f = eng.func_new(store, NOARGS, host)
    _, (g,) = _instance(
        eng, '(module (import "m" "f" (func $f)) (func (export "g") call $f))', [f], store
    )
    for _ in range(3):
        with pytest.raises(ValueError, match="from the host") as info:
            eng.call(store, g, NOARGS, [])
        assert info.value is error
    # the store is still usable afterwards, and nothing stale comes out of a good call
    ok = eng.func_new(store, NOARGS, lambda: ())
    _, (h,) = _instance(
        eng, '(module (import "m" "f" (func $f)) (func (export "g") call $f))', [ok], store
    )
    assert eng.call(store, h, NOARGS, []) == ()


def test_host_exception_in_start_function(eng: Engine) -> None:
    store = eng.new_store()
    error = KeyError("start")

    def host() -> Sequence[Any]:
        raise error

    f = eng.func_new(store, NOARGS, host)
    module = eng.compile(
        store if eng.module_needs_store else None,
        wat('(module (import "m" "f" (func $f)) (start $f))'),
    )
    with pytest.raises(KeyError) as info:
        eng.instantiate(store, module, [f])
    assert info.value is error


def test_nested_host_reentry(eng: Engine) -> None:
    store = eng.new_store()
    exports: list[Any] = []
    inner_error = OSError("inner")

    def outer_host(n: int) -> Sequence[Any]:
        if n == 0:
            raise inner_error
        # wasm -> host -> wasm on the same thread and store
        return eng.call(store, exports[0], FuncType(("i32",), ("i32",)), [n - 1])

    f = eng.func_new(store, FuncType(("i32",), ("i32",)), outer_host)
    _, exports[:] = _instance(
        eng,
        '(module (import "m" "f" (func $f (param i32) (result i32)))'
        ' (func (export "g") (param i32) (result i32) local.get 0 call $f))',
        [f],
        store,
    )
    with pytest.raises(OSError, match="inner") as info:
        eng.call(store, exports[0], FuncType(("i32",), ("i32",)), [5])
    assert info.value is inner_error


def _thread_setup(e: Engine, host: Callable[[], Sequence[Any]]) -> tuple[Any, Any]:
    store = e.new_store()
    f = e.func_new(store, NOARGS, host)
    _, (g,) = _instance(
        e, '(module (import "m" "f" (func $f)) (func (export "g") call $f))', [f], store
    )
    return store, g


def test_host_exceptions_are_per_thread(eng: Engine) -> None:
    """Thread A sits inside a host function (wasm below it) while thread B's calls raise in
    another store; then both threads hammer calls that raise their own objects."""
    a_inside = threading.Event()
    b_done = threading.Event()
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def thread_a() -> None:
        try:

            def host() -> Sequence[Any]:
                a_inside.set()
                assert b_done.wait(10)
                return ()

            store, g = _thread_setup(eng, host)
            results["a"] = eng.call(store, g, NOARGS, [])
        except NotSupportedError as error:
            results["a"] = error
        except BaseException as error:
            errors.append(error)

    def thread_b() -> None:
        try:
            assert a_inside.wait(10)
            mine = [LookupError(f"b{i}") for i in range(50)]
            current: list[BaseException] = []

            def host() -> Sequence[Any]:
                raise current[0]

            store, g = _thread_setup(eng, host)
            for error in mine:
                current[:] = [error]
                with pytest.raises(LookupError) as info:
                    eng.call(store, g, NOARGS, [])
                assert info.value is error
            results["b"] = True
        except NotSupportedError as error:
            results["b"] = error
        except BaseException as error:
            errors.append(error)
        finally:
            b_done.set()

    ta = threading.Thread(target=thread_a)
    tb = threading.Thread(target=thread_b)
    ta.start()
    tb.start()
    ta.join(30)
    tb.join(30)
    assert not errors, errors
    if isinstance(results.get("a"), NotSupportedError):
        pytest.skip(f"{eng.name} objects are thread-affine")
    assert results == {"a": (), "b": True}

    # concurrent hammering: every call must raise the object its own thread raised
    failures: list[str] = []

    def hammer(tag: str) -> None:
        try:
            current: list[BaseException] = []

            def host() -> Sequence[Any]:
                raise current[0]

            store, g = _thread_setup(eng, host)
            for i in range(300):
                error = ArithmeticError(f"{tag}{i}")
                current[:] = [error]
                try:
                    eng.call(store, g, NOARGS, [])
                except ArithmeticError as got:
                    if got is not error:
                        failures.append(f"{tag}: got {got!r} for {error!r}")
        except BaseException as error:
            failures.append(repr(error))

    threads = [threading.Thread(target=hammer, args=(t,)) for t in "xyz"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures[:5]


# -- traps --------------------------------------------------------------------------------------

TRAPS = [
    ("unreachable", '(func (export "t") unreachable)'),
    (
        "integer_divide_by_zero",
        '(func (export "t") (drop (i32.div_s (i32.const 1) (i32.const 0))))',
    ),
    (
        "integer_overflow",
        '(func (export "t") (drop (i32.div_s (i32.const -2147483648) (i32.const -1))))',
    ),
    (
        "invalid_conversion_to_integer",
        '(func (export "t") (drop (i32.trunc_f32_s (f32.const nan))))',
    ),
    (
        "out_of_bounds_memory_access",
        '(memory 1) (func (export "t") (drop (i32.load (i32.const 70000))))',
    ),
    (
        "out_of_bounds_table_access",
        '(table 1 funcref) (func (export "t") (call_indirect (i32.const 5)))',
    ),
    (
        "indirect_call_to_null",
        '(table 1 funcref) (func (export "t") (call_indirect (i32.const 0)))',
    ),
    (
        "indirect_call_type_mismatch",
        "(table 1 funcref) (elem (i32.const 0) $x) (func $x (param i32))"
        ' (func (export "t") (call_indirect (i32.const 0)))',
    ),
    ("stack_overflow", '(func $r (export "t") call $r)'),
]


@pytest.mark.parametrize(("kind", "body"), TRAPS, ids=[k for k, _ in TRAPS])
def test_trap_kinds(eng: Engine, kind: str, body: str) -> None:
    store, (t, *_) = _split_func_first(eng, f"(module {body})")
    with pytest.raises(RuntimeError) as info:
        eng.call(store, t, NOARGS, [])
    assert info.value.trap == kind
    assert info.value.__cause__ is not None
    assert len(str(info.value)) < 3000


def _split_func_first(e: Engine, text: str) -> tuple[Any, list[Any]]:
    store, exports = _instance(e, text)
    return store, exports


def test_trap_in_start_function(eng: Engine) -> None:
    store = eng.new_store()
    module = eng.compile(
        store if eng.module_needs_store else None, wat("(module (func $s unreachable) (start $s))")
    )
    with pytest.raises(RuntimeError) as info:
        eng.instantiate(store, module, [])
    assert info.value.trap == "unreachable"


# -- memories -------------------------------------------------------------------------------------


def test_memory_view_and_grow(eng: Engine) -> None:
    store = eng.new_store()
    mem = eng.memory_new(store, MemoryType(Limits(1, 4)))
    assert eng.memory_pages(store, mem) == 1
    view = eng.memory_view(store, mem)
    assert view.format == "B"
    assert not view.readonly
    assert len(view) == 65536
    view[10] = 42
    assert eng.memory_grow(store, mem, 2) == 1
    assert eng.memory_pages(store, mem) == 3
    # the old view still reaches valid memory (the memory never moves on this engine config)
    assert view[10] == 42
    view[11] = 43
    new = eng.memory_view(store, mem)
    assert len(new) == 3 * 65536
    assert new[10] == 42
    assert new[11] == 43
    new[3 * 65536 - 1] = 1
    with pytest.raises(RangeError):
        eng.memory_grow(store, mem, 2)  # past the maximum (3 + 2 > 4)
    assert eng.memory_pages(store, mem) == 3


def test_memory_view_keeps_store_alive(eng: Engine) -> None:
    store, (mem,) = _instance(eng, '(module (memory (export "m") 1))')
    view = eng.memory_view(store, mem)
    part = view[100:200]
    del store, mem
    gc.collect()
    view[0] = 1
    part[0] = 2
    assert view[100] == 2
    view[65535] = 255
    assert bytes(view[:1]) == b"\x01"


def test_memory_shared_by_wasm_and_python(eng: Engine) -> None:
    store, (mem, peek) = _instance(
        eng,
        '(module (memory (export "m") 1)'
        ' (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0))))',
    )
    view = eng.memory_view(store, mem)
    view[1234] = 99
    assert eng.call(store, peek, FuncType(("i32",), ("i32",)), [1234]) == (99,)


def test_memory_grow_past_max_is_range_error(eng: Engine) -> None:
    store, (mem,) = _instance(eng, '(module (memory (export "m") 1 2))')
    assert eng.memory_grow(store, mem, 1) == 1
    with pytest.raises(RangeError):
        eng.memory_grow(store, mem, 1)


# -- tables ----------------------------------------------------------------------------------------


def test_host_tables(eng: Engine) -> None:
    store = eng.new_store()
    if not eng.features.host_tables:
        with pytest.raises(NotSupportedError):
            eng.table_new(store, TableType("externref", Limits(1)), None)
        return
    marker = object()
    table = eng.table_new(store, TableType("externref", Limits(2, 5)), marker)
    assert eng.table_size(store, table) == 2
    assert eng.table_get(store, table, 0) is marker
    assert eng.table_get(store, table, 1) is marker
    eng.table_set(store, table, 1, None)
    assert eng.table_get(store, table, 1) is None
    for falsy in (0, "", False, b""):
        eng.table_set(store, table, 0, falsy)
        assert eng.table_get(store, table, 0) is falsy
    assert eng.table_grow(store, table, 3, "x") == 2
    assert eng.table_size(store, table) == 5
    assert eng.table_get(store, table, 4) == "x"
    with pytest.raises(RangeError):
        eng.table_grow(store, table, 1, None)
    with pytest.raises(RangeError):
        eng.table_get(store, table, 5)
    with pytest.raises(RangeError):
        eng.table_set(store, table, 7, None)


def test_funcref_table_and_func_key(eng: Engine) -> None:
    if not eng.features.host_tables:
        pytest.skip("no host tables")
    store, (table, f) = _instance(
        eng,
        '(module (table (export "t") 2 funcref) (elem (i32.const 0) $f)'
        ' (func $f (export "f") (result i32) i32.const 7))',
    )
    got = _func(eng.table_get(store, table, 0))
    assert eng.func_key(got) == eng.func_key(_func(f))
    assert eng.func_key(_func(eng.table_get(store, table, 0))) == eng.func_key(got)
    assert eng.call(store, got, FuncType((), ("i32",)), []) == (7,)
    assert eng.table_get(store, table, 1) is None  # a null entry is None, not a wrapper
    eng.table_set(store, table, 1, f)
    assert eng.func_key(_func(eng.table_get(store, table, 1))) == eng.func_key(_func(f))
    host = eng.func_new(store, FuncType((), ("i32",)), lambda: (8,))
    eng.table_set(store, table, 1, host)
    again = _func(eng.table_get(store, table, 1))
    assert eng.func_key(again) == eng.func_key(host)
    assert eng.func_key(again) != eng.func_key(_func(f))
    assert eng.call(store, again, FuncType((), ("i32",)), []) == (8,)


def test_func_key_same_function_fetched_twice(eng: Engine) -> None:
    store = eng.new_store()
    module = eng.compile(store if eng.module_needs_store else None, wat(ADD))
    inst = eng.instantiate(store, module, [])
    a = _func(eng.instance_exports(store, inst)[0])
    b = _func(eng.instance_exports(store, inst)[0])
    assert eng.func_key(a) == eng.func_key(b)
    assert hash(eng.func_key(a)) == hash(eng.func_key(b))
    other = _func(eng.instance_exports(store, eng.instantiate(store, module, []))[0])
    assert eng.func_key(other) != eng.func_key(a)


# -- globals and reference values ----------------------------------------------------------------

GLOBAL_CASES = [
    ("i32", -7, 2**31 - 1),
    ("i64", -(2**63), 2**63 - 1),
    ("f32", 1.5, -0.25),
    ("f64", 0.1, 1e300),
]


@pytest.mark.parametrize(
    ("vtype", "first", "second"), GLOBAL_CASES, ids=[c[0] for c in GLOBAL_CASES]
)
def test_globals(eng: Engine, vtype: str, first: Any, second: Any) -> None:
    store = eng.new_store()
    glob = eng.global_new(store, GlobalType(vtype, True), first)
    assert eng.global_get(store, glob) == first
    eng.global_set(store, glob, second)
    assert eng.global_get(store, glob) == second
    const = eng.global_new(store, GlobalType(vtype, False), first)
    assert eng.global_get(store, const) == first
    with pytest.raises(TypeError):
        eng.global_set(store, const, second)


def test_exported_global(eng: Engine) -> None:
    store, (g, bump) = _instance(
        eng,
        '(module (global $g (export "g") (mut i64) (i64.const -5))'
        ' (func (export "bump") (global.set $g (i64.add (global.get $g) (i64.const 1)))))',
    )
    assert eng.global_get(store, g) == -5
    eng.call(store, bump, NOARGS, [])
    assert eng.global_get(store, g) == -4
    eng.global_set(store, g, 2**62)
    eng.call(store, bump, NOARGS, [])
    assert eng.global_get(store, g) == 2**62 + 1


def test_externref_identity(eng: Engine) -> None:
    store = eng.new_store()
    ftype = FuncType(("externref",), ("externref",))
    if not eng.features.reference_values:
        with pytest.raises(NotSupportedError):
            eng.func_new(store, ftype, lambda x: (x,))
        return
    seen: list[Any] = []

    def record(x: object) -> tuple[object]:
        seen.append(x)
        return (x,)

    f = eng.func_new(store, ftype, record)
    _, (glob, g) = _instance(
        eng,
        '(module (import "m" "f" (func $f (param externref) (result externref)))'
        ' (global (export "gl") (mut externref) (ref.null extern))'
        ' (func (export "g") (param externref) (result externref) local.get 0 call $f))',
        [f],
        store,
    )
    # exports come in the module's export order: gl (global) then g (func)
    for value in (object(), 0, "", False, 0.0, (), None, [1]):
        (out,) = eng.call(store, g, ftype, [value])
        assert out is value
        assert seen[-1] is value
    assert eng.global_get(store, glob) is None
    for value in (object(), 0, ""):
        eng.global_set(store, glob, value)
        assert eng.global_get(store, glob) is value
    host_glob = eng.global_new(store, GlobalType("externref", True), 0)
    assert eng.global_get(store, host_glob) == 0
    assert eng.global_get(store, host_glob) is not None


def test_funcref_values(eng: Engine) -> None:
    if not eng.features.reference_values:
        pytest.skip("no reference values")
    store = eng.new_store()
    ftype = FuncType(("anyfunc",), ("anyfunc",))
    _, (ident, add) = _instance(
        eng,
        '(module (func (export "id") (param funcref) (result funcref) local.get 0)'
        ' (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))',
        store=store,
    )
    (result,) = eng.call(store, ident, ftype, [add])
    out = _func(result)
    assert eng.func_key(out) == eng.func_key(_func(add))
    assert eng.call(store, out, ADD_T, [1, 2]) == (3,)
    assert eng.call(store, ident, ftype, [None]) == (None,)


# -- exceptions ---------------------------------------------------------------------------------


def test_tags_and_uncaught_exception(eng: Engine) -> None:
    store = eng.new_store()
    if not eng.features.exceptions:
        with pytest.raises(NotSupportedError):
            eng.tag_new(store, TagType(("i32",)))
        return
    tag = eng.tag_new(store, TagType(("i32", "f64")))
    _, (thrower, exported_tag) = _instance(
        eng,
        '(module (import "m" "t" (tag $t (param i32 f64)))'
        ' (func (export "throw") (param i32) (throw $t (local.get 0) (f64.const 2.5)))'
        ' (export "t" (tag $t)))',
        [tag],
        store,
    )
    assert eng.tag_key(exported_tag) == eng.tag_key(tag)
    with pytest.raises(UncaughtWasmException) as info:
        eng.call(store, thrower, FuncType(("i32",), ()), [-3])
    assert eng.tag_key(info.value.tag) == eng.tag_key(tag)
    assert info.value.payload == (-3, 2.5)
    # the store is usable afterwards
    with pytest.raises(UncaughtWasmException):
        eng.call(store, thrower, FuncType(("i32",), ()), [1])


def test_host_throws_wasm_exception(eng: Engine) -> None:
    if not eng.features.exceptions:
        pytest.skip("no exception handling")
    store = eng.new_store()
    tag = eng.tag_new(store, TagType(("i32",)))

    class Thrown(WasmThrowable):
        pass

    def host(n: int) -> Sequence[Any]:
        error = Thrown(n)
        error.thrown = ThrownValue(tag, (n,), TagType(("i32",)))
        raise error

    f = eng.func_new(store, FuncType(("i32",), ()), host)
    _, (catching, plain) = _instance(
        eng,
        '(module (import "m" "t" (tag $t (param i32))) (import "m" "f" (func $f (param i32)))'
        ' (func (export "catching") (param i32) (result i32)'
        "   (block $h (result i32) (try_table (catch $t $h) (call $f (local.get 0))) (i32.const -1)))"
        ' (func (export "plain") (param i32) (call $f (local.get 0))))',
        [tag, f],
        store,
    )
    # wasm catches it and gets the payload
    assert eng.call(store, catching, FuncType(("i32",), ("i32",)), [41]) == (41,)
    # uncaught, the very same Python object comes out
    with pytest.raises(Thrown) as info:
        eng.call(store, plain, FuncType(("i32",), ()), [5])
    assert info.value.args == (5,)
    assert info.value.thrown.payload == (5,)


# -- wasmtime-only hazards --------------------------------------------------------------------

_HAZARD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from _wat import wat
    from asyncwasm._engines import get_engine
    from asyncwasm._types import FuncType
    e = get_engine("wasmtime")
    s = e.new_store()
    m = e.compile(None, wat('''(module
        (func (export "v") (param v128) (result v128) local.get 0)
        (func (export "x") (param exnref))
        (global (export "g") (mut v128) (v128.const i64x2 1 2))
        (tag (export "t") (param v128)))'''))
    exports = e.instance_exports(s, e.instantiate(s, m, []))
    assert len(exports) == 4
    assert e.call(s, exports[0], FuncType(("v128",), ("v128",)), [12345]) == (12345,)
    assert e.global_get(s, exports[2]) == 1 | (2 << 64)
    e.global_set(s, exports[2], 7)
    assert e.global_get(s, exports[2]) == 7
    try:
        e.call(s, exports[1], FuncType(("exnref",), ()), [None])
    except NotImplementedError:
        pass
    else:
        raise AssertionError("exnref call not refused")
    print("ok")
    """
)


def test_wasmtime_v128_exports_do_not_abort(engine: str) -> None:
    if engine != "wasmtime":
        pytest.skip("wasmtime-only hazard")
    tests = str(Path(__file__).parent)
    root = str(Path(__file__).parent.parent)
    proc = subprocess.run(
        [sys.executable, "-c", _HAZARD.format(tests=tests)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"


def test_unsupported_types_refused_before_engine(eng: Engine) -> None:
    store = eng.new_store()
    for bad in ("exnref", "anyref", "(ref null 0)"):
        with pytest.raises((NotSupportedError, TypeError)):
            eng.func_new(store, FuncType((bad,), ()), lambda x: ())
        with pytest.raises((NotSupportedError, TypeError)):
            eng.global_new(store, GlobalType(bad, False), None)
