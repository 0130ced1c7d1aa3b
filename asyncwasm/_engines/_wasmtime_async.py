"""JSPI on wasmtime: suspending host functions and promising calls through the C API's async
calls (``wasmtime_func_call_async``, ``wasmtime_linker_define_async_func``,
``wasmtime_call_future_poll``, epoch-based async yields), driven from the event loop.

The rules wasmtime imposes, and how this module keeps each one (breaking any aborts the process
or is undefined behaviour):

One call future per store
    A store (``_Store``) becomes *async* the first time it gets a suspending host function or a
    promising call (``enable``); from then on **every** entry point on it (calls, instantiation)
    goes through a call future, and the store's ``_AsyncState.calls[0]`` is its one top-level
    future. A new entry while that future exists is never a second top-level future:

    * while the future is *running* (we are inside its poll: a host function on its fiber called
      back into the store), the nested call is a nested future, polled to completion on the
      spot: the future below it is mid-poll, not suspended, so this is plain re-entry;
    * while it is *parked at a suspending import* (its host call returned a continuation that
      reports "pending"), the call is **routed through that continuation**: we poll the parked
      future once, wasmtime calls our continuation callback with the store inside the host call,
      the callback runs the nested call to completion there and reports "still pending";
    * while it is *parked at a yield* (time slicing: the store's epoch deadline callback yields
      at each tick of the epoch while a promising call runs, see ``_wasmtime_interrupts``), there is no host call to route
      through, so the parked computation is first driven on (on the caller's thread, blocking)
      until it reaches a suspending import or finishes: exactly what would have happened without
      time slicing, as in JS, where a running call is never interrupted;
    * a second promising call waits (FIFO) until the store's future is gone, unless it is made
      by the coroutine that the innermost suspended call awaits (same task): then it is nested,
      made, polled and deleted only inside that call's host call (LIFO), and plain calls route
      through the innermost suspended call.

A store with async functions accepts no sync entry point
    Sync calls on an async store are futures polled to completion (yields ignored);
    instantiation goes through a linker (``wasmtime_linker_instantiate_async``).

A sync call reaching an async host function aborts
    Async host functions exist only in async stores, whose calls are never sync.

Deleting a store while a call on it is suspended aborts
    The wasmtime store is a ``GuardedStore``: if its finalizer runs while a future of it is
    alive (garbage cycles are finalized in any order), deletion is deferred until the last
    future is deleted. Futures are deleted by their driver's ``finally`` (normal end, error,
    cancellation, the coroutine being closed) or, at the latest, by their own finalizer.

Python on the fiber stack has ``async_stack_size - max_wasm_stack`` bytes
    Host functions called during an async call run on the call's fiber. The engine is
    configured with an async stack of ``ASYNC_STACK_SIZE`` (virtual memory: only touched pages
    are resident), leaving Python as much stack as a main thread has, and CPython's recursion
    limit stops deep recursion before it; tests/test_jspi_fences.py checks it in a child
    process. Awaitables returned by suspending imports are awaited on the loop's own stack.

Cancellation deletes the call future (measured safe both when parked at an import and at a
yield); what wasm wrote stays written and the store stays usable.

Cost per call (benchmarks/bench_jspi.py prints these figures). The C API's async paths are
called through ``void*`` prototypes (no ctypes pointer objects per call), values of i32, i64
and f64 signatures cross as one ``struct`` (un)pack (``_Codec``), and a suspension needs two
Python callbacks (the continuation, once pending, once done), no finalizer. Below that is the
floor of the mechanism itself, measured with minimal Python callbacks and no asyncwasm: ~1.5 us
for a call that never suspends, ~3 us when it calls an async import answering at once, ~3.7 us
when the import suspends once: an import awaiting ``anyio.sleep(0)`` (3.3 us in pure Python)
cannot cost less than ~2.1x that await through ctypes, before any bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import itertools
import math
import struct
import sys
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from ctypes import POINTER, byref
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel
import wasmtime
from wasmtime import _ffi as ffi

from .. import _exceptions as exc
from .._types import FuncType
from . import _wasmtime as wt
from ._base import EngineValue, SuspendingStart, WasmThrowable, close_awaitable
from ._errors import map_exceptions

if TYPE_CHECKING:
    from ._wasmtime import _Func, _Store

__all__ = [
    "ASYNC_STACK_SIZE",
    "GuardedStore",
    "call_promising",
    "call_sync",
    "func_new_suspending",
    "instantiate_async",
]

ASYNC_STACK_SIZE: Final = 8 << 20
"""Bytes of each async call's fiber stack (wasmtime's default is 2 MiB). Host functions running
on it get this minus the wasm stack limit (512 KiB): about what CPython's main thread has. Only
touched pages are resident (~20 kB per suspended call)."""

FULL_TANK: Final = (1 << 64) - 1
"""Fuel each store of the fuel engine starts with (each call from Python then gets its
``Limits.fuel``)."""

# Raw prototypes of the C API's async entry points: every pointer is a ``void*`` (an int), which
# ctypes passes without the type checks and conversions of the typed bindings (measured: 1.4 us
# instead of 2.6 us for create + poll + delete of a call that never suspends).
_V: Final = ctypes.c_void_p
_call_async: Final[Any] = ctypes.CFUNCTYPE(
    _V, _V, _V, _V, ctypes.c_size_t, _V, ctypes.c_size_t, _V, _V
)(("wasmtime_func_call_async", ffi.dll))
_future_poll: Final[Any] = ctypes.CFUNCTYPE(ctypes.c_bool, _V)(
    ("wasmtime_call_future_poll", ffi.dll)
)
_future_delete: Final[Any] = ctypes.CFUNCTYPE(None, _V)(("wasmtime_call_future_delete", ffi.dll))
_instantiate_async: Final[Any] = ctypes.CFUNCTYPE(_V, _V, _V, _V, _V, _V, _V)(
    ("wasmtime_linker_instantiate_async", ffi.dll)
)
_define_async_func: Final[Any] = ctypes.CFUNCTYPE(
    _V, _V, _V, ctypes.c_size_t, _V, ctypes.c_size_t, _V, _V, _V, _V
)(("wasmtime_linker_define_async_func", ffi.dll))
_ASYNC_CALLBACK_T: Final[Any] = ctypes.CFUNCTYPE(
    None, _V, _V, _V, ctypes.c_size_t, _V, ctypes.c_size_t, _V, _V
)
_CONTINUATION_T: Final[Any] = _V * 3
"""``wasmtime_async_continuation_t`` as three pointers: callback, env, finalizer."""
_TRAPS: Final = _V * 2
_PTR_SIZE: Final = ctypes.sizeof(_V)
_VAL_SIZE: Final = ctypes.sizeof(ffi.wasmtime_val_t)
_VAL_ARRAYS: dict[int, Any] = {}


def _vals(n: int) -> Any:
    """The ctypes type of ``n`` ``wasmtime_val_t`` (cached: making an array type is slow)."""
    t = _VAL_ARRAYS.get(n)
    if t is None:
        t = _VAL_ARRAYS[n] = ffi.wasmtime_val_t * n
    return t


_FIELDS: Final = {"i32": ("i", 20, 0), "i64": ("q", 16, 1), "f64": ("d", 16, 3)}
"""Per value type with a struct code that copies it exactly: (code, padding after the value in a
32-byte ``wasmtime_val_t``, its ``wasmtime_valkind_t``). f32 is left out: ``struct`` converts
through double, ctypes through a C cast, and NaN bits must cross unchanged."""


class _Codec:
    """A signature of i32, i64 and f64 only: its values cross as one ``struct`` (un)pack over a
    ``wasmtime_val_t`` array (the kind byte at offset 0, the value at 8) instead of a ctypes
    object per value (measured: ~1 us per import call)."""

    __slots__ = ("nparams", "nresults", "param_kinds", "params_in", "params_out", "result_kinds",
                 "results_in", "results_out")  # fmt: skip

    def __init__(self, type: FuncType) -> None:
        def formats(types: Sequence[str]) -> tuple[struct.Struct, struct.Struct, tuple[int, ...]]:
            read = "".join(f"8x{_FIELDS[t][0]}{_FIELDS[t][1]}x" for t in types)
            write = "".join(f"B7x{_FIELDS[t][0]}{_FIELDS[t][1]}x" for t in types)
            kinds = tuple(_FIELDS[t][2] for t in types)
            return struct.Struct("=" + read), struct.Struct("=" + write), kinds

        self.nparams, self.nresults = len(type.params), len(type.results)
        self.params_in, self.params_out, self.param_kinds = formats(type.params)
        self.results_in, self.results_out, self.result_kinds = formats(type.results)


_CODECS: dict[FuncType, _Codec | None] = {}


_CODECS_BY_ID: dict[int, tuple[FuncType, _Codec | None]] = {}


def _codec(type: FuncType) -> _Codec | None:
    """The ``_Codec`` of ``type``, or None when a value type of it has none (cached, first by
    the object's identity: hashing a ``FuncType`` costs more than the rest of the lookup)."""
    entry = _CODECS_BY_ID.get(id(type))
    if entry is not None and entry[0] is type:
        return entry[1]
    if type in _CODECS:
        codec = _CODECS[type]
    else:
        codec = _Codec(type) if all(t in _FIELDS for t in type.params + type.results) else None
        codec = _CODECS.setdefault(type, codec)
    if len(_CODECS_BY_ID) > 4096:  # types of modules long gone: start again
        _CODECS_BY_ID.clear()
    _CODECS_BY_ID[id(type)] = (type, codec)  # holds ``type``: its id is not reused meanwhile
    return codec


def _interleave(kinds: tuple[int, ...], values: Sequence[Any]) -> Sequence[Any]:
    if len(kinds) == 1:
        return (kinds[0], values[0])
    return [x for pair in zip(kinds, values, strict=True) for x in pair]


_BYTES: dict[int, Any] = {}


def _memory(address: int, size: int) -> Any:
    """A writable ctypes view of ``size`` bytes at ``address``."""
    t = _BYTES.get(size)
    if t is None:
        t = _BYTES[size] = ctypes.c_char * size
    return t.from_address(address)


_RUNNING: Final = "running"
_AT_IMPORT: Final = "import"
_AT_YIELD: Final = "yield"
_DONE: Final = "done"


class GuardedStore(wasmtime.Store):
    """A ``wasmtime.Store`` that is never deleted while one of its call futures is alive."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        super().__init__(engine)
        self.live_futures = 0
        self.orphan: Any = None
        # Set in a forked child on the parent's stores: never deleted there.
        self.immortal = False

    def _delete(self, ptr: Any) -> None:
        if self.immortal:
            return
        if self.live_futures:
            self.orphan = ptr  # deleted with the last future (see _Call.delete)
            return
        ffi.wasmtime_store_delete(ptr)


class _AsyncState:
    """The async side of one store."""

    __slots__ = ("calls", "frames", "waiters")

    def __init__(self) -> None:
        # The store's live promising call futures, outermost first: calls[0] is the one future
        # of the store; each later one was made (and is only ever polled) inside the host call
        # its predecessor is suspended in, by the coroutine that host call awaits: LIFO nesting,
        # as a Rust async host function calling back through its Caller.
        self.calls: list[_Call] = []
        # One entry per active call on this store, innermost last: True for the promising call
        # itself, False for anything else (a plain call made from a host function, a routed
        # call, an instantiation). A suspending import may suspend only when the innermost is
        # True: there is no Python frame between it and the promising call (JS: SuspendError).
        self.frames: list[bool] = []
        # Promising calls waiting for the store's future to go (one future per store).
        self.waiters: deque[anyio.Event] = deque()


def enable(s: _Store) -> _AsyncState:
    """Make ``s`` an async store (idempotent): from now on every entry goes through futures."""
    state: _AsyncState | None = s.aio
    if state is None:
        with s.lock:
            # Time slicing: the epoch deadline callback yields at each tick (not fuel, which
            # would slow every wasmtime user down).
            s.interrupts.state.slicing = True
            # From now on, code here takes the store lock's RLock directly (cheaper).
            s.lock.close_fast_path()
            state = s.aio = _AsyncState()
    return state


# -- futures --------------------------------------------------------------------------------------


class _Pending:
    """A suspending import waiting for its awaitable (the continuation's state)."""

    __slots__ = (
        "awaitable",
        "call",
        "error",
        "key",
        "results",
        "results_ptr",
        "store",
        "trap_ret",
        "type",
    )

    def __init__(
        self,
        store: _Store,
        awaitable: Awaitable[Any],
        type: FuncType,
        results_ptr: Any,
        trap_ret: Any,
    ) -> None:
        self.store = store
        self.awaitable: Awaitable[Any] | None = awaitable
        self.type = type
        self.results_ptr = results_ptr
        self.trap_ret = trap_ret
        self.results: Sequence[EngineValue] | None = None
        self.error: BaseException | None = None
        self.call: _Call | None = None
        self.key = 0  # in _PENDING (0: not there)


class _Call:
    """One call future of a store, with everything it points to kept alive until deleted."""

    __slots__ = (
        "__weakref__",
        "default",
        "fresh",
        "future",
        "keep",
        "pending",
        "promising",
        "results",
        "routed",
        "state",
        "store",
        "task",
        "traps",
    )

    def __init__(self, store: _Store, promising: bool) -> None:
        self.store = store
        self.promising = promising
        # Where wasmtime writes a failure: [0] the trap, [1] the error (owned: see _finish).
        self.traps = _TRAPS()
        self.future: int | None = None
        self.keep: tuple[Any, ...] = ()
        self.state = _RUNNING
        self.pending: _Pending | None = None
        self.routed: Callable[[], None] | None = None
        self.results: Any = None
        self.task: object = None  # the anyio task driving a promising call
        # A call from Python, not nested in one on the store: its first poll arms the store's
        # per-call limits afresh (fuel, timeout).
        self.fresh = False
        # The asyncwasm class of a failure that is not a trap (a call: RuntimeError).
        self.default: Callable[[str], BaseException] = wt._call_error

    def start(self, future: int | None, *keep: Any) -> None:
        if not future:
            raise MemoryError("wasmtime could not make a call future")
        self.keep = keep
        self.future = future
        self.store.store.live_futures += 1

    def poll(self) -> bool:
        """Poll once (the store's lock held, the frame pushed by the caller); True when done."""
        self.state = _RUNNING
        interrupts = self.store.interrupts
        interrupts.begin(self.store.ctx, self.fresh)
        self.fresh = False
        try:
            done = bool(_future_poll(self.future))
        except BaseException:  # a KeyboardInterrupt raised in a ctypes callback: keep state sane
            self.state = _AT_YIELD if self.pending is None else _AT_IMPORT
            raise
        finally:
            interrupts.end()
        if done:
            self.state = _DONE
        else:
            self.state = _AT_YIELD if self.pending is None else _AT_IMPORT
        return done

    def delete(self) -> None:
        future, self.future = self.future, None
        if future is None:
            return
        _future_delete(future)
        guarded: GuardedStore = self.store.store
        guarded.live_futures -= 1
        if not guarded.live_futures and guarded.orphan is not None:
            orphan, guarded.orphan = guarded.orphan, None
            ffi.wasmtime_store_delete(orphan)

    def __del__(self) -> None:
        # At interpreter teardown the bindings may be gone already.
        with contextlib.suppress(Exception):
            self.delete()


def _finish(call: _Call) -> None:
    """After the future is done: raise what it failed with (owns ``traps``)."""
    traps = call.traps
    trap_address, err_address = traps[0], traps[1]
    if trap_address or err_address:
        traps[0] = traps[1] = None
        err = ctypes.cast(err_address, POINTER(ffi.wasmtime_error_t)) if err_address else None
        trap = ctypes.cast(trap_address, POINTER(ffi.wasm_trap_t)) if trap_address else None
        s = call.store
        if (
            err
            and not trap
            and wt._tls.pending is None
            and ffi.wasmtime_context_has_exception(s.ctx)
        ):
            # An uncaught wasm exception: async calls report it as an error, not a trap.
            wt._raise_uncaught(s, wasmtime.WasmtimeError._from_ptr(err))  # type: ignore[arg-type]
        wt._fail(call.store, err, trap, call.default)


def _poll_at(state: _AsyncState, k: int) -> bool:
    """Poll ``state.calls[k]`` once; a nested call is polled inside the host call its parent is
    suspended in (routed through the parent's continuation). True when it is done."""
    call = state.calls[k]
    if k == 0:
        return call.poll()
    parent = state.calls[k - 1]
    outcome: list[bool] = []
    parent.routed = lambda: outcome.append(call.poll())
    try:
        _poll_at(state, k - 1)
    finally:
        parent.routed = None
    if not outcome:
        raise exc.PythonRuntimeError("asyncwasm: the nested call was not polled")
    return outcome[0]


def _inside(state: _AsyncState, k: int, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` inside the host call ``state.calls[k]`` is suspended in (its continuation);
    returns what ``fn`` returned, raises what it raised."""
    call = state.calls[k]
    outcome: list[Any] = []

    def routed() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as error:
            outcome.append((False, error))

    call.routed = routed
    state.frames.append(True)
    try:
        _poll_at(state, k)
    finally:
        state.frames.pop()
        call.routed = None
    if not outcome:
        raise exc.PythonRuntimeError("asyncwasm: the routed call did not run")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _run_to_completion(s: _Store, state: _AsyncState, make: Callable[[_Call], None]) -> _Call:
    """Run one non-promising operation on async store ``s`` to its end, whatever is in flight
    there (see the module docstring); returns the finished ``_Call``. The lock is held."""
    k = len(state.calls) - 1
    current = state.calls[k] if k >= 0 else None
    if current is not None and current.state == _AT_YIELD:
        # Parked mid-computation: drive it on until it reaches an import or ends.
        state.frames.append(True)
        try:
            while not _poll_at(state, k) and current.state == _AT_YIELD:
                pass
        finally:
            state.frames.pop()
        if current.state == _DONE:
            # Its driver reads the results; the future itself must go first.
            _delete_at(state, k)
    if current is not None and current.state == _AT_IMPORT:
        return _inside(state, k, lambda: _nested(s, state, make))  # type: ignore[no-any-return]
    # No future, or the innermost is mid-poll below us (plain re-entry from a host function).
    return _nested(s, state, make)


def _delete_at(state: _AsyncState, k: int) -> None:
    """Delete the future of ``state.calls[k]``, inside its parent's host call when nested."""
    call = state.calls[k]
    if k == 0:
        call.delete()
    else:
        _inside(state, k - 1, call.delete)


def _nested(s: _Store, state: _AsyncState, make: Callable[[_Call], None]) -> _Call:
    call = _Call(s, promising=False)
    call.fresh = not state.calls
    state.frames.append(False)
    wt._tls.depth += 1
    try:
        make(call)
        while not call.poll():
            pass
        _finish(call)
        return call
    finally:
        call.delete()
        state.frames.pop()
        wt._tls.depth -= 1
        if wt._tls.depth == 0:
            wt._clear_thrown()


# -- calls --------------------------------------------------------------------------------------


def _params(s: _Store, type: FuncType, args: Sequence[EngineValue]) -> tuple[Any, int]:
    """One array for the call's parameters, then its results; the parameters written (rooted:
    the count of them is returned, to unroot after the call)."""
    n = len(type.params)
    vals = _vals(n + len(type.results))()
    codec = _codec(type)
    if codec is not None and n and len(args) == n:
        try:
            codec.params_out.pack_into(vals, 0, *_interleave(codec.param_kinds, args))
            return vals, 0  # numbers: nothing rooted
        except (struct.error, TypeError):
            pass  # not canonical engine values: the checks below say what is wrong
    done = 0
    try:
        for i, (t, value) in enumerate(zip(type.params, args, strict=True)):
            wt._to_raw(s, s.ctx, t, value, vals[i])
            done += 1
    except BaseException:
        for i in range(done):
            wt._unroot(vals[i])
        raise
    return vals, done


def _results(s: _Store, vals: Any, type: FuncType) -> tuple[EngineValue, ...]:
    """The results of a call of ``type`` (after its parameters in ``vals``), unrooted."""
    first, n = len(type.params), len(type.results)
    codec = _codec(type)
    if codec is not None:
        return codec.results_in.unpack_from(vals, first * _VAL_SIZE)
    if n == 1:
        raw = vals[first]
        if raw.kind <= wt._K_F64:  # a number: nothing rooted
            return (wt._from_raw(s, None, raw),)
    values: list[EngineValue] = []
    try:
        for i in range(first, first + n):
            values.append(wt._from_raw(s, s.ctx, vals[i]))
    finally:
        for i in range(first, first + n):
            wt._unroot(vals[i])
    return tuple(values)


def _start(call: _Call, s: _Store, func: _Func, type: FuncType, vals: Any) -> None:
    """Make ``call`` the future of a call of ``func`` (arguments, then room for the results, in
    ``vals``). The store's lock is held."""
    nparams = len(type.params)
    base = ctypes.addressof(vals)
    traps = ctypes.addressof(call.traps)
    future = _call_async(
        s.ctx_address,
        ctypes.addressof(func.raw),
        base,
        nparams,
        base + nparams * _VAL_SIZE,
        len(type.results),
        traps,
        traps + _PTR_SIZE,
    )
    call.results = vals
    call.start(future, func, vals)


def _call_maker(s: _Store, func: _Func, type: FuncType, vals: Any) -> Callable[[_Call], None]:
    return lambda call: _start(call, s, func, type, vals)


def call_sync(
    s: _Store, func: _Func, type: FuncType, args: Sequence[EngineValue]
) -> tuple[EngineValue, ...]:
    """``Engine.call`` on an async store."""
    state = enable(s)
    with s.lock.rlock:
        params, rooted = _params(s, type, args)
        try:
            call = _run_to_completion(s, state, _call_maker(s, func, type, params))
            return _results(s, call.results, type)
        finally:
            for i in range(rooted):
                wt._unroot(params[i])


def import_names(module: wasmtime.Module) -> list[tuple[bytes, bytes]]:
    """The (module, name) of every import, in order; reads names only, never types (reading
    some types aborts the process)."""
    vec = ffi.wasm_importtype_vec_t()
    ffi.wasmtime_module_imports(module.ptr(), byref(vec))
    try:
        out = []
        for i in range(vec.size):
            it = vec.data[i]
            m = ffi.wasm_importtype_module(it).contents
            n = ffi.wasm_importtype_name(it).contents
            out.append((ctypes.string_at(m.data, m.size), ctypes.string_at(n.data, n.size)))
        return out
    finally:
        ffi.wasm_importtype_vec_delete(byref(vec))


def instantiate_async(s: _Store, module: wasmtime.Module, imports: Sequence[Any]) -> Any:
    """``Engine.instantiate`` on an async store: through a linker holding exactly the imports."""
    state = enable(s)
    names = import_names(module)
    if len(names) != len(imports):
        raise exc.LinkError(f"the module has {len(names)} imports, {len(imports)} given")
    linker = ffi.wasmtime_linker_new(s.engine.ptr())
    try:
        seen: dict[tuple[bytes, bytes], Any] = {}
        with s.lock.rlock:
            for (mod, name), handle in zip(names, imports, strict=True):
                if (mod, name) in seen:
                    if seen[(mod, name)] is not handle:
                        raise exc.LinkError(
                            f"import {mod.decode(errors='replace')}.{name.decode(errors='replace')}"
                            ": one name imported twice with different values is not supported "
                            "in an instance group that uses JSPI on wasmtime"
                        )
                    continue
                seen[(mod, name)] = handle
                item = handle.extern()
                with map_exceptions(wt._LINK_ERRORS):
                    wt._check_error(
                        ffi.wasmtime_linker_define(
                            linker, s.ctx, mod, len(mod), name, len(name), byref(item)
                        )
                    )
            raw = ffi.wasmtime_instance_t()

            def make(call: _Call) -> None:
                call.default = exc.LinkError
                traps = ctypes.addressof(call.traps)
                future = _instantiate_async(
                    linker, s.ctx, module.ptr(), byref(raw), traps, traps + _PTR_SIZE
                )
                call.start(future, module, raw)

            _run_to_completion(s, state, make)
        return raw
    finally:
        ffi.wasmtime_linker_delete(linker)


async def call_promising(
    s: _Store, func: _Func, type: FuncType, args: Sequence[EngineValue]
) -> tuple[EngineValue, ...]:
    """``Engine.call_promising``: drive one call future from the event loop."""
    state = s.aio or enable(s)
    me = _task_id()
    nested = bool(state.calls) and state.calls[-1].task == me
    if nested:
        # Made by the coroutine that this store's innermost suspended call awaits (same task):
        # waiting for the store would wait for ourselves. The call is made, polled and deleted
        # inside that call's host call (see _AsyncState.calls).
        await anyio.lowlevel.checkpoint()
        if not (state.calls and state.calls[-1].task == me and state.calls[-1].state == _AT_IMPORT):
            raise exc.PythonRuntimeError("asyncwasm: the suspended call went away")
    else:
        while state.calls or state.waiters:
            # One future per store: wait our turn (FIFO).
            event = anyio.Event()
            state.waiters.append(event)
            try:
                await event.wait()
            finally:
                if event in state.waiters:
                    state.waiters.remove(event)
            if not state.calls:
                break
    call = _Call(s, promising=True)
    call.task = me
    call.fresh = not nested
    calls, frames, tls = state.calls, state.frames, wt._tls
    with s.lock.rlock:
        params, rooted = _params(s, type, args)
        if nested:
            try:
                _inside(state, len(calls) - 1, lambda: _start(call, s, func, type, params))
            except BaseException:
                for i in range(rooted):
                    wt._unroot(params[i])
                raise
        else:
            _start(call, s, func, type, params)
    calls.append(call)
    k = len(calls) - 1
    try:
        while True:
            if call.state == _AT_IMPORT and call.pending is not None:
                pending = call.pending
                awaitable, pending.awaitable = pending.awaitable, None
                if awaitable is not None:
                    try:
                        if s.interrupts.timeout is None:
                            pending.results = await awaitable
                        else:
                            pending.results = await _within_timeout(s, awaitable)
                    except Exception as error:
                        pending.error = error
            elif call.state == _AT_YIELD:
                # Time slice: let other tasks run. Twice: asyncio collects the timers that fell
                # due during the slice at the start of the next loop iteration, *after* our
                # wake-up was queued, so with one checkpoint the next slice ran before them and
                # a timer waited two slices (measured: 2.2 ms lateness with 1 ms slices).
                await anyio.lowlevel.checkpoint()
                await anyio.lowlevel.checkpoint()
            if call.state == _DONE:
                break  # finished by a plain call that drove it on
            with s.lock.rlock:
                frames.append(True)
                tls.depth += 1
                try:
                    done = call.poll() if k == 0 else _poll_at(state, k)
                finally:
                    frames.pop()
                    tls.depth -= 1
            if done:
                break
        with s.lock.rlock:
            _finish(call)
            return _results(s, params, type)
    finally:
        with s.lock.rlock:
            try:
                if call.future is not None:
                    _delete_at(state, k)  # on cancellation too: safe, the store stays usable
            finally:
                call.delete()  # no-op unless routing failed
                if call.pending is not None:
                    _forget(call.pending)  # the future is gone: its continuation too
                    if call.pending.awaitable is not None:
                        close_awaitable(call.pending.awaitable)  # cancelled before awaited
                call.pending = None
                del calls[k:]
                for i in range(rooted):
                    wt._unroot(params[i])
                if tls.depth == 0 and tls.thrown:
                    wt._clear_thrown()
        if not calls and state.waiters:
            state.waiters.popleft().set()


async def _within_timeout(s: _Store, awaitable: Awaitable[Any]) -> Any:
    """``await awaitable``; on a store with ``Limits.timeout``, only until the call's deadline:
    past it, the awaitable is cancelled and the import fails into wasm with the timeout error
    (time suspended counts toward the timeout, and the call stops then, not when it resumes)."""
    deadline = s.interrupts.state.deadline
    if deadline == math.inf:
        return await awaitable
    with anyio.move_on_after(deadline - time.monotonic()) as scope:
        return await awaitable
    if scope.cancelled_caught:
        raise wt._timeout_error(s)
    return None  # pragma: no cover - the body returned or raised


def _task_id() -> int:
    """``anyio.get_current_task().id`` (the id of the running task), without building a
    ``TaskInfo`` (measured: 1.1 us of a promising call on asyncio)."""
    if asyncio._get_running_loop() is not None:
        return id(asyncio.current_task())
    trio = sys.modules.get("trio")
    if trio is not None:
        with contextlib.suppress(RuntimeError):  # trio imported, another loop running
            return id(trio.lowlevel.current_task())
    return anyio.get_current_task().id


# -- suspending host functions ----------------------------------------------------------------------

_SUSPENDING: dict[
    int, tuple[weakref.ref[_Store], SuspendingStart, FuncType, bool, _Codec | None]
] = {}
_PENDING: dict[int, _Pending] = {}
_pending_ids = itertools.count(1)


def _suspend_error() -> exc.SuspendError:
    return exc.SuspendError(
        "a Suspending import was called with no promising call below it "
        "(call the export through asyncwasm.promising)"
    )


def _write_results(pending: _Pending, values: Sequence[EngineValue]) -> None:
    _write(pending.store, pending.type, pending.results_ptr, values)


def _write(s: _Store, t: FuncType, results_ptr: int, values: Sequence[EngineValue]) -> None:
    """Write a host call's results (engine values of ``t.results``) at ``results_ptr``."""
    n = len(t.results)
    if values.__class__ is not tuple and values.__class__ is not list:
        values = tuple(values)
    if len(values) != n:
        raise TypeError(f"host function returned {len(values)} values for {n} results")
    if not n:
        return
    codec = _codec(t)
    if codec is not None:
        try:
            codec.results_out.pack_into(
                _memory(results_ptr, n * _VAL_SIZE),
                0,
                *_interleave(codec.result_kinds, values),
            )
            return
        except (struct.error, TypeError):
            pass  # not canonical engine values: the checks below say what is wrong
    out = _vals(n).from_address(results_ptr)
    for i, value in enumerate(values):
        wt._to_raw(s, s.ctx, t.results[i], value, out[i])


def _set_trap(trap_ret: int, trap: int) -> None:
    _V.from_address(trap_ret).value = trap


def _trap_with(trap_ret: int, error: BaseException) -> None:
    wt._tls.pending = error
    _set_trap(trap_ret, wt._make_trap("asyncwasm: Python exception in host function"))


def _raise_into_wasm(store: _Store, ctx: Any, trap_ret: int, error: BaseException) -> None:
    """Make the host call fail with ``error``: thrown as a wasm exception when it is a
    ``WasmThrowable`` (an ``asyncwasm.Exception``: wasm may catch it), else as a trap that lets
    ``error`` out of the outer call as the same object."""
    if isinstance(error, WasmThrowable):
        try:
            _set_trap(trap_ret, wt._throw(store, ctx, error, error.thrown))
            return
        except BaseException as throw_error:
            error = throw_error
    _trap_with(trap_ret, error)


def _continuation_py(env: int | None) -> bool:
    pending = _PENDING.get(env or 0)
    if pending is None:
        return True
    call = pending.call
    if call is not None and call.routed is not None:
        routed, call.routed = call.routed, None
        routed()
        return False
    if pending.results is None and pending.error is None:
        return False
    # Done: the host call returns (no finalizer: the entry goes here, or with the future).
    _forget(pending)
    try:
        if pending.error is not None:
            raise pending.error
        _write_results(pending, pending.results or ())
    except BaseException as error:
        _raise_into_wasm(pending.store, pending.store.ctx, pending.trap_ret, error)
    if call is not None:
        call.pending = None
    return True


def _forget(pending: _Pending) -> None:
    """Drop ``pending`` from ``_PENDING``: its host call returned, or its future is deleted."""
    key, pending.key = pending.key, 0
    if key:
        _PENDING.pop(key, None)


def _done_continuation_py(env: int | None) -> bool:
    return True


def _caller_context(caller: int) -> Any:
    return ffi.wasmtime_caller_context(ctypes.cast(caller, POINTER(ffi.wasmtime_caller_t)))


def _args(
    store: _Store, codec: _Codec | None, caller: int, params: int, nparams: int
) -> Sequence[EngineValue]:
    if not nparams:
        return ()
    if codec is not None:
        return codec.params_in.unpack_from(_memory(params, nparams * _VAL_SIZE))
    raw = _vals(nparams).from_address(params)
    if all(raw[i].kind <= wt._K_F64 for i in range(nparams)):
        return [wt._from_raw(store, None, raw[i]) for i in range(nparams)]
    ctx = _caller_context(caller)
    return [wt._from_raw(store, ctx, raw[i]) for i in range(nparams)]


def _not_awaitable(out: object) -> bool:
    # The usual results (a list or tuple of values) and awaitables of a class with __await__
    # skip inspect.isawaitable's ABC check (which says the same for them).
    cls = out.__class__
    if cls is list or cls is tuple:
        return True
    return getattr(cls, "__await__", None) is None and not inspect.isawaitable(out)


def _async_callback_py(
    env: int | None, caller: int, params: int, nparams: int, results: int, nresults: int,
    trap_ret: int, cont: int,
) -> None:  # fmt: skip
    # All pointers arrive as ints (``_ASYNC_CALLBACK_T``): no ctypes pointer objects per call.
    continuation = _CONTINUATION_T.from_address(cont)
    continuation[0] = _DONE_CONTINUATION
    continuation[1] = None
    continuation[2] = None  # no finalizer (see _forget)
    store: _Store | None = None
    try:
        entry = _SUSPENDING.get(env or 0)
        store = entry[0]() if entry is not None else None
        if entry is None or store is None:
            raise exc.PythonRuntimeError(
                "asyncwasm: host function called after its store was freed"
            )
        _ref, start, ftype, blocking, codec = entry
        state = store.aio
        # The innermost promising call being polled: the one this import runs in.
        call = None
        if state is not None:
            for candidate in reversed(state.calls):
                if candidate.state == _RUNNING:
                    call = candidate
                    break
        if (
            state is None
            or call is None
            or not call.promising
            or not state.frames
            or not state.frames[-1]
        ):
            if not blocking:
                raise _suspend_error()
            # A blocking import outside a promising call: a plain host function.
            out = start(*_args(store, codec, caller, params, nparams))
            if not _not_awaitable(out):
                close_awaitable(out)
                raise TypeError(
                    "a blocking Suspending import returned an awaitable outside promising"
                )
            _write(store, ftype, results, out)  # type: ignore[arg-type]
            return
        args = _args(store, codec, caller, params, nparams)
        frames = state.frames
        frames.append(False)  # start() runs Python: nothing below may suspend
        try:
            out = start(*args)
        finally:
            frames.pop()
        if _not_awaitable(out):
            _write(store, ftype, results, out)  # type: ignore[arg-type]
            return
        pending = _Pending(store, out, ftype, results, trap_ret)  # type: ignore[arg-type]
        pending.call = call
        key = pending.key = next(_pending_ids)
        _PENDING[key] = pending
        call.pending = pending
        continuation[0] = _CONTINUATION
        continuation[1] = key
    except BaseException as error:
        if store is None:
            _trap_with(trap_ret, error)
        else:
            _raise_into_wasm(store, _caller_context(caller), trap_ret, error)


def _suspending_finalizer_py(env: int | None, _table: dict[int, Any] = _SUSPENDING) -> None:
    _table.pop(env or 0, None)


def _immortal(callback: Any) -> Any:
    """Keep a C callback alive until the process ends. A store can outlive this module's globals
    at interpreter exit, and deleting it calls the finalizers it holds: a freed callback there is
    a jump into freed memory (measured: SIGSEGV at exit)."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(callback))
    return callback


_continuation: Final[Any] = _immortal(
    ffi.wasmtime_func_async_continuation_callback_t(_continuation_py)
)
_done_continuation: Final[Any] = _immortal(
    ffi.wasmtime_func_async_continuation_callback_t(_done_continuation_py)
)
_FINALIZER_T: Final[Any] = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_suspending_finalizer: Final[Any] = _immortal(_FINALIZER_T(_suspending_finalizer_py))
_async_callback: Final[Any] = _immortal(_ASYNC_CALLBACK_T(_async_callback_py))


def _address(callback: Any) -> int:
    return ctypes.cast(callback, _V).value or 0


_CONTINUATION: Final = _address(_continuation)
_DONE_CONTINUATION: Final = _address(_done_continuation)


def func_new_suspending(s: _Store, type: FuncType, start: SuspendingStart, blocking: bool) -> Any:
    """``Engine.func_new_suspending``: an async host function, made in ``s`` through a
    throwaway linker (the C API defines async functions on linkers only)."""
    enable(s)
    functype = wt._functype(type)
    env = next(wt._ids)
    name = str(env).encode()
    linker = ffi.wasmtime_linker_new(s.engine.ptr())
    try:
        _SUSPENDING[env] = (weakref.ref(s), start, type, blocking, _codec(type))
        try:
            error = _define_async_func(
                linker,
                b"asyncwasm",
                9,
                name,
                len(name),
                functype,
                _async_callback,
                env,
                _suspending_finalizer,
            )
            if error:
                wt._check_error(ctypes.cast(error, POINTER(ffi.wasmtime_error_t)))
        except BaseException:
            _SUSPENDING.pop(env, None)
            raise
        item = ffi.wasmtime_extern_t()
        with s.lock.rlock:
            if not ffi.wasmtime_linker_get(
                linker, s.ctx, b"asyncwasm", 9, name, len(name), byref(item)
            ):
                raise exc.PythonRuntimeError("asyncwasm: wasmtime lost an async host function")
        return wt._Func(s, item.of.func)
    finally:
        ffi.wasmtime_linker_delete(linker)
        ffi.wasm_functype_delete(functype)
