"""wasmer-specific engine-layer tests: the hazards ``asyncwasm/_engines/_wasmer.py`` fences.

They run only when "wasmer" is among the engines under test (``conftest.ENGINES``); under CI an
engine that was asked for but does not import fails the run (see conftest).
"""

from __future__ import annotations

import builtins
import concurrent.futures
import gc
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _wat import wat

from asyncwasm._exceptions import (
    MAX_MESSAGE_CHARS,
    CompileError,
    LinkError,
    NotSupportedError,
    RangeError,
)
from asyncwasm._exceptions import RuntimeError as WasmRuntimeError
from asyncwasm._types import FuncType, GlobalType, Limits, MemoryType, TableType, TagType


@pytest.fixture
def eng(engine: str) -> Any:
    if engine != "wasmer":
        pytest.skip("wasmer-specific test")
    from asyncwasm._engines import get_engine

    return get_engine("wasmer")


def _run_in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a new thread; return its result or re-raise what it raised (any
    BaseException, so a PyO3 panic would show up here as itself)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _instantiate(eng: Any, text: str, imports: tuple[Any, ...] = ()) -> tuple[Any, Any, list[Any]]:
    store = eng.new_store()
    module = eng.compile(store, wat(text))
    instance = eng.instantiate(store, module, imports)
    return store, instance, eng.instance_exports(store, instance)


NULLARY_I32 = FuncType((), ("i32",))
NULLARY = FuncType((), ())

TRAPS = """(module
  (type $t (func (result i32)))
  (memory 1)
  (table 2 funcref)
  (elem (i32.const 1) $f)
  (func $f (param i32) (result i32) local.get 0)
  (func (export "unreachable") (result i32) unreachable)
  (func (export "div") (result i32) i32.const 1 i32.const 0 i32.div_s)
  (func (export "overflow") (result i32) i32.const 0x80000000 i32.const -1 i32.div_s)
  (func (export "conversion") (result i32) f32.const nan i32.trunc_f32_s)
  (func (export "memory") (result i32) i32.const 100000 i32.load)
  (func (export "table") (result i32) i32.const 5 call_indirect (type $t))
  (func (export "null") (result i32) i32.const 0 call_indirect (type $t))
  (func (export "mismatch") (result i32) i32.const 1 call_indirect (type $t))
  (func $rec (export "recurse") (result i32) call $rec)
)"""
TRAP_EXPORTS = [
    "unreachable",
    "div",
    "overflow",
    "conversion",
    "memory",
    "table",
    "null",
    "mismatch",
    "recurse",
]


# -- traps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("export", "kind"),
    [
        ("unreachable", "unreachable"),
        ("div", "integer_divide_by_zero"),
        ("overflow", "integer_overflow"),
        ("conversion", "invalid_conversion_to_integer"),
        ("memory", "out_of_bounds_memory_access"),
        ("table", "out_of_bounds_table_access"),
        ("null", "indirect_call_to_null"),
        ("mismatch", "indirect_call_type_mismatch"),
        ("recurse", "stack_overflow"),
    ],
)
def test_trap_kinds(eng: Any, export: str, kind: str) -> None:
    store, _, exports = _instantiate(eng, TRAPS)
    func = exports[TRAP_EXPORTS.index(export)]
    with pytest.raises(WasmRuntimeError) as info:
        eng.call(store, func, NULLARY_I32, ())
    assert info.value.trap == kind
    assert isinstance(info.value.__cause__, builtins.RuntimeError)
    assert not isinstance(info.value.__cause__, WasmRuntimeError)
    assert not str(info.value).startswith("RuntimeError:")


def test_stack_overflow_message_is_truncated(eng: Any) -> None:
    store, _, exports = _instantiate(eng, TRAPS)
    with pytest.raises(WasmRuntimeError) as info:
        eng.call(store, exports[TRAP_EXPORTS.index("recurse")], NULLARY_I32, ())
    assert info.value.trap == "stack_overflow"
    assert "call stack exhausted" in str(info.value)
    assert len(str(info.value)) < MAX_MESSAGE_CHARS + 100
    # the original (megabytes long) is only chained
    assert len(str(info.value.__cause__)) > MAX_MESSAGE_CHARS


def test_trap_in_start_function(eng: Any) -> None:
    store = eng.new_store()
    module = eng.compile(store, wat("(module (func $s unreachable) (start $s))"))
    with pytest.raises(WasmRuntimeError) as info:
        eng.instantiate(store, module, ())
    assert info.value.trap == "unreachable"


def test_data_segment_out_of_bounds_is_a_trap(eng: Any) -> None:
    store = eng.new_store()
    module = eng.compile(store, wat('(module (memory 1) (data (i32.const 65535) "ab"))'))
    with pytest.raises(WasmRuntimeError) as info:
        eng.instantiate(store, module, ())
    assert info.value.trap == "out_of_bounds_memory_access"


# -- compile, validate, link ----------------------------------------------------------------


def test_validate(eng: Any) -> None:
    assert eng.validate(wat('(module (func (export "f")))')) is None
    message = eng.validate(wat("(module (func (result i32)))"))
    assert isinstance(message, str)
    assert "type mismatch" in message
    assert eng.validate(b"\0asm\1\0\0\0\x01") is not None


def test_compile_error(eng: Any) -> None:
    with pytest.raises(CompileError) as info:
        eng.compile(eng.new_store(), wat("(module (func (result i32)))"))
    assert isinstance(info.value.__cause__, builtins.RuntimeError)
    with pytest.raises(CompileError):
        eng.compile(eng.new_store(), b"\0asm\2\0\0\0")


def test_link_error_is_mapped(eng: Any) -> None:
    store = eng.new_store()
    module = eng.compile(store, wat('(module (import "a" "f" (func (param i32))))'))
    wrong = eng.func_new(store, FuncType(("i64",), ()), lambda x: ())
    with pytest.raises(LinkError) as info:
        eng.instantiate(store, module, (wrong,))
    assert "incompatible import type" in str(info.value)


def test_duplicate_import_with_different_objects(eng: Any) -> None:
    store = eng.new_store()
    module = eng.compile(
        store,
        wat('(module (import "a" "f" (func)) (import "a" "f" (func)) (func (export "g") call 1))'),
    )
    f1 = eng.func_new(store, NULLARY, lambda: ())
    f2 = eng.func_new(store, NULLARY, lambda: ())
    with pytest.raises(LinkError, match="more than once"):
        eng.instantiate(store, module, (f1, f2))
    instance = eng.instantiate(store, module, (f1, f1))  # the same object twice is fine
    eng.call(store, eng.instance_exports(store, instance)[0], NULLARY, ())


# -- host functions -------------------------------------------------------------------------

CALLS_HOST = """(module
  (import "a" "f" (func $f))
  (func (export "g") call $f)
  (func (export "trap") unreachable)
)"""


@pytest.mark.parametrize(
    "error",
    [ValueError("boom"), builtins.RuntimeError("unreachable"), KeyboardInterrupt("stop")],
    ids=["ValueError", "builtins.RuntimeError", "KeyboardInterrupt"],
)
def test_host_exception_identity(eng: Any, error: BaseException) -> None:
    def raiser() -> tuple[()]:
        raise error

    store = eng.new_store()
    host = eng.func_new(store, NULLARY, raiser)
    module = eng.compile(store, wat(CALLS_HOST))
    instance = eng.instantiate(store, module, (host,))
    with pytest.raises(BaseException) as info:  # noqa: PT011
        eng.call(store, eng.instance_exports(store, instance)[0], NULLARY, ())
    assert info.value is error


def test_host_exception_identity_in_start_function(eng: Any) -> None:
    error = LookupError("from start")

    def raiser() -> tuple[()]:
        raise error

    store = eng.new_store()
    host = eng.func_new(store, NULLARY, raiser)
    module = eng.compile(store, wat('(module (import "a" "f" (func)) (start 0))'))
    with pytest.raises(LookupError) as info:
        eng.instantiate(store, module, (host,))
    assert info.value is error


def test_nested_trap_through_host_function_keeps_identity(eng: Any) -> None:
    store = eng.new_store()
    module = eng.compile(store, wat(CALLS_HOST))
    seen: list[BaseException] = []
    exports: list[Any] = []

    def host() -> tuple[()]:
        try:
            eng.call(store, exports[1], NULLARY, ())
        except WasmRuntimeError as exc:
            seen.append(exc)
            raise
        return ()

    instance = eng.instantiate(store, module, (eng.func_new(store, NULLARY, host),))
    exports.extend(eng.instance_exports(store, instance))
    with pytest.raises(WasmRuntimeError) as info:
        eng.call(store, exports[0], NULLARY, ())
    assert info.value is seen[0]
    assert info.value.trap == "unreachable"


def test_host_function_wrong_result_count(eng: Any) -> None:
    store = eng.new_store()
    host = eng.func_new(store, NULLARY_I32, lambda: (1, 2))
    module = eng.compile(
        store,
        wat(
            '(module (import "a" "f" (func $f (result i32))) (func (export "g") (result i32) call $f))'
        ),
    )
    instance = eng.instantiate(store, module, (host,))
    with pytest.raises(TypeError, match="returned 2 values"):
        eng.call(store, eng.instance_exports(store, instance)[0], NULLARY_I32, ())


def test_all_number_types_and_multi_value(eng: Any) -> None:
    ftype = FuncType(("i32", "i64", "f32", "f64"), ("i32", "i64", "f32", "f64"))
    got: list[tuple[Any, ...]] = []

    def host(*args: Any) -> tuple[Any, ...]:
        got.append(args)
        return args

    store = eng.new_store()
    module = eng.compile(
        store,
        wat(
            """(module
      (import "a" "f" (func $f (param i32 i64 f32 f64) (result i32 i64 f32 f64)))
      (func (export "g") (param i32 i64 f32 f64) (result i32 i64 f32 f64)
        local.get 0 local.get 1 local.get 2 local.get 3 call $f))"""
        ),
    )
    instance = eng.instantiate(store, module, (eng.func_new(store, ftype, host),))
    args = (-(2**31), -(2**63), 1.5, -2.25)
    assert eng.call(store, eng.instance_exports(store, instance)[0], ftype, args) == args
    assert got == [args]


def test_v128_crosses_both_ways(eng: Any) -> None:
    assert eng.features.v128
    ftype = FuncType(("v128",), ("v128",))
    value = 2**128 - 3
    store = eng.new_store()
    host = eng.func_new(store, ftype, lambda v: (v ^ 1,))
    module = eng.compile(
        store,
        wat(
            """(module (import "a" "f" (func $f (param v128) (result v128)))
      (func (export "g") (param v128) (result v128) local.get 0 call $f))"""
        ),
    )
    instance = eng.instantiate(store, module, (host,))
    assert eng.call(store, eng.instance_exports(store, instance)[0], ftype, (value,)) == (
        value ^ 1,
    )
    glob = eng.global_new(store, GlobalType("v128", True), 2**100)
    assert eng.global_get(store, glob) == 2**100
    eng.global_set(store, glob, 5)
    assert eng.global_get(store, glob) == 5


# -- not supported --------------------------------------------------------------------------


@pytest.mark.parametrize("reftype", ["externref", "anyfunc"])
def test_reference_values_not_supported(eng: Any, reftype: str) -> None:
    store = eng.new_store()
    with pytest.raises(NotSupportedError):
        eng.func_new(store, FuncType((reftype,), ()), lambda x: ())
    with pytest.raises(NotSupportedError):
        eng.global_new(store, GlobalType(reftype, True), None)
    wasm_type = "funcref" if reftype == "anyfunc" else "externref"
    _, _, exports = _instantiate(
        eng,
        f"""(module (func (export "f") (param {wasm_type}) (result {wasm_type}) local.get 0)
        (global (export "g") (mut {wasm_type}) (ref.null {"func" if reftype == "anyfunc" else "extern"})))""",
    )
    with pytest.raises(NotSupportedError):
        eng.call(store, exports[0], FuncType((reftype,), (reftype,)), (None,))
    with pytest.raises(NotSupportedError):
        eng.global_get(store, exports[1])
    with pytest.raises(NotSupportedError):
        eng.global_set(store, exports[1], None)
    assert not eng.features.reference_values


def test_tables_tags_not_supported_but_size_works(eng: Any) -> None:
    store, _, exports = _instantiate(eng, '(module (table (export "t") 3 funcref))')
    (table,) = exports
    assert eng.table_size(store, table) == 3
    with pytest.raises(NotSupportedError, match="wasmer"):
        eng.table_new(store, TableType("anyfunc", Limits(1)), None)
    with pytest.raises(NotSupportedError):
        eng.table_get(store, table, 0)
    with pytest.raises(NotSupportedError):
        eng.table_set(store, table, 0, None)
    with pytest.raises(NotSupportedError):
        eng.table_grow(store, table, 1, None)
    with pytest.raises(NotSupportedError):
        eng.tag_new(store, TagType(("i32",)))
    assert not eng.features.host_tables
    assert not eng.features.exceptions


def test_shared_memory_not_supported(eng: Any) -> None:
    with pytest.raises(NotSupportedError):
        eng.memory_new(eng.new_store(), MemoryType(Limits(1, 2), shared=True))


# -- thread affinity ------------------------------------------------------------------------

AFFINE = """(module
  (memory (export "m") 1)
  (global (export "g") (mut i32) (i32.const 7))
  (table (export "t") 1 funcref)
  (func (export "f") (result i32) i32.const 1)
)"""


def test_objects_from_another_thread_give_not_supported(
    eng: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    store = eng.new_store()
    module = eng.compile(store, wat(AFFINE))
    instance = eng.instantiate(store, module, ())
    mem, glob, table, func = eng.instance_exports(store, instance)
    host = eng.func_new(store, NULLARY, lambda: ())
    attempts: list[Callable[[], Any]] = [
        lambda: eng.instantiate(store, module, ()),
        lambda: eng.serialize(module),
        lambda: eng.instance_exports(store, instance),
        lambda: eng.call(store, func, NULLARY_I32, ()),
        lambda: eng.call(store, host, NULLARY, ()),
        lambda: eng.memory_view(store, mem),
        lambda: eng.memory_pages(store, mem),
        lambda: eng.memory_grow(store, mem, 1),
        lambda: eng.global_get(store, glob),
        lambda: eng.global_set(store, glob, 1),
        lambda: eng.table_size(store, table),
    ]
    for attempt in attempts:
        with pytest.raises(NotSupportedError, match="thread"):
            _run_in_thread(attempt)
    # nothing reached wasmer: no panic was even printed
    assert "panicked" not in capfd.readouterr().err
    # and everything still works on the owning thread
    assert eng.call(store, func, NULLARY_I32, ()) == (1,)


def test_module_compiled_on_a_worker_thread_is_refused_here(eng: Any) -> None:
    store = eng.new_store()  # stores may cross threads
    module = _run_in_thread(lambda: eng.compile(store, wat(AFFINE)))
    with pytest.raises(NotSupportedError, match="thread-affine"):
        eng.instantiate(store, module, ())
    # a store can be shared: compiling here in it works
    eng.instantiate(store, eng.compile(store, wat(AFFINE)), ())


def test_panic_from_wasmer_is_converted(eng: Any, capfd: pytest.CaptureFixture[str]) -> None:
    """Second fence: even if the thread check were bypassed, the PanicException (a
    BaseException) is converted to NotSupportedError."""
    store = eng.new_store()
    module = _run_in_thread(lambda: eng.compile(store, wat(AFFINE)))
    module._thread = threading.get_ident()  # defeat the first fence on purpose
    with pytest.raises(NotSupportedError, match="thread") as info:
        eng.instantiate(store, module, ())
    assert type(info.value.__cause__).__name__ == "PanicException"
    capfd.readouterr()  # Rust's panic hook printed to stderr; that's expected here


def test_memory_view_used_and_dropped_on_another_thread(eng: Any) -> None:
    store = eng.new_store()
    mem = eng.memory_new(store, MemoryType(Limits(1)))
    view = eng.memory_view(store, mem)
    piece = view[10:20]

    def elsewhere() -> None:
        nonlocal view, piece
        view[0] = 9
        piece[0] = 8
        piece.release()
        del view, piece  # the last references go away on this thread

    _run_in_thread(elsewhere)
    assert bytes(eng.memory_view(store, mem)[:11]) == b"\x09" + b"\0" * 9 + b"\x08"


# -- memory ---------------------------------------------------------------------------------


def test_memory_view_is_writable_whole_and_keeps_memory_alive(eng: Any) -> None:
    store = eng.new_store()
    mem = eng.memory_new(store, MemoryType(Limits(2, 10)))
    view = eng.memory_view(store, mem)
    assert view.format == "B"
    assert not view.readonly
    assert view.nbytes == 2 * 65536
    view[-1] = 0xAB
    piece = view[-4:]
    del mem, view, store
    gc.collect()
    junk = [eng.memory_new(eng.new_store(), MemoryType(Limits(2))) for _ in range(20)]
    assert piece[-1] == 0xAB
    piece[:] = b"\1\2\3\4"
    assert bytes(piece) == b"\1\2\3\4"
    del junk


def test_memory_grow_does_not_move_and_range_error(eng: Any) -> None:
    store = eng.new_store()
    mem = eng.memory_new(store, MemoryType(Limits(1, 100)))
    before = eng.memory_view(store, mem)
    before[5] = 55
    assert eng.memory_grow(store, mem, 0) == 1
    assert eng.memory_grow(store, mem, 50) == 1
    assert eng.memory_pages(store, mem) == 51
    after = eng.memory_view(store, mem)
    assert after.nbytes == 51 * 65536
    assert after[5] == 55
    before[6] = 66  # still the same memory: it did not move
    assert after[6] == 66
    with pytest.raises(RangeError):
        eng.memory_grow(store, mem, 50)
    with pytest.raises(RangeError):
        eng.memory_grow(store, mem, -1)
    assert eng.memory_pages(store, mem) == 51


def test_memory_new_errors_are_range_errors(eng: Any) -> None:
    with pytest.raises(RangeError):
        eng.memory_new(eng.new_store(), MemoryType(Limits(3, 2)))
    with pytest.raises(RangeError):
        eng.memory_new(eng.new_store(), MemoryType(Limits(65537)))


def test_instance_keeps_imported_memory_and_global_alive(eng: Any) -> None:
    text = """(module
      (import "a" "m" (memory 1))
      (import "a" "g" (global (mut i32)))
      (func (export "load") (result i32) i32.const 0 i32.load)
      (func (export "get") (result i32) global.get 0))"""
    store = eng.new_store()
    mem = eng.memory_new(store, MemoryType(Limits(1)))
    eng.memory_view(store, mem)[0] = 42
    glob = eng.global_new(store, GlobalType("i32", True), 77)
    module = eng.compile(store, wat(text))
    instance = eng.instantiate(store, module, (mem, glob))
    load, get = eng.instance_exports(store, instance)
    del mem, glob, instance, module
    gc.collect()
    # reuse whatever memory was freed, if anything was
    junk = [eng.memory_new(store, MemoryType(Limits(1))) for _ in range(50)]
    junk += [eng.global_new(store, GlobalType("i32", True), i) for i in range(1000)]
    gc.collect()
    assert eng.call(store, load, NULLARY_I32, ()) == (42,)
    assert eng.call(store, get, NULLARY_I32, ()) == (77,)


# -- globals --------------------------------------------------------------------------------


def test_exported_global(eng: Any) -> None:
    store, _, (_, glob, _, _) = _instantiate(eng, AFFINE)
    assert eng.global_get(store, glob) == 7
    eng.global_set(store, glob, -1)
    assert eng.global_get(store, glob) == -1


# -- exports and identity -------------------------------------------------------------------


def test_exports_in_module_order_and_stable(eng: Any) -> None:
    text = """(module
      (func $z (export "zeta") (result i32) i32.const 3)
      (memory (export "__class__") 1)
      (global (export "__dict__") i32 (i32.const 1))
      (export "alpha" (func $z)))"""
    store, instance, exports = _instantiate(eng, text)
    assert len(exports) == 4
    zeta, mem, glob, alpha = exports
    assert eng.memory_pages(store, mem) == 1
    assert eng.global_get(store, glob) == 1
    assert eng.call(store, alpha, NULLARY_I32, ()) == (3,)
    again = eng.instance_exports(store, instance)
    assert all(a is b for a, b in zip(exports, again, strict=True))
    assert eng.func_key(zeta) == eng.func_key(again[0])
    hash(eng.func_key(zeta))
    host = eng.func_new(store, NULLARY, lambda: ())
    assert eng.func_key(host) == eng.func_key(host)
    assert eng.func_key(host) != eng.func_key(zeta)


# -- artifacts and processes ----------------------------------------------------------------


def test_cache_key(eng: Any) -> None:
    key = eng.cache_key()
    assert "wasmer" in key
    assert eng.version in key
    assert "cranelift" in key
    assert "universal" in key
    assert key == eng.cache_key()


def test_compile_artifact_in_spawned_process(eng: Any) -> None:
    wasm = wat(
        '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
    )
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        artifact = pool.submit(type(eng).compile_artifact, wasm).result(timeout=120)
        with pytest.raises(CompileError):
            pool.submit(type(eng).compile_artifact, wat("(module (func (result i32)))")).result(
                timeout=120
            )
    assert isinstance(artifact, bytes)
    store = eng.new_store()
    module = eng.deserialize(store, artifact)
    instance = eng.instantiate(store, module, ())
    (add,) = eng.instance_exports(store, instance)
    assert eng.call(store, add, FuncType(("i32", "i32"), ("i32",)), (2, 40)) == (42,)
    # and serialize/deserialize in this process
    again = eng.deserialize(store, eng.serialize(module))
    (add2,) = eng.instance_exports(store, eng.instantiate(store, again, ()))
    assert eng.call(store, add2, FuncType(("i32", "i32"), ("i32",)), (-1, 1)) == (0,)


# -- modules that would poison wasmer -------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '(module (tag (export "t")))',
        "(module (tag (param i32)))",
        '(module (import "a" "t" (tag)))',
        """(module
          (import "a" "f" (func (param i32)))
          (import "a" "tab" (table 1 2 funcref))
          (import "a" "m" (memory 1))
          (import "a" "g" (global (mut externref)))
          (import "a" "t" (tag (param f64))))""",
    ],
    ids=["tag-section", "unexported-tag", "tag-import", "tag-import-after-others"],
)
def test_modules_with_tags_are_refused_before_wasmer(eng: Any, text: str) -> None:
    """wasmer validates these, then panics compiling them and poisons its engine; the scan must
    refuse them first, leaving the store usable."""
    wasm = wat(text)
    assert "exception handling" in (eng.validate(wasm) or "")
    store = eng.new_store()
    with pytest.raises(CompileError, match="exception handling"):
        eng.compile(store, wasm)
    with pytest.raises(CompileError, match="exception handling"):
        type(eng).compile_artifact(wasm)
    # the store still works
    module = eng.compile(store, wat('(module (func (export "f") (result i32) i32.const 6))'))
    (f,) = eng.instance_exports(store, eng.instantiate(store, module, ()))
    assert eng.call(store, f, NULLARY_I32, ()) == (6,)
