"""The Runtime: a thin facade over one store context (``_context``) and one compile service
(``_compile``), and the process-wide default runtime behind the namespace functions.

Lifecycle: ``async with Runtime(...) as rt:`` (or ``await rt.aclose()``, or ``rt.close()``)
stops the runtime's worker processes; afterwards ``compile`` raises ``RuntimeClosedError``,
while the modules and instances already made keep working. A runtime that is never closed has
its workers stopped when it is garbage-collected or, at the latest, at interpreter exit: the
default runtime behind the module-level functions relies on that.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Final, overload

import anyio
import anyio.lowlevel
import anyio.to_thread

from . import _fork
from ._cache import CacheInfo
from ._compile import CompileService, bind_service, compile_async
from ._context import (
    RuntimeBase,
    StoreContext,
    context_for,
    default_context,
    set_default_context,
)
from ._engines import Engine, EngineFeatures, available_engines, get_engine
from ._exceptions import NotSupportedError
from ._instance import Instance, InstantiatedSource
from ._limits import Limits
from ._module import Module
from ._source import copy_buffer_source
from ._streaming import compile_streaming, instantiate_streaming
from ._validate import validate_bytes

__all__ = ["CacheInfo", "InstantiatedSource", "Runtime", "get_default_runtime"]

DEFAULT_CACHE_SIZE: Final = 256 << 20
"""Default bound of a runtime's in-memory compile cache, in bytes."""


class Runtime(RuntimeBase):
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
    - ``limits`` (``asyncwasm.Limits``) bounds what the runtime's modules may use: memory and
      table sizes, live instances, fuel and wall-clock time per exported call. A limit the
      engine cannot enforce raises ``NotSupportedError`` here. Tenants with different limits
      are different runtimes; on wasmtime, ``Limits.fuel`` selects a second engine configured
      with fuel metering, whose compiled code is not shared with runtimes without fuel.

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
        limits: Limits | None = None,
    ) -> None:
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits must be an asyncwasm.Limits, not {type(limits).__name__}")
        if compile_timeout is not None and not (
            isinstance(compile_timeout, (int, float))
            and not isinstance(compile_timeout, bool)
            and compile_timeout > 0
        ):
            raise ValueError(f"compile_timeout must be a positive number, not {compile_timeout!r}")
        if max_workers is None:
            max_workers = os.cpu_count() or 2
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be a positive int, not {max_workers!r}")
        context = StoreContext(_engine_for(engine, limits), limits)
        self._setup(
            CompileService(
                context,
                max_workers=max_workers,
                cache_size=cache_size,
                cache_dir=cache_dir,
                compile_timeout=compile_timeout,
            )
        )

    def _setup(self, compiler: CompileService) -> None:
        super().__init__(compiler.context)
        self._engine: Engine = compiler.context.engine
        self._compiler = compiler
        bind_service(self, compiler)

    @classmethod
    def _around(cls, context: StoreContext) -> Runtime:
        """A runtime with default options around an existing context (the default runtime)."""
        runtime = cls.__new__(cls)
        workers = os.cpu_count() or 2
        runtime._setup(
            CompileService(
                context, max_workers=workers, cache_size=DEFAULT_CACHE_SIZE, cache_dir=None
            )
        )
        return runtime

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
    def limits(self) -> Limits | None:
        """The resource limits given at creation, or ``None``."""
        return self._context.limits

    @property
    def max_workers(self) -> int:
        """How many compilations may run at once (threads or worker processes)."""
        return self._compiler.max_workers

    @property
    def compile_timeout(self) -> float | None:
        """The bound on one compilation, in seconds, or ``None``."""
        return self._compiler.compile_timeout

    @property
    def cache_dir(self) -> str | None:
        """The on-disk artifact cache's directory, or ``None`` when it is off."""
        disk = self._compiler.disk
        return str(disk.directory) if disk is not None else None

    @property
    def closed(self) -> bool:
        """Whether ``aclose()``/``close()`` was called."""
        return self._compiler.closed

    def cache_info(self) -> CacheInfo:
        """Counters of the compile service: compilations run, cache hits, shared flights."""
        return self._compiler.cache_info()

    def clear_cache(self) -> None:
        """Empty the in-memory compile cache (the on-disk one is left alone)."""
        self._compiler.clear_cache()

    def __repr__(self) -> str:
        return f"<asyncwasm.Runtime engine={self.engine!r} version={self._engine.version!r}>"

    def with_limits(self, limits: Limits | None) -> Runtime:
        """A runtime for another tenant: the same engine and options, its own store and
        ``limits``, sharing this runtime's in-memory compile cache, so that a module compiled
        for one tenant is not compiled again for the next (and its on-disk cache, if any).

        On wasmtime, fuel is an engine setting: runtimes with ``Limits.fuel`` use the fuel
        engine, so tenants with and without fuel don't share compiled code (tenants with
        different fuel amounts do). On wasmer, memory and table caps are written into the
        module (``Limits.memory``/``table_elements``): tenants with the same caps share
        compiled code, tenants with different caps don't.
        """
        compiler = self._compiler
        runtime = Runtime(
            self.engine,
            max_workers=compiler.max_workers,
            cache_size=compiler.memory_cache.max_size,
            cache_dir=self.cache_dir,
            compile_timeout=compiler.compile_timeout,
            limits=limits,
        )
        if runtime._engine is self._engine:  # never an engine module into another engine
            runtime._compiler.memory_cache = compiler.memory_cache
        return runtime

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Runtime:
        self._compiler.check_open()
        # Warm up: e.g. a worker process imports the engine while the application starts.
        await anyio.to_thread.run_sync(self._compiler.strategy.prestart)
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
        raise ``RuntimeClosedError``) and drop the in-memory cache. Idempotent. Objects already
        made keep working; ``compile`` no longer does."""
        self._context.closed = True
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._compiler.close)

    def close(self) -> None:
        """``aclose()`` for synchronous code: blocks until the workers have exited."""
        self._context.closed = True
        self._compiler.close()

    # -- the async API -----------------------------------------------------------------------
    def validate(self, source: object) -> bool:
        """Like ``asyncwasm.validate``, with this runtime's engine."""
        return validate_bytes(self._compiler, copy_buffer_source(source))

    async def compile(self, source: object) -> Module:
        """Like ``asyncwasm.compile``, with this runtime's engine."""
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
        return await compile_streaming(self, source, max_bytes=max_bytes, on_progress=on_progress)

    async def instantiate_streaming(
        self,
        source: object,
        imports: object = None,
        *,
        max_bytes: int | None = None,
        on_progress: Callable[[int, int | None], object] | None = None,
    ) -> InstantiatedSource:
        """Like ``asyncwasm.instantiate_streaming``, with this runtime's engine."""
        return await instantiate_streaming(
            self, source, imports, max_bytes=max_bytes, on_progress=on_progress
        )


def _engine_for(name: str | None, limits: Limits | None) -> Engine:
    """The engine for a runtime with ``limits``; ``NotSupportedError`` for a limit it cannot
    enforce."""
    engine = get_engine(name, fuel=limits is not None and limits.fuel is not None)
    if limits is not None and limits.timeout is not None and not engine.features.timeouts:
        raise NotSupportedError(engine.name, "call timeouts (Limits.timeout)")
    return engine


_default_lock = threading.Lock()
_default_runtime: Runtime | None = None


def _renew_default_lock() -> None:
    global _default_lock
    _default_lock = threading.Lock()


_fork.at_fork_in_child(_renew_default_lock)


def get_default_runtime() -> Runtime:
    """The process-wide runtime the module-level functions use (made on first use, and made
    anew if it was closed), around the default store context that objects made without a
    runtime use. Its worker processes are stopped at interpreter exit."""
    global _default_runtime
    context = default_context()
    with _default_lock:
        if _default_runtime is None or context_for(_default_runtime) is not context:
            _default_runtime = Runtime._around(context)
        return _default_runtime


def _set_default_runtime(runtime: Runtime | None) -> Runtime | None:
    """Replace the default runtime; returns the previous one. For tests and embedding."""
    global _default_runtime
    with _default_lock:
        previous, _default_runtime = _default_runtime, runtime
        set_default_context(context_for(runtime) if runtime is not None else None)
        return previous
