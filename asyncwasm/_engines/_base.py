"""The one internal interface between asyncwasm and a WebAssembly engine.

Nothing outside ``asyncwasm/_engines/`` imports ``wasmer`` or ``wasmtime``. Each engine module
implements :class:`Engine` and translates its engine's exceptions at this boundary into
asyncwasm's (``CompileError``, ``LinkError``, ``RuntimeError`` with ``.trap``, ``RangeError``,
``NotSupportedError``), keeping the engine's message and chaining the original as ``__cause__``.
A ``BaseException`` from an engine (wasmer's ``PanicException``) never escapes either.

Handles
    Engine objects (modules, instances, functions, memories, tables, globals, tags) are passed
    around as opaque handles, instances of the marker classes below (``FuncHandle``, ...) that
    each engine's own handle classes subclass: the public layer only hands them back. The public layer never asks the engine for the *type* of a handle: types come from
    asyncwasm's own binary decoder or from the type the object was created with, because on
    wasmtime merely reading some types (v128, exnref, GC refs) aborts the process.

Stores
    Every instance, function, memory, table, global and tag lives in a store (``new_store()``).
    The runtime keeps its current store weakly and every public object strongly, so a store is
    freed as soon as nothing made in it is reachable (engines only free instances per store).
    ``module_needs_store`` says whether compiled modules belong to a store too (wasmer) or to
    the engine alone (wasmtime).

Values at this interface ("engine values")
    i32 / i64: ``int``, already wrapped to the signed range; f32 / f64: ``float``;
    v128: ``int`` in [0, 2**128); externref: any Python object, ``None`` for null;
    anyfunc: a function handle or ``None``. Conversion from user values (ToWebAssemblyValue) is
    the public layer's job; the engine converts engine values to and from its native ones.

Threads
    Engine methods may be called from any thread. An engine whose objects are thread-affine
    (wasmer) refuses use from the wrong thread with ``NotSupportedError``; an engine whose store
    must not be used by two threads at once (wasmtime) serialises use of a store itself.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Awaitable, Callable, Generator, Hashable, Sequence
from dataclasses import asdict, dataclass
from types import GeneratorType
from typing import Any, ClassVar, TypeAlias

from .._exceptions import NotSupportedError
from .._limits import Limits
from .._types import FuncType, GlobalType, MemoryType, TableType, TagType


class Handle:
    """Base of every engine handle: an engine object only the engine module that made it looks
    inside. Each engine's handle classes subclass the marker for their kind below, so that the
    public layer is typed (a memory handle can't be passed where a function handle goes)."""

    __slots__ = ()


class StoreHandle(Handle):
    __slots__ = ()


class ModuleHandle(Handle):
    __slots__ = ()


class InstanceHandle(Handle):
    __slots__ = ()


class ExternHandle(Handle):
    """What an instance exports and imports: a function, memory, table, global or tag."""

    __slots__ = ()


class FuncHandle(ExternHandle):
    __slots__ = ()


class MemoryHandle(ExternHandle):
    __slots__ = ()


class TableHandle(ExternHandle):
    __slots__ = ()


class GlobalHandle(ExternHandle):
    __slots__ = ()


class TagHandle(ExternHandle):
    __slots__ = ()


EngineValue: TypeAlias = object
SuspendingStart: TypeAlias = Callable[
    ..., "Sequence[EngineValue] | Awaitable[Sequence[EngineValue]]"
]
"""A suspending host function as the engine sees it (JSPI): called with engine values on the
event-loop thread; returns the results at once (a sequence of engine values: no suspension), or
an awaitable resolving to them (usually a ``PendingResults``), which the engine's promising-call
driver awaits while the wasm computation is suspended."""


class PendingResults:
    """What a suspending host function's ``start`` returns when its results are not ready:
    ``awaitable`` (what the user's function returned), then ``finish(value)`` (``value`` being
    what it resolves to) gives the engine values. Awaiting it does both; an engine may instead
    drive ``awaitable`` itself and call ``finish`` (one layer less per step). Closing it (never
    awaited: cancelled, or refused outside a promising call) closes ``awaitable``, so that no
    coroutine is left "never awaited"."""

    __slots__ = ("awaitable", "finish")

    def __init__(
        self, awaitable: object, finish: Callable[[object], Sequence[EngineValue]]
    ) -> None:
        self.awaitable = awaitable
        self.finish = finish

    def __await__(self) -> Generator[Any, Any, Sequence[EngineValue]]:
        # Delegates to the awaitable directly (no coroutine of our own in between).
        awaitable: Any = self.awaitable
        if isinstance(awaitable, GeneratorType):  # a @types.coroutine generator
            result = yield from awaitable
        else:
            result = yield from awaitable.__await__()
        return self.finish(result)

    def close(self) -> None:
        close_awaitable(self.awaitable)


HostCallable: TypeAlias = Callable[..., Sequence[EngineValue]]
"""A host function as the engine sees it: called with engine values (one per parameter),
returns a sequence of engine values (one per result). Whatever it raises must come out of the
wasm call that led to it as the very same object."""


@dataclass(frozen=True, slots=True)
class EngineFeatures:
    """Optional capabilities; ``Runtime.features`` exposes these."""

    host_tables: bool
    """``Table(...)`` from Python, and get/set/grow of any table from Python."""
    reference_values: bool
    """externref / anyfunc values cross the boundary (arguments, results, globals, tables)."""
    v128: bool
    """v128 values cross the boundary (as ``int``)."""
    exceptions: bool
    """Tags and exception handling: ``Tag``, ``Exception``, tag imports and exports."""
    fuel: bool
    """Instruction metering (``out_of_fuel`` traps)."""
    shared_memory: bool
    """``Memory(..., shared=True)`` and modules using threads."""
    memory64: bool
    tail_calls: bool
    multi_value: bool
    jspi: bool = False
    """wasm can be suspended at a ``Suspending`` import inside a promising call (JSPI)."""
    preemption: bool = False
    """Running wasm can be interrupted: a long promising call yields to the event loop
    regularly, and cancelling it stops the wasm within milliseconds."""
    timeouts: bool = False
    """``Limits(timeout=...)``: a wall-clock deadline per exported call."""

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class UncaughtWasmException(Exception):
    """Raised by ``Engine.call`` when wasm throws an exception that nothing catches.

    The public layer turns it into ``asyncwasm.Exception``; it never reaches users as is.
    """

    tag: TagHandle
    payload: tuple[EngineValue, ...]


@dataclass(frozen=True, slots=True)
class Thrown:
    """A wasm exception as a host function throws it: its tag, payload (engine values) and the
    tag's type (the engine can't read an exported tag's type safely, so it travels along;
    ``None`` for a tag wasm never exported to us)."""

    tag: TagHandle
    payload: tuple[EngineValue, ...]
    type: TagType | None


class WasmThrowable(Exception):
    """A Python exception that a host function raises to throw a wasm exception (``thrown``):
    the engine throws it into wasm (catchable by ``try_table``/``catch``) and, when wasm does
    not catch it, lets it out of the outer call as the very same object. ``asyncwasm.Exception``
    is one."""

    thrown: Thrown


def close_awaitable(awaitable: object) -> None:
    """Dispose of an awaitable that will never be awaited, without a "never awaited" warning:
    close a coroutine, cancel a future, close anything else that has ``close``."""
    for method in ("close", "cancel"):
        fn = getattr(awaitable, method, None)
        if callable(fn):
            # Disposing must not hide the error being reported.
            with contextlib.suppress(Exception):
                fn()
            return


@dataclass(frozen=True)
class InlineCall:
    """A prepared call path as source (``Engine.prepare_inline_call``). The public layer puts
    ``setup`` in a function of the names in ``values``, which returns a function of parameters
    ``a0``, ``a1``, ... (engine values) whose body ends with ``body``: that returns what
    ``prepare_call``'s caller returns, or raises what it raises. Names starting with ``_`` are
    the public layer's own; the engine's code uses none."""

    key: Hashable
    """Equal for equal ``setup``, ``body`` and ``namespace`` (code is generated once per key
    and signature)."""
    setup: tuple[str, ...]
    body: tuple[str, ...]
    values: dict[str, object]
    """The function's own objects."""
    namespace: dict[str, object]
    """The globals of the generated code (the public layer adds its own names): the engine may
    change them later (after ``fork``, say)."""
    wraps_ints: bool
    """Whether an i32/i64 parameter may be any ``int``, which ``body`` wraps as
    ``to_engine_value`` does (then the public layer converts only non-ints)."""


@dataclass(frozen=True)
class InlineHost:
    """An engine's wrapper of host functions as source (``Engine.func_new_inline``), for the
    public layer to inline into its generated trampoline ``trampoline(a0, a1, ...)``: that runs
    ``before`` first (it may return a result itself, to route the call elsewhere), then the host
    function, and returns one result as the value itself (``single``) or several as a tuple; an
    exception leaving it runs ``failed`` (the exception is ``exc``) on its way out. Names as in
    ``InlineCall``."""

    key: Hashable
    before: tuple[str, ...]
    failed: tuple[str, ...]
    values: dict[str, object]
    namespace: dict[str, object]
    single: bool


class Engine(abc.ABC):
    """One WebAssembly engine, process-wide (one instance per engine name)."""

    name: ClassVar[str]
    features: EngineFeatures
    module_needs_store: ClassVar[bool]
    compile_in_process: ClassVar[bool]
    """True when compiling holds the GIL (wasmer): the async runtime then compiles in a worker
    *process* with ``compile_artifact`` and loads the result with ``deserialize``."""
    caps_in_module: ClassVar[bool] = False
    """The engine has no store limits: ``Limits.memory``/``table_elements`` are written into
    each module's bytes before it is compiled (``asyncwasm._caps``)."""
    isolate_suspending_instances: ClassVar[bool] = False
    """True when one suspended promising call blocks its whole store (wasmtime: one call future
    per store): an instance with ``Suspending`` imports that imports no store objects then gets a
    store of its own, so that suspended calls on different instances never wait for each
    other."""

    @property
    @abc.abstractmethod
    def version(self) -> str:
        """The engine package's version."""

    @abc.abstractmethod
    def cache_key(self) -> str:
        """Names the engine, its version and its configuration: artifacts made under one key are
        loadable under the same key only."""

    # -- modules ------------------------------------------------------------------------------
    @abc.abstractmethod
    def validate(self, wasm: bytes) -> str | None:
        """``None`` when the engine accepts ``wasm`` as a module, else its message.

        ``wasm`` always starts with the ``\\0asm`` magic (the caller checks it, because both
        engines would otherwise parse the text format)."""

    @abc.abstractmethod
    def compile(self, store: StoreHandle | None, wasm: bytes) -> ModuleHandle:
        """Compile ``wasm`` (magic already checked). Raises ``CompileError``.

        ``store`` is the store the module belongs to when ``module_needs_store``, else ``None``.
        Runs on any thread; may take seconds."""

    @abc.abstractmethod
    def serialize(self, module: ModuleHandle) -> bytes:
        """The module as a native artifact for ``deserialize``."""

    @abc.abstractmethod
    def deserialize(self, store: StoreHandle | None, artifact: bytes) -> ModuleHandle:
        """Load an artifact made by ``serialize`` or ``compile_artifact`` under the same
        ``cache_key``. Engines trust artifacts blindly (a bad one can crash the process): the
        caller integrity-checks anything that came from outside this process first."""

    @staticmethod
    @abc.abstractmethod
    def compile_artifact(wasm: bytes) -> bytes:
        """Compile and serialize in one step, in a fresh engine: the entry point a worker
        process runs (a plain static function so that it pickles). Raises ``CompileError``."""

    # -- stores and instances ----------------------------------------------------------------
    @abc.abstractmethod
    def new_store(self, limits: Limits | None = None) -> StoreHandle:
        """A new, empty store. Freed when the handle is garbage. ``limits``: the runtime's
        resource limits the engine enforces per store (memory and table sizes, fuel and
        timeouts per call); the caller checked that the engine supports them."""

    @abc.abstractmethod
    def instantiate(
        self, store: StoreHandle, module: ModuleHandle, imports: Sequence[ExternHandle]
    ) -> InstanceHandle:
        """Instantiate ``module`` with ``imports`` (one handle per import, in the module's import
        order; kinds and types already checked by the caller against the decoded module).

        Runs the start function. Raises ``LinkError`` for what the engine still refuses,
        ``RuntimeError`` for a trap in the start function, and lets a host function's exception
        out as the same object."""

    @abc.abstractmethod
    def instance_exports(self, store: StoreHandle, instance: InstanceHandle) -> list[ExternHandle]:
        """The instance's exports as handles, in the module's export order."""

    # -- functions -----------------------------------------------------------------------------
    @abc.abstractmethod
    def func_new(self, store: StoreHandle, type: FuncType, fn: HostCallable) -> FuncHandle:
        """A host function of ``type`` that calls ``fn``. ``NotSupportedError`` when ``type``
        has a value type the engine can't pass (e.g. v128 or references on wasmer)."""

    def func_new_inline(
        self,
        store: StoreHandle,
        type: FuncType,
        fn: HostCallable,
        make: Callable[[InlineHost], Callable[..., object]],
    ) -> FuncHandle | None:
        """``func_new`` with the engine's wrapper inlined into the public layer's trampoline (one
        Python frame per host call): the engine describes its wrapper, ``make`` generates the
        trampoline from it, and the function calls that (``fn``: what ``func_new`` would call,
        for the engine's other paths). ``None`` (the default) where the engine has no such path
        for ``type``: then ``func_new``."""
        return None

    @abc.abstractmethod
    def call(
        self, store: StoreHandle, func: FuncHandle, type: FuncType, args: Sequence[EngineValue]
    ) -> tuple[EngineValue, ...]:
        """Call ``func`` (of ``type``, argument count already checked) with engine values.

        Returns one engine value per result. Raises ``RuntimeError`` on a trap,
        ``UncaughtWasmException`` when wasm throws and nothing catches, and a host function's
        own exception as the same object."""

    def prepare_call(
        self, store: StoreHandle, func: FuncHandle, type: FuncType
    ) -> Callable[..., EngineValue]:
        """A caller for ``func`` (of ``type``), prepared once and called many times: it takes one
        engine value per parameter (positionally; the count is the caller's to check) and
        returns ``None`` for no result, the engine value for one, a tuple for several. It
        raises what ``call`` raises. Engines override it with a path specialised to ``type``
        (issue 10); this default goes through ``call``."""
        nresults = len(type.results)

        def caller(*args: EngineValue) -> EngineValue:
            results = self.call(store, func, type, args)
            if nresults == 1:
                return results[0]
            return results if nresults else None

        return caller

    def prepare_inline_call(
        self, store: StoreHandle, func: FuncHandle, type: FuncType
    ) -> InlineCall | None:
        """``prepare_call``'s path as source the public layer inlines into its own generated
        caller (one Python frame per call instead of two), or ``None`` (the default) where the
        engine has none for ``type``."""
        return None

    @abc.abstractmethod
    def func_key(self, func: FuncHandle) -> Hashable:
        """A key equal for every handle of the same function (engines may give a fresh handle
        each time a function comes out of wasm), so that identity can be kept."""

    def func_type(self, store: StoreHandle, func: FuncHandle) -> FuncType | None:
        """The type of a function the public layer has no decoded type for (a funcref that came
        out of a table or a call), or ``None`` when the engine can't say so safely (reading some
        types aborts wasmtime). Overridden where the engine can."""
        return None

    def note_declared_types(self, store: StoreHandle, types: Sequence[object]) -> None:
        """Called before a module whose type section declares ``types`` (decoded by asyncwasm)
        is instantiated in ``store``, so that an engine can keep ``func_type`` safe (wasmtime).
        """
        return None

    # -- memories ----------------------------------------------------------------------------
    @abc.abstractmethod
    def memory_new(self, store: StoreHandle, type: MemoryType) -> MemoryHandle: ...

    @abc.abstractmethod
    def memory_pages(self, store: StoreHandle, memory: MemoryHandle) -> int: ...

    @abc.abstractmethod
    def memory_grow(self, store: StoreHandle, memory: MemoryHandle, delta: int) -> int:
        """Grow by ``delta`` pages; the old size in pages. ``RangeError`` when it can't."""

    @abc.abstractmethod
    def memory_view(self, store: StoreHandle, memory: MemoryHandle) -> memoryview:
        """A writable, format ``"B"`` view of the whole memory as it is now.

        The memory must never move while the store lives (engines are configured so) and the
        view must keep the store alive, so no view, nor any slice of one, can reach freed or
        moved memory; the public layer releases the views it handed out on grow."""

    # -- tables ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def table_new(self, store: StoreHandle, type: TableType, init: EngineValue) -> TableHandle: ...

    @abc.abstractmethod
    def table_size(self, store: StoreHandle, table: TableHandle) -> int: ...

    @abc.abstractmethod
    def table_get(self, store: StoreHandle, table: TableHandle, index: int) -> EngineValue: ...

    @abc.abstractmethod
    def table_set(
        self, store: StoreHandle, table: TableHandle, index: int, value: EngineValue
    ) -> None: ...

    @abc.abstractmethod
    def table_grow(
        self, store: StoreHandle, table: TableHandle, delta: int, init: EngineValue
    ) -> int:
        """Grow by ``delta`` entries set to ``init``; the old length. ``RangeError`` when it
        can't."""

    # -- globals ------------------------------------------------------------------------------
    @abc.abstractmethod
    def global_new(
        self, store: StoreHandle, type: GlobalType, value: EngineValue
    ) -> GlobalHandle: ...

    @abc.abstractmethod
    def global_get(self, store: StoreHandle, glob: GlobalHandle) -> EngineValue: ...

    @abc.abstractmethod
    def global_set(self, store: StoreHandle, glob: GlobalHandle, value: EngineValue) -> None: ...

    # -- tags ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def tag_new(self, store: StoreHandle, type: TagType) -> TagHandle:
        """A new tag; ``NotSupportedError`` where the engine has no exception handling."""

    @abc.abstractmethod
    def tag_key(self, tag: TagHandle) -> Hashable:
        """Equal for every handle of the same tag."""

    # -- JSPI (see asyncwasm/_jspi.py) ---------------------------------------------------------
    def func_new_suspending(
        self, store: StoreHandle, type: FuncType, start: SuspendingStart, *, blocking: bool = False
    ) -> FuncHandle:
        """A host function of ``type`` that may suspend the wasm computation (JSPI ``Suspending``).

        When wasm calls it inside a promising call (``call_promising``) with no other host frame
        in between, the engine calls ``start`` with engine values, on the event-loop thread and
        never on a small side stack; if ``start`` returns an awaitable, the promising call's
        driver awaits it while the wasm stays suspended, and its value (a sequence of engine
        values) becomes the import's results. An exception from ``start`` or the awaitable
        propagates as from any host function. Reached anywhere else (a plain ``call``, or a plain
        host function between it and the promising call), it raises ``SuspendError`` without
        calling ``start``; with ``blocking`` (asyncwasm's WASI: one import object for ``start``
        and ``start_async``) it calls ``start`` there too, as a plain host function, and an
        awaitable from it is a ``TypeError``. Engines without JSPI raise ``NotSupportedError``.
        """
        raise NotSupportedError(self.name, "JSPI (Suspending imports)")

    async def call_promising(
        self, store: StoreHandle, func: FuncHandle, type: FuncType, args: Sequence[EngineValue]
    ) -> tuple[EngineValue, ...]:
        """Call ``func`` as a promising call: like ``call``, but suspending host functions
        reached by it may suspend it (see ``func_new_suspending``), and, where
        ``features.preemption``, running wasm yields to the event loop regularly.

        Cancelling the awaiting task stops the wasm at its pending import or next yield; the
        backend's cancellation exception propagates and the store stays usable. While the call is
        suspended, plain calls into the same store (e.g. the awaited coroutine calling the
        module's ``malloc``) work; several promising calls may be suspended at once, at least on
        different stores (an engine may run those on one store one after the other).
        """
        raise NotSupportedError(self.name, "JSPI (promising calls)")

    def prepare_promising(
        self,
        store: StoreHandle,
        func: FuncHandle,
        type: FuncType,
        finish: Callable[[EngineValue], object] | None,
        uncaught: Callable[[UncaughtWasmException], BaseException],
    ) -> Callable[..., Awaitable[object]]:
        """``call_promising``'s path for ``func``, prepared once and called many times: a
        function of one engine value per parameter (positionally; the count is the caller's to
        check) returning the awaitable of one promising call. That gives ``finish(raw)``, or
        ``raw`` when ``finish`` is ``None``, where ``raw`` is what ``prepare_call``'s caller
        returns (``None``, the value, or a tuple of several); it raises ``uncaught(exc)`` for an
        ``UncaughtWasmException``, else what ``call_promising`` raises. Engines override it with
        a path with fewer layers (issue 11); this default goes through ``call_promising``."""
        nresults = len(type.results)
        call_promising = self.call_promising

        async def start(*args: EngineValue) -> object:
            try:
                results = await call_promising(store, func, type, args)
            except UncaughtWasmException as exc:
                raise uncaught(exc) from None
            raw = results[0] if nresults == 1 else (results if nresults else None)
            return raw if finish is None else finish(raw)

        return start
