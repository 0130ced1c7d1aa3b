"""The epoch of wasmtime engines: Ctrl-C, call timeouts and JSPI time slicing, all from one
deadline callback per store.

Python runs a signal handler only between bytecodes of the main thread, so SIGINT would wait for
a long wasm call to end. The engine is configured with epoch interruption (``_wasmtime``'s
``_CONFIG``); while wasm runs, a daemon thread advances the epoch every few milliseconds
(``EpochTicker``), and every store has a deadline callback (``Interrupts``) that runs, back in
Python on the thread running wasm, every few ticks (``_next_delta``). There: pending signal
handlers run, and a ``KeyboardInterrupt`` they raise stops the wasm call (the engine raises it once the call has
unwound); a call past its ``Limits.timeout`` deadline is stopped (``trap="timeout"``); and a
promising call driven from the event loop yields to it (``CallState.slicing``).

Every wasmtime store must be armed (``EpochTicker.arm``): with epoch interruption on, a store
without a deadline traps ("interrupt") at its first epoch check. The deadline stays armed for the
store's life (the callback always sets the next one), so a call needs no set-up of its own but
this: the ticker must run while it does. A call from Python starts it when it is not running
(``TICKER.touch``, one attribute test when it is); a store with per-call limits (fuel, deadline)
or a promising call brackets the call with ``Interrupts.begin``/``end`` instead, which arms them
too. The ticker stops after ``LINGER`` seconds without a call starting and with no store busy
(see ``_Ticker._run``): a call that ends before the next tick never needs it at all.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import threading
import time
from collections.abc import Callable, Generator
from ctypes import POINTER
from typing import Any, Final, Protocol

import wasmtime
from wasmtime import _bindings  # the C API's raw ctypes declarations
from wasmtime import _ffi as ffi  # private bindings of the C API

__all__ = ["TICKER", "CallState", "EpochTicker", "Interrupts"]


class EpochTicker:
    """The epoch of one engine, advanced every ``TICK`` seconds while wasm runs.

    Python runs a signal handler only between bytecodes of the main thread, so SIGINT would wait
    for a long wasm call to end. The engine is configured with epoch interruption; a daemon
    thread advances the epoch, and every store has a deadline callback (``Interrupts``) that
    runs, back in Python on the thread running wasm, every few ticks: pending signal handlers run
    there, and a ``KeyboardInterrupt`` they raise stops the wasm call and comes out of it as is.
    The same callback enforces ``Limits.timeout`` and makes promising calls yield to the event
    loop (JSPI time slicing): one epoch mechanism for everything, and no fuel by default.

    What runs is whatever SIGINT handler is installed: under ``asyncio.run``, whose handler only
    cancels the main task at the first Ctrl-C (the task can't see it while wasm blocks the
    loop), it takes the second Ctrl-C, which raises ``KeyboardInterrupt``, to stop the call.

    The ticker thread is shared by every engine and ticks only while wasm calls are made: once
    no call has started for ``LINGER`` seconds and no store is busy, it exits, and the next call
    starts a new one (after ``fork`` too). Cost: an epoch check at every loop head and function
    entry (``benchmarks/bench_limits.py``), plus one callback per running store every
    ``IDLE_DELTA`` ticks.
    """

    TICK: Final = 0.001
    """Seconds between ticks while a promising call runs (JSPI time slicing wants them short)."""
    SLOW_TICK: Final = 0.01
    """Seconds between ticks while only other calls run (Ctrl-C, timeouts): each tick wakes a
    thread and runs a callback in every running store, which cost a tight loop up to ~20% at
    2 ms on a loaded 2-core machine."""
    LINGER: Final = 0.5

    def __init__(
        self, engine: wasmtime.Engine, record_pending: Callable[[BaseException], None]
    ) -> None:
        # The engine is never freed (see _wasmtime._ProcessEngine), so its pointer stays valid.
        _ENGINES.append(engine.ptr())
        _Arming.record_pending = staticmethod(record_pending)

    def arm(self, store: wasmtime.Store, lock: _Lock) -> Interrupts:
        """Give a new store its deadline callback; ``lock`` is the store's (the ticker tells a
        busy store by it)."""
        return Interrupts(store, lock)


class _Lock(Protocol):
    def busy(self) -> bool: ...


class _Ticker:
    """The one ticker thread of the process (see ``EpochTicker``).

    What keeps it running is cheap to maintain, because every call from Python pays for it:

    * ``recent``: set by a call that starts (``touch``), cleared by the ticker at each tick. A
      call reads it first and calls ``touch`` only when it is clear: one attribute test per
      call, one ``touch`` per tick at most.
    * the stores' locks, which every call holds while it runs (on the wasm side or in a host
      function): when ``LINGER`` seconds have passed without a call starting, the ticker looks
      whether any store's lock is held before it exits. A call that runs long keeps it running
      that way, at no cost to short calls; no per-call count of running calls is kept.
    """

    __slots__ = ("lock", "recent", "running", "slicing_seen", "slow_sleep", "wake")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = False
        self.recent = False
        # Set by every poll of a slicing store, and by its deadline callback: between two polls
        # (the event loop's turn) no call may be running, and the next tick must still come soon.
        self.slicing_seen = False
        # While the ticker sleeps a SLOW_TICK, a promising call that starts wakes it (``wake``):
        # else its first time slice could last a whole SLOW_TICK (measured up to ~10 ms of loop
        # lateness where the slices are ~1 ms).
        self.slow_sleep = False
        self.wake = threading.Event()
        os.register_at_fork(after_in_child=self._after_fork)

    def slicing(self) -> None:
        """A promising call is being driven (or runs): ticks must come every ``TICK``."""
        self.slicing_seen = True
        if self.slow_sleep:
            self.slow_sleep = False
            self.wake.set()

    def touch(self) -> None:
        """A call starts: keep the ticker running, or start it."""
        self.recent = True
        if not self.running:
            with self.lock:
                if not self.running:
                    self.running = True
                    threading.Thread(target=self._run, name="asyncwasm-epoch", daemon=True).start()

    def _run(self) -> None:
        idle_ticks = int(EpochTicker.LINGER / EpochTicker.SLOW_TICK)
        idle = 0
        while True:
            slicing, self.slicing_seen = self.slicing_seen, False
            if slicing:
                time.sleep(EpochTicker.TICK)
            else:
                self.slow_sleep = True
                self.wake.wait(EpochTicker.SLOW_TICK)
                self.slow_sleep = False
                self.wake.clear()
            for engine in _ENGINES:
                ffi.wasmtime_engine_increment_epoch(engine)
            if self.recent:
                self.recent = False
                idle = 0
                continue
            idle += 1
            if idle < idle_ticks:
                continue
            idle = 0
            if _busy():
                continue
            with self.lock:
                # A call that began after the check above may have seen ``running`` still True
                # and not started a ticker: look again after clearing it (``touch`` sets
                # ``recent``, then reads ``running``).
                self.running = False
                if not self.recent and not _busy():
                    return
                self.running = True

    def _after_fork(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.slow_sleep = False
        self.running = False  # threads don't survive fork: the next call starts a new ticker
        self.recent = False
        # The parent's stores can't be used here, and a lock a parent thread held stays held:
        # they must not keep the ticker running.
        for arming in list(_REGISTERED.values()):
            arming.state.lock = None


def _busy() -> bool:
    """Whether a call may be running on some store (see ``StoreLock.busy``)."""
    for arming in list(_REGISTERED.values()):
        lock = arming.state.lock
        if lock is not None and lock.busy():
            return True
    return False


_ENGINES: list[Any] = []  # the engines whose epoch the ticker advances
TICKER: Final = _Ticker()


class CallState:
    """What a store's deadline callback needs to know about the calls running on it: its
    deadline (``time.monotonic()`` value, or ``inf``), whether to yield (a promising call being
    driven from the event loop), and whether the deadline has stopped a call; and the store's
    lock, for the ticker (``_busy``)."""

    __slots__ = ("deadline", "lock", "slicing", "timed_out")

    def __init__(self, lock: _Lock | None = None) -> None:
        self.deadline = math.inf
        self.slicing = False
        self.timed_out = False
        self.lock = lock


class Interrupts:
    """One store's epoch deadline callback, and the per-call arming of the store's limits.

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

    __slots__ = ("_current", "_store", "depth", "fuel", "state", "timeout")

    def __init__(self, store: wasmtime.Store, lock: _Lock) -> None:
        self._store = store
        self.state = CallState(lock)
        self.timeout: float | None = None  # Limits.timeout
        self.fuel: int | None = None  # Limits.fuel (the store's engine consumes fuel)
        self.depth = 0  # calls running on this store (nested ones from host functions too)
        self._current = _Arming.get()
        ffi.wasmtime_context_set_epoch_deadline(store._context(), 1)
        self._current.register(store, self.state)

    @property
    def limited(self) -> bool:
        """Whether calls on this store have per-call limits (fuel, timeout), which only
        ``begin`` arms: else a call from Python needs no more than ``TICKER.touch`` (see the
        prepared callers of ``_wasmtime``)."""
        return self.fuel is not None or self.timeout is not None

    def begin(self, ctx: Any, fresh: bool = True) -> None:
        """A wasm call (or instantiation) on this store starts, with the store's lock held: the
        ticker must run, and a call from Python (``fresh``, not nested in another call on the
        store) gets its limits anew: a full ``fuel`` budget and a ``timeout`` deadline from now.
        Pair with ``end``."""
        if fresh and not self.depth:  # first: nothing to undo when this raises
            if self.fuel is not None:
                _check(ffi.wasmtime_context_set_fuel(ctx, self.fuel))
            if self.timeout is not None:
                self.state.deadline = time.monotonic() + self.timeout
                self.state.timed_out = False
        self.depth += 1
        if self.state.slicing:
            TICKER.slicing()
            if self.depth == 1:
                # Every slice ends one tick from its start: the deadline left by the store's
                # last callback or plain call may be IDLE_DELTA ticks away (that many ms at
                # TICK intervals) or long past (a slice of nothing).
                ffi.wasmtime_context_set_epoch_deadline(ctx, 1)
        if not TICKER.recent:
            TICKER.touch()

    def end(self) -> None:
        self.depth -= 1

    def rearm(self) -> None:
        """After a call stopped by a signal or its deadline: a fresh callback with a fresh
        error."""
        if self._current.used:
            previous, self._current = self._current, _Arming.get()
            self._current.register(self._store, self.state)  # drops (finalizes) the previous
            del previous


def _check(err: Any) -> None:
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)


class _Arming:
    """One registration of the callback: its error, its generator and their ctypes thunks."""

    record_pending: Callable[[BaseException], None]  # set by EpochTicker

    def __init__(self) -> None:
        self.used = False
        self.state = CallState()
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

    def register(self, store: wasmtime.Store, state: CallState) -> None:
        self.state = state
        _REGISTERED[self._error] = self
        ffi.wasmtime_store_epoch_deadline_callback(
            store.ptr(), self._callback, self._error, _UNREGISTERED
        )

    def _keys(self) -> Generator[int, Any, None]:
        # Items, in max()'s order: 0, ctx, data, delta, kind. Key 2 for the 0 means "continue";
        # key 3 for data (the error) means "stop". Every resumption may run signal handlers.
        position = key = 0
        stop = False
        delta = 1
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
                state = self.state
                if state.slicing:
                    TICKER.slicing()
                remaining = state.deadline - time.monotonic()
                if not stop and remaining <= 0:
                    state.timed_out = True  # the call's error path raises the timeout trap
                    stop = True
                delta = _next_delta(state, remaining)
                key = 3 if stop and not self.used else 0
                if key:  # the error is handed to wasmtime, which frees it
                    self.used = True
            else:
                key = 0
                if position == 3 and item:
                    item[0] = delta  # the next deadline, in ticks from now
                elif position == 4 and item and self.state.slicing:
                    item[0] = _YIELD  # a promising call: back to the event loop (JSPI)
            position = (position + 1) % 5
            if position == 0:
                stop = False


_YIELD: Final = 1  # WASMTIME_UPDATE_DEADLINE_YIELD

IDLE_DELTA: Final = 5
"""Ticks between two callbacks of a store that neither slices nor nears a deadline: Ctrl-C
then stops a call within ~50 ms. Every callback enters Python (the GIL, which the ticker
thread has just taken too: on a loaded machine a thread that waits for it loses its CPU), so
fewer is cheaper: one per tick cost a tight loop ~25% on a loaded 2-core machine."""


def _next_delta(state: CallState, remaining: float) -> int:
    """Ticks until this store's next callback: every tick while slicing (JSPI), about when
    the deadline falls while it is near, else ``IDLE_DELTA``."""
    if state.slicing:
        return 1
    if remaining == math.inf:
        return IDLE_DELTA
    return max(1, min(IDLE_DELTA, int(remaining / EpochTicker.SLOW_TICK)))


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
