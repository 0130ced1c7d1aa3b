"""``await compile(...)``: off the event loop thread, single-flight, cached.

The service
    Each ``Runtime`` has one :class:`CompileService` (``service_for(runtime)``): its caches,
    flights, counters, ``CapacityLimiter`` and worker pool, and its compile strategy.

Where compilation runs (the strategy, chosen once per runtime)
    wasmtime releases the GIL while it compiles (:class:`_InThreads`): an anyio worker thread
    keeps the loop responsive, and the engine module it makes is engine-wide and may be shared
    by every ``Module`` of the runtime. wasmer holds the GIL for the whole compile and its
    objects can't leave their thread (:class:`_InProcesses`): it compiles in a worker process of
    the runtime's ``ProcessPool``, which sends back a serialized artifact, deserialized on the
    calling (event loop) thread into the runtime's current store. Both are bounded by the
    runtime's ``CapacityLimiter`` (``max_workers``).

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

import abc
import contextlib
import hashlib
import math
import os
import pickle
import threading
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, cast

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from . import _fork
from ._binary import ModuleInfo, check_counts
from ._cache import CacheInfo, CorruptEntry, DiskCache, MemoryCache
from ._context import RuntimeBase, StoreCell, StoreContext
from ._decode import check_size, decode_for_engine
from ._engines._base import ModuleHandle
from ._exceptions import CompileError, RuntimeClosedError
from ._filelock import exclusive
from ._module import Module, ModuleParts, module_from_parts, module_source, with_source
from ._pool import CompileTimeout, PoolClosedError, ProcessPool, WorkerDied

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._pool import _Worker

__all__ = ["CompileService", "Compiled", "compile_async", "service_for", "wasmtime_size"]

# Hash bigger inputs in a worker thread (sha256 runs at ~1.5 GB/s: 4 MB is ~3 ms).
_HASH_INLINE_MAX: Final = 4 << 20
# Deserialized wasmer modules remembered per store (see the module docstring).
STORE_MODULES_MAX: Final = 16

_PENDING, _RUNNING, _FINISHED, _DROPPED = "pending", "running", "finished", "dropped"


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compilation's result, as the in-memory cache keeps it."""

    info: ModuleInfo
    handle: ModuleHandle | None
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
        self.abort: Callable[[], None] | None = None  # kills the worker process running it
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


class CompileService:
    """One runtime's compile service: caches, flights, counters, limiter, workers, strategy."""

    def __init__(
        self,
        context: StoreContext,
        *,
        max_workers: int,
        cache_size: int,
        cache_dir: str | os.PathLike[str] | None,
        compile_timeout: float | None = None,
    ) -> None:
        engine = context.engine
        self.context = context
        self.max_workers = max_workers
        self.compile_timeout = compile_timeout
        self.memory_cache: MemoryCache[bytes, Compiled] = MemoryCache(cache_size)
        self.disk = DiskCache(cache_dir, engine.cache_key()) if cache_dir is not None else None
        self.flights: dict[bytes, _Flight] = {}
        self._limiter: tuple[object, anyio.CapacityLimiter] | None = None
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._lock = threading.Lock()
        self.closed = False
        # The pool lives in a list the finalizer holds, not the service: a forgotten runtime's
        # workers are stopped when it is collected, or at interpreter exit.
        self.pools: list[ProcessPool] = []
        self.finalizer = weakref.finalize(self, _close_pools, self.pools)
        self.strategy: _Strategy = (
            _InProcesses(self) if engine.compile_in_process else _InThreads(self)
        )
        # Weakly: the context outlives a forgotten runtime's service (modules keep it), and the
        # service's finalizer must still stop its workers.
        service = weakref.ref(self)

        def cached_compilation(
            wasm: bytes,
        ) -> tuple[ModuleHandle, ModuleInfo, StoreCell | None] | None:
            alive = service()
            return alive.cached_parts(wasm) if alive is not None else None

        context.cached_compilation = cached_compilation
        _fork.track(self)

    def _after_fork_in_child(self) -> None:
        # Fresh caches (the parent's entries hold its engine modules), flights, locks and
        # counters; the pool renews itself (``ProcessPool._after_fork_in_child``).
        self.memory_cache = MemoryCache(self.memory_cache.max_size)
        self.strategy.clear()
        self.flights = {}
        self._limiter = None
        self._stats = Counter()
        self._stats_lock = threading.Lock()
        self._lock = threading.Lock()

    # -- counters -----------------------------------------------------------------------------
    def count(self, what: str, delta: int = 1) -> None:
        with self._stats_lock:
            self._stats[what] += delta

    @property
    def active_work(self) -> int:
        """Compilations running in worker threads now (including abandoned ones finishing)."""
        with self._stats_lock:
            return self._stats["active_work"]

    def cache_info(self) -> CacheInfo:
        with self._stats_lock:
            stats = dict(self._stats)
        return CacheInfo(
            compiles=stats.get("compiles", 0),
            memory_hits=stats.get("memory_hits", 0),
            disk_hits=stats.get("disk_hits", 0),
            disk_discarded=stats.get("disk_discarded", 0),
            joined=stats.get("joined", 0),
            entries=len(self.memory_cache),
            size=self.memory_cache.size,
            max_size=self.memory_cache.max_size,
        )

    def clear_cache(self) -> None:
        self.memory_cache.clear()
        self.strategy.clear()

    # -- lifecycle ----------------------------------------------------------------------------
    def check_open(self) -> None:
        if self.closed:
            raise RuntimeClosedError("this asyncwasm.Runtime is closed")

    def close(self) -> None:
        """Stop the worker processes (blocks until they are reaped) and drop the caches."""
        self.closed = True
        self.finalizer()
        self.clear_cache()

    def compile_limiter(self) -> anyio.CapacityLimiter:
        """The ``CapacityLimiter`` of ``max_workers`` tokens for the current event loop (a
        limiter belongs to one loop; a runtime may outlive several, e.g. ``asyncio.run`` twice)."""
        loop = anyio.lowlevel.current_token()
        current = self._limiter
        if current is None or current[0] != loop:
            current = (loop, anyio.CapacityLimiter(self.max_workers))
            self._limiter = current
        return current[1]

    def process_pool(self) -> ProcessPool:
        with self._lock:
            if not self.pools:
                self.check_open()
                self.pools.append(ProcessPool(self.context.engine_name, self.max_workers))
            return self.pools[0]

    # -- flights ------------------------------------------------------------------------------
    def join_or_lead(self, digest: bytes) -> tuple[_Flight, bool]:
        """The flight compiling ``digest`` on this event loop, and whether we lead it."""
        flight = self.flights.get(digest)
        if flight is not None and not flight.published and flight.same_loop():
            return flight, False
        flight = _Flight(digest)
        if digest not in self.flights:
            self.flights[digest] = flight
        return flight, True

    def forget_flight(self, flight: _Flight) -> None:
        if self.flights.get(flight.digest) is flight:
            del self.flights[flight.digest]

    def cached_parts(self, wasm: bytes) -> tuple[ModuleHandle, ModuleInfo, StoreCell | None] | None:
        """``StoreContext.cached_compilation``: what the synchronous ``Module()`` takes from the
        in-memory cache instead of compiling ``wasm`` again."""
        digest = hashlib.sha256(wasm).digest()
        compiled = self.memory_cache.get(digest)
        if compiled is None:
            return None
        parts = self.strategy.parts(digest, compiled)
        return parts.handle, parts.info, parts.cell

    def decode(self, wasm: bytes, known: ModuleInfo | None = None) -> ModuleInfo:
        """``known`` if given, else asyncwasm's decoding (refusing what the engine can't
        compile)."""
        return known if known is not None else decode_for_engine(wasm, self.context.engine)


_services: weakref.WeakKeyDictionary[RuntimeBase, CompileService] = weakref.WeakKeyDictionary()


def bind_service(runtime: RuntimeBase, service: CompileService) -> None:
    """Make ``service`` the one of ``runtime`` (called by ``Runtime`` when it is made)."""
    _services[runtime] = service


def service_for(runtime: RuntimeBase) -> CompileService:
    """The compile service of ``runtime``."""
    return _services[runtime]


# -- strategies ---------------------------------------------------------------------------------


class _Strategy(abc.ABC):
    """Where and how a runtime compiles: the engine's policy, chosen once per runtime."""

    def __init__(self, service: CompileService) -> None:
        self.service = service

    def prestart(self) -> None:  # noqa: B027 (optional hook, nothing to do by default)
        """Warm up while the application starts (``async with Runtime()``)."""

    def clear(self) -> None:  # noqa: B027 (optional hook, nothing to do by default)
        """Drop what is cached besides the in-memory cache."""

    @abc.abstractmethod
    def from_disk(self, artifact: bytes, info: ModuleInfo, wasm: bytes) -> Compiled | None:
        """The compilation for a verified disk entry, or ``None`` when it can't be loaded."""

    @abc.abstractmethod
    def produce(
        self, flight: _Flight, wasm: bytes, known: ModuleInfo | None
    ) -> tuple[Compiled, bytes | None]:
        """Compile ``wasm``: the result, and the artifact for the disk cache (if wanted)."""

    @abc.abstractmethod
    def parts(self, digest: bytes, compiled: Compiled) -> ModuleParts:
        """What a new public ``Module`` for a compilation result is made of."""

    def to_module(self, digest: bytes, compiled: Compiled) -> Module:
        """A new public ``Module`` for a compilation result."""
        return module_from_parts(self.parts(digest, compiled))


class _InThreads(_Strategy):
    """wasmtime: compile in a worker thread; the engine module is shared by the runtime."""

    def from_disk(self, artifact: bytes, info: ModuleInfo, wasm: bytes) -> Compiled | None:
        try:
            handle = self.service.context.engine.deserialize(None, artifact)
        except CompileError:
            return None
        return Compiled(info, handle, None, wasmtime_size(wasm))

    def produce(
        self, flight: _Flight, wasm: bytes, known: ModuleInfo | None
    ) -> tuple[Compiled, bytes | None]:
        service = self.service
        engine = service.context.engine
        info = service.decode(wasm, known)
        handle = engine.compile(None, wasm)
        artifact = engine.serialize(handle) if service.disk is not None else None
        return Compiled(info, handle, None, wasmtime_size(wasm)), artifact

    def parts(self, digest: bytes, compiled: Compiled) -> ModuleParts:
        assert compiled.handle is not None
        return ModuleParts(self.service.context, compiled.handle, compiled.info, None)


class _InProcesses(_Strategy):
    """wasmer: compile in a worker process; the artifact is deserialized into the current
    store, once per store and thread (wasmer modules are thread-affine)."""

    def __init__(self, service: CompileService) -> None:
        super().__init__(service)
        # Deserialized modules per store, never keeping a store alive.
        self.store_modules: weakref.WeakKeyDictionary[
            StoreCell, OrderedDict[tuple[bytes, int], ModuleHandle]
        ] = weakref.WeakKeyDictionary()

    def prestart(self) -> None:
        self.service.process_pool().prestart()

    def clear(self) -> None:
        self.store_modules.clear()

    def from_disk(self, artifact: bytes, info: ModuleInfo, wasm: bytes) -> Compiled | None:
        return Compiled(info, None, artifact, len(artifact) + len(wasm))

    def produce(
        self, flight: _Flight, wasm: bytes, known: ModuleInfo | None
    ) -> tuple[Compiled, bytes | None]:
        def on_start(worker: _Worker) -> bool:
            with flight.lock:
                if flight.abandoned:
                    return False
                flight.abort = worker.kill
                return True

        service = self.service
        artifact, info = service.process_pool().run(wasm, on_start, service.compile_timeout)
        return Compiled(info, None, artifact, len(artifact) + len(wasm)), artifact

    def parts(self, digest: bytes, compiled: Compiled) -> ModuleParts:
        assert compiled.artifact is not None
        context = self.service.context
        cell = context.store()
        key = (digest, threading.get_ident())
        table = self.store_modules.get(cell)
        if table is None:
            table = self.store_modules[cell] = OrderedDict()
        handle = table.get(key)
        if handle is None:
            handle = context.engine.deserialize(cell.handle, compiled.artifact)
            table[key] = handle
            while len(table) > STORE_MODULES_MAX:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
        return ModuleParts(context, handle, compiled.info, cell)


# -- compile ------------------------------------------------------------------------------------


async def compile_async(
    runtime: RuntimeBase,
    wasm: bytes,
    *,
    digest: bytes | None = None,
    info: ModuleInfo | None = None,
    _retried: bool = False,
) -> Module:
    """Compile ``wasm`` (already copied) with ``runtime``'s service without blocking the event
    loop.

    ``digest`` (the sha256 of ``wasm``) and ``info`` (its decoded sections) may be passed by a
    caller that already has them (streaming compilation) to save recomputing them.
    """
    service = service_for(runtime)
    service.check_open()
    original, original_digest = wasm, digest  # what the module pickles as (see _transfer)
    capped = service.context.prepare(wasm)
    if capped is not wasm:  # Limits written into the bytes: other bytes, other cache keys
        wasm, digest, info = capped, None, None
    check_size(wasm)
    check_counts(wasm)  # a count bomb fails here, before any thread or process is involved
    if digest is None:
        digest = (
            hashlib.sha256(wasm).digest()
            if len(wasm) <= _HASH_INLINE_MAX
            else await anyio.to_thread.run_sync(_sha256, wasm)
        )
    while True:
        compiled = service.memory_cache.get(digest)
        if compiled is not None:
            service.count("memory_hits")
            await anyio.lowlevel.checkpoint()
            break
        flight, lead = service.join_or_lead(digest)
        if not lead:
            service.count("joined")
        compiled = await _wait(service, flight, wasm, info, lead)
        if compiled is not None:
            break
        # The leader was cancelled before its compilation started: start over.
    try:
        module = service.strategy.to_module(digest, compiled)
        if original is wasm:
            return with_source(module, module_source(wasm, digest))
        return with_source(module, module_source(original, original_digest))
    except CompileError:
        # A wasmer artifact that passed its checksum but does not load (a forged or foreign
        # entry): forget it in both caches and compile afresh, once.
        if _retried or compiled.artifact is None:
            raise
    await _forget_artifact(service, digest)
    return await compile_async(runtime, wasm, digest=digest, info=info, _retried=True)


async def _forget_artifact(service: CompileService, digest: bytes) -> None:
    service.memory_cache.discard(digest)
    if service.disk is not None:
        service.count("disk_discarded")
        await anyio.to_thread.run_sync(service.disk.discard, digest)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def _wait(
    service: CompileService, flight: _Flight, wasm: bytes, info: ModuleInfo | None, lead: bool
) -> Compiled | None:
    """Wait for ``flight`` (running it when ``lead``); ``None`` means "start over"."""
    flight.waiters += 1
    try:
        while True:
            if lead:
                try:
                    if flight.state == _PENDING:
                        await _run_work(service, flight, wasm, info)
                    else:  # taking over from a cancelled leader: the work is under way
                        await anyio.to_thread.run_sync(flight.finished.wait, abandon_on_cancel=True)
                except BaseException:
                    _leader_left(service, flight)
                    raise
                _publish(service, flight)
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
        _leave(service, flight)


async def _run_work(
    service: CompileService, flight: _Flight, wasm: bytes, info: ModuleInfo | None
) -> None:
    """Run ``_work`` in a worker thread holding one of the runtime's ``max_workers`` slots.

    Under ``compile_timeout`` on an engine that compiles in a thread (wasmtime), the wait ends at
    the deadline with ``CompileTimeout``; the thread can't be stopped, so it runs on, keeps its
    slot until it ends and its result is dropped. (wasmer's worker process is killed at the
    deadline by the pool itself.)"""
    limiter = service.compile_limiter()
    await limiter.acquire_on_behalf_of(flight)
    flight.limiter = limiter
    timeout = None if service.context.engine.compile_in_process else service.compile_timeout
    try:
        with anyio.move_on_after(timeout if timeout is not None else math.inf) as scope:
            # The arguments travel in a list the thread empties: an idle anyio worker thread
            # keeps its last job's arguments until its next job, which would keep a forgotten
            # runtime's service (and its worker processes) alive.
            job: list[object] = [service, flight, wasm, info]
            await anyio.to_thread.run_sync(_work_job, job, abandon_on_cancel=True)
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


def _leader_left(service: CompileService, flight: _Flight) -> None:
    """The leader was cancelled: publish what is there, or let a follower take over."""
    with flight.lock:
        state = flight.state
        if state == _PENDING:
            flight.state = _DROPPED  # the worker thread will not start it
    _release_slot(flight)
    flight.leader_present = False
    if state == _FINISHED:
        _publish(service, flight)
        return
    if state == _PENDING:
        service.forget_flight(flight)
    changed, flight.changed = flight.changed, anyio.Event()
    changed.set()


def _leave(service: CompileService, flight: _Flight) -> None:
    flight.waiters -= 1
    if flight.waiters or flight.published:
        return
    # Nobody wants the result any more: drop it, and stop a worker process at once.
    with flight.lock:
        flight.abandoned = True
        abort = flight.abort
    service.forget_flight(flight)
    if abort is not None:
        abort()


def _publish(service: CompileService, flight: _Flight) -> None:
    if flight.published:
        return
    flight.published = True
    service.forget_flight(flight)
    if isinstance(flight.outcome, Compiled):
        service.memory_cache.put(flight.digest, flight.outcome, flight.outcome.size)
    flight.changed.set()


def _unwrap(flight: _Flight) -> Compiled:
    outcome = flight.outcome
    if isinstance(outcome, Compiled):
        return outcome
    if isinstance(outcome, PoolClosedError):
        raise RuntimeClosedError(str(outcome)) from outcome
    if isinstance(outcome, WorkerDied):
        raise CompileError(f"the compiler process was killed: {outcome}") from outcome
    assert isinstance(outcome, BaseException)
    raise outcome


def _work_job(job: list[object]) -> None:
    service, flight, wasm, info = job
    job.clear()
    _work(
        cast(CompileService, service),
        cast(_Flight, flight),
        cast(bytes, wasm),
        cast("ModuleInfo | None", info),
    )


def _work(service: CompileService, flight: _Flight, wasm: bytes, info: ModuleInfo | None) -> None:
    """The flight's compilation, in a worker thread. Stores its outcome in the flight."""
    with flight.lock:
        if flight.state == _DROPPED or flight.abandoned:
            return
        flight.state = _RUNNING
    outcome: Compiled | BaseException
    service.count("active_work")
    try:
        outcome = _produce(service, flight, wasm, info)
    except BaseException as error:
        outcome = error
    finally:
        service.count("active_work", -1)
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
    service: CompileService, flight: _Flight, wasm: bytes, known_info: ModuleInfo | None
) -> Compiled:
    if service.disk is None:
        return _produce_locked(service, flight, wasm, known_info)
    # Processes sharing the cache_dir compile a module once between them (see _filelock).
    with exclusive(service.disk.path_for(flight.digest).with_suffix(".lock")):
        return _produce_locked(service, flight, wasm, known_info)


def _produce_locked(
    service: CompileService, flight: _Flight, wasm: bytes, known_info: ModuleInfo | None
) -> Compiled:
    disk = service.disk
    digest = flight.digest
    strategy = service.strategy
    if disk is not None:
        try:
            entry = disk.load(digest)
        except CorruptEntry:
            service.count("disk_discarded")
            entry = None
        if entry is not None:
            artifact, extra = entry
            info = known_info if known_info is not None else _info_from(extra, wasm, service)
            compiled = strategy.from_disk(artifact, info, wasm)
            if compiled is not None:
                service.count("disk_hits")
                return compiled
            service.count("disk_discarded")
            disk.discard(digest)
    service.count("compiles")
    compiled, artifact_out = strategy.produce(flight, wasm, known_info)
    if disk is not None and artifact_out is not None:
        with flight.lock:
            abandoned = flight.abandoned
        if not abandoned:
            disk.store(digest, artifact_out, pickle.dumps(compiled.info, pickle.HIGHEST_PROTOCOL))
    return compiled


def _info_from(extra: bytes, wasm: bytes, service: CompileService) -> ModuleInfo:
    """The decoded sections kept in a (verified) disk entry, or decoded afresh."""
    try:
        info = pickle.loads(extra)
    except Exception:
        info = None
    return info if isinstance(info, ModuleInfo) else service.decode(wasm)


def wasmtime_size(wasm: bytes) -> int:
    # Machine code is ~2x the wasm (QuickJS: 1.5 MB -> 2.9 MB artifact), plus the decoded info.
    return 3 * len(wasm)


def _close_pools(pools: list[ProcessPool]) -> None:
    """A runtime's finalizer: stop its worker processes (blocks until they are reaped)."""
    while pools:
        pools.pop().close()
