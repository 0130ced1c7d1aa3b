"""Ctrl-C for running wasm on wasmtime: the one place where the engine's epoch is used.

Python runs a signal handler only between bytecodes of the main thread, so SIGINT would wait for
a long wasm call to end. The engine is configured with epoch interruption (``_wasmtime``'s
``_CONFIG``); ``EpochTicker`` advances the epoch every ``TICK`` seconds from a daemon thread, and
every store has a deadline callback (``Interrupts``) that runs, back in Python on the thread
running wasm, at each tick: pending signal handlers run there, and a ``KeyboardInterrupt`` they
raise stops the wasm call (the engine raises it once the call has unwound).

Every wasmtime store must be armed (``EpochTicker.arm``): with epoch interruption on, a store
without a deadline traps ("interrupt") at its first epoch check. Anything else wanting epoch
deadlines (time slicing for JSPI, call timeouts) should extend ``Interrupts`` rather than install
a second callback (a store has one).
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import time
from collections.abc import Callable, Generator
from ctypes import POINTER
from typing import Any, Final

import wasmtime
from wasmtime import _bindings  # the C API's raw ctypes declarations
from wasmtime import _ffi as ffi  # private bindings of the C API

__all__ = ["EpochTicker", "Interrupts"]


class EpochTicker:
    """Ctrl-C for running wasm: the one place where the engine's epoch is used.

    Python runs a signal handler only between bytecodes of the main thread, so SIGINT would wait
    for a long wasm call to end. The engine is configured with epoch interruption; a daemon
    thread advances the epoch every ``TICK`` seconds, and every store has a deadline callback
    (``Interrupts``) that runs, back in Python on the thread running wasm, at each tick: pending
    signal handlers run there, and a ``KeyboardInterrupt`` they raise stops the wasm call and
    comes out of it as is. Anything else wanting epoch deadlines (time slicing for JSPI, call
    timeouts) should extend ``Interrupts`` rather than add a second callback.

    What runs is whatever SIGINT handler is installed: under ``asyncio.run``, whose handler only
    cancels the main task at the first Ctrl-C (the task can't see it while wasm blocks the
    loop), it takes the second Ctrl-C, which raises ``KeyboardInterrupt``, to stop the call.
    Cost: an epoch check at every loop head and function entry; an empty counting loop ran
    2.1-2.8x slower (``benchmarks/bench_hardening.py`` does not cover real workloads).
    """

    TICK: Final = 0.025

    def __init__(
        self, engine: wasmtime.Engine, record_pending: Callable[[BaseException], None]
    ) -> None:
        self._engine_ptr = engine.ptr()  # the engine is never freed (see WasmtimeEngine)
        _Arming.record_pending = staticmethod(record_pending)
        self._lock = threading.Lock()
        self._started = False
        os.register_at_fork(after_in_child=self._after_fork)

    def arm(self, store: wasmtime.Store) -> Interrupts:
        """Give a new store its deadline callback; make sure the epoch ticks."""
        interrupts = Interrupts(store)
        if not self._started:
            with self._lock:
                if not self._started:
                    self._started = True
                    threading.Thread(target=self._tick, name="asyncwasm-epoch", daemon=True).start()
        return interrupts

    def _tick(self) -> None:
        while True:
            time.sleep(self.TICK)
            ffi.wasmtime_engine_increment_epoch(self._engine_ptr)

    def _after_fork(self) -> None:
        self._started = False  # threads don't survive fork: the next store starts a new ticker


class Interrupts:
    """One store's epoch deadline callback.

    The hard part is where a signal handler runs. A ctypes callback enters Python through a new
    frame, and CPython runs pending signal handlers as a frame *starts*, before any ``try`` in it:
    a ``KeyboardInterrupt`` raised there is swallowed by ctypes ("Exception ignored on calling
    ctypes callback") and the callback's return value is garbage, which wasmtime would take for
    an error pointer. So the Python code that may see the signal is a generator resumed *inside*
    its ``try`` (``_keys``), and the callback is C all the way to it:
    ``max(0, ctx, data, delta, kind, key=generator.send)``. The generator gives each argument a
    key, which makes ``max`` return either ``0`` (continue, one tick later) or ``data``: an error
    made in advance that stops the call (wasmtime takes ownership of it, so a fresh one is made
    by ``rearm`` before the next call, from the failed call's error path).
    """

    def __init__(self, store: wasmtime.Store) -> None:
        self._store = store
        self._current = _Arming.get()
        ffi.wasmtime_context_set_epoch_deadline(store._context(), 1)
        self._current.register(store)

    def rearm(self) -> None:
        """After a call stopped by a signal: a fresh callback with a fresh error."""
        if self._current.used:
            previous, self._current = self._current, _Arming.get()
            self._current.register(self._store)  # drops (finalizes) the previous one
            del previous


class _Arming:
    """One registration of the callback: its error, its generator and their ctypes thunks."""

    record_pending: Callable[[BaseException], None]  # set by EpochTicker

    def __init__(self) -> None:
        self.used = False
        error = ffi.wasmtime_error_new(b"interrupted by a signal")
        self._error: int = ctypes.cast(error, ctypes.c_void_p).value or 0
        keys = self._keys()
        next(keys)
        self._callback = _DEADLINE_CALLBACK(functools.partial(max, 0, key=keys.send))

    @staticmethod
    def get() -> _Arming:
        """A registration to use: one whose store is gone (making one costs ~10 us, and a
        program that drops everything between instances makes a store per instance), or new."""
        try:
            return _IDLE_ARMINGS.pop()
        except IndexError:
            return _Arming()

    def register(self, store: wasmtime.Store) -> None:
        _REGISTERED[self._error] = self
        ffi.wasmtime_store_epoch_deadline_callback(
            store.ptr(), self._callback, self._error, _UNREGISTERED
        )

    def _keys(self) -> Generator[int, Any, None]:
        # Items, in max()'s order: 0, ctx, data, delta, kind. Key 2 for the 0 means "continue";
        # key 3 for data (the error) means "stop". Every resumption may run signal handlers.
        position = key = 0
        stop = False
        while True:
            item = None
            try:
                item = yield key
            except GeneratorExit:
                raise
            except BaseException as error:  # KeyboardInterrupt above all: the call must stop
                self.record_pending(error)
                stop = True
            if position == 0:
                key = 2
            elif position == 2:
                key = 3 if stop and not self.used else 0
                if key:  # the error is handed to wasmtime, which frees it
                    self.used = True
            else:
                key = 0
                if position == 3 and item:
                    item[0] = 1  # the next deadline: one tick on
            position = (position + 1) % 5
            if position == 0:
                stop = False


# The exact ctypes function types the binding declares (ctypes accepts no look-alike).
_DEADLINE_CALLBACK: Final = _bindings._wasmtime_store_epoch_deadline_callback.argtypes[1]
_FINALIZER: Final = _bindings._wasmtime_store_epoch_deadline_callback.argtypes[3]

# Registrations by their error's address while a store holds them, and those whose store is
# gone with their error unused, ready for the next store.
_REGISTERED: dict[int, _Arming] = {}
_IDLE_ARMINGS: list[_Arming] = []
_IDLE_MAX: Final = 64


def _unregistered(data: int | None) -> None:
    """The finalizer of every registration: its store is gone, or a fresh one replaced it."""
    arming = _REGISTERED.pop(data or 0, None)
    if arming is None or arming.used:  # a used error belongs to wasmtime (freed already)
        return
    if len(_IDLE_ARMINGS) < _IDLE_MAX:
        _IDLE_ARMINGS.append(arming)
    else:
        ffi.wasmtime_error_delete(ctypes.cast(arming._error, POINTER(ffi.wasmtime_error_t)))


_UNREGISTERED: Final = _FINALIZER(_unregistered)
