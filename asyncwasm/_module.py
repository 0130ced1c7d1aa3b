"""``Module``: a compiled WebAssembly module, and ``validate``."""

from __future__ import annotations

from typing import Any, NamedTuple

from ._binary import ModuleInfo, decode_module
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


def _decode(wasm: bytes) -> ModuleInfo:
    check_magic(wasm)
    return decode_module(wasm)


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
        wasm = copy_buffer_source(source)
        rt = runtime if runtime is not None else get_default_runtime()
        info = _decode(wasm)
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

    ``source`` is any buffer-protocol object (``TypeError`` otherwise). Synchronous: validation
    does not compile.
    """
    wasm = copy_buffer_source(source)
    rt = runtime if runtime is not None else get_default_runtime()
    try:
        _decode(wasm)
    except CompileError:
        return False
    return rt._engine.validate(wasm) is None
