"""The Runtime: one engine, its current store, and the identity maps that keep JS semantics.

Stores are the unit in which engines free memory: an instance's memory goes when its store
goes, not before. A Runtime therefore holds its current store only *weakly*, through a
``StoreCell``; every public object made in that store (module on wasmer, instance, function,
memory, table, global, tag) holds the cell strongly. When the user has dropped all of them, the
cell and the engine store are freed, and the next object starts a fresh store. All live objects
of a runtime are always in one store, so any of them can be imported into any instance, as in JS.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple, overload

from ._engines import Engine, EngineFeatures, available_engines, get_engine
from ._source import copy_buffer_source
from ._types import FuncType, TagType

if TYPE_CHECKING:
    from ._function import Function
    from ._instance import Instance
    from ._module import Module
    from ._tag import Tag

__all__ = ["InstantiatedSource", "Runtime", "StoreCell", "get_default_runtime"]


class StoreCell:
    """Owns one engine store; alive while any object made in the store is."""

    __slots__ = ("__weakref__", "handle")

    def __init__(self, handle: Any) -> None:
        self.handle = handle


class Runtime:
    """An engine with its store, worker pool and caches.

    ``Runtime(engine=None)``: ``engine`` is ``"wasmer"`` or ``"wasmtime"``; by default wasmer
    (with Cranelift) where it imports, else wasmtime; ``$ASYNCWASM_ENGINE`` overrides the
    default. The module-level functions (``asyncwasm.compile`` ...) use a process-wide default
    runtime; a runtime's methods mirror them.
    """

    def __init__(self, engine: str | None = None) -> None:
        self._engine: Engine = get_engine(engine)
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

    def __repr__(self) -> str:
        return f"<asyncwasm.Runtime engine={self.engine!r} version={self._engine.version!r}>"

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
            return Instance(source, imports)
        module = await self.compile(source)
        return InstantiatedSource(module, Instance(module, imports))


class InstantiatedSource(NamedTuple):
    """What ``instantiate(bytes, imports)`` gives: the compiled module and its instance."""

    module: Module
    instance: Instance


_default_lock = threading.Lock()
_default_runtime: Runtime | None = None


def get_default_runtime() -> Runtime:
    """The process-wide runtime the module-level functions use (made on first use)."""
    global _default_runtime
    with _default_lock:
        if _default_runtime is None:
            _default_runtime = Runtime()
        return _default_runtime


def _set_default_runtime(runtime: Runtime | None) -> Runtime | None:
    """Replace the default runtime; returns the previous one. For tests and embedding."""
    global _default_runtime
    with _default_lock:
        previous, _default_runtime = _default_runtime, runtime
        return previous
