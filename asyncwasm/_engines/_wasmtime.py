"""The wasmtime engine (wasmtime-py 50), mostly through its raw C API bindings.

Why raw FFI rather than wasmtime-py's object layer:

* wasmtime-py reads function types to convert values, and reading a type that contains ``v128``,
  ``exnref`` or a GC reference aborts the process (``wasm_valtype_kind`` panics). Every conversion
  here is driven by asyncwasm's own ``FuncType`` / value kinds instead, and no code in this module
  ever asks wasmtime for the type of anything.
* wasmtime-py carries host-function exceptions in a module global, so with several threads calling
  wasm they surface in the wrong thread. Our trampoline stashes them per thread.
* wasmtime-py keeps host callables and externref objects in process-wide tables that are only
  released by C finalizers; anything in them that refers back to the store makes an uncollectable
  cycle. Here they live on our store wrapper, so such cycles are ordinary Python garbage.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import itertools
import os
import sys
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from ctypes import POINTER, byref
from importlib import metadata
from typing import Any, ClassVar, Final, TypeVar

import wasmtime
from wasmtime import _ffi as ffi  # private bindings of the C API

from .. import _exceptions as exc
from .. import _fork
from .._limits import Limits
from .._types import (
    JS_VALUE_TYPES,
    MAX_TABLE_LENGTH,
    FuncType,
    GlobalType,
    MemoryType,
    TableType,
    TagType,
)
from . import _wasmtime_interrupts as interrupts
from ._base import (
    Engine,
    EngineFeatures,
    EngineValue,
    FuncHandle,
    GlobalHandle,
    HostCallable,
    InlineCall,
    InstanceHandle,
    MemoryHandle,
    ModuleHandle,
    StoreHandle,
    SuspendingStart,
    TableHandle,
    TagHandle,
    Thrown,
    UncaughtWasmException,
    WasmThrowable,
)
from ._errors import ErrorMap, map_exceptions, message_as
from ._store_lock import StoreLock

__all__ = ["WasmtimeEngine", "create_engine"]

_NAME: Final = "wasmtime"

# wasmtime_valkind_t
_K_I32: Final = 0
_K_I64: Final = 1
_K_F32: Final = 2
_K_F64: Final = 3
_K_V128: Final = 4
_K_FUNCREF: Final = 5
_K_EXTERNREF: Final = 6
# wasm_valkind_t (wasm.h), used to build value types
_WASM_KIND: Final = {"i32": 0, "i64": 1, "f32": 2, "f64": 3, "externref": 128, "anyfunc": 129}
# wasmtime_extern_kind_t
_E_FUNC: Final = 0
_E_GLOBAL: Final = 1
_E_TABLE: Final = 2
_E_MEMORY: Final = 3
_E_SHAREDMEMORY: Final = 4
_E_TAG: Final = 5

_TRAP_KINDS: Final[dict[str, exc.TrapKind]] = {
    "UNREACHABLE": "unreachable",
    "INTEGER_DIVISION_BY_ZERO": "integer_divide_by_zero",
    "INTEGER_OVERFLOW": "integer_overflow",
    "BAD_CONVERSION_TO_INTEGER": "invalid_conversion_to_integer",
    "MEMORY_OUT_OF_BOUNDS": "out_of_bounds_memory_access",
    "TABLE_OUT_OF_BOUNDS": "out_of_bounds_table_access",
    "INDIRECT_CALL_TO_NULL": "indirect_call_to_null",
    "BAD_SIGNATURE": "indirect_call_type_mismatch",
    "STACK_OVERFLOW": "stack_overflow",
    "OUT_OF_FUEL": "out_of_fuel",
    "INTERRUPT": "interrupt",
    "NULL_REFERENCE": "null_reference",
    "HEAP_MISALIGNED": "unaligned_atomic",
    "UNCAUGHT_EXCEPTION": "uncaught_exception",
}

# Engine configuration. Everything here goes into ``cache_key`` (artifacts depend on it).
_CONFIG: Final[dict[str, bool]] = {
    "memory_may_move": False,  # memoryviews handed out must never dangle
    "wasm_reference_types": True,
    "wasm_multi_value": True,
    "wasm_simd": True,
    "wasm_relaxed_simd": True,
    "wasm_bulk_memory": True,
    "wasm_exceptions": True,
    "wasm_tail_call": True,
    "wasm_memory64": True,
    "wasm_threads": True,
    "shared_memory": True,
    "wasm_function_references": True,
    "wasm_gc": True,
    "gc_support": True,
    "parallel_compilation": True,
    # Fuel instruments every loop and call (measured: a tight loop ~1.9x slower). Off by
    # default: only a runtime with ``Limits(fuel=...)`` needs it, and it gets a second engine
    # (``create_engine(fuel=True)``) whose compiled code is its own.
    "consume_fuel": False,
    # Epoch checks at function entries and loop heads (a tight loop ~1.4x slower): Ctrl-C,
    # ``Limits.timeout`` and JSPI time slicing (see ``_wasmtime_interrupts``).
    "epoch_interruption": True,
}


def _wasmer_may_load() -> bool:
    """Whether wasmer could be loaded into this process too (CPython <= 3.10 with wasmer)."""
    try:
        return importlib.util.find_spec("wasmer") is not None and sys.version_info < (3, 11)
    except (ImportError, ValueError):
        return False


# Signal-based traps (guard pages, ud2) make wasmtime install SIGSEGV/SIGILL handlers. wasmer
# installs its own handlers when first used and does not forward faults it doesn't own, so a
# wasmtime trap after wasmer was used kills the process ("Fatal Python error: Illegal
# instruction", measured with wasmer 1.1.0). Where wasmer can be loaded, wasmtime uses explicit
# checks instead (somewhat slower memory accesses, no signal handlers).
_SIGNALS_BASED_TRAPS: Final = not _wasmer_may_load()


_FORKED: Final = object()
"""``_Store.aio`` of the parent's stores in a forked child (see ``_after_fork_in_child``)."""


def _config_items(fuel: bool) -> dict[str, bool]:
    return {**_CONFIG, "consume_fuel": fuel}


def _make_config(fuel: bool = False) -> wasmtime.Config:
    config = wasmtime.Config()
    for key, value in _config_items(fuel).items():
        setattr(config, key, value)
    if _fork.forked():
        # The parallel-compilation thread pool does not survive fork: a forked child's engine
        # with it hangs in its first compile (measured), even a new engine's. Artifacts don't
        # depend on it (a parallel-compiled one loads into a serial engine: measured).
        config.parallel_compilation = False
    ffi.wasmtime_config_signals_based_traps_set(config.ptr(), _SIGNALS_BASED_TRAPS)
    # JSPI: host functions run on an async call's fiber; give Python a main thread's worth of
    # stack there (see _wasmtime_async: a fiber stack overflow aborts the process).
    ffi.wasmtime_config_async_stack_size_set(config.ptr(), _async.ASYNC_STACK_SIZE)
    return config


# -- exception mapping ----------------------------------------------------------------------------


def _trap_kind(trap: wasmtime.Trap) -> exc.TrapKind:
    try:
        code = trap.trap_code
    except Exception:  # an unknown code value (newer library): don't fail the mapping
        return "unknown"
    if code is None:
        return "unknown"
    return _TRAP_KINDS.get(code.name, "unknown")


_BACKTRACE_HEAD: Final = "error while executing at wasm backtrace:"
_CAUSE_HEAD: Final = "\n\nCaused by:\n"


def reason_first(message: str) -> str:
    """A trap message with its reason first: wasmtime writes "error while executing at wasm
    backtrace: <frames> Caused by: <reason>"; we write "<reason>", then the backtrace."""
    if not message.startswith(_BACKTRACE_HEAD):
        return message
    frames, sep, reason = message.rpartition(_CAUSE_HEAD)
    if not sep:
        return message
    reason = " ".join(line.strip() for line in reason.strip().splitlines())
    backtrace = frames[len(_BACKTRACE_HEAD) :].strip("\n")
    return f"{reason}\nwasm backtrace:\n{backtrace}" if backtrace else reason


def _runtime_error(trap: BaseException) -> exc.RuntimeError:
    assert isinstance(trap, wasmtime.Trap)
    try:
        message = trap.message
    except Exception:
        message = "wasm trap"
    return exc.RuntimeError(reason_first(message), trap=_trap_kind(trap))


def _errors_as(cls: type[BaseException]) -> ErrorMap:
    """``Trap`` as ``asyncwasm.RuntimeError`` with its kind, any other wasmtime error as
    ``cls`` (for ``map_exceptions``)."""
    return {wasmtime.Trap: _runtime_error, wasmtime.WasmtimeError: message_as(cls)}


_COMPILE_ERRORS: Final = _errors_as(exc.CompileError)
_RANGE_ERRORS: Final = _errors_as(exc.RangeError)
_LINK_ERRORS: Final = _errors_as(exc.LinkError)
_TYPE_ERRORS: Final = _errors_as(TypeError)


def _check_error(err: Any) -> None:
    """Raise a ``WasmtimeError`` for a non-null ``wasmtime_error_t*`` (owns and frees it)."""
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)


# -- per-thread host exception propagation ------------------------------------------------------


class _ThreadState(threading.local):
    def __init__(self) -> None:
        # A Python exception raised by a host function, waiting for the wasm call on this thread
        # that led to it to return.
        self.pending: BaseException | None = None
        # WasmThrowable exceptions thrown into wasm by host functions. Each entry: (store, the
        # exnref's raw GC id, the exnref kept rooted, the Python exception).
        self.thrown: list[tuple[_Store, int, Any, BaseException]] = []
        self.depth = 0


_tls = _ThreadState()


# -- stores and handles -------------------------------------------------------------------------

_ids = itertools.count(1)
_HOST_OWNERS: dict[int, weakref.ref[_Store]] = {}  # host func env id -> its store
_EXTERN_OWNERS: dict[int, weakref.ref[_Store]] = {}  # externref data id -> its store


# -- resource guards: the GC heap bound and Ctrl-C ----------------------------------------------

# wasmtime's C API has no GC heap setting, but its store limiter bounds every growth of a linear
# memory *and of the GC heap* by ``memory_size``. Unbounded, a 3 KB module whose global
# initialiser allocates a 3e9-element GC array took 2.8 GiB and 6 s before trapping. So every
# store gets this default (``Limits(memory=...)`` lowers it, in the same limiter: see ``_Store``):
# 2 GiB, the memory32 limit browsers long had. The price: a linear memory can't grow past 2 GiB
# (32,768 pages) on wasmtime either, where JS allows 4 GiB; wasmtime's C API offers no way to
# bound the GC heap alone.
STORE_MEMORY_LIMIT: Final = 2 << 30


def _record_pending(error: BaseException) -> None:
    """What stops a wasm call from a deadline callback (``KeyboardInterrupt``): ``_fail`` raises
    it once the call has unwound, as it does a host function's exception."""
    if _tls.pending is None:
        _tls.pending = error


class _Store(StoreHandle):
    """A ``wasmtime.Store`` with the lock that serialises its use across threads.

    It also owns the Python side of what lives in the store (host callables and externref
    objects), so reference cycles through them are visible to Python's garbage collector.
    """

    def __init__(
        self,
        engine: wasmtime.Engine,
        ticker: interrupts.EpochTicker,
        limits: Limits | None = None,
        fuel: bool = False,
    ) -> None:
        # JSPI (_wasmtime_async): never deleted while a call future of it is alive; ``aio`` is
        # its async state once it became an async store.
        self.engine = engine
        self.generation = _fork.generation()  # made in the parent: refused in a forked child
        self.store = _async.GuardedStore(engine)
        self.aio: Any = None
        # Re-entrant (wasm -> host -> wasm happens on the same thread), held by every call;
        # nearly free for the thread that made the store (see _store_lock).
        self.lock = StoreLock()
        self.interrupts = ticker.arm(self.store, self.lock)
        # The JS API's embedder limit on a table's length (asyncwasm#3): wasm's table.grow past
        # it gives -1, as in browsers. Using the limiter at all also caps instances, tables and
        # memories per store (wasmtime's default: 10,000 each), so those are lifted explicitly.
        # Limits.memory and Limits.table_elements go into the same limiter.
        memory_size, table_elements = STORE_MEMORY_LIMIT, MAX_TABLE_LENGTH
        if limits is not None:
            if limits.memory is not None:
                memory_size = min(memory_size, limits.memory)
            if limits.table_elements is not None:
                table_elements = min(table_elements, limits.table_elements)
            self.interrupts.timeout = limits.timeout
            self.interrupts.fuel = limits.fuel
        self.store.set_limits(
            table_elements=table_elements,
            instances=1 << 40,
            tables=1 << 40,
            memories=1 << 40,
            memory_size=memory_size,
        )
        self.ctx: Any = self.store._context()
        self.ctx_address: int = ctypes.cast(self.ctx, ctypes.c_void_p).value or 0
        if fuel:  # a fuel engine: each call from Python gets Limits.fuel (Interrupts.begin)
            _check_error(ffi.wasmtime_context_set_fuel(self.ctx, _async.FULL_TANK))
        self.host: dict[int, tuple[HostCallable, FuncType]] = {}
        self.externs: dict[int, object] = {}
        # Set once a module declaring a type other than a plain function type (numbers,
        # externref, funcref) is instantiated here: then a function of unknown type may have
        # v128 or GC types, and asking wasmtime for such a type aborts the process, so
        # ``func_type`` never asks it (see ``WasmtimeEngine.note_declared_types``).
        self.opaque = False
        # Whether a host function threw a wasm exception into this store that ``_tls.thrown``
        # still holds (see ``_clear_thrown``).
        self.thrown = False

    def __repr__(self) -> str:
        return f"<asyncwasm wasmtime store at {id(self):#x}>"


_LIVE_STORES: weakref.WeakSet[_Store] = weakref.WeakSet()


def _forked_object(what: str) -> exc.ForkedObjectError:
    return exc.ForkedObjectError(
        f"this {what} was made before the process forked: it belongs to the parent process's "
        "wasmtime state; make a new one in the child (a Module can be pickled or compiled again)"
    )


class _Handle:
    """An extern of a store: the store wrapper and a copy of wasmtime's value struct."""

    __slots__ = ("raw", "store")
    raw_type: ClassVar[Any]
    """The ctypes struct of ``raw`` (``wasmtime_func_t``...)."""
    extern_kind: ClassVar[int]
    union_field: ClassVar[str]
    """The ``wasmtime_extern_union`` field that holds ``raw``."""

    def __init__(self, store: _Store, raw: Any) -> None:
        self.store = store
        self.raw = self.raw_type.from_buffer_copy(raw)

    def extern(self) -> Any:
        """A ``wasmtime_extern_t`` for this handle (to pass as an import)."""
        union = ffi.wasmtime_extern_union(**{self.union_field: self.raw})
        return ffi.wasmtime_extern_t(self.extern_kind, union)


class _Func(_Handle, FuncHandle):
    __slots__ = ()
    raw_type = ffi.wasmtime_func_t
    extern_kind = _E_FUNC
    union_field = "func"

    def key(self) -> Hashable:
        return ("func", self.raw.store_id, getattr(self.raw, "__private"))

    def __repr__(self) -> str:
        return f"<wasmtime func {self.key()!r}>"


class _Global(_Handle, GlobalHandle):
    __slots__ = ("type",)
    raw_type = ffi.wasmtime_global_t
    extern_kind = _E_GLOBAL
    union_field = "global_"

    def __init__(self, store: _Store, raw: Any, type: GlobalType | None = None) -> None:
        super().__init__(store, raw)
        self.type = type


class _Table(_Handle, TableHandle):
    __slots__ = ("element", "type")
    raw_type = ffi.wasmtime_table_t
    extern_kind = _E_TABLE
    union_field = "table"

    def __init__(self, store: _Store, raw: Any, type: TableType | None = None) -> None:
        super().__init__(store, raw)
        self.type = type
        # An exported table's element type, once learnt from an element's kind (see _element).
        self.element: str | None = None if type is None else type.element


class _SharedMemoryPtr:
    """Owns one ``wasmtime_sharedmemory_t*`` reference."""

    def __init__(self, ptr: Any) -> None:
        self.ptr = ptr

    def __del__(self) -> None:
        ptr, self.ptr = self.ptr, None
        if ptr:
            ffi.wasmtime_sharedmemory_delete(ptr)


class _Memory(_Handle, MemoryHandle):
    __slots__ = ("shared",)
    raw_type = ffi.wasmtime_memory_t
    extern_kind = _E_MEMORY
    union_field = "memory"

    def __init__(
        self, store: _Store, raw: Any = None, shared: _SharedMemoryPtr | None = None
    ) -> None:
        self.store = store
        self.raw = None if raw is None else self.raw_type.from_buffer_copy(raw)
        self.shared = shared

    def extern(self) -> Any:
        if self.shared is not None:
            return ffi.wasmtime_extern_t(
                _E_SHAREDMEMORY, ffi.wasmtime_extern_union(sharedmemory=self.shared.ptr)
            )
        return super().extern()


class _Tag(_Handle, TagHandle):
    __slots__ = ("type",)
    raw_type = ffi.wasmtime_tag_t
    extern_kind = _E_TAG
    union_field = "tag"

    def __init__(self, store: _Store, raw: Any, type: TagType | None = None) -> None:
        super().__init__(store, raw)
        self.type = type

    def key(self) -> Hashable:
        anon = self.raw._anon_1
        return ("tag", anon.store_id, getattr(anon, "__private1"), getattr(self.raw, "__private2"))


class _Instance(InstanceHandle):
    __slots__ = ("raw", "store")

    def __init__(self, store: _Store, raw: Any) -> None:
        self.store = store
        self.raw = raw


class _Module(ModuleHandle):
    """A compiled module: engine-wide, shared by every store."""

    __slots__ = ("generation", "module")

    def __init__(self, module: wasmtime.Module) -> None:
        self.module = module
        self.generation = _fork.generation()


def _store_of(store: object) -> _Store:
    if not isinstance(store, _Store):
        raise TypeError(f"expected a wasmtime store handle, got {type(store).__name__}")
    if store.generation != _fork.generation():
        raise _forked_object("object")
    return store


def _module_of(module: object) -> _Module:
    if not isinstance(module, _Module):
        raise TypeError("expected a wasmtime module handle")
    if module.generation != _fork.generation():
        raise _forked_object("module")
    return module


def _same_store(store: _Store, handle: object, what: str) -> None:
    # Using an object with a store it doesn't belong to aborts the process in wasmtime.
    if not isinstance(handle, _Handle | _Instance):
        raise TypeError(f"expected a wasmtime {what} handle, got {type(handle).__name__}")
    if handle.store is not store:
        raise exc.LinkError(f"the {what} belongs to another store")


_H = TypeVar("_H", bound="_Handle")


def _checked(store: object, handle: object, cls: type[_H], what: str) -> tuple[_Store, _H]:
    """The store and ``handle`` as a ``cls``, refusing a handle of another kind or store."""
    s = _store_of(store)
    if not isinstance(handle, cls):
        raise TypeError(f"expected a wasmtime {what} handle")
    _same_store(s, handle, what)
    return s, handle


# -- value types --------------------------------------------------------------------------------


def _check_types(types: Sequence[str], what: str) -> None:
    for t in types:
        if t not in JS_VALUE_TYPES:
            raise exc.NotSupportedError(_NAME, f"{what} with value type {t!r}")


def _valtype(name: str) -> Any:
    """A new owned ``wasm_valtype_t*``; ``name`` must be in JS_VALUE_TYPES (checked before)."""
    if name == "v128":
        return ffi.wasmtime_wasm_valtype_v128()
    return ffi.wasm_valtype_new(_WASM_KIND[name])


def _valtype_vec(names: Sequence[str]) -> Any:
    vec = ffi.wasm_valtype_vec_t()
    ffi.wasm_valtype_vec_new_uninitialized(byref(vec), len(names))
    for i, name in enumerate(names):
        vec.data[i] = _valtype(name)
    return vec


_PLAIN: Final = frozenset({"i32", "i64", "f32", "f64", "externref", "anyfunc"})
_PLAIN_KINDS: Final = {0: "i32", 1: "i64", 2: "f32", 3: "f64", 128: "externref", 129: "anyfunc"}


def _plain_valtypes(vec: Any) -> tuple[str, ...] | None:
    """The names of a ``wasm_valtype_vec_t*`` of plain types (see ``func_type``'s warning)."""
    names: list[str] = []
    for i in range(vec.contents.size):
        name = _PLAIN_KINDS.get(int(ffi.wasm_valtype_kind(vec.contents.data[i])))
        if name is None:
            return None
        names.append(name)
    return tuple(names)


def _functype(t: FuncType) -> Any:
    """A new owned ``wasm_functype_t*``."""
    _check_types(t.params + t.results, "function types")
    params = _valtype_vec(t.params)
    results = _valtype_vec(t.results)
    return ffi.wasm_functype_new(byref(params), byref(results))


# -- values ---------------------------------------------------------------------------------------


def _externref_finalizer_py(data: int | None) -> None:
    if not data:
        return
    owner = _EXTERN_OWNERS.pop(data, None)
    store = owner() if owner is not None else None
    if store is not None:
        store.externs.pop(data, None)


def _to_raw(store: _Store, ctx: Any, t: str, value: EngineValue, out: Any) -> None:
    """Write ``value`` of type ``t`` into the ``wasmtime_val_t`` ``out`` (rooted: unroot later)."""
    if t == "i32":
        out.kind = _K_I32
        out.of.i32 = _int(value)
    elif t == "i64":
        out.kind = _K_I64
        out.of.i64 = _int(value)
    elif t == "f32":
        out.kind = _K_F32
        out.of.f32 = _float(value)
    elif t == "f64":
        out.kind = _K_F64
        out.of.f64 = _float(value)
    elif t == "v128":
        number = _int(value)
        if not 0 <= number < 1 << 128:
            raise TypeError("a v128 engine value is an int in [0, 2**128)")
        out.kind = _K_V128
        ctypes.memmove(ctypes.addressof(out.of.v128), number.to_bytes(16, "little"), 16)
    elif t == "externref":
        out.kind = _K_EXTERNREF
        if value is None:
            ctypes.memset(ctypes.addressof(out.of.externref), 0, ctypes.sizeof(out.of.externref))
            return
        key = next(_ids)
        store.externs[key] = value
        _EXTERN_OWNERS[key] = weakref.ref(store)
        if not ffi.wasmtime_externref_new(ctx, key, _externref_finalizer, byref(out.of.externref)):
            store.externs.pop(key, None)
            _EXTERN_OWNERS.pop(key, None)
            raise MemoryError("wasmtime could not allocate an externref")
    elif t == "anyfunc":
        out.kind = _K_FUNCREF
        if value is None:
            ctypes.memset(ctypes.addressof(out.of.funcref), 0, ctypes.sizeof(out.of.funcref))
            return
        if not isinstance(value, _Func):
            raise TypeError(f"an anyfunc engine value is a function handle or None, not {value!r}")
        if value.store is not store:
            raise TypeError("the function belongs to another store")
        out.of.funcref = value.raw
    else:
        raise exc.NotSupportedError(_NAME, f"values of type {t!r}")


def _int(value: object) -> int:
    if isinstance(value, int):
        return value
    raise TypeError(f"expected an int engine value, got {type(value).__name__}")


def _float(value: object) -> float:
    if isinstance(value, float | int):
        return float(value)
    raise TypeError(f"expected a float engine value, got {type(value).__name__}")


def _from_raw(store: _Store, ctx: Any, raw: Any) -> EngineValue:
    """The engine value in a ``wasmtime_val_t`` (does not unroot)."""
    kind = raw.kind
    if kind == _K_I32:
        return int(raw.of.i32)
    if kind == _K_I64:
        return int(raw.of.i64)
    if kind == _K_F32:
        return float(raw.of.f32)
    if kind == _K_F64:
        return float(raw.of.f64)
    if kind == _K_V128:
        return int.from_bytes(bytes(raw.of.v128), "little")
    if kind == _K_EXTERNREF:
        if raw.of.externref.store_id == 0:
            return None
        key: Any = ffi.wasmtime_externref_data(ctx, byref(raw.of.externref))  # int | None
        if not key:
            # An externref made by wasm itself (extern.convert_any): nothing Python can hold.
            raise exc.NotSupportedError(_NAME, "externref values not created by Python")
        return store.externs.get(key)
    if kind == _K_FUNCREF:
        if raw.of.funcref.store_id == 0:
            return None
        return _Func(store, raw.of.funcref)
    raise exc.NotSupportedError(_NAME, f"values of wasmtime kind {kind} at the boundary")


def _unroot(raw: Any) -> None:
    if raw.kind in (_K_EXTERNREF, _K_FUNCREF) or raw.kind > _K_EXTERNREF:
        ffi.wasmtime_val_unroot(byref(raw))


@contextlib.contextmanager
def _rooted(store: _Store, t: str, value: EngineValue) -> Iterator[Any]:
    """A ``wasmtime_val_t`` holding ``value`` (of type ``t``) for the block, unrooted after it.
    Hold the store's lock."""
    raw = ffi.wasmtime_val_t()
    _to_raw(store, store.ctx, t, value, raw)
    try:
        yield raw
    finally:
        _unroot(raw)


def _taken(store: _Store, raw: Any) -> EngineValue:
    """The engine value in a ``wasmtime_val_t`` wasmtime filled in, which is unrooted."""
    try:
        return _from_raw(store, store.ctx, raw)
    finally:
        _unroot(raw)


# -- host functions -------------------------------------------------------------------------------


def _make_trap(message: str) -> int:
    data = message.encode()
    trap = ffi.wasmtime_trap_new(data, len(data))
    return ctypes.cast(trap, ctypes.c_void_p).value or 0


def _throw(store: _Store, ctx: Any, error: WasmThrowable, thrown: Thrown) -> int:
    """Throw ``error`` into wasm as the wasm exception ``thrown``; the trap pointer to return."""
    tag, payload = thrown.tag, thrown.payload
    if not isinstance(tag, _Tag) or tag.store is not store:
        raise TypeError("the exception's tag is not a tag of this store")
    tag_type = thrown.type if thrown.type is not None else tag.type
    if tag_type is None:
        raise exc.NotSupportedError(_NAME, "throwing with a tag whose type is unknown")
    if len(payload) != len(tag_type.params):
        raise TypeError("the exception payload does not match its tag")
    fields = (ffi.wasmtime_val_t * len(payload))()
    done = 0
    try:
        for i, (t, v) in enumerate(zip(tag_type.params, payload, strict=True)):
            _to_raw(store, ctx, t, v, fields[i])
            done += 1
        exn = ffi.wasmtime_exnref_t()
        _check_error(ffi.wasmtime_exnref_new(ctx, byref(tag.raw), fields, len(payload), byref(exn)))
    finally:
        for i in range(done):
            _unroot(fields[i])
    trap = ffi.wasmtime_context_set_exception(ctx, byref(exn))
    # asyncwasm#3: the uncaught exception is this Python object only if it is this very wasm
    # exception (not one wasm caught and threw anew with an equal payload): compare GC ids.
    # ``exn`` stays rooted until the outermost call ends, so its id can't be reused meanwhile.
    raw_id = int(ffi.wasmtime_exnref_to_raw(ctx, byref(exn)))
    _tls.thrown.append((store, raw_id, exn, error))
    store.thrown = True
    return ctypes.cast(trap, ctypes.c_void_p).value or 0


def _held(s: _Store) -> bool:
    """Whether this thread is inside a call on ``s`` (holds its lock)."""
    return s.lock._is_owned()


def _after_throws(s: _Store) -> None:
    """After a synchronous call on ``s`` in which a host function threw a wasm exception:
    forget the thrown exceptions once this thread has left its outermost call on ``s``."""
    if not _held(s):
        _clear_thrown()


def _clear_thrown() -> None:
    """Forget (and unroot) the exceptions thrown into wasm, at the end of the outermost call:
    all of this thread's, except those of stores this thread is still inside a call of (it
    holds their lock). Synchronous calls call this only when their store has ``thrown``
    entries and they left its lock: no per-call depth count, thread-local or not."""
    thrown = _tls.thrown
    kept = [entry for entry in thrown if _held(entry[0])]
    _tls.thrown = kept
    for entry in thrown:
        entry[0].thrown = False
    for store, _raw_id, exn, _error in thrown:
        if _held(store):
            store.thrown = True
        else:
            ffi.wasmtime_exnref_unroot(byref(exn))


def _trampoline_py(
    env: int | None, caller: Any, params: Any, nparams: int, results: Any, nresults: int
) -> int:
    store: _Store | None = None
    ctx: Any = None
    try:
        owner = _HOST_OWNERS.get(env or 0)
        store = owner() if owner is not None else None
        if store is None:
            return _make_trap("asyncwasm: host function called after its store was freed")
        fn, ftype = store.host[env or 0]
        ctx = ffi.wasmtime_caller_context(caller)
        args = [_from_raw(store, ctx, params[i]) for i in range(nparams)]
        out = fn(*args)
        values = tuple(out)
        if len(values) != nresults:
            raise TypeError(f"host function returned {len(values)} values for {nresults} results")
        for i, value in enumerate(values):
            _to_raw(store, ctx, ftype.results[i], value, results[i])
        return 0
    except BaseException as error:
        if isinstance(error, WasmThrowable) and store is not None and ctx is not None:
            try:
                return _throw(store, ctx, error, error.thrown)
            except BaseException as throw_error:
                _tls.pending = throw_error
                return _make_trap("asyncwasm: could not throw the host exception")
        _tls.pending = error
        return _make_trap("asyncwasm: Python exception in host function")


def _host_finalizer_py(env: int | None) -> None:
    if not env:
        return
    owner = _HOST_OWNERS.pop(env, None)
    _RUNS.pop(env, None)
    store = owner() if owner is not None else None
    if store is not None:
        store.host.pop(env, None)


# The C callbacks, kept alive for the life of the process.
_FINALIZER_T: Final[Any] = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_externref_finalizer: Final[Any] = _FINALIZER_T(_externref_finalizer_py)
_host_finalizer: Final[Any] = _FINALIZER_T(_host_finalizer_py)
_trampoline: Final[Any] = ffi.wasmtime_func_callback_t(_trampoline_py)


# -- call failure ---------------------------------------------------------------------------------


def _fail(store: _Store, err: Any, trap: Any, default: Callable[[str], BaseException]) -> None:
    """Raise for a failed call or instantiation (``err``/``trap`` are owned raw pointers)."""
    error_obj = wasmtime.WasmtimeError._from_ptr(err) if err else None
    trap_obj = wasmtime.Trap._from_ptr(trap) if trap else None
    pending, _tls.pending = _tls.pending, None
    store.interrupts.rearm()
    if pending is not None:
        raise pending
    state = store.interrupts.state
    if state.timed_out:
        state.timed_out = False
        raise _timeout_error(store)
    if trap_obj is not None:
        if trap_obj.trap_code is None and ffi.wasmtime_context_has_exception(store.ctx):
            _raise_uncaught(store, trap_obj)
        raise _runtime_error(trap_obj) from trap_obj
    if error_obj is not None:
        message = exc.shorten(str(error_obj))
        if message.startswith("GC heap out of memory"):  # past STORE_MEMORY_LIMIT
            raise exc.RangeError(message) from error_obj
        raise default(message) from error_obj
    raise exc.PythonRuntimeError("wasmtime reported a failure without an error")


def _timeout_error(store: _Store) -> exc.RuntimeError:
    """What a call that ran past ``Limits.timeout`` raises."""
    return exc.RuntimeError(
        f"the wasm call ran past its timeout of {store.interrupts.timeout} s", trap="timeout"
    )


def _raise_uncaught(store: _Store, trap: wasmtime.Trap) -> None:
    exn = ffi.wasmtime_exnref_t()
    if not ffi.wasmtime_context_take_exception(store.ctx, byref(exn)):
        raise _runtime_error(trap) from trap
    try:
        raw_tag = ffi.wasmtime_tag_t()
        _check_error(ffi.wasmtime_exnref_tag(store.ctx, byref(exn), byref(raw_tag)))
        tag = _Tag(store, raw_tag)
        raw_id = int(ffi.wasmtime_exnref_to_raw(store.ctx, byref(exn)))
        count = ffi.wasmtime_exnref_field_count(store.ctx, byref(exn))
        payload: list[EngineValue] = []
        for i in range(count):
            field = ffi.wasmtime_val_t()
            _check_error(ffi.wasmtime_exnref_field(store.ctx, byref(exn), i, byref(field)))
            try:
                payload.append(_from_raw(store, store.ctx, field))
            finally:
                _unroot(field)
    finally:
        ffi.wasmtime_exnref_unroot(byref(exn))
    values = tuple(payload)
    for thrown_store, thrown_id, _exn, thrown in reversed(_tls.thrown):
        if thrown_store is store and thrown_id == raw_id:
            raise thrown
    raise UncaughtWasmException(tag, values) from trap


# -- per-signature fast paths (issue 10) ----------------------------------------------------------
# For signatures of numbers only (i32, i64, f32, f64), calls go through
# ``wasmtime_func_call_unchecked`` and host functions through ``wasmtime_func_new_unchecked``:
# values travel in a ``wasmtime_val_raw_t`` array with no kind tags and no rooting, which is
# safe because the types come from asyncwasm's decoder (never asked of wasmtime) and the public
# layer hands over canonical values (wrapped ints, rounded floats). Signatures with references or
# v128 keep the checked path (rooting, externref identity). Code is generated once per signature.

_RAW_FIELDS: Final = {"i32": "i32", "i64": "i64", "f32": "f32", "f64": "f64"}

# The C functions declared with plain pointer arguments: ctypes then passes precomputed
# addresses (ints) without building pointer objects on every call.
_call_unchecked: Final[Any] = ctypes.CFUNCTYPE(
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
)(("wasmtime_func_call_unchecked", ffi.dll))


def _unchecked(type: FuncType) -> bool:
    """Whether ``type`` takes the unchecked paths (numbers only)."""
    return all(t in _RAW_FIELDS for t in type.params + type.results)


_CALLERS: dict[tuple[FuncType, bool], Callable[..., Any]] = {}
_HOST_RUNS: dict[FuncType, Callable[..., Any]] = {}


def _generate(source: str, name: str, **names: Any) -> Callable[..., Any]:
    namespace: dict[str, Any] = dict(names)
    exec(compile(source, f"<asyncwasm wasmtime {name}>", "exec"), namespace)
    factory: Callable[..., Any] = namespace["factory"]
    return factory


def _call_source(type: FuncType, limited: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The code of a prepared call of ``type`` (``limited``: for a store with per-call limits):
    set-up lines, run once from the names of ``_call_values``, and the lines of a call, whose
    parameters are ``a0``, ``a1``, ..."""
    n = max(len(type.params), len(type.results))
    args = [f"a{i}" for i in range(len(type.params))]
    slots = [f"s{i}" for i in range(n)]
    results = [f"s{i}.{_RAW_FIELDS[t]}" for i, t in enumerate(type.results)]
    if not results:
        ret = "None"
    elif len(results) == 1:
        ret = results[0]
    else:
        ret = f"({', '.join(results)},)"
    call = [
        f"err = call(ctx, fa, aa, {n}, ta)",
        "if err or trap.value:",
        "    fail_unchecked(s, err, trap)",
    ]
    if limited:
        # Interrupts.begin/end: the per-call limits (fuel, deadline), Ctrl-C and the ticker.
        call = [
            "interrupts.begin(pctx)",
            "try:",
            *(f"    {line}" for line in call),
            "finally:",
            "    interrupts.end()",
        ]
    else:
        # No per-call limits: the store's deadline callback is armed for good, and all a call
        # needs for Ctrl-C is a running ticker (see _wasmtime_interrupts).
        call = ["if not ticker.recent:", "    ticker.touch()", *call]
    setup = (
        f"{''.join(f'{x}, ' for x in slots)}= slots" if slots else "pass",
        "ctx = s.ctx_address",
        "lock = s.lock",
        "interrupts = s.interrupts",
        "pctx = s.ctx",
    )
    # The store lock's fast path (see _store_lock): open only on the store's home thread and
    # while no other thread uses the store (nor JSPI, nor a fork: ``slow`` handles those).
    # The count comes first in the ``try``: no call between it and the ``try``'s start, so no
    # signal handler can raise after it and before the ``except`` that takes it back. If
    # another thread closed the fast path just before the count, the call backs off.
    body = (
        "if get_ident() != lock.fast:",
        f"    return slow({', '.join(args)})",
        "try:",
        "    lock.depth += 1",
        "    if lock.fast is None:",
        "        raise Closed",
        *(
            f"    {slot}.{_RAW_FIELDS[t]} = {a}"
            for slot, a, t in zip(slots, args, type.params, strict=False)
        ),
        *(f"    {line}" for line in call),
        f"    r = {ret}",
        "except BaseException as exc:",
        "    lock.depth -= 1",
        "    if exc.__class__ is Closed:",
        f"        return slow({', '.join(args)})",
        "    if s.thrown:",
        "        after_throws(s)",
        "    raise",
        "lock.depth -= 1",
        "if s.thrown:",
        "    after_throws(s)",
        "return r",
    )
    return setup, body


def _caller_factory(type: FuncType, limited: bool) -> Callable[..., Any]:
    """``factory(s, fa, aa, ta, trap, slots, slow) -> caller(*args)`` for ``type`` (see
    ``WasmtimeEngine.prepare_call``); ``limited``: for a store with per-call limits."""
    factory = _CALLERS.get((type, limited))
    if factory is not None:
        return factory
    setup, body = _call_source(type, limited)
    lines = [
        "def factory(s, fa, aa, ta, trap, slots, slow):",
        *(f"    {line}" for line in setup),
        f"    def caller({', '.join(f'a{i}' for i in range(len(type.params)))}):",
        *(f"        {line}" for line in body),
        "    return caller",
    ]
    factory = _generate("\n".join(lines), f"call {type}", **_CALL_GLOBALS)
    return _CALLERS.setdefault((type, limited), factory)


class _Closed(Exception):
    """A prepared call found the store lock's fast path closed after counting itself."""


_CALL_GLOBALS: Final[dict[str, Any]] = {
    "get_ident": threading.get_ident,
    "Closed": _Closed,
    "call": _call_unchecked,
    "fail_unchecked": None,  # set below its definition
    "after_throws": _after_throws,
    "ticker": interrupts.TICKER,
}


def _fail_unchecked(s: _Store, err: int | None, trap: ctypes.c_void_p) -> None:
    """``_fail`` for a prepared caller: ``err`` and the trap holder's value are addresses. The
    holder is cleared (it is reused by the next call, which wasmtime writes only on a trap)."""
    address, trap.value = trap.value, None
    _fail(
        s,
        ctypes.cast(err, POINTER(ffi.wasmtime_error_t)) if err else None,
        ctypes.cast(address, POINTER(ffi.wasm_trap_t)) if address else None,
        _call_error,
    )


def _host_run(type: FuncType) -> Callable[..., Any]:
    """``factory(fn) -> run(p)`` for a host function of ``type``: ``run`` reads the arguments
    from the raw array ``p``, calls ``fn`` with them and writes its results (a sequence of
    engine values) back."""
    factory = _HOST_RUNS.get(type)
    if factory is not None:
        return factory
    n = max(len(type.params), len(type.results))
    nres = len(type.results)
    slots = [f"s{i}" for i in range(n)]
    lines = [
        "def factory(fn):",
        "    def run(p):",
        *(f"        {slot} = p[{i}]" for i, slot in enumerate(slots)),
        "        out = fn("
        + ", ".join(f"{slot}.{_RAW_FIELDS[t]}" for slot, t in zip(slots, type.params, strict=False))
        + ")",
        f"        if len(out) != {nres}:",
        f"            raise TypeError(f'host function returned {{len(out)}} values for {nres} results')",
        *(
            f"        {slot}.{_RAW_FIELDS[t]} = out[{i}]"
            for i, (slot, t) in enumerate(zip(slots, type.results, strict=False))
        ),
        "    return run",
    ]
    factory = _generate("\n".join(lines), f"host {type}")
    return _HOST_RUNS.setdefault(type, factory)


_RUNS: dict[int, weakref.ref[Callable[..., None]]] = {}
"""Unchecked host functions by env id: their ``run`` (held strongly by the store's ``host``)."""


def _trampoline_unchecked_py(env: int, caller: Any, params: Any, nparams: int) -> int:
    try:
        _RUNS[env]()(params)  # type: ignore[misc]  # None (store gone): handled below
        return 0
    except BaseException as error:
        return _host_failed(env, caller, error)


def _host_failed(env: int, caller: Any, error: BaseException) -> int:
    """An unchecked host function raised ``error``: the trap pointer to return."""
    owner = _HOST_OWNERS.get(env or 0)
    store = owner() if owner is not None else None
    if store is None:
        return _make_trap("asyncwasm: host function called after its store was freed")
    if isinstance(error, WasmThrowable):
        try:
            return _throw(store, ffi.wasmtime_caller_context(caller), error, error.thrown)
        except BaseException as throw_error:
            _tls.pending = throw_error
            return _make_trap("asyncwasm: could not throw the host exception")
    _tls.pending = error
    return _make_trap("asyncwasm: Python exception in host function")


_trampoline_unchecked: Final[Any] = ffi.wasmtime_func_unchecked_callback_t(_trampoline_unchecked_py)
_CALL_GLOBALS["fail_unchecked"] = _fail_unchecked


class _CompileThreads:
    """wasmtime compiles a module's functions in parallel on a thread pool of its own (rayon's,
    one thread per CPU, made at the first parallel compile and kept). On a 2-CPU machine those
    threads took both CPUs and the event loop thread waited for a time slice: 16-25 ms of loop
    lateness while compiling QuickJS. So the pool's threads get a lower priority (``NICE``):
    the loop thread, waking up, then preempts them at once, and they still use every CPU the
    loop leaves idle. Measured alternative: one compile thread (``RAYON_NUM_THREADS=1``) was
    worse (slower compiles, and lateness no better on a loaded machine).

    The pool's threads are told apart as the threads, not made by Python, that appeared during
    a compile (Linux ``/proc/self/task``); nothing else is reniced. Elsewhere: no-op.
    """

    NICE: Final = 10

    # (module (func) (func)): enough functions for wasmtime to compile them in parallel.
    _TWO_FUNCTIONS: Final = bytes.fromhex(
        "0061736d0100000001040160000003030200000a070202000b02000b"
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._primed = False
        self._supported = hasattr(os, "setpriority") and os.path.isdir("/proc/self/task")

    def prime(self, engine: wasmtime.Engine) -> None:
        """Before the process's first compile: make the pool with a module too small to
        matter and lower its threads' priority, so that the first real compile (often the big
        one a service starts with) already runs below the loop thread."""
        if self._primed or self._done or not self._supported:
            return
        self._primed = True
        before = self._tasks()
        with contextlib.suppress(wasmtime.WasmtimeError):
            wasmtime.Module(engine, self._TWO_FUNCTIONS)
        self.lower_new(before)

    def snapshot(self) -> frozenset[int] | None:
        """The process's threads before a compile, while the pool is not found yet."""
        if self._done or not self._supported:
            return None
        return self._tasks()

    def lower_new(self, before: frozenset[int] | None) -> None:
        """Lower the priority of threads that appeared since ``before`` and are not Python's."""
        if before is None:
            return
        python = {t.native_id for t in threading.enumerate()}
        new = self._tasks() - before - python
        if not new:
            return
        with self._lock:
            if self._done:
                return
            self._done = True
        for tid in new:
            with contextlib.suppress(OSError):
                current = os.getpriority(os.PRIO_PROCESS, tid)
                os.setpriority(os.PRIO_PROCESS, tid, max(current, self.NICE))

    @staticmethod
    def _tasks() -> frozenset[int]:
        try:
            return frozenset(int(name) for name in os.listdir("/proc/self/task"))
        except (OSError, ValueError):
            return frozenset()


_compile_threads: Final = _CompileThreads()

# -- the engine -----------------------------------------------------------------------------------


class _ProcessEngine(wasmtime.Engine):
    """A process-wide wasmtime engine: never deleted.

    The epoch ticker holds its pointer for the life of the process (forked children included),
    and its modules and stores may outlive any Python reference to it. A keep-alive registered
    with ``atexit`` is not enough: multiprocessing's fork start method clears ``atexit`` in the
    child (CPython 3.13), which freed the parent's engine there while the child's ticker still
    advanced it (a segfault). Left to the OS at exit; this also keeps wasmtime-py's ``__del__``
    from running during interpreter teardown, after its FFI globals are gone.
    """

    def _delete(self, ptr: Any) -> None:
        pass


class WasmtimeEngine(Engine):
    name: ClassVar[str] = _NAME
    module_needs_store: ClassVar[bool] = False
    compile_in_process: ClassVar[bool] = False
    isolate_suspending_instances: ClassVar[bool] = True

    def __init__(self, fuel: bool = False) -> None:
        self._fuel = fuel
        self._engine: wasmtime.Engine = _ProcessEngine(_make_config(fuel))
        _fork.track(self)
        self._ticker = interrupts.EpochTicker(self._engine, _record_pending)
        self.features = EngineFeatures(
            host_tables=True,
            reference_values=True,
            v128=True,
            exceptions=True,
            fuel=True,  # Limits(fuel=...) runtimes use the fuel engine
            shared_memory=True,
            memory64=True,
            tail_calls=True,
            multi_value=True,
            jspi=True,
            preemption=True,
            timeouts=True,
        )

    def _after_fork_in_child(self) -> None:
        # A new engine (serial compilation, see _make_config); the parent's stores and modules
        # are refused from now on (their generation), and its stores are never deleted here.
        self._engine = _ProcessEngine(_make_config(self._fuel))
        # Ctrl-C: the parent's ticker advances the parent's engine (and its thread is gone).
        self._ticker = interrupts.EpochTicker(self._engine, _record_pending)
        for store in _LIVE_STORES:
            # Never deleted here: deleting a store with a suspended call aborts the process,
            # and its lock may be held by a thread that is gone.
            store.store.immortal = True
            # The prepared callers (_caller_factory) take their fast path only while the store
            # lock's is open: closed, they go to ``call``, which refuses the parent's store.
            store.aio = _FORKED
            store.lock.close_fast_path()

    @property
    def version(self) -> str:
        return _package_version()

    def cache_key(self) -> str:
        # Not parallel_compilation: it changes how, not what, wasmtime compiles.
        items = {**_config_items(self._fuel), "signals_based_traps": _SIGNALS_BASED_TRAPS}
        del items["parallel_compilation"]
        digest = hashlib.sha256(repr(sorted(items.items())).encode()).hexdigest()[:16]
        return f"{_NAME}-{self.version}-{digest}"

    # -- modules --------------------------------------------------------------------------------
    def validate(self, wasm: bytes) -> str | None:
        try:
            wasmtime.Module.validate(self._engine, bytes(wasm))
        except wasmtime.WasmtimeError as error:
            return exc.shorten(str(error))
        return None

    def compile(self, store: StoreHandle | None, wasm: bytes) -> _Module:
        _compile_threads.prime(self._engine)
        before = _compile_threads.snapshot()
        try:
            with map_exceptions(_COMPILE_ERRORS):
                return _Module(wasmtime.Module(self._engine, bytes(wasm)))
        finally:
            _compile_threads.lower_new(before)

    def serialize(self, module: ModuleHandle) -> bytes:
        module = _module_of(module)
        with map_exceptions(_COMPILE_ERRORS):
            return bytes(module.module.serialize())

    def deserialize(self, store: StoreHandle | None, artifact: bytes) -> _Module:
        with map_exceptions(_COMPILE_ERRORS):
            return _Module(wasmtime.Module.deserialize(self._engine, bytes(artifact)))

    @staticmethod
    def compile_artifact(wasm: bytes) -> bytes:
        data = bytes(wasm)
        with map_exceptions(_COMPILE_ERRORS):
            module = wasmtime.Module(wasmtime.Engine(_make_config()), data)
            return bytes(module.serialize())

    @property
    def consumes_fuel(self) -> bool:
        """Whether this is the fuel engine (``Limits.fuel`` needs it)."""
        return self._fuel

    # -- stores and instances -------------------------------------------------------------------
    def new_store(self, limits: Limits | None = None) -> _Store:
        store = _Store(self._engine, self._ticker, limits, self._fuel)
        _LIVE_STORES.add(store)
        return store

    def note_declared_types(self, store: StoreHandle, types: Sequence[object]) -> None:
        s = _store_of(store)
        if s.opaque:
            return
        for t in types:
            if not isinstance(t, FuncType) or not all(v in _PLAIN for v in t.params + t.results):
                s.opaque = True
                return

    def instantiate(
        self, store: StoreHandle, module: ModuleHandle, imports: Sequence[object]
    ) -> _Instance:
        s = _store_of(store)
        module = _module_of(module)
        for handle in imports:
            _same_store(s, handle, "import")
        if s.aio is not None:  # JSPI: an async store takes futures only
            return _Instance(s, _async.instantiate_async(s, module.module, imports))
        externs = (ffi.wasmtime_extern_t * len(imports))()
        for i, handle in enumerate(imports):
            externs[i] = handle.extern()  # type: ignore[attr-defined]
        raw = ffi.wasmtime_instance_t()
        trap = POINTER(ffi.wasm_trap_t)()
        try:
            with s.lock:
                s.interrupts.begin(s.ctx)
                try:
                    err = ffi.wasmtime_instance_new(
                        s.ctx, module.module.ptr(), externs, len(imports), byref(raw), byref(trap)
                    )
                    if err or trap:
                        _fail(s, err, trap, _instantiate_error)
                finally:
                    s.interrupts.end()
        finally:
            if s.thrown:
                _after_throws(s)
        return _Instance(s, raw)

    def instance_exports(self, store: StoreHandle, instance: InstanceHandle) -> list[Any]:
        s = _store_of(store)
        _same_store(s, instance, "instance")
        if not isinstance(instance, _Instance):
            raise TypeError("expected a wasmtime instance handle")
        out: list[Any] = []
        with s.lock:
            index = 0
            while True:
                item = ffi.wasmtime_extern_t()
                name = POINTER(ctypes.c_char)()
                name_len = ctypes.c_size_t()
                if not ffi.wasmtime_instance_export_nth(
                    s.ctx, byref(instance.raw), index, byref(name), byref(name_len), byref(item)
                ):
                    break
                out.append(self._wrap_extern(s, item))
                index += 1
        return out

    @staticmethod
    def _wrap_extern(s: _Store, item: Any) -> Any:
        kind = item.kind
        if kind == _E_FUNC:
            return _Func(s, item.of.func)
        if kind == _E_GLOBAL:
            return _Global(s, item.of.global_)
        if kind == _E_TABLE:
            return _Table(s, item.of.table)
        if kind == _E_MEMORY:
            return _Memory(s, item.of.memory)
        if kind == _E_SHAREDMEMORY:
            return _Memory(s, shared=_SharedMemoryPtr(item.of.sharedmemory))
        if kind == _E_TAG:
            return _Tag(s, item.of.tag)
        raise exc.NotSupportedError(_NAME, f"exports of extern kind {kind}")

    # -- functions ------------------------------------------------------------------------------
    def func_new(self, store: StoreHandle, type: FuncType, fn: HostCallable) -> _Func:
        s = _store_of(store)
        if not isinstance(type, FuncType):
            raise TypeError("expected an asyncwasm FuncType")
        if not callable(fn):
            raise TypeError("a host function must be callable")
        functype = _functype(type)  # checks the value types before wasmtime sees them
        try:
            env = next(_ids)
            raw = ffi.wasmtime_func_t()
            with s.lock:
                _HOST_OWNERS[env] = weakref.ref(s)
                if _unchecked(type):  # numbers only: raw values, code made for the signature
                    run = _host_run(type)(fn)
                    s.host[env] = (run, type)
                    _RUNS[env] = weakref.ref(run)
                    ffi.wasmtime_func_new_unchecked(
                        s.ctx, functype, _trampoline_unchecked, env, _host_finalizer, byref(raw)
                    )
                else:
                    s.host[env] = (fn, type)
                    ffi.wasmtime_func_new(
                        s.ctx, functype, _trampoline, env, _host_finalizer, byref(raw)
                    )
        finally:
            ffi.wasm_functype_delete(functype)
        return _Func(s, raw)

    def call(
        self, store: StoreHandle, func: FuncHandle, type: FuncType, args: Sequence[EngineValue]
    ) -> tuple[EngineValue, ...]:
        s, f = _checked(store, func, _Func, "function")
        # Kept although the public layer checks signatures too: a value type wasmtime can't
        # pass here would abort the process, not raise.
        _check_types(type.params + type.results, "calls")
        nparams, nresults = len(type.params), len(type.results)
        if s.aio is not None:  # JSPI: an async store takes futures only
            return _async.call_sync(s, f, type, args)
        params = (ffi.wasmtime_val_t * nparams)()
        results = (ffi.wasmtime_val_t * nresults)()
        trap = POINTER(ffi.wasm_trap_t)()
        try:
            with s.lock:
                done = 0
                s.interrupts.begin(s.ctx)
                try:
                    for i, (t, value) in enumerate(zip(type.params, args, strict=True)):
                        _to_raw(s, s.ctx, t, value, params[i])
                        done += 1
                    err = ffi.wasmtime_func_call(
                        s.ctx, byref(f.raw), params, nparams, results, nresults, byref(trap)
                    )
                    if err or trap:
                        _fail(s, err, trap, _call_error)
                    values: list[EngineValue] = []
                    try:
                        for i in range(nresults):
                            values.append(_from_raw(s, s.ctx, results[i]))
                    finally:
                        for i in range(nresults):
                            _unroot(results[i])
                finally:
                    s.interrupts.end()
                    for i in range(done):
                        _unroot(params[i])
        finally:
            if s.thrown:
                _after_throws(s)
        return tuple(values)

    def prepare_call(
        self, store: StoreHandle, func: FuncHandle, type: FuncType
    ) -> Callable[..., EngineValue]:
        values = self._call_values(store, func, type)
        if values is None:
            return super().prepare_call(store, func, type)
        s: _Store = values["s"]
        caller: Callable[..., EngineValue] = _caller_factory(type, s.interrupts.limited)(**values)
        return caller

    def prepare_inline_call(
        self, store: StoreHandle, func: FuncHandle, type: FuncType
    ) -> InlineCall | None:
        values = self._call_values(store, func, type)
        if values is None:
            return None
        limited = values["s"].interrupts.limited
        setup, body = _call_source(type, limited)
        return InlineCall(("wasmtime", type, limited), setup, body, values, _CALL_GLOBALS, True)

    def _call_values(
        self, store: StoreHandle, func: FuncHandle, type: FuncType
    ) -> dict[str, Any] | None:
        """What a prepared call of ``func`` (the names of ``_call_source``), or ``None`` for a
        type that takes the checked path."""
        s, f = _checked(store, func, _Func, "function")
        _check_types(type.params + type.results, "calls")
        nresults = len(type.results)
        if not _unchecked(type):
            return None

        def slow(*args: EngineValue) -> EngineValue:
            results = self.call(s, f, type, args)
            if nresults == 1:
                return results[0]
            return results if nresults else None

        # One raw array per function, reused by every call: wasmtime reads the arguments when
        # the call starts and writes the results when it ends, so even a recursive call of the
        # same function (wasm -> host -> this function) can't mix them up; the store lock keeps
        # other threads out. ``slow`` keeps ``f`` (whose struct's address is used) alive.
        n = max(len(type.params), nresults)
        array = (ffi.wasmtime_val_raw_t * max(n, 1))()
        trap = ctypes.c_void_p()
        return {
            "s": s,
            "fa": ctypes.addressof(f.raw),
            "aa": ctypes.addressof(array),
            "ta": ctypes.addressof(trap),
            "trap": trap,
            "slots": tuple(array[i] for i in range(n)),  # each keeps ``array`` alive
            "slow": slow,
        }

    # -- JSPI (_wasmtime_async) --------------------------------------------------------------------
    def func_new_suspending(
        self, store: StoreHandle, type: FuncType, start: SuspendingStart, *, blocking: bool = False
    ) -> _Func:
        s = _store_of(store)
        if not callable(start):
            raise TypeError("a host function must be callable")
        return _async.func_new_suspending(s, type, start, blocking)  # type: ignore[no-any-return]

    async def call_promising(
        self, store: StoreHandle, func: FuncHandle, type: FuncType, args: Sequence[EngineValue]
    ) -> tuple[EngineValue, ...]:
        s, f = _checked(store, func, _Func, "function")
        _check_types(type.params + type.results, "calls")
        return await _async.call_promising(s, f, type, args)

    def func_type(self, store: StoreHandle, func: FuncHandle) -> FuncType | None:
        """The type of a function that came out of a table, global or call (asyncwasm#3).

        DANGER: ``wasm_valtype_kind`` aborts the process on v128, exnref and GC reference
        types. So this asks wasmtime only in a store where every instantiated module declares
        nothing but plain function types (numbers, externref, funcref: see
        ``note_declared_types``), where no function can have such a type; elsewhere ``None``.
        Kinds are still mapped defensively: anything unexpected gives ``None`` ("can't tell").
        """
        s, f = _checked(store, func, _Func, "function")
        if s.opaque:
            return None
        with s.lock:
            functype = ffi.wasmtime_func_type(s.ctx, byref(f.raw))
        try:
            params = _plain_valtypes(ffi.wasm_functype_params(functype))
            results = _plain_valtypes(ffi.wasm_functype_results(functype))
        finally:
            ffi.wasm_functype_delete(functype)
        if params is None or results is None:
            return None
        return FuncType(params, results)

    def func_key(self, func: FuncHandle) -> Hashable:
        if not isinstance(func, _Func):
            raise TypeError("expected a wasmtime function handle")
        return func.key()

    # -- memories -------------------------------------------------------------------------------
    def memory_new(self, store: StoreHandle, type: MemoryType) -> _Memory:
        s = _store_of(store)
        limits = type.limits
        with map_exceptions(_RANGE_ERRORS):
            mtype = wasmtime.MemoryType(
                wasmtime.Limits(limits.minimum, limits.maximum),
                is_64=type.memory64,
                shared=type.shared,
                page_size_log2=type.page_size_log2,
            )
            if type.shared:
                ptr = POINTER(ffi.wasmtime_sharedmemory_t)()
                _check_error(
                    ffi.wasmtime_sharedmemory_new(self._engine.ptr(), mtype.ptr(), byref(ptr))
                )
                return _Memory(s, shared=_SharedMemoryPtr(ptr))
            raw = ffi.wasmtime_memory_t()
            with s.lock:
                _check_error(ffi.wasmtime_memory_new(s.ctx, mtype.ptr(), byref(raw)))
            return _Memory(s, raw)

    def memory_pages(self, store: StoreHandle, memory: MemoryHandle) -> int:
        s, m = _checked(store, memory, _Memory, "memory")
        if m.shared is not None:
            return int(ffi.wasmtime_sharedmemory_size(m.shared.ptr))
        with s.lock:
            return int(ffi.wasmtime_memory_size(s.ctx, byref(m.raw)))

    def memory_grow(self, store: StoreHandle, memory: MemoryHandle, delta: int) -> int:
        s, m = _checked(store, memory, _Memory, "memory")
        if delta < 0 or delta >= 1 << 64:
            raise exc.RangeError(f"bad memory growth {delta}")
        prev = ctypes.c_uint64()
        with map_exceptions(_RANGE_ERRORS):
            if m.shared is not None:
                _check_error(ffi.wasmtime_sharedmemory_grow(m.shared.ptr, delta, byref(prev)))
            else:
                with s.lock:
                    _check_error(ffi.wasmtime_memory_grow(s.ctx, byref(m.raw), delta, byref(prev)))
        return int(prev.value)

    def memory_view(self, store: StoreHandle, memory: MemoryHandle) -> memoryview:
        s, m = _checked(store, memory, _Memory, "memory")
        owner: object
        if m.shared is not None:
            ptr = ffi.wasmtime_sharedmemory_data(m.shared.ptr)
            size = int(ffi.wasmtime_sharedmemory_data_size(m.shared.ptr))
            owner = (s, m.shared)
        else:
            with s.lock:
                ptr = ffi.wasmtime_memory_data(s.ctx, byref(m.raw))
                size = int(ffi.wasmtime_memory_data_size(s.ctx, byref(m.raw)))
            owner = s
        address = ctypes.cast(ptr, ctypes.c_void_p).value
        if size == 0 or not address:
            return memoryview(bytearray())
        array = (ctypes.c_ubyte * size).from_address(address)
        # The view (and every slice of it) keeps the array alive, and the array keeps the store
        # alive: the memory can't be freed under a view. It can't move either (memory_may_move).
        array._asyncwasm_owner = owner  # type: ignore[attr-defined]
        return memoryview(array).cast("B")

    # -- tables -----------------------------------------------------------------------------------
    def table_new(self, store: StoreHandle, type: TableType, init: EngineValue) -> _Table:
        s = _store_of(store)
        if type.element not in ("externref", "anyfunc"):
            raise exc.NotSupportedError(_NAME, f"tables of {type.element!r}")
        if type.table64:
            raise exc.NotSupportedError(_NAME, "creating 64-bit tables from Python")
        # Limits are checked by the public layer (Table(): u32, maximum not below initial).
        limits = type.limits
        u32 = 1 << 32
        wl = ffi.wasm_limits_t(
            limits.minimum, u32 - 1 if limits.maximum is None else limits.maximum
        )
        ttype = ffi.wasm_tabletype_new(_valtype(type.element), byref(wl))
        raw = ffi.wasmtime_table_t()
        try:
            with s.lock, _rooted(s, type.element, init) as value, map_exceptions(_RANGE_ERRORS):
                _check_error(ffi.wasmtime_table_new(s.ctx, ttype, byref(value), byref(raw)))
        finally:
            ffi.wasm_tabletype_delete(ttype)
        return _Table(s, raw, type)

    def table_size(self, store: StoreHandle, table: TableHandle) -> int:
        s, t = _checked(store, table, _Table, "table")
        with s.lock:
            return int(ffi.wasmtime_table_size(s.ctx, byref(t.raw)))

    def table_get(self, store: StoreHandle, table: TableHandle, index: int) -> EngineValue:
        s, t = _checked(store, table, _Table, "table")
        if not 0 <= index < 1 << 64:
            raise exc.RangeError(f"table index {index} out of range")
        value = ffi.wasmtime_val_t()
        with s.lock:
            if not ffi.wasmtime_table_get(s.ctx, byref(t.raw), index, byref(value)):
                raise exc.RangeError(f"table index {index} out of range")
            return _taken(s, value)

    def _element(self, s: _Store, t: _Table, value: EngineValue) -> str:
        if t.element is not None:
            return t.element
        # An exported table: its element type is not read from wasmtime (type reads can abort).
        # A function handle fits funcref only, and any other non-None value externref only.
        if value is not None:
            return "anyfunc" if isinstance(value, _Func) else "externref"
        # None (null) fits both: the kind of an element says which (asyncwasm#3: a null written
        # as a funcref into an externref table was refused with a type mismatch).
        with s.lock:
            if not ffi.wasmtime_table_size(s.ctx, byref(t.raw)):
                return "anyfunc"  # nothing to learn from; see table_grow
            raw = ffi.wasmtime_val_t()
            if not ffi.wasmtime_table_get(s.ctx, byref(t.raw), 0, byref(raw)):
                return "anyfunc"
            kind: Any = raw.kind
            _unroot(raw)
        t.element = {_K_FUNCREF: "anyfunc", _K_EXTERNREF: "externref"}.get(kind)
        return t.element or "anyfunc"

    def table_set(
        self, store: StoreHandle, table: TableHandle, index: int, value: EngineValue
    ) -> None:
        s, t = _checked(store, table, _Table, "table")
        if not 0 <= index < 1 << 64:
            raise exc.RangeError(f"table index {index} out of range")
        with s.lock:
            element = self._element(s, t, value)
            with _rooted(s, element, value) as raw, map_exceptions(_RANGE_ERRORS):
                _check_error(ffi.wasmtime_table_set(s.ctx, byref(t.raw), index, byref(raw)))

    def table_grow(
        self, store: StoreHandle, table: TableHandle, delta: int, init: EngineValue
    ) -> int:
        s, t = _checked(store, table, _Table, "table")
        if not 0 <= delta < 1 << 64:
            raise exc.RangeError(f"bad table growth {delta}")
        prev = ctypes.c_uint64()
        with s.lock:
            element = self._element(s, t, init)
            # An empty exported table grown with null: its element type is still unknown, so
            # try funcref, then externref (a mismatch leaves the table unchanged).
            unknown = init is None and t.element is None
            for candidate in ("anyfunc", "externref") if unknown else (element,):
                with _rooted(s, candidate, init) as raw:
                    err = ffi.wasmtime_table_grow(
                        s.ctx, byref(t.raw), delta, byref(raw), byref(prev)
                    )
                if not err:
                    if unknown:
                        t.element = candidate
                    break
                error = wasmtime.WasmtimeError._from_ptr(err)
                if unknown and candidate == "anyfunc" and "type mismatch" in str(error):
                    continue
                raise exc.RangeError(exc.shorten(str(error))) from error
        return int(prev.value)

    # -- globals --------------------------------------------------------------------------------
    def global_new(self, store: StoreHandle, type: GlobalType, value: EngineValue) -> _Global:
        s = _store_of(store)
        _check_types((type.value,), "globals")
        gtype = ffi.wasm_globaltype_new(_valtype(type.value), 1 if type.mutable else 0)
        raw = ffi.wasmtime_global_t()
        try:
            with s.lock, _rooted(s, type.value, value) as val, map_exceptions(_LINK_ERRORS):
                _check_error(ffi.wasmtime_global_new(s.ctx, gtype, byref(val), byref(raw)))
        finally:
            ffi.wasm_globaltype_delete(gtype)
        return _Global(s, raw, type)

    def global_get(self, store: StoreHandle, glob: GlobalHandle) -> EngineValue:
        s, g = _checked(store, glob, _Global, "global")
        val = ffi.wasmtime_val_t()
        with s.lock:
            ffi.wasmtime_global_get(s.ctx, byref(g.raw), byref(val))
            return _taken(s, val)

    def global_set(self, store: StoreHandle, glob: GlobalHandle, value: EngineValue) -> None:
        s, g = _checked(store, glob, _Global, "global")
        if g.type is not None:
            vtype = g.type.value
        else:
            # An exported global: read the current value's kind rather than the global's type.
            current = ffi.wasmtime_val_t()
            with s.lock:
                ffi.wasmtime_global_get(s.ctx, byref(g.raw), byref(current))
                _unroot(current)
            kind: Any = current.kind  # a plain int at run time
            vtype = _KIND_NAMES.get(kind, "")
            _check_types((vtype,), "globals")
        with s.lock, _rooted(s, vtype, value) as val, map_exceptions(_TYPE_ERRORS):
            _check_error(ffi.wasmtime_global_set(s.ctx, byref(g.raw), byref(val)))

    # -- tags -----------------------------------------------------------------------------------
    def tag_new(self, store: StoreHandle, type: TagType) -> _Tag:
        s = _store_of(store)
        _check_types(type.params, "tags")
        functype = _functype(FuncType(type.params, ()))
        tagtype = ffi.wasm_tagtype_new(functype)  # takes ownership of functype
        raw = ffi.wasmtime_tag_t()
        try:
            with s.lock, map_exceptions(_LINK_ERRORS):
                _check_error(ffi.wasmtime_tag_new(s.ctx, tagtype, byref(raw)))
        finally:
            ffi.wasm_tagtype_delete(tagtype)
        return _Tag(s, raw, type)

    def tag_key(self, tag: TagHandle) -> Hashable:
        if not isinstance(tag, _Tag):
            raise TypeError("expected a wasmtime tag handle")
        return tag.key()


_KIND_NAMES: Final = {
    _K_I32: "i32",
    _K_I64: "i64",
    _K_F32: "f32",
    _K_F64: "f64",
    _K_V128: "v128",
    _K_FUNCREF: "anyfunc",
    _K_EXTERNREF: "externref",
}


def _call_error(message: str) -> BaseException:
    return exc.RuntimeError(message, trap="unknown")


def _instantiate_error(message: str) -> BaseException:
    """A failed instantiation: ``RangeError`` when a memory or table is over the store's limits
    (``Limits.memory``/``table_elements``), else ``LinkError``."""
    if "exceeds memory limits" in message or "exceeds table limits" in message:
        return exc.RangeError(message)
    return exc.LinkError(message)


def _package_version() -> str:
    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:
        return str(getattr(wasmtime, "__version__", "unknown"))


def create_engine(fuel: bool = False) -> WasmtimeEngine:
    """The engine; ``fuel=True``: the one configured with fuel metering (``Limits.fuel``)."""
    return WasmtimeEngine(fuel)


# Last: the JSPI driver imports this module's internals.
from . import _wasmtime_async as _async  # noqa: E402
