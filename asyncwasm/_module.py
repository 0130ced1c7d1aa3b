"""``Module``: a compiled WebAssembly module, and ``validate``."""

from __future__ import annotations

import atexit
import hashlib
import threading
import weakref
from typing import Any, NamedTuple

from . import _fork
from ._binary import ModuleInfo
from ._context import RuntimeBase, StoreCell, StoreContext, context_for
from ._decode import decode_for_engine
from ._engines._base import ModuleHandle
from ._pool import ProcessPool
from ._source import copy_buffer_source
from ._types import ExternKind, ExternType

__all__ = [
    "Module",
    "ModuleExportDescriptor",
    "ModuleImportDescriptor",
    "ModuleParts",
    "ModuleSource",
    "check_module",
    "module_from_parts",
    "module_source",
    "parts_of",
    "source_of",
    "with_source",
]


class ModuleExportDescriptor(NamedTuple):
    """One export of a module: ``name``, ``kind`` and its full ``type``."""

    name: str
    kind: ExternKind
    type: ExternType


class ModuleImportDescriptor(NamedTuple):
    """One import of a module: ``module``, ``name``, ``kind`` and its full ``type``."""

    module: str
    name: str
    kind: ExternKind
    type: ExternType


class ModuleParts(NamedTuple):
    """What a ``Module`` is made of: the context that compiled it, the engine's module, the
    decoded sections, and (wasmer) the store cell the engine module belongs to."""

    context: StoreContext
    handle: ModuleHandle
    info: ModuleInfo
    cell: StoreCell | None


class ModuleSource:
    """A module's wasm bytes and their sha256, kept so that the module can be pickled (see
    ``_transfer``). One object per digest while any module holds it (``module_source``), so
    that modules of the same bytes share one copy. ``artifact``: what ``_transfer`` sent with
    the module the last time it was pickled (kept so that pickling it again, once per task of a
    process pool, costs no serialization)."""

    __slots__ = ("__weakref__", "artifact", "digest", "wasm")

    def __init__(self, wasm: bytes, digest: bytes) -> None:
        self.wasm = wasm
        self.digest = digest
        self.artifact: object = None


_sources: weakref.WeakValueDictionary[bytes, ModuleSource] = weakref.WeakValueDictionary()
_sources_lock = threading.Lock()


def module_source(wasm: bytes, digest: bytes | None = None) -> ModuleSource:
    """The shared ``ModuleSource`` of ``wasm`` (whose sha256 is ``digest`` when given)."""
    if digest is None:
        digest = hashlib.sha256(wasm).digest()
    with _sources_lock:
        source = _sources.get(digest)
        if source is None:
            source = _sources[digest] = ModuleSource(wasm, digest)
        return source


def _renew_sources_lock() -> None:
    global _sources_lock
    _sources_lock = threading.Lock()


_fork.at_fork_in_child(_renew_sources_lock)


class Module:
    """A compiled WebAssembly module (JS ``WebAssembly.Module``).

    ``Module(source)`` compiles synchronously on the calling thread, like
    ``new WebAssembly.Module(bytes)``; prefer ``await asyncwasm.compile(source)`` in async code,
    which keeps the event loop responsive. ``source`` is any buffer-protocol object; its bytes
    are copied first. Raises ``CompileError`` for bytes that are not a valid module and
    ``TypeError`` for a source that is not a buffer.

    A module pickles (``pickle.dumps(module)``): it travels as its wasm bytes and their sha256,
    with the engine's compiled artifact for bigger modules, and unpickles in the receiving
    process's default runtime (see ``_transfer``). ``copy.copy`` gives the module itself (a
    module is immutable).
    """

    __slots__ = ("__weakref__", "_parts", "_source")

    _parts: ModuleParts
    _source: ModuleSource | None

    def __init__(self, source: object, *, runtime: RuntimeBase | None = None) -> None:
        original = copy_buffer_source(source)
        # First, whichever way the module is made below; the user's bytes, not the ones
        # prepared for this runtime's limits (a receiver prepares them for its own).
        self._source = module_source(original)
        context = context_for(runtime)
        wasm = context.prepare(original)
        engine = context.engine
        lookup = context.cached_compilation
        cached = lookup(wasm) if lookup is not None else None
        if cached is not None:  # compiled by validate() or compile() already
            self._parts = ModuleParts(context, *cached)
            return
        info = decode_for_engine(wasm, engine)
        cell = context.store() if engine.module_needs_store else None
        store = cell.handle if cell is not None else None
        if engine.compile_in_process and _fork.forked():
            handle = engine.deserialize(store, compile_in_worker(engine.name, wasm))
        else:
            handle = engine.compile(store, wasm)
        self._parts = ModuleParts(context, handle, info, cell)

    def __copy__(self) -> Module:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Module:
        return self

    def __repr__(self) -> str:
        info = self._parts.info
        return (
            f"<asyncwasm.Module imports={len(info.imports)} "
            f"exports={len(info.exports)} engine={self._parts.context.engine_name!r}>"
        )

    @staticmethod
    def exports(module: Module) -> list[ModuleExportDescriptor]:
        """The module's exports, in module order, with their full types."""
        info = parts_of(module).info
        return [ModuleExportDescriptor(e.name, e.kind, e.type) for e in info.exports]

    @staticmethod
    def imports(module: Module) -> list[ModuleImportDescriptor]:
        """The module's imports, in module order, with their full types."""
        info = parts_of(module).info
        return [ModuleImportDescriptor(i.module, i.name, i.kind, i.type) for i in info.imports]

    @staticmethod
    def custom_sections(module: Module, name: str) -> list[bytes]:
        """The contents of every custom section called ``name``, in module order."""
        info = parts_of(module).info
        if not isinstance(name, str):
            raise TypeError(f"a custom section name must be a str, not {type(name).__name__}")
        return info.custom_section_data(name)

    customSections = custom_sections


def module_from_parts(parts: ModuleParts, source: ModuleSource | None = None) -> Module:
    """A ``Module`` around an engine module compiled (or deserialized) elsewhere, from the
    wasm bytes ``source`` (needed to pickle it)."""
    module = Module.__new__(Module)
    module._parts = parts
    module._source = source
    return module


def with_source(module: Module, source: ModuleSource) -> Module:
    """``module``, now knowing the wasm bytes it was compiled from."""
    module._source = source
    return module


def source_of(module: Module) -> ModuleSource | None:
    """The wasm bytes ``module`` was compiled from (``None`` if not known)."""
    return getattr(module, "_source", None)


# -- compiling in a forked child (wasmer) -------------------------------------------------------

_child_pool: ProcessPool | None = None
_child_pool_lock = threading.Lock()


def compile_in_worker(engine_name: str, wasm: bytes) -> bytes:
    """Compile ``wasm`` in a worker process and return the artifact. For a forked child on an
    engine that compiles in process (wasmer), where compiling a big module in the child itself
    hangs forever (measured: Cranelift's threads don't survive fork) once the parent compiled
    one. The workers are fresh interpreters (``_pool``), one kept warm."""
    global _child_pool
    with _child_pool_lock:
        if _child_pool is None or _child_pool.closed:
            _child_pool = ProcessPool(engine_name, 1)
            atexit.register(_child_pool.close)
        pool = _child_pool
    artifact, _info = pool.run(wasm, lambda worker: True)
    return artifact


def _forget_child_pool() -> None:
    # A grandchild makes a pool of its own (the inherited one forgets its workers itself).
    global _child_pool, _child_pool_lock
    _child_pool_lock = threading.Lock()
    _child_pool = None


_fork.at_fork_in_child(_forget_child_pool)


def parts_of(module: object) -> ModuleParts:
    """The parts of ``module``; ``TypeError`` when it is not an ``asyncwasm.Module``."""
    check_module(module)
    assert isinstance(module, Module)
    return module._parts


def check_module(module: object) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"expected an asyncwasm.Module, not {type(module).__name__}")
