"""``await compile(...)``: off the event loop thread, single-flight, cached.

Where compilation runs
    wasmtime releases the GIL while it compiles: an anyio worker thread keeps the loop
    responsive, and the engine module it makes is engine-wide and may be shared by every
    ``Module`` of the runtime. wasmer holds the GIL for the whole compile and its objects can't
    leave their thread: it compiles in a worker process of the runtime's ``ProcessPool``, which
    sends back a serialized artifact, deserialized on the calling (event loop) thread into the
    runtime's current store. Both are bounded by the runtime's ``CapacityLimiter``
    (``max_workers``).

Single flight
    Concurrent ``compile`` calls of the same bytes (by sha256) share one compilation: the first
    caller leads a ``_Flight``, later ones wait on it. Each still gets its own ``Module`` object
    (as each JS ``compile()`` gives a distinct one).

Cancellation
    Cancelling a waiter raises at once. When the last waiter of a flight goes, the flight is
    abandoned: a wasmer worker process is killed (and reaped by the thread that waited on it),
    a wasmtime thread runs its compile to the end and its result is dropped (neither cached nor
    written to disk). When the *leader* is cancelled while others still wait, one of them takes
    over the wait, so the compilation still runs once.

Caches
    In memory (``Runtime(cache_size=...)``, bytes): wasmtime entries are engine modules;
    wasmer entries are artifacts, because a wasmer module belongs to a store (caching one would
    keep its store, and every instance in it, alive). A small per-store table, held weakly by
    the store cell, lets later compiles in the same store share the deserialized wasmer module.
    On disk (``Runtime(cache_dir=...)``): see ``_cache``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from ._binary import MAX_MODULE_SIZE, ModuleInfo, check_counts
from ._cache import CorruptEntry
from ._exceptions import CompileError
from ._pool import CompileTimeout, WorkerDied, _Worker
from ._source import check_magic

if TYPE_CHECKING:
    from ._module import Module
    from ._runtime import Runtime, StoreCell

__all__ = ["Compiled", "compile_async"]

# Hash bigger inputs in a worker thread (sha256 runs at ~1.5 GB/s: 4 MB is ~3 ms).
_HASH_INLINE_MAX: Final = 4 << 20
# Deserialized wasmer modules remembered per store (see the module docstring).
STORE_MODULES_MAX: Final = 16

_PENDING, _RUNNING, _FINISHED, _DROPPED = "pending", "running", "finished", "dropped"


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compilation's result, as the in-memory cache keeps it."""

    info: ModuleInfo
    handle: Any
    """wasmtime: the engine module, shared by every ``Module`` made from it. wasmer: ``None``."""
    artifact: bytes | None
    """wasmer: the serialized module, deserialized into a store per ``Module``."""
    size: int
    """What the in-memory cache charges for the entry (an estimate of what it keeps alive)."""


class _Flight:
    """One compilation that any number of ``compile`` calls wait on."""

    def __init__(self, digest: bytes) -> None:
        self.digest = digest
        self.token = anyio.lowlevel.current_token()
        self.waiters = 0
        self.changed = anyio.Event()  # set on publication and on hand-over
        self.published = False
        self.leader_present = True
        # Shared with the worker thread, under ``lock``:
        self.lock = threading.Lock()
        self.state = _PENDING
        self.abandoned = False
        self.abort: Any = None  # kills the wasmer worker process running this flight
        self.outcome: Compiled | BaseException | None = None
        self.finished = threading.Event()
        # The ``max_workers`` slot the flight holds while its work may run. It is given back by
        # the task, or, when the task stops waiting on a running thread (cancellation, timeout),
        # by that thread as it finishes: a compile counts until it really ends.
        self.limiter: anyio.CapacityLimiter | None = None
        self.slot_to_thread = False
        self.timed_out = False

    def same_loop(self) -> bool:
        return anyio.lowlevel.current_token() == self.token


async def compile_async(
    runtime: Runtime,
    wasm: bytes,
    *,
    digest: bytes | None = None,
    info: ModuleInfo | None = None,
    _retried: bool = False,
) -> Module:
    """Compile ``wasm`` (already copied) without blocking the event loop.

    ``digest`` (the sha256 of ``wasm``) and ``info`` (its decoded sections) may be passed by a
    caller that already has them (streaming compilation) to save recomputing them.
    """
    runtime._check_open()
    check_magic(wasm)
    if len(wasm) > MAX_MODULE_SIZE:
        raise CompileError(
            f"the module is {len(wasm)} bytes, over the JS API's limit of {MAX_MODULE_SIZE}"
        )
    check_counts(wasm)  # a count bomb fails here, before any thread or process is involved
    if digest is None:
        digest = (
            hashlib.sha256(wasm).digest()
            if len(wasm) <= _HASH_INLINE_MAX
            else await anyio.to_thread.run_sync(_sha256, wasm)
        )
    while True:
        compiled = runtime._memory_cache.get(digest)
        if compiled is not None:
            runtime._count("memory_hits")
            await anyio.lowlevel.checkpoint()
            break
        flight, lead = runtime._join_or_lead(digest)
        if not lead:
            runtime._count("joined")
        compiled = await _wait(runtime, flight, wasm, info, lead)
        if compiled is not None:
            break
        # The leader was cancelled before its compilation started: start over.
    try:
        return _to_module(runtime, digest, compiled)
    except CompileError:
        # A wasmer artifact that passed its checksum but does not load (a forged or foreign
        # entry): forget it in both caches and compile afresh, once.
        if _retried or compiled.artifact is None:
            raise
    await _forget_artifact(runtime, digest)
    return await compile_async(runtime, wasm, digest=digest, info=info, _retried=True)


async def _forget_artifact(runtime: Runtime, digest: bytes) -> None:
    runtime._memory_cache.discard(digest)
    if runtime._disk is not None:
        runtime._count("disk_discarded")
        await anyio.to_thread.run_sync(runtime._disk.discard, digest)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def _wait(
    runtime: Runtime, flight: _Flight, wasm: bytes, info: ModuleInfo | None, lead: bool
) -> Compiled | None:
    """Wait for ``flight`` (running it when ``lead``); ``None`` means "start over"."""
    flight.waiters += 1
    try:
        while True:
            if lead:
                try:
                    if flight.state == _PENDING:
                        await _run_work(runtime, flight, wasm, info)
                    else:  # taking over from a cancelled leader: the work is under way
                        await anyio.to_thread.run_sync(flight.finished.wait, abandon_on_cancel=True)
                except BaseException:
                    _leader_left(runtime, flight)
                    raise
                _publish(runtime, flight)
                return _unwrap(flight)
            changed = flight.changed
            await changed.wait()
            if flight.published:
                return _unwrap(flight)
            if flight.state == _DROPPED:
                return None
            if not flight.leader_present:
                flight.leader_present = True  # no await since the check: no other taker
                lead = True
    finally:
        _leave(runtime, flight)


async def _run_work(
    runtime: Runtime, flight: _Flight, wasm: bytes, info: ModuleInfo | None
) -> None:
    """Run ``_work`` in a worker thread holding one of the runtime's ``max_workers`` slots.

    Under ``compile_timeout`` on an engine that compiles in a thread (wasmtime), the wait ends at
    the deadline with ``CompileTimeout``; the thread can't be stopped, so it runs on, keeps its
    slot until it ends and its result is dropped. (wasmer's worker process is killed at the
    deadline by the pool itself.)"""
    limiter = runtime._compile_limiter()
    await limiter.acquire_on_behalf_of(flight)
    flight.limiter = limiter
    timeout = None if runtime._engine.compile_in_process else runtime._compile_timeout
    try:
        with anyio.move_on_after(timeout if timeout is not None else math.inf) as scope:
            await anyio.to_thread.run_sync(
                _work, runtime, flight, wasm, info, abandon_on_cancel=True
            )
        if scope.cancelled_caught:
            with flight.lock:
                if flight.state != _FINISHED:
                    flight.timed_out = flight.abandoned = True
                    flight.outcome = CompileTimeout(
                        f"compiling this module took longer than compile_timeout={timeout} s (the "
                        "compiler thread finishes in the background; its result is dropped)"
                    )
    finally:
        _release_slot(flight)


def _release_slot(flight: _Flight) -> None:
    """The task gives the flight's slot back, or hands it to a thread still running."""
    with flight.lock:
        limiter = flight.limiter
        if limiter is None:
            return
        if flight.state == _RUNNING:
            flight.slot_to_thread = True
            return
        flight.limiter = None
    limiter.release_on_behalf_of(flight)


def _leader_left(runtime: Runtime, flight: _Flight) -> None:
    """The leader was cancelled: publish what is there, or let a follower take over."""
    with flight.lock:
        state = flight.state
        if state == _PENDING:
            flight.state = _DROPPED  # the worker thread will not start it
    _release_slot(flight)
    flight.leader_present = False
    if state == _FINISHED:
        _publish(runtime, flight)
        return
    if state == _PENDING:
        runtime._forget_flight(flight)
    changed, flight.changed = flight.changed, anyio.Event()
    changed.set()


def _leave(runtime: Runtime, flight: _Flight) -> None:
    flight.waiters -= 1
    if flight.waiters or flight.published:
        return
    # Nobody wants the result any more: drop it, and stop a worker process at once.
    with flight.lock:
        flight.abandoned = True
        abort = flight.abort
    runtime._forget_flight(flight)
    if abort is not None:
        abort()


def _publish(runtime: Runtime, flight: _Flight) -> None:
    if flight.published:
        return
    flight.published = True
    runtime._forget_flight(flight)
    if isinstance(flight.outcome, Compiled):
        runtime._memory_cache.put(flight.digest, flight.outcome, flight.outcome.size)
    flight.changed.set()


def _unwrap(flight: _Flight) -> Compiled:
    outcome = flight.outcome
    if isinstance(outcome, Compiled):
        return outcome
    if isinstance(outcome, WorkerDied):
        raise CompileError(f"the compiler process was killed: {outcome}") from outcome
    assert isinstance(outcome, BaseException)
    raise outcome


def _work(runtime: Runtime, flight: _Flight, wasm: bytes, info: ModuleInfo | None) -> None:
    """The flight's compilation, in a worker thread. Stores its outcome in the flight."""
    with flight.lock:
        if flight.state == _DROPPED or flight.abandoned:
            return
        flight.state = _RUNNING
    outcome: Compiled | BaseException
    runtime._count("active_work")
    try:
        outcome = _produce(runtime, flight, wasm, info)
    except BaseException as error:
        outcome = error
    finally:
        runtime._count("active_work", -1)
    with flight.lock:
        if not flight.timed_out:
            flight.outcome = outcome
        flight.state = _FINISHED
        limiter = flight.limiter if flight.slot_to_thread else None
        flight.limiter = None if limiter is not None else flight.limiter
    flight.finished.set()
    if limiter is not None:
        # Nobody waits on this thread any more: give its slot back on the loop. If the loop is
        # gone, so is its limiter.
        with contextlib.suppress(RuntimeError):
            anyio.from_thread.run_sync(limiter.release_on_behalf_of, flight, token=flight.token)


def _produce(
    runtime: Runtime, flight: _Flight, wasm: bytes, known_info: ModuleInfo | None
) -> Compiled:
    engine = runtime._engine
    disk = runtime._disk
    digest = flight.digest
    if disk is not None:
        try:
            entry = disk.load(digest)
        except CorruptEntry:
            runtime._count("disk_discarded")
            entry = None
        if entry is not None:
            artifact, extra = entry
            info = known_info if known_info is not None else _info_from(extra, wasm, runtime)
            if engine.compile_in_process:
                runtime._count("disk_hits")
                return Compiled(info, None, artifact, len(artifact) + len(wasm))
            try:
                handle = engine.deserialize(None, artifact)
            except CompileError:
                runtime._count("disk_discarded")
                disk.discard(digest)
            else:
                runtime._count("disk_hits")
                return Compiled(info, handle, None, _wasmtime_size(wasm))
    runtime._count("compiles")
    artifact_out: bytes | None
    if engine.compile_in_process:

        def on_start(worker: _Worker) -> bool:
            with flight.lock:
                if flight.abandoned:
                    return False
                flight.abort = worker.kill
                return True

        artifact_out, info = runtime._process_pool().run(wasm, on_start, runtime._compile_timeout)
        compiled = Compiled(info, None, artifact_out, len(artifact_out) + len(wasm))
    else:
        info = known_info if known_info is not None else _decode(wasm, runtime)
        handle = engine.compile(None, wasm)
        artifact_out = engine.serialize(handle) if disk is not None else None
        compiled = Compiled(info, handle, None, _wasmtime_size(wasm))
    if disk is not None and artifact_out is not None:
        with flight.lock:
            abandoned = flight.abandoned
        if not abandoned:
            disk.store(digest, artifact_out, pickle.dumps(compiled.info, pickle.HIGHEST_PROTOCOL))
    return compiled


def _decode(wasm: bytes, runtime: Runtime) -> ModuleInfo:
    """asyncwasm's decoding, refusing what the engine can't compile (``_module``)."""
    from ._module import decode_for_engine

    return decode_for_engine(wasm, runtime._engine)


def _info_from(extra: bytes, wasm: bytes, runtime: Runtime) -> ModuleInfo:
    """The decoded sections kept in a (verified) disk entry, or decoded afresh."""
    try:
        info = pickle.loads(extra)
    except Exception:
        info = None
    return info if isinstance(info, ModuleInfo) else _decode(wasm, runtime)


def _wasmtime_size(wasm: bytes) -> int:
    # Machine code is ~2x the wasm (QuickJS: 1.5 MB -> 2.9 MB artifact), plus the decoded info.
    return 3 * len(wasm)


def _to_module(runtime: Runtime, digest: bytes, compiled: Compiled) -> Module:
    """A new public ``Module`` for a compilation result."""
    from ._module import Module

    if compiled.artifact is None:
        return Module._from_parts(runtime, compiled.handle, compiled.info, None)
    cell = runtime._store()
    handle = _store_module(runtime, cell, digest, compiled.artifact)
    return Module._from_parts(runtime, handle, compiled.info, cell)


def _store_module(runtime: Runtime, cell: StoreCell, digest: bytes, artifact: bytes) -> Any:
    """The wasmer module for ``digest`` in ``cell``'s store, deserialized once per store and
    thread (wasmer modules are thread-affine)."""
    key = (digest, threading.get_ident())
    table = runtime._store_modules.get(cell)
    if table is None:
        table = runtime._store_modules[cell] = OrderedDict()
    handle = table.get(key)
    if handle is None:
        handle = runtime._engine.deserialize(cell.handle, artifact)
        table[key] = handle
        while len(table) > STORE_MODULES_MAX:
            table.popitem(last=False)
    else:
        table.move_to_end(key)
    return handle
