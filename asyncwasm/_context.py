"""The store context: one runtime's engine, its current store, and the identity maps that keep
JS semantics. The layer between the engines and the JS API objects.

Stores are the unit in which engines free memory: an instance's memory goes when its store
goes, not before. A context therefore holds its current store only *weakly*, through a
``StoreCell``; every public object made in that store (module on wasmer, instance, function,
memory, table, global, tag) holds the cell strongly. When the user has dropped all of them, the
cell and the engine store are freed, and the next object starts a fresh store. All live objects
of a runtime are always in one store, so any of them can be imported into any instance, as in JS.

Every ``asyncwasm.Runtime`` has one context (``context_for(runtime)``; ``Runtime`` subclasses
``RuntimeBase``, the part of it this layer knows); the objects made without a runtime use the
default runtime's (``default_context()``). The JS API classes are defined
above this layer: they register here (``StoreObject`` subclasses name their extern kind), so that
a function or tag handle coming out of wasm becomes its public object without this module, or the
value conversions, importing them.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import replace
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

from . import _fork
from ._binary import ModuleInfo
from ._caps import cap_module
from ._engines import Engine, EngineFeatures, get_engine
from ._engines._base import ExternHandle, FuncHandle, ModuleHandle, StoreHandle, TagHandle
from ._exceptions import RangeError
from ._limits import Limits
from ._types import Limits as TypeLimits
from ._types import MemoryType

__all__ = [
    "RuntimeBase",
    "StoreCell",
    "StoreContext",
    "StoreObject",
    "cell_of",
    "context_for",
    "context_of",
    "default_context",
    "from_handle",
    "handle_of",
    "set_default_context",
]

T = TypeVar("T")
_S = TypeVar("_S", bound="StoreObject[Any]")
_H = TypeVar("_H", bound=ExternHandle)


CachedLookup: TypeAlias = Callable[
    [bytes], "tuple[ModuleHandle, ModuleInfo, StoreCell | None] | None"
]
"""``StoreContext.cached_compilation``: wasm bytes to (engine module, decoded sections, store
cell or ``None``), or ``None`` when they were not compiled yet."""


class StoreCell:
    """Owns one engine store; alive while any object made in the store is."""

    __slots__ = ("__weakref__", "handle")

    def __init__(self, handle: StoreHandle) -> None:
        self.handle = handle


class StoreContext:
    """One runtime's engine, current store and identity maps.

    ``closed`` is set when the runtime is closed: the default context is then replaced.
    """

    __slots__ = (
        "__weakref__",
        "_functions",
        "_lock",
        "_store_ref",
        "_tags",
        "cached_compilation",
        "closed",
        "engine",
        "limits",
        "live_instances",
    )

    def __init__(self, engine: Engine, limits: Limits | None = None) -> None:
        self.engine = engine
        self.closed = False
        # The runtime's resource limits: the engine enforces them per store (new_store) or in
        # the module bytes (wasmer, see _caps); the instance count is kept here.
        self.limits = limits
        self.live_instances = 0
        # Set by the runtime's compile service (a layer above, so it registers itself here):
        # the compilation of these bytes already in its in-memory cache, made by validate() or
        # compile(), so that the synchronous Module() that usually follows does not compile
        # again.
        self.cached_compilation: CachedLookup | None = None
        self._lock = threading.Lock()
        self._store_ref: weakref.ref[StoreCell] | None = None
        # Identity: the same wasm function or tag always comes out as the same Python object.
        self._functions: weakref.WeakValueDictionary[Hashable, StoreObject[Any]] = (
            weakref.WeakValueDictionary()
        )
        self._tags: weakref.WeakValueDictionary[Hashable, StoreObject[Any]] = (
            weakref.WeakValueDictionary()
        )
        _fork.track(self)

    def _after_fork_in_child(self) -> None:
        # The parent's store and the objects in it are refused by the engine from now on; the
        # next object made here starts a store of the child's own.
        self._lock = threading.Lock()
        self._store_ref = None
        self._functions = weakref.WeakValueDictionary()
        self._tags = weakref.WeakValueDictionary()

    @property
    def features(self) -> EngineFeatures:
        return self.engine.features

    @property
    def engine_name(self) -> str:
        return self.engine.name

    def prepare(self, wasm: bytes) -> bytes:
        """The bytes to compile for this runtime: on an engine without store limits (wasmer),
        with ``Limits.memory``/``table_elements`` written into the module (``_caps``; the
        compile caches then key on the capped bytes, so runtimes with different caps never
        share an entry and runtimes with the same caps do)."""
        limits = self.limits
        if limits is None or not self.engine.caps_in_module:
            return wasm
        return cap_module(wasm, limits.memory_pages, limits.table_elements)

    def host_memory_type(self, mtype: MemoryType) -> MemoryType:
        """The type to create a memory of from Python with: on an engine without store limits,
        ``Limits.memory`` becomes its maximum (``RangeError`` when it starts larger)."""
        limits = self.limits
        cap = None if limits is None else limits.memory_pages
        if cap is None or not self.engine.caps_in_module:
            return mtype
        first, last = mtype.limits.minimum, mtype.limits.maximum
        if first > cap:
            raise RangeError(f"a memory of {first} pages is over the limit of {cap} pages")
        return replace(mtype, limits=TypeLimits(first, cap if last is None else min(last, cap)))

    def store(self) -> StoreCell:
        """The current store, made anew when nothing holds the previous one."""
        with self._lock:
            cell = self._store_ref() if self._store_ref is not None else None
            if cell is None:
                cell = StoreCell(self.engine.new_store(self.limits))
                self._store_ref = weakref.ref(cell)
            return cell

    def function_for_handle(
        self, handle: FuncHandle, cell: StoreCell | None = None, type: object = None
    ) -> StoreObject[Any]:
        """The one ``asyncwasm.Function`` for an engine function handle."""
        return self._one(
            self._functions, "function", self.engine.func_key(handle), handle, cell, type
        )

    def tag_for_handle(
        self, handle: TagHandle, cell: StoreCell | None = None, type: object = None
    ) -> StoreObject[Any]:
        """The one ``asyncwasm.Tag`` for an engine tag handle."""
        return self._one(self._tags, "tag", self.engine.tag_key(handle), handle, cell, type)

    def remember_tag(self, tag: StoreObject[Any]) -> None:
        """Register a tag made from Python, so that an exception wasm throws with it carries
        this very object."""
        self._tags.setdefault(self.engine.tag_key(handle_of(tag, TagHandle)), tag)

    def _one(
        self,
        table: weakref.WeakValueDictionary[Hashable, StoreObject[Any]],
        kind: str,
        key: Hashable,
        handle: ExternHandle,
        cell: StoreCell | None,
        type: object,
    ) -> StoreObject[Any]:
        obj = table.get(key)
        if obj is None:
            cls = _CLASSES[kind]
            obj = from_handle(cls, self, cell if cell is not None else self.store(), handle, type)
            table[key] = obj
        elif obj._type is None and type is not None:
            obj._type = type  # first seen without a type (from a table), now exported with one
        return obj


class StoreObject(Generic[T]):
    """An engine object seen from Python: the context that made it, the store cell it keeps
    alive (its store is freed only when no such object is left), the engine's handle, and its
    type as declared or decoded (never asked of the engine: see ``_engines/_base.py``).

    A subclass passes ``kind="function"`` (or ``"tag"``...) to be the class the context makes
    for handles of that kind.
    """

    __slots__ = ("__weakref__", "_cell", "_context", "_handle", "_type")

    kind: ClassVar[str] = ""
    _context: StoreContext
    _cell: StoreCell
    _handle: ExternHandle
    _type: T

    def __init_subclass__(cls, kind: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind:
            cls.kind = kind
            _CLASSES[kind] = cls

    def _init(self, context: StoreContext, cell: StoreCell, handle: ExternHandle, type: T) -> None:
        self._context = context
        self._cell = cell
        self._handle = handle
        self._type = type


_CLASSES: dict[str, type[StoreObject[Any]]] = {}


# -- reading objects from other modules -------------------------------------------------------
# The JS API modules use these rather than each other's private attributes.


def from_handle(
    cls: type[_S], context: StoreContext, cell: StoreCell, handle: ExternHandle, type: Any
) -> _S:
    """The ``cls`` object for an engine handle made elsewhere (an export, a table entry, ...)."""
    obj = cls.__new__(cls)
    obj._init(context, cell, handle, type)
    return obj


def context_of(obj: StoreObject[Any]) -> StoreContext:
    """The context ``obj`` was made in."""
    return obj._context


def cell_of(obj: StoreObject[Any]) -> StoreCell:
    """The store cell ``obj`` keeps alive."""
    return obj._cell


def handle_of(obj: StoreObject[Any], kind: type[_H]) -> _H:
    """``obj``'s engine handle (checked to be a ``kind``). ``TypeError`` for an object made with
    ``cls.__new__`` and never initialised (JS: ``Object.create(WebAssembly.Global.prototype)``)."""
    try:
        handle = obj._handle
    except AttributeError:
        raise TypeError(f"the {type(obj).__name__} object was never initialised") from None
    if not isinstance(handle, kind):
        raise TypeError(f"expected a {kind.__name__}, got {type(handle).__name__}")
    return handle


def type_of(obj: StoreObject[T]) -> T:
    """``obj``'s type as declared or decoded (``None`` where unknown)."""
    return obj._type


# -- runtimes and the default context -------------------------------------------------------


class RuntimeBase:
    """The base of ``asyncwasm.Runtime``: the part of it the layers below know, its store
    context. It is what the JS API constructors' ``runtime=`` arguments accept."""

    _context: StoreContext

    def __init__(self, context: StoreContext) -> None:
        self._context = context


_default_lock = threading.Lock()
_default: StoreContext | None = None


def _renew_default_lock() -> None:
    global _default_lock
    _default_lock = threading.Lock()


_fork.at_fork_in_child(_renew_default_lock)


def context_for(runtime: RuntimeBase | None) -> StoreContext:
    """The context of ``runtime``, or the default one for ``None``."""
    if runtime is None:
        return default_context()
    if not isinstance(runtime, RuntimeBase):
        raise TypeError(f"runtime must be an asyncwasm.Runtime, not {type(runtime).__name__}")
    return runtime._context


def default_context() -> StoreContext:
    """The default runtime's context: made on first use (engine by ``$ASYNCWASM_ENGINE`` or
    preference), and made anew once that runtime is closed."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = StoreContext(get_engine(None))
        return _default


def set_default_context(context: StoreContext | None) -> None:
    """Replace the default context (the default runtime's facade calls this)."""
    global _default
    with _default_lock:
        _default = context
