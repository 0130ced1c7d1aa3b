"""The wasmer engine: wasmer-python 1.1.0 (wasmer 2.1 inside) with the Cranelift compiler.

Importing this module on CPython 3.11+ raises ``ImportError`` (PyPI serves wasmer as a stub
there); the loader in ``__init__`` turns that into "engine not available".

Hazards of wasmer-python 1.1.0 and how this module fences them
---------------------------------------------------------------
Thread affinity
    ``Module``, ``Instance``, ``Function``, ``Memory``, ``Global``, ``Table`` and the memory
    ``Buffer`` are PyO3 ``unsendable``: touching one from a thread other than the one that made
    it raises ``pyo3_runtime.PanicException`` (a ``BaseException``). Every handle made here
    records its thread, and every method checks it before touching wasmer, raising
    ``NotSupportedError``. (Dropping such an object on another thread is harmless: measured.)
    ``Store`` alone may cross threads.
Panics and foreign exceptions
    Every call into wasmer runs under :class:`_Guard`, which converts wasmer's failures (all
    ``builtins.RuntimeError``), PyO3 panics and stray ``OverflowError``\\ s into asyncwasm's
    exceptions, chaining the original. Interrupts (``KeyboardInterrupt``, ``SystemExit``,
    cancellation) and exceptions raised by host functions pass through untouched: the host
    trampoline marks the exception it lets out (thread-local), so a host function raising even a
    ``builtins.RuntimeError`` comes out as the very same object.
Huge messages
    A stack-overflow trap lists every frame (15 MB): messages are cut with
    ``_exceptions.shorten`` and classified by their first line only.
Imported host memories and globals freed under a live instance
    If the Python object of an imported host ``Memory``/``Global`` is collected while an instance
    using it lives, the instance reads freed memory (measured: garbage values). An instance
    handle keeps strong references to every import handle and to its store, and every export
    handle keeps its instance handle, so anything that can still reach the instance's code keeps
    its imports alive.
Memory views across threads
    A ``memoryview`` over wasmer's ``Buffer`` panics when its last reference is dropped (buffer
    release) on another thread, surfacing as a ``SystemError`` somewhere unrelated. So
    :meth:`WasmerEngine.memory_view` takes the address once, on the owning thread, and hands out a
    view over a plain ``ctypes`` array at that address, whose ``_asyncwasm_keepalive`` attribute
    holds the memory handle (hence the wasmer ``Memory``, which owns the mapping). Wasmer's
    32-bit memories are reserved in full up front and never move on grow (measured).
Function identity
    wasmer returns a new ``Function`` wrapper on every export access and offers nothing stable to
    compare. An instance handle builds its export handles once and caches them, so repeated
    ``instance_exports`` give the same handle objects; ``func_key`` is the handle itself
    (identity hash). Known limit: a function that leaves wasm by two routes (two export names of
    one function, or a re-exported import) gets two keys.
Modules with tags
    wasmer 1.1 validates a module that defines or imports a tag, then panics compiling it while
    holding a lock of its engine: that store's engine is poisoned and every later compile or
    instantiate in it panics (``PoisonError``). ``_has_tags`` scans the sections first and such
    modules are refused with ``CompileError`` (``validate`` returns the message) before wasmer
    sees them.
Host types
    ``wasmer.Function`` gets an explicit ``FunctionType`` built from our ``FuncType`` (never
    annotations: no annotation silently means ``() -> ()``).
"""

from __future__ import annotations

import builtins
import ctypes
import hashlib
import platform
import threading
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from types import TracebackType
from typing import Any, Final, Literal, TypeVar, cast

import wasmer
import wasmer_compiler_cranelift
from greenlet import getcurrent

from .. import _fork
from .._caps import cap_module, read_u32
from .._exceptions import (
    CompileError,
    ForkedObjectError,
    LinkError,
    NotSupportedError,
    RangeError,
    RuntimeError,
    TrapKind,
    shorten,
)
from .._limits import Limits
from .._types import MAX_TABLE_LENGTH, FuncType, GlobalType, MemoryType, TableType, TagType
from . import _wasmer_async as _async
from ._base import (
    Engine,
    EngineFeatures,
    EngineValue,
    ExternHandle,
    FuncHandle,
    GlobalHandle,
    HostCallable,
    InlineCall,
    InlineHost,
    InstanceHandle,
    MemoryHandle,
    ModuleHandle,
    StoreHandle,
    SuspendingStart,
    TableHandle,
    TagHandle,
    UncaughtWasmException,
)
from ._errors import ErrorMap, mapped
from ._wasmer_init import INIT_EXPORT, defer_instantiation

__all__ = ["WasmerEngine", "create_engine"]

ENGINE_NAME: Final = "wasmer"
_THREAD_CAPABILITY: Final = (
    "using a wasmer object from a thread other than the one that created it "
    "(wasmer objects are thread-affine)"
)
_REFERENCE_CAPABILITY: Final = "externref/anyfunc values crossing the wasm boundary"

_VALTYPES: Final = {
    "i32": wasmer.Type.I32,
    "i64": wasmer.Type.I64,
    "f32": wasmer.Type.F32,
    "f64": wasmer.Type.F64,
    "v128": wasmer.Type.V128,
}
_VALUE_CTORS: Final = {
    "i32": wasmer.Value.i32,
    "i64": wasmer.Value.i64,
    "f32": wasmer.Value.f32,
    "f64": wasmer.Value.f64,
    "v128": wasmer.Value.v128,
}
_REF_TYPE_CODES: Final = frozenset({int(wasmer.Type.EXTERN_REF), int(wasmer.Type.FUNC_REF)})

# Trap kinds by message fragment, checked in order against the first line of a wasmer trap.
_TRAP_PATTERNS: Final[tuple[tuple[str, TrapKind], ...]] = (
    ("call stack exhausted", "stack_overflow"),
    ("stack overflow", "stack_overflow"),
    ("out of bounds table access", "out_of_bounds_table_access"),
    ("undefined element", "out_of_bounds_table_access"),
    ("table out of bounds", "out_of_bounds_table_access"),
    ("uninitialized element", "indirect_call_to_null"),
    ("indirect call to null", "indirect_call_to_null"),
    ("indirect call type mismatch", "indirect_call_type_mismatch"),
    ("call signature mismatch", "indirect_call_type_mismatch"),
    ("out of bounds memory access", "out_of_bounds_memory_access"),
    ("memory out of bounds", "out_of_bounds_memory_access"),
    ("integer divide by zero", "integer_divide_by_zero"),
    ("integer overflow", "integer_overflow"),
    ("invalid conversion to integer", "invalid_conversion_to_integer"),
    ("unaligned atomic", "unaligned_atomic"),
    ("unreachable", "unreachable"),
)
_TRAP_PREFIX: Final = "RuntimeError: "


def _first_line(message: str) -> str:
    end = message.find("\n", 0, 4096)
    return message[:end] if end >= 0 else message[:4096]


def trap_kind(message: str) -> TrapKind:
    """The asyncwasm trap kind of a wasmer trap message (``"unknown"`` if unrecognised)."""
    head = _first_line(message).lower()
    for fragment, kind in _TRAP_PATTERNS:
        if fragment in head:
            return kind
    return "unknown"


def _trap_message(message: str) -> str:
    # wasmer prefixes traps with "RuntimeError: ", which would read twice in a traceback.
    return message[len(_TRAP_PREFIX) :] if message.startswith(_TRAP_PREFIX) else message


def _is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is PyO3's ``pyo3_runtime.PanicException`` (not importable by name)."""
    cls = type(exc)
    return cls.__name__ == "PanicException" and cls.__module__ == "pyo3_runtime"


# -- the exception boundary -----------------------------------------------------------------

_host = threading.local()
"""``_host.exc``: the exception a host function most recently let out into wasmer on this
thread, so that the guard lets it through untouched."""

_Where = Literal["compile", "deserialize", "link", "call", "memory", "global", "table", "other"]


class _Guard:
    """Context manager around every call into wasmer: no wasmer exception type escapes.

    ``where`` says what was being done, which decides the asyncwasm class of a plain failure.
    The mapping itself is the engines' shared one (``_errors.mapped``); what is wasmer's own is
    letting a host function's exception through and recognising panics.
    """

    __slots__ = ("mapping", "where")

    def __init__(self, where: _Where) -> None:
        self.where: _Where = where
        self.mapping: ErrorMap = {BaseException: self.translate}

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is not None:
            self.check(exc)
        return False

    def check(self, exc: BaseException) -> None:
        """Raise the asyncwasm exception for ``exc``, or return when ``exc`` must propagate
        as it is."""
        host_exc = getattr(_host, "exc", None)
        if host_exc is not None:
            _host.exc = None
            if exc is host_exc:
                return  # a host function's own exception: the very same object
        translated = mapped(exc, self.mapping)
        if translated is not None:
            raise translated from exc

    def translate(self, exc: BaseException) -> BaseException | None:
        if _is_panic(exc):
            text = str(exc)
            if "unsendable" in text or "another thread" in text:
                return NotSupportedError(ENGINE_NAME, _THREAD_CAPABILITY)
            return NotSupportedError(
                ENGINE_NAME, f"this operation (wasmer panicked: {shorten(text, 300)})"
            )
        if not isinstance(exc, Exception):
            return None  # KeyboardInterrupt, SystemExit, GeneratorExit, cancellation
        if isinstance(exc, builtins.TypeError):
            return None  # Python's TypeError (== JS TypeError)
        message = str(exc)
        where = self.where
        if isinstance(exc, OverflowError):
            if where == "memory":
                return RangeError(shorten(message))
            return builtins.TypeError(shorten(message))
        if where in ("compile", "deserialize"):
            return CompileError(message)
        if where == "memory":
            return RangeError(shorten(message))
        if where == "link" and not message.startswith(_TRAP_PREFIX):
            return LinkError(shorten(message))
        if where in ("link", "call"):
            return RuntimeError(_trap_message(message), trap=trap_kind(message))
        if where == "global" and "not mutable" in message:
            return builtins.TypeError(shorten(message))
        if where == "global":
            return builtins.TypeError(shorten(message))
        return NotSupportedError(ENGINE_NAME, f"this operation ({shorten(message, 300)})")


_G_COMPILE: Final = _Guard("compile")
_G_DESERIALIZE: Final = _Guard("deserialize")
_G_LINK: Final = _Guard("link")
_G_CALL: Final = _Guard("call")
_CHECK_CALL: Final = _G_CALL.check
_G_MEMORY: Final = _Guard("memory")
_G_GLOBAL: Final = _Guard("global")
_G_TABLE: Final = _Guard("table")
_G_OTHER: Final = _Guard("other")


# -- handles --------------------------------------------------------------------------------


_get_ident = threading.get_ident
"""The thread key of handles (``_Affine._thread``). In a forked child of generation ``g`` it is
the thread id xor ``g << 64``: every handle made in the parent then fails the thread check that
every method already makes, and that check's slow path raises ``ForkedObjectError``. The parent
keeps the plain builtin (no cost)."""


def _salt_thread_ids() -> None:
    global _get_ident
    salt = _fork.generation() << 64
    get_ident = threading.get_ident

    def salted() -> int:
        return get_ident() ^ salt

    _get_ident = salted
    for namespace in _GENERATED:  # the prepared callers read it from their globals
        namespace["get_ident"] = salted


_GENERATED: list[dict[str, Any]] = [vars(_async)]
"""The globals of the generated callers (see ``_caller_factory``), and of ``_wasmer_async``,
whose promising calls test ``get_ident`` too."""


def _wrong_thread(thread: int) -> Exception:
    """The error for a handle of ``thread`` used from another thread (or another process)."""
    if thread >> 64 != _fork.generation():
        return _forked_object("object")
    return NotSupportedError(ENGINE_NAME, _THREAD_CAPABILITY)


_fork.at_fork_in_child(_salt_thread_ids)


def _forked_object(what: str) -> ForkedObjectError:
    return ForkedObjectError(
        f"this {what} was made before the process forked: it belongs to the parent process's "
        "wasmer state; make a new one in the child (a Module can be pickled or compiled again)"
    )


class _Affine:
    """A handle to a thread-affine wasmer object: remembers the thread that made it.

    By ``threading.get_ident()`` (fast; checked on every call). An ident can be reused once its
    thread has ended: then the check passes and wasmer panics, which :class:`_Guard` still turns
    into the same ``NotSupportedError``."""

    __slots__ = ("__weakref__", "_thread", "inner")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._thread = _get_ident()

    def check_thread(self) -> None:
        if _get_ident() != self._thread:
            raise _wrong_thread(self._thread)


class WasmerStore(StoreHandle):
    """A ``wasmer.Store`` (Universal engine, Cranelift). Stores may cross threads."""

    __slots__ = ("__weakref__", "generation", "inner")

    def __init__(self) -> None:
        self.inner = _new_wasmer_store()
        self.generation = _fork.generation()


class WasmerModule(_Affine, ModuleHandle):
    """A compiled module. ``deferred``: compiled from bytes rewritten by ``_wasmer_init`` (its
    instantiation finishes by calling the hidden init export)."""

    __slots__ = ("deferred", "export_names", "import_names", "store")

    def __init__(self, inner: Any, store: WasmerStore, deferred: bool) -> None:
        super().__init__(inner)
        self.store = store
        self.deferred = deferred
        with _G_OTHER:
            self.import_names: tuple[tuple[str, str], ...] = tuple(
                (imp.module, imp.name) for imp in inner.imports
            )
            self.export_names: tuple[str, ...] = tuple(
                exp.name for exp in inner.exports if not (deferred and exp.name == INIT_EXPORT)
            )


class WasmerInstance(_Affine, InstanceHandle):
    """An instance; keeps its store, module and every import handle alive (see module doc)."""

    __slots__ = ("_exports", "imports", "keep", "module", "store")

    def __init__(
        self, inner: Any, store: WasmerStore, module: WasmerModule, imports: tuple[Any, ...]
    ) -> None:
        super().__init__(inner)
        self.store = store
        self.module = module
        self.imports = imports
        # What the export handles hold to keep the instance's code and imports alive: not the
        # handle itself, which caches them (a cycle would leave every instance to the cycle
        # collector).
        self.keep = (inner, store, module, imports)
        self._exports: list[Any] | None = None


class _Extern(_Affine):
    """An extern. ``owner``: for exports, what keeps the instance and its imports alive (its
    ``keep``)."""

    __slots__ = ("owner", "store")

    def __init__(self, inner: Any, store: WasmerStore, owner: object) -> None:
        super().__init__(inner)
        self.store = store
        self.owner = owner


class WasmerFunc(_Extern, FuncHandle):
    """A function; ``type``: the type it was created with (host functions), else ``None``."""

    __slots__ = ("type",)

    def __init__(
        self, inner: Any, store: WasmerStore, owner: object, type: FuncType | None
    ) -> None:
        super().__init__(inner, store, owner)
        self.type = type


class WasmerMemory(_Extern, MemoryHandle):
    __slots__ = ()


class WasmerGlobal(_Extern, GlobalHandle):
    __slots__ = ("value_type",)

    def __init__(
        self, inner: Any, store: WasmerStore, owner: object, value_type: str | None
    ) -> None:
        super().__init__(inner, store, owner)
        self.value_type = value_type


class WasmerTable(_Extern, TableHandle):
    __slots__ = ()


def _new_wasmer_store() -> Any:
    return wasmer.Store(wasmer.engine.Universal(wasmer_compiler_cranelift.Compiler))


_A = TypeVar("_A", bound=_Affine)


def _affine(handle: object, cls: type[_A], what: str) -> _A:
    """Check ``handle`` is one of ours of class ``cls`` and usable on this thread."""
    if not isinstance(handle, cls):
        raise builtins.TypeError(f"expected a wasmer {what} handle, got {type(handle).__name__}")
    handle.check_thread()
    return handle


_CHECKED_FUNC_TYPES: set[FuncType] = set()
"""Function types whose value types all cross the boundary (only ever added to)."""
_AS_TUPLE: Final[tuple[Callable[[Any], tuple[Any, ...]], ...]] = (
    lambda _: (),
    lambda value: (value,),
)
"""``call_promising``'s results as a tuple, from no result or one result."""


def _then(first: Callable[[Any], Any], second: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: second(first(value))


def _no_uncaught(exc: UncaughtWasmException) -> BaseException:
    return exc


def _check_value_types(types: Sequence[str]) -> None:
    for t in types:
        if t not in _VALTYPES:
            if t in ("externref", "anyfunc"):
                raise NotSupportedError(ENGINE_NAME, _REFERENCE_CAPABILITY)
            raise NotSupportedError(ENGINE_NAME, f"values of type {t} at the wasm boundary")


# -- modules wasmer must never see -----------------------------------------------------------

_TAG_REFUSAL: Final = (
    "the wasmer engine does not support exception handling (the module has tags); "
    "compiling it would poison this wasmer engine for good"
)


def _skip_value_type(data: bytes, pos: int) -> int:
    code = data[pos]
    pos += 1
    if code in (0x63, 0x64):  # (ref null? heaptype): heaptype is an s33
        while data[pos] & 0x80:
            pos += 1
        pos += 1
    return pos


def _skip_limits(data: bytes, pos: int) -> int:
    flags = data[pos]
    _, pos = read_u32(data, pos + 1)
    if flags & 0x01:
        _, pos = read_u32(data, pos)
    if flags & 0x08:  # custom page size
        _, pos = read_u32(data, pos)
    return pos


def _has_tags(wasm: bytes) -> bool:
    """Whether the module defines (tag section, id 13) or imports a tag.

    Measured: wasmer 1.1 *validates* such modules, then compiling them panics ("module linking
    not implemented yet") while holding a lock of its engine, which poisons that engine: every
    later compile or instantiate in the same store panics with ``PoisonError``. So they must never
    reach wasmer. A scan that can't make sense of the bytes answers False and leaves the
    diagnosis to wasmer (which then fails validation without panicking).
    """
    try:
        pos = 8
        end = len(wasm)
        while pos < end:
            section_id = wasm[pos]
            size, pos = read_u32(wasm, pos + 1)
            body_end = pos + size
            if section_id == 13:
                return True
            if section_id == 2:
                count, p = read_u32(wasm, pos)
                for _ in range(count):
                    for _name in range(2):  # module name, field name
                        length, p = read_u32(wasm, p)
                        p += length
                    kind = wasm[p]
                    p += 1
                    if kind == 0x04:
                        return True
                    if kind == 0x00:  # function: type index
                        _, p = read_u32(wasm, p)
                    elif kind == 0x01:  # table: reftype, limits
                        p = _skip_limits(wasm, _skip_value_type(wasm, p))
                    elif kind == 0x02:  # memory: limits
                        p = _skip_limits(wasm, p)
                    elif kind == 0x03:  # global: valtype, mutability
                        p = _skip_value_type(wasm, p) + 1
                    else:
                        return False
            pos = body_end
    except (IndexError, ValueError):
        return False
    return False


# -- the engine -----------------------------------------------------------------------------


def _fenced(wasm: bytes) -> tuple[bytes, bool]:
    """The bytes wasmer compiles, and whether their instantiation was deferred.

    * Every table the module defines gets a maximum of at most ``MAX_TABLE_LENGTH`` (the JS
      API's limit), because wasm ``table.grow`` by 2**31 on a table without one aborts the
      process ("memory allocation failed").
    * A module whose failed instantiation could leave references to its freed instance behind
      has its segments and start function moved into a hidden export (``_wasmer_init``).

    Declared types, as Python sees them, come from asyncwasm's decoding of the original bytes
    and are unchanged. A module with tags is refused (``CompileError``): see ``_has_tags``."""
    wasm = cap_module(bytes(wasm), None, MAX_TABLE_LENGTH)
    deferred = defer_instantiation(wasm)
    if deferred is not None:
        wasm = deferred
    if _has_tags(wasm):
        raise CompileError(_TAG_REFUSAL)
    return wasm, deferred is not None


# Artifacts start with one byte saying whether the module's instantiation was deferred.
_ARTIFACT_PLAIN: Final = b"\x00"
_ARTIFACT_DEFERRED: Final = b"\x01"


def _artifact(native: bytes, deferred: bool) -> bytes:
    """What ``serialize`` gives: the marker byte, then wasmer's own artifact."""
    return (_ARTIFACT_DEFERRED if deferred else _ARTIFACT_PLAIN) + native


_FAILED_INSTANCES: Final[list[Any]] = []
"""Instances whose deferred instantiation failed, kept for the rest of the process: what they
wrote into imported tables, or handed on, must stay valid (see ``_wasmer_init``)."""


class WasmerEngine(Engine):
    name = ENGINE_NAME
    module_needs_store = True
    compile_in_process = True
    caps_in_module = True

    def __init__(self) -> None:
        self.features = EngineFeatures(
            host_tables=False,
            reference_values=False,
            v128=True,
            exceptions=False,
            fuel=False,
            jspi=True,
            preemption=False,
            shared_memory=False,
            memory64=False,
            tail_calls=False,
            multi_value=True,
        )
        self._cache_key: str | None = None

    @property
    def version(self) -> str:
        return str(wasmer.__version__)

    def cache_key(self) -> str:
        if self._cache_key is None:
            self._cache_key = "-".join(
                [
                    "wasmer",
                    self.version,
                    f"core{wasmer.__core_version__}",
                    "cranelift",
                    "universal",
                    str(wasmer.target.Triple.host()),
                    _cpu_fingerprint(),
                    "tables-capped",  # see _fenced
                    "instantiation-deferred",
                ]
            )
        return self._cache_key

    # -- modules --------------------------------------------------------------------------
    def validate(self, wasm: bytes) -> str | None:
        wasm = bytes(wasm)
        if _has_tags(wasm):
            return _TAG_REFUSAL
        # A fresh store per call (3.6 us): a failed compile never touches a user's store.
        store = _new_wasmer_store()
        with _G_COMPILE:
            if wasmer.Module.validate(store, wasm):
                return None
        # validate() says only False; compiling yields the message (and fails fast).
        try:
            with _G_COMPILE:
                wasmer.Module(store, wasm)
        except CompileError as exc:
            return str(exc)
        return None  # pragma: no cover - validate() and compile disagree

    def compile(self, store: StoreHandle | None, wasm: bytes) -> WasmerModule:
        store = _store(store)
        wasm, deferred = _fenced(wasm)
        with _G_COMPILE:
            inner = wasmer.Module(store.inner, wasm)
        return WasmerModule(inner, store, deferred)

    def serialize(self, module: ModuleHandle) -> bytes:
        module = _affine(module, WasmerModule, "module")
        with _G_OTHER:
            native = bytes(module.inner.serialize())
        return _artifact(native, module.deferred)

    def deserialize(self, store: StoreHandle | None, artifact: bytes) -> WasmerModule:
        store = _store(store)
        marker = artifact[:1]
        if marker not in (_ARTIFACT_PLAIN, _ARTIFACT_DEFERRED):
            raise CompileError("not a wasmer artifact of this asyncwasm version")
        with _G_DESERIALIZE:
            inner = wasmer.Module.deserialize(store.inner, bytes(artifact[1:]))
        return WasmerModule(inner, store, marker == _ARTIFACT_DEFERRED)

    @staticmethod
    def compile_artifact(wasm: bytes) -> bytes:
        wasm, deferred = _fenced(wasm)
        store = _new_wasmer_store()
        with _G_COMPILE:
            module = wasmer.Module(store, wasm)
        with _G_OTHER:
            native = bytes(module.serialize())
        return _artifact(native, deferred)

    # -- stores and instances ---------------------------------------------------------------
    def new_store(self, limits: Limits | None = None) -> WasmerStore:
        # Limits are written into the modules (see _caps) and counted by the runtime.
        return WasmerStore()

    def instantiate(
        self, store: StoreHandle, module: ModuleHandle, imports: Sequence[ExternHandle]
    ) -> WasmerInstance:
        store = _store(store)
        if module.__class__ is not WasmerModule or _get_ident() != module._thread:
            module = _affine(module, WasmerModule, "module")
        imports = tuple(imports)
        names = module.import_names
        if len(imports) != len(names):
            raise LinkError(f"the module has {len(names)} imports but {len(imports)} were given")
        namespaces: dict[str, dict[str, Any]] = {}
        chosen: dict[tuple[str, str], Any] = {}
        for (mod, name), handle in zip(names, imports, strict=True):
            if not isinstance(handle, (WasmerFunc, WasmerMemory, WasmerGlobal, WasmerTable)):
                raise LinkError(
                    f"import {mod!r}.{name!r}: {type(handle).__name__} is not a wasmer extern handle"
                )
            handle.check_thread()
            previous = chosen.get((mod, name))
            if previous is not None and previous is not handle:
                raise LinkError(
                    f"import {mod!r}.{name!r} appears more than once in the module and was given "
                    "different objects; the wasmer engine can bind a module/name pair to one "
                    "object only"
                )
            chosen[(mod, name)] = handle
            namespaces.setdefault(mod, {})[name] = handle.inner
        try:  # _G_LINK, without a context manager's calls (issue 10)
            import_object = wasmer.ImportObject()
            for mod, members in namespaces.items():
                import_object.register(mod, members)
            inner = wasmer.Instance(module.inner, import_object)
        except BaseException as exc:
            _G_LINK.check(exc)
            raise
        if module.deferred:
            _finish_instantiation(inner, bool(names))
        # WasmerInstance(inner, store, module, imports) without its __init__ chain (issue 10).
        instance = WasmerInstance.__new__(WasmerInstance)
        instance.inner = inner
        instance._thread = module._thread  # checked above: this thread's
        instance.store = store
        instance.module = module
        instance.imports = imports
        instance.keep = (inner, store, module, imports)
        instance._exports = None
        return instance

    def instance_exports(self, store: StoreHandle, instance: InstanceHandle) -> list[ExternHandle]:
        if instance.__class__ is not WasmerInstance or _get_ident() != instance._thread:
            instance = _affine(instance, WasmerInstance, "instance")
        if instance._exports is None:
            store, keep, thread = instance.store, instance.keep, instance._thread
            handles: list[Any] = []
            try:  # _G_OTHER
                # Iterate rather than getattr: an export called e.g. "__class__" would otherwise
                # resolve to a Python attribute.
                by_name = dict(iter(instance.inner.exports))
                for name in instance.module.export_names:
                    obj = by_name[name]
                    cls = _EXPORT_HANDLES.get(obj.__class__) or _export_handle_class(obj)
                    # The handle's attributes set directly: its __init__ chain costs more than
                    # the rest of making an export (issue 10).
                    handle = cls.__new__(cls)
                    handle.inner = obj
                    handle._thread = thread
                    handle.store = store
                    handle.owner = keep
                    if isinstance(handle, WasmerFunc):
                        handle.type = None
                    elif isinstance(handle, WasmerGlobal):
                        handle.value_type = None
                    handles.append(handle)
            except BaseException as exc:
                _G_OTHER.check(exc)
                raise
            instance._exports = handles
        return list(instance._exports)

    # -- functions -------------------------------------------------------------------------
    def func_new(self, store: StoreHandle, type: FuncType, fn: HostCallable) -> WasmerFunc:
        # Outside a promising call (the usual case) ``fn`` is called directly; inside one, through
        # ``plain_host``, which keeps what it calls from suspending (see _wasmer_async).
        guarded = _async.plain_host(fn)
        promising = _async.PromisingGreenlet

        def host(*args: Any) -> Sequence[EngineValue]:
            if getcurrent().__class__ is promising:
                out: Sequence[EngineValue] = guarded(*args)
                return out
            return fn(*args)

        return self._func_new(store, type, host, fn)

    def func_new_inline(
        self,
        store: StoreHandle,
        type: FuncType,
        fn: HostCallable,
        make: Callable[[InlineHost], Callable[..., object]],
    ) -> WasmerFunc | None:
        # The hot case of ``func_new`` (one result) as one frame: the public trampoline returns
        # the value wasmer wants, and ``_func_new``'s wrapper is inlined into it.
        if len(type.results) != 1:
            return None
        store = _store(store)
        _check_value_types(type.params)
        _check_value_types(type.results)
        guarded = _async.plain_host(fn)

        def routed(*args: Any) -> Any:
            # Inside a promising call: through ``plain_host`` (see ``func_new``).
            out = guarded(*args)
            if len(out) != 1:
                raise builtins.TypeError(
                    f"host function of type {type} returned {len(out)} values, expected 1"
                )
            return out[0]

        args = ", ".join(f"a{i}" for i in range(len(type.params)))
        inline = InlineHost(
            "wasmer",
            ("if getcurrent().__class__ is promising:", f"    return routed({args})"),
            ("host.exc = exc",),  # a host function's own exception: let through as it is
            {"routed": routed},
            _HOST_GLOBALS,
            True,
        )
        trampoline = make(inline)
        with _G_OTHER:
            ftype = wasmer.FunctionType(
                [_VALTYPES[t] for t in type.params], [_VALTYPES[t] for t in type.results]
            )
            inner = wasmer.Function(store.inner, trampoline, ftype)
        return WasmerFunc(inner, store, None, type)

    # -- JSPI (_wasmer_async: greenlets) ---------------------------------------------------
    def func_new_suspending(
        self, store: StoreHandle, type: FuncType, start: SuspendingStart, *, blocking: bool = False
    ) -> WasmerFunc:
        return self._func_new(store, type, _async.suspending_host(start, blocking=blocking))

    def call_promising(
        self, store: StoreHandle, func: FuncHandle, type: FuncType, args: Sequence[EngineValue]
    ) -> Coroutine[Any, Any, tuple[EngineValue, ...]]:
        nresults = len(type.results)
        shape: Callable[[Any], Any] = _AS_TUPLE[nresults] if nresults < 2 else tuple
        caller = self.prepare_promising(store, func, type, shape, _no_uncaught)
        return cast("Coroutine[Any, Any, tuple[EngineValue, ...]]", caller(*args))

    def prepare_promising(
        self,
        store: StoreHandle,
        func: FuncHandle,
        type: FuncType,
        finish: Callable[[EngineValue], object] | None,
        uncaught: Callable[[UncaughtWasmException], BaseException],
    ) -> Callable[..., Awaitable[object]]:
        # ``call``'s checks made once here, the thread check by each call; the worker greenlet
        # makes just the wasm call. ``uncaught`` is never needed: wasmer refuses modules with
        # tags, so wasm can't throw.
        wfunc = _affine(func, WasmerFunc, "function")
        _check_value_types(type.params)
        _check_value_types(type.results)
        shape: Callable[[Any], Any] | None = finish
        if len(type.results) > 1:  # wasmer gives a list
            shape = tuple if finish is None else _then(tuple, finish)
        return _async.promising_caller(
            wfunc.inner, wfunc._thread, _wrong_thread, shape, _CHECK_CALL
        )

    def _func_new(
        self,
        store: StoreHandle,
        type: FuncType,
        fn: HostCallable,
        direct: HostCallable | None = None,
    ) -> WasmerFunc:
        """A wasmer function of ``type`` calling ``fn``; ``direct``: what ``fn`` calls when no
        promising call is running (a plain host function), called without ``fn``'s frame."""
        store = _store(store)
        _check_value_types(type.params)
        _check_value_types(type.results)
        nresults = len(type.results)

        def mismatch(out: Any) -> BaseException:
            return builtins.TypeError(
                f"host function of type {type} returned {len(out)} values, expected {nresults}"
            )

        if direct is not None and nresults == 1:
            # The hot case, a plain host function with one result: one frame, no tuple.
            promising = _async.PromisingGreenlet

            def trampoline(*args: Any) -> Any:
                try:
                    inside = getcurrent().__class__ is promising
                    out = fn(*args) if inside else direct(*args)
                    if len(out) != 1:
                        raise mismatch(out)
                    return out[0]
                except BaseException as exc:
                    _host.exc = exc
                    raise

        else:

            def trampoline(*args: Any) -> Any:
                try:
                    out = fn(*args)
                    if nresults == 0:
                        if out is not None and len(out) != 0:
                            raise mismatch(out)
                        return None
                    values = tuple(out)
                    if len(values) != nresults:
                        raise mismatch(values)
                    return values[0] if nresults == 1 else values
                except BaseException as exc:
                    _host.exc = exc
                    raise

        with _G_OTHER:
            ftype = wasmer.FunctionType(
                [_VALTYPES[t] for t in type.params], [_VALTYPES[t] for t in type.results]
            )
            inner = wasmer.Function(store.inner, trampoline, ftype)
        return WasmerFunc(inner, store, None, type)

    def call(
        self,
        store: StoreHandle,
        func: FuncHandle,
        type: FuncType,
        args: Sequence[EngineValue],
    ) -> tuple[EngineValue, ...]:
        # The hot path: checks inlined, a try block instead of a context manager.
        if func.__class__ is not WasmerFunc or _get_ident() != func._thread:
            func = _affine(func, WasmerFunc, "function")
        if type not in _CHECKED_FUNC_TYPES:
            _check_value_types(type.params)
            _check_value_types(type.results)
            _CHECKED_FUNC_TYPES.add(type)
        try:
            out = func.inner(*args)
        except BaseException as exc:
            _G_CALL.check(exc)
            raise
        n = len(type.results)
        if n == 0:
            return ()
        if n == 1:
            return (out,)
        return tuple(out)

    def prepare_call(
        self, store: StoreHandle, func: FuncHandle, type: FuncType
    ) -> Callable[..., EngineValue]:
        # The thinnest path through wasmer's export object: ``call``'s checks done once here,
        # the thread check (wasmer objects are thread-affine) and the guard on every call.
        wfunc = _affine(func, WasmerFunc, "function")
        _check_value_types(type.params)
        _check_value_types(type.results)
        return _caller_factory(len(type.params), len(type.results) > 1)(wfunc.inner, wfunc._thread)

    def prepare_inline_call(
        self, store: StoreHandle, func: FuncHandle, type: FuncType
    ) -> InlineCall | None:
        # ``_caller_factory``'s caller as source: the public layer runs it in its own frame.
        wfunc = _affine(func, WasmerFunc, "function")
        _check_value_types(type.params)
        _check_value_types(type.results)
        args = ", ".join(f"a{i}" for i in range(len(type.params)))
        several = len(type.results) > 1
        body = (
            "if get_ident() != thread:",
            "    raise wrong_thread(thread)",
            "try:",
            f"    return tuple(inner({args}))" if several else f"    return inner({args})",
            "except BaseException as exc:",
            "    check(exc)",
            "    raise",
        )
        return InlineCall(
            ("wasmer", several),
            (),
            body,
            {"inner": wfunc.inner, "thread": wfunc._thread},
            _INLINE_GLOBALS,
            False,
        )

    def func_key(self, func: FuncHandle) -> Hashable:
        # Handles are made once per host function and once per instance export (cached), so
        # the handle itself (identity hash) is the key.
        return func

    # -- memories --------------------------------------------------------------------------
    def memory_new(self, store: StoreHandle, type: MemoryType) -> WasmerMemory:
        store = _store(store)
        if type.shared:
            raise NotSupportedError(ENGINE_NAME, "shared memories (no threads proposal)")
        if type.memory64:
            raise NotSupportedError(ENGINE_NAME, "64-bit memories (memory64)")
        if type.page_size_log2 != 16:
            raise NotSupportedError(ENGINE_NAME, "custom page sizes")
        limits = type.limits
        with _G_MEMORY:
            mtype = wasmer.MemoryType(minimum=limits.minimum, maximum=limits.maximum, shared=False)
            inner = wasmer.Memory(store.inner, mtype)
        return WasmerMemory(inner, store, None)

    def memory_pages(self, store: StoreHandle, memory: MemoryHandle) -> int:
        memory = _affine(memory, WasmerMemory, "memory")
        with _G_MEMORY:
            return int(memory.inner.size)

    def memory_grow(self, store: StoreHandle, memory: MemoryHandle, delta: int) -> int:
        memory = _affine(memory, WasmerMemory, "memory")
        if delta < 0:
            raise RangeError(f"cannot grow a memory by a negative number of pages ({delta})")
        with _G_MEMORY:
            return int(memory.inner.grow(delta))

    def memory_view(self, store: StoreHandle, memory: MemoryHandle) -> memoryview:
        memory = _affine(memory, WasmerMemory, "memory")
        with _G_MEMORY:
            exporter = memoryview(memory.inner.buffer)
            try:
                size = exporter.nbytes
                probe = (ctypes.c_ubyte * size).from_buffer(exporter)
                address = ctypes.addressof(probe)
                del probe  # gives the buffer back, so that the release below succeeds
            finally:
                exporter.release()  # on this (the owning) thread: see the module doc
        array = (ctypes.c_ubyte * size).from_address(address)
        # The array owns nothing; this keeps the wasmer Memory (which owns the mapping), its
        # instance and its store alive as long as any view or slice of a view exists.
        array._asyncwasm_keepalive = memory  # type: ignore[attr-defined]
        return memoryview(array).cast("B")

    # -- tables ----------------------------------------------------------------------------
    def table_new(self, store: StoreHandle, type: TableType, init: EngineValue) -> WasmerTable:
        raise NotSupportedError(
            ENGINE_NAME,
            "creating tables from Python (wasmer 1.1 fails with 'val is not reference')",
        )

    def table_size(self, store: StoreHandle, table: TableHandle) -> int:
        table = _affine(table, WasmerTable, "table")
        with _G_TABLE:
            return int(table.inner.size)

    def table_get(self, store: StoreHandle, table: TableHandle, index: int) -> EngineValue:
        raise NotSupportedError(ENGINE_NAME, "reading table elements from Python")

    def table_set(
        self, store: StoreHandle, table: TableHandle, index: int, value: EngineValue
    ) -> None:
        raise NotSupportedError(ENGINE_NAME, "writing table elements from Python")

    def table_grow(
        self, store: StoreHandle, table: TableHandle, delta: int, init: EngineValue
    ) -> int:
        raise NotSupportedError(ENGINE_NAME, "growing tables from Python")

    # -- globals ---------------------------------------------------------------------------
    def global_new(self, store: StoreHandle, type: GlobalType, value: EngineValue) -> WasmerGlobal:
        store = _store(store)
        if type.value not in _VALUE_CTORS:
            _check_value_types((type.value,))
        with _G_GLOBAL:
            inner = wasmer.Global(
                store.inner, _VALUE_CTORS[type.value](value), mutable=type.mutable
            )
        return WasmerGlobal(inner, store, None, type.value)

    def _global_value_type(self, glob: WasmerGlobal) -> str:
        if glob.value_type is None:
            with _G_GLOBAL:
                code = int(glob.inner.type.type)
            if code in _REF_TYPE_CODES:
                raise NotSupportedError(ENGINE_NAME, _REFERENCE_CAPABILITY)
            glob.value_type = next(k for k, v in _VALTYPES.items() if int(v) == code)
        return glob.value_type

    def global_get(self, store: StoreHandle, glob: GlobalHandle) -> EngineValue:
        glob = _affine(glob, WasmerGlobal, "global")
        self._global_value_type(glob)
        with _G_GLOBAL:
            value: EngineValue = glob.inner.value
        return value

    def global_set(self, store: StoreHandle, glob: GlobalHandle, value: EngineValue) -> None:
        glob = _affine(glob, WasmerGlobal, "global")
        self._global_value_type(glob)
        with _G_GLOBAL:
            if not glob.inner.mutable:
                raise builtins.TypeError("cannot set the value of an immutable global")
            glob.inner.value = value

    # -- tags ------------------------------------------------------------------------------
    def tag_new(self, store: StoreHandle, type: TagType) -> TagHandle:
        raise NotSupportedError(ENGINE_NAME, "tags and exception handling")

    def tag_key(self, tag: TagHandle) -> Hashable:
        raise NotSupportedError(ENGINE_NAME, "tags and exception handling")


_CALLERS: dict[tuple[int, bool], Callable[..., Callable[..., EngineValue]]] = {}


def _finish_instantiation(inner: Any, imports: bool) -> None:
    """Run a deferred module's segments and start function (see ``_wasmer_init``). When they
    fail, an instance with imports is kept alive for good: it may have written its functions
    into an imported table or handed them to host code."""
    try:
        getattr(inner.exports, INIT_EXPORT)()
    except BaseException as exc:
        if imports:
            _FAILED_INSTANCES.append(inner)
        _G_CALL.check(exc)  # a trap, as from instantiation; a host function's own exception
        raise


def _caller_factory(arity: int, several: bool) -> Callable[..., Callable[..., EngineValue]]:
    """``factory(inner, thread) -> caller(a0, ...)`` for ``arity`` parameters (generated once
    per shape: positional parameters, no ``*args`` packing): the thread check (wasmer objects
    are thread-affine), the call, the guard; several results as a tuple."""
    factory = _CALLERS.get((arity, several))
    if factory is not None:
        return factory
    names = ", ".join(f"a{i}" for i in range(arity))
    source = "\n".join(
        [
            "def factory(inner, thread):",
            f"    def caller({names}):",
            "        if get_ident() != thread:",
            "            raise wrong_thread(thread)",
            "        try:",
            f"            out = inner({names})",
            "        except BaseException as exc:",
            "            check(exc)",
            "            raise",
            "        return tuple(out)" if several else "        return out",
            "    return caller",
        ]
    )
    namespace: dict[str, Any] = {
        "get_ident": _get_ident,
        "wrong_thread": _wrong_thread,
        "check": _G_CALL.check,
    }
    exec(compile(source, f"<asyncwasm wasmer call/{arity}>", "exec"), namespace)
    _GENERATED.append(namespace)
    return _CALLERS.setdefault((arity, several), namespace["factory"])


_EXPORT_HANDLES: Final[dict[type, type[_Extern]]] = {
    wasmer.Function: WasmerFunc,
    wasmer.Memory: WasmerMemory,
    wasmer.Global: WasmerGlobal,
    wasmer.Table: WasmerTable,
}
"""The handle class of each kind of wasmer export, by the export's exact class."""


def _export_handle_class(obj: object) -> type[_Extern]:
    for kind, cls in _EXPORT_HANDLES.items():
        if isinstance(obj, kind):
            return cls
    raise NotSupportedError(ENGINE_NAME, f"exports of kind {type(obj).__name__}")


_HOST_GLOBALS: Final[dict[str, Any]] = {
    "getcurrent": getcurrent,
    "promising": _async.PromisingGreenlet,
    "host": _host,
}
"""The globals of the public layer's inlined host trampolines (``func_new_inline``)."""

_INLINE_GLOBALS: Final[dict[str, Any]] = {
    "get_ident": _get_ident,
    "wrong_thread": _wrong_thread,
    "check": _G_CALL.check,
}
"""The globals of the public layer's inlined callers (``prepare_inline_call``)."""
_GENERATED.append(_INLINE_GLOBALS)


def _store(store: Any) -> WasmerStore:
    if not isinstance(store, WasmerStore):
        raise builtins.TypeError(f"expected a wasmer store handle, got {type(store).__name__}")
    if store.generation != _fork.generation():
        raise _forked_object("object")
    return store


def _cpu_fingerprint() -> str:
    """A short digest of the host CPU's feature flags: Cranelift compiles for the host CPU, so an
    artifact may not run on a CPU with fewer features."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = line.split(":", 1)[-1].strip()
                    break
    except OSError:
        flags = platform.processor()
    return "cpu" + hashlib.sha256(flags.encode()).hexdigest()[:12]


def create_engine() -> WasmerEngine:
    return WasmerEngine()
