"""``Module``: a compiled WebAssembly module, and ``validate``."""

from __future__ import annotations

from typing import Any, NamedTuple

from ._binary import MAX_MODULE_SIZE, ModuleInfo, decode_module
from ._engines import Engine, EngineFeatures
from ._exceptions import CompileError
from ._runtime import Runtime, StoreCell, get_default_runtime
from ._source import check_magic, copy_buffer_source
from ._types import ExternKind, ExternType

__all__ = ["Module", "ModuleExportDescriptor", "ModuleImportDescriptor", "validate"]


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


def decode_for_engine(wasm: bytes, engine: Engine) -> ModuleInfo:
    """Decode ``wasm`` with asyncwasm's own decoder and refuse, with ``CompileError``, what the
    engine cannot compile at all (wasmer panics on tags instead of reporting an error)."""
    check_magic(wasm)
    if len(wasm) > MAX_MODULE_SIZE:
        raise CompileError(
            f"the module is {len(wasm)} bytes, over the JS API's limit of {MAX_MODULE_SIZE}"
        )
    info = decode_module(wasm)
    lacking = _lacking_feature(info, engine.features)
    if lacking is not None:
        raise CompileError(
            f"the {engine.name} engine cannot compile this module: it uses {lacking}"
        )
    return info


def _lacking_feature(info: ModuleInfo, features: EngineFeatures) -> str | None:
    if info.tags and not features.exceptions:
        return "exception handling (tags)"
    if not features.memory64 and any(m.memory64 for m in info.memories):
        return "64-bit memories (memory64)"
    if not features.shared_memory and any(m.shared for m in info.memories):
        return "shared memories (threads)"
    return None


class Module:
    """A compiled WebAssembly module (JS ``WebAssembly.Module``).

    ``Module(source)`` compiles synchronously on the calling thread, like
    ``new WebAssembly.Module(bytes)``; prefer ``await asyncwasm.compile(source)`` in async code,
    which keeps the event loop responsive. ``source`` is any buffer-protocol object; its bytes
    are copied first. Raises ``CompileError`` for bytes that are not a valid module and
    ``TypeError`` for a source that is not a buffer.
    """

    __slots__ = ("__weakref__", "_handle", "_info", "_runtime", "_store_cell")

    _runtime: Runtime
    _handle: Any
    _info: ModuleInfo
    _store_cell: StoreCell | None

    def __init__(self, source: object, *, runtime: Runtime | None = None) -> None:
        from ._validate import from_cache

        wasm = copy_buffer_source(source)
        rt = runtime if runtime is not None else get_default_runtime()
        cached = from_cache(rt, wasm)  # compiled by validate() or compile() already
        if cached is not None:
            self._init(rt, *cached)
            return
        info = decode_for_engine(wasm, rt._engine)
        cell = rt._store() if rt._engine.module_needs_store else None
        handle = rt._engine.compile(cell.handle if cell is not None else None, wasm)
        self._init(rt, handle, info, cell)

    def _init(
        self, runtime: Runtime, handle: Any, info: ModuleInfo, cell: StoreCell | None
    ) -> None:
        self._runtime = runtime
        self._handle = handle
        self._info = info
        self._store_cell = cell

    @classmethod
    def _from_parts(
        cls, runtime: Runtime, handle: Any, info: ModuleInfo, cell: StoreCell | None
    ) -> Module:
        """A Module around an engine module compiled (or deserialized) elsewhere."""
        module = cls.__new__(cls)
        module._init(runtime, handle, info, cell)
        return module

    def __repr__(self) -> str:
        return (
            f"<asyncwasm.Module imports={len(self._info.imports)} "
            f"exports={len(self._info.exports)} engine={self._runtime.engine!r}>"
        )

    @staticmethod
    def exports(module: Module) -> list[ModuleExportDescriptor]:
        """The module's exports, in module order, with their full types."""
        _check_module(module)
        return [ModuleExportDescriptor(e.name, e.kind, e.type) for e in module._info.exports]

    @staticmethod
    def imports(module: Module) -> list[ModuleImportDescriptor]:
        """The module's imports, in module order, with their full types."""
        _check_module(module)
        return [
            ModuleImportDescriptor(i.module, i.name, i.kind, i.type) for i in module._info.imports
        ]

    @staticmethod
    def custom_sections(module: Module, name: str) -> list[bytes]:
        """The contents of every custom section called ``name``, in module order."""
        _check_module(module)
        if not isinstance(name, str):
            raise TypeError(f"a custom section name must be a str, not {type(name).__name__}")
        return module._info.custom_section_data(name)

    customSections = custom_sections


def _check_module(module: object) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"expected an asyncwasm.Module, not {type(module).__name__}")


def validate(source: object, *, runtime: Runtime | None = None) -> bool:
    """Whether ``source`` holds a valid WebAssembly module (JS ``WebAssembly.validate``).

    ``source`` is any buffer-protocol object (``TypeError`` otherwise). Synchronous. True
    exactly when compiling would succeed: a module the engine's validator accepts is compiled
    (and cached for a later ``compile()`` or ``Module()``), see ``_validate``.
    """
    from ._validate import validate_bytes

    wasm = copy_buffer_source(source)
    return validate_bytes(runtime if runtime is not None else get_default_runtime(), wasm)
