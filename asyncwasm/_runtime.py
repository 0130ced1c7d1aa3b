"""The Runtime: one engine, its current store, and the identity maps that keep JS semantics.

Stores are the unit in which engines free memory: an instance's memory goes when its store
goes, not before. A Runtime therefore holds its current store only *weakly*, through a
``StoreCell``; every public object made in that store (module on wasmer, instance, function,
memory, table, global, tag) holds the cell strongly. When the user has dropped all of them, the
cell and the engine store are freed, and the next object starts a fresh store. All live objects
of a runtime are always in one store, so any of them can be imported into any instance, as in JS.

The compile service (see ``_compile``): a ``CapacityLimiter`` of ``max_workers`` tokens bounds
concurrent compilations (worker threads for wasmtime, worker processes for wasmer, kept warm in
the runtime's ``ProcessPool``); concurrent compiles of the same bytes share one compilation; a
size-bounded in-memory cache and an opt-in on-disk cache make repeated compiles near-free.

Lifecycle: ``async with Runtime(...) as rt:`` (or ``await rt.aclose()``, or ``rt.close()``)
stops the runtime's worker processes; afterwards ``compile`` raises ``RuntimeError`` (Python's),
while the modules and instances already made keep working. A runtime that is never closed has
its workers stopped when it is garbage-collected or, at the latest, at interpreter exit: the
default runtime behind the module-level functions relies on that.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, overload

import anyio
import anyio.lowlevel
import anyio.to_thread

from ._cache import CacheInfo, DiskCache, MemoryCache
from ._engines import Engine, EngineFeatures, available_engines, get_engine
from ._exceptions import PythonRuntimeError
from ._pool import ProcessPool
from ._source import copy_buffer_source
from ._types import FuncType, TagType

if TYPE_CHECKING:
    from ._compile import Compiled, _Flight
    from ._function import Function
    from ._instance import Instance
    from ._module import Module
    from ._tag import Tag

__all__ = ["CacheInfo", "InstantiatedSource", "Runtime", "StoreCell", "get_default_runtime"]

DEFAULT_CACHE_SIZE: Final = 256 << 20
"""Default bound of a runtime's in-memory compile cache, in bytes."""


class StoreCell:
    """Owns one engine store; alive while any object made in the store is."""

    __slots__ = ("__weakref__", "handle")

    def __init__(self, handle: Any) -> None:
        self.handle = handle


class Runtime:
    """An engine with its store, worker pool and caches.

    ``Runtime(engine=None, *, max_workers=None, cache_size=256 MiB, cache_dir=None)``:

    - ``engine`` is ``"wasmer"`` or ``"wasmtime"``; by default wasmer (with Cranelift) where it
      imports, else wasmtime; ``$ASYNCWASM_ENGINE`` overrides the default.
    - ``max_workers`` bounds the compilations running at once (worker threads for wasmtime,
      worker processes for wasmer); default: the number of CPUs.
    - ``cache_size`` bounds the in-memory compile cache, in bytes (``0`` disables it).
    - ``cache_dir`` enables the on-disk artifact cache in that directory, created with mode
      0700 (an existing one must belong to you; its group and other permissions are removed).
    - ``compile_timeout`` (seconds) bounds each compilation of ``compile``,
      ``compile_streaming``, ``instantiate`` (from bytes) and ``validate``: past it they raise
      ``CompileError`` (wasmer: the worker process is killed; wasmtime: the wait ends, the
      compiler thread runs to its end in the background and keeps its ``max_workers`` slot
      until then). The synchronous ``Module()`` is not bounded.

    The module-level functions (``asyncwasm.compile`` ...) use a process-wide default runtime; a
    runtime's methods mirror them. Use it as ``async with Runtime() as rt:`` (or call
    ``await rt.aclose()``) to stop its worker processes when done.
    """

    def __init__(
        self,
        engine: str | None = None,
        *,
        max_workers: int | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_dir: str | os.PathLike[str] | None = None,
        compile_timeout: float | None = None,
    ) -> None:
        if compile_timeout is not None and not (
            isinstance(compile_timeout, (int, float))
            and not isinstance(compile_timeout, bool)
            and compile_timeout > 0
        ):
            raise ValueError(f"compile_timeout must be a positive number, not {compile_timeout!r}")
        self._compile_timeout: float | None = compile_timeout
        if max_workers is None:
            max_workers = os.cpu_count() or 2
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be a positive int, not {max_workers!r}")
        self._engine: Engine = get_engine(engine)
        self._max_workers = max_workers
        self._memory_cache: MemoryCache[bytes, Compiled] = MemoryCache(cache_size)
        self._disk = (
            DiskCache(cache_dir, self._engine.cache_key()) if cache_dir is not None else None
        )
        self._flights: dict[bytes, _Flight] = {}
        self._limiter: tuple[object, anyio.CapacityLimiter] | None = None
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        # wasmer: deserialized modules per store (see _compile), never keeping a store alive.
        self._store_modules: weakref.WeakKeyDictionary[StoreCell, OrderedDict[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False
        # The pool lives in a list the finalizer holds, not the runtime: a forgotten runtime's
        # workers are stopped when it is collected, or at interpreter exit.
        self._pools: list[ProcessPool] = []
        self._finalizer = weakref.finalize(self, _close_pools, self._pools)
        self._lock = threading.Lock()
        self._store_ref: weakref.ref[StoreCell] | None = None
        # funcref identity: the same wasm function always comes out as the same Python object.
        self._functions: weakref.WeakValueDictionary[object, Function] = (
            weakref.WeakValueDictionary()
        )
        self._tags: weakref.WeakValueDictionary[object, Tag] = weakref.WeakValueDictionary()

    # -- introspection ------------------------------------------------------------------------
    @staticmethod
    def engines() -> list[str]:
        """The engines importable on this Python, in order of preference."""
        return available_engines()

    @property
    def engine(self) -> str:
        """The name of this runtime's engine: ``"wasmer"`` or ``"wasmtime"``."""
        return self._engine.name

    @property
    def features(self) -> EngineFeatures:
        """Which optional capabilities this runtime's engine has (host tables, reference
        values, v128, tags and exceptions, fuel, ...)."""
        return self._engine.features

    @property
    def max_workers(self) -> int:
        """How many compilations may run at once (threads or worker processes)."""
        return self._max_workers

    @property
    def compile_timeout(self) -> float | None:
        """The bound on one compilation, in seconds, or ``None``."""
        return self._compile_timeout

    @property
    def cache_dir(self) -> str | None:
        """The on-disk artifact cache's directory, or ``None`` when it is off."""
        return str(self._disk.directory) if self._disk is not None else None

    @property
    def closed(self) -> bool:
        """Whether ``aclose()``/``close()`` was called."""
        return self._closed

    def cache_info(self) -> CacheInfo:
        """Counters of the compile service: compilations run, cache hits, shared flights."""
        with self._stats_lock:
            stats = dict(self._stats)
        return CacheInfo(
            compiles=stats.get("compiles", 0),
            memory_hits=stats.get("memory_hits", 0),
            disk_hits=stats.get("disk_hits", 0),
            disk_discarded=stats.get("disk_discarded", 0),
            joined=stats.get("joined", 0),
            entries=len(self._memory_cache),
            size=self._memory_cache.size,
            max_size=self._memory_cache.max_size,
        )

    def clear_cache(self) -> None:
        """Empty the in-memory compile cache (the on-disk one is left alone)."""
        self._memory_cache.clear()
        self._store_modules.clear()

    def __repr__(self) -> str:
        return f"<asyncwasm.Runtime engine={self.engine!r} version={self._engine.version!r}>"

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Runtime:
        self._check_open()
        if self._engine.compile_in_process:
            # Warm up: a worker process imports the engine while the application starts.
            await anyio.to_thread.run_sync(self._process_pool().prestart)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the worker processes (killing those still compiling: their ``compile`` calls
        raise ``RuntimeError``) and drop the in-memory cache. Idempotent. Objects already made
        keep working; ``compile`` no longer does."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._finalizer)
        self.clear_cache()

    def close(self) -> None:
        """``aclose()`` for synchronous code: blocks until the workers have exited."""
        self._closed = True
        self._finalizer()
        self.clear_cache()

    def _check_open(self) -> None:
        if self._closed:
            raise PythonRuntimeError("this asyncwasm.Runtime is closed")

    # -- the compile service's internals (see _compile) ---------------------------------------
    def _count(self, what: str, delta: int = 1) -> None:
        with self._stats_lock:
            self._stats[what] += delta

    @property
    def _active_work(self) -> int:
        """Compilations running in worker threads now (including abandoned ones finishing)."""
        with self._stats_lock:
            return self._stats["active_work"]

    def _compile_limiter(self) -> anyio.CapacityLimiter:
        """The ``CapacityLimiter`` of ``max_workers`` tokens for the current event loop (a
        limiter belongs to one loop; a runtime may outlive several, e.g. ``asyncio.run`` twice)."""
        loop = anyio.lowlevel.current_token()
        current = self._limiter
        if current is None or current[0] != loop:
            current = (loop, anyio.CapacityLimiter(self._max_workers))
            self._limiter = current
        return current[1]

    def _process_pool(self) -> ProcessPool:
        with self._lock:
            if not self._pools:
                self._check_open()
                self._pools.append(ProcessPool(self._engine.name, self._max_workers))
            return self._pools[0]

    def _join_or_lead(self, digest: bytes) -> tuple[_Flight, bool]:
        """The flight compiling ``digest`` on this event loop, and whether we lead it."""
        from ._compile import _Flight

        flight = self._flights.get(digest)
        if flight is not None and not flight.published and flight.same_loop():
            return flight, False
        flight = _Flight(digest)
        if digest not in self._flights:
            self._flights[digest] = flight
        return flight, True

    def _forget_flight(self, flight: _Flight) -> None:
        if self._flights.get(flight.digest) is flight:
            del self._flights[flight.digest]

    # -- stores ------------------------------------------------------------------------------
    def _store(self) -> StoreCell:
        """The current store, made anew when nothing holds the previous one."""
        with self._lock:
            cell = self._store_ref() if self._store_ref is not None else None
            if cell is None:
                cell = StoreCell(self._engine.new_store())
                self._store_ref = weakref.ref(cell)
            return cell

    # -- functions ---------------------------------------------------------------------------
    def _function_for_handle(
        self, handle: Any, cell: StoreCell | None = None, type: FuncType | None = None
    ) -> Function:
        """The one ``Function`` object for an engine function handle."""
        from ._function import Function

        key = self._engine.func_key(handle)
        fn = self._functions.get(key)
        if fn is None:
            fn = Function._from_handle(
                self, cell if cell is not None else self._store(), handle, type
            )
            self._functions[key] = fn
        elif fn._type is None and type is not None:
            fn._type = type
        return fn

    def _tag_for_handle(
        self, handle: Any, cell: StoreCell | None = None, type: TagType | None = None
    ) -> Tag:
        """The one ``Tag`` object for an engine tag handle."""
        from ._tag import Tag

        key = self._engine.tag_key(handle)
        tag = self._tags.get(key)
        if tag is None:
            tag = Tag._from_handle(self, cell if cell is not None else self._store(), handle, type)
            self._tags[key] = tag
        elif tag._type is None and type is not None:
            tag._type = type
        return tag

    # -- the async API -----------------------------------------------------------------------
    def validate(self, source: object) -> bool:
        """Like ``asyncwasm.validate``, with this runtime's engine."""
        from ._module import validate

        return validate(source, runtime=self)

    async def compile(self, source: object) -> Module:
        """Like ``asyncwasm.compile``, with this runtime's engine."""
        from ._compile import compile_async

        return await compile_async(self, copy_buffer_source(source))

    @overload
    async def instantiate(  # type: ignore[overload-overlap]  # Module first wins
        self, source: Module, imports: object = None
    ) -> Instance: ...

    @overload
    async def instantiate(self, source: object, imports: object = None) -> InstantiatedSource: ...

    async def instantiate(
        self, source: object, imports: object = None
    ) -> Instance | InstantiatedSource:
        """Like ``asyncwasm.instantiate``, with this runtime's engine."""
        from ._instance import Instance
        from ._module import Module

        if isinstance(source, Module):
            # On the loop thread: a small module instantiates in tens of microseconds, less than
            # a hop to a worker thread, wasmer objects can't leave this thread, and host
            # functions run by a start function see the caller's thread (benchmarks/README.md).
            await anyio.lowlevel.checkpoint()
            return Instance(source, imports)
        module = await self.compile(source)
        return InstantiatedSource(module, Instance(module, imports))

    async def compile_streaming(
        self,
        source: object,
        *,
        max_bytes: int | None = None,
        on_progress: Callable[[int, int | None], object] | None = None,
    ) -> Module:
        """Like ``asyncwasm.compile_streaming``, with this runtime's engine."""
        from ._streaming import compile_streaming

        return await compile_streaming(
            self, source, max_bytes=max_bytes, on_progress=on_progress
        )

    async def instantiate_streaming(
        self,
        source: object,
        imports: object = None,
        *,
        max_bytes: int | None = None,
        on_progress: Callable[[int, int | None], object] | None = None,
    ) -> InstantiatedSource:
        """Like ``asyncwasm.instantiate_streaming``, with this runtime's engine."""
        from ._streaming import instantiate_streaming

        return await instantiate_streaming(
            self, source, imports, max_bytes=max_bytes, on_progress=on_progress
        )


class InstantiatedSource(NamedTuple):
    """What ``instantiate(bytes, imports)`` gives: the compiled module and its instance."""

    module: Module
    instance: Instance


_default_lock = threading.Lock()
_default_runtime: Runtime | None = None


def get_default_runtime() -> Runtime:
    """The process-wide runtime the module-level functions use (made on first use, and made
    anew if it was closed). Its worker processes are stopped at interpreter exit."""
    global _default_runtime
    with _default_lock:
        if _default_runtime is None or _default_runtime.closed:
            _default_runtime = Runtime()
        return _default_runtime


def _close_pools(pools: list[ProcessPool]) -> None:
    """A runtime's finalizer: stop its worker processes (blocks until they are reaped)."""
    while pools:
        pools.pop().close()


def _set_default_runtime(runtime: Runtime | None) -> Runtime | None:
    """Replace the default runtime; returns the previous one. For tests and embedding."""
    global _default_runtime
    with _default_lock:
        previous, _default_runtime = _default_runtime, runtime
        return previous
