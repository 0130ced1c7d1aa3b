"""``Module``: a compiled WebAssembly module, and ``validate``."""

from __future__ import annotations

from typing import NamedTuple

from ._binary import ModuleInfo
from ._context import RuntimeBase, StoreCell, StoreContext, context_for
from ._decode import decode_for_engine
from ._engines._base import ModuleHandle
from ._source import copy_buffer_source
from ._types import ExternKind, ExternType

__all__ = [
    "Module",
    "ModuleExportDescriptor",
    "ModuleImportDescriptor",
    "ModuleParts",
    "check_module",
    "module_from_parts",
    "parts_of",
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


class Module:
    """A compiled WebAssembly module (JS ``WebAssembly.Module``).

    ``Module(source)`` compiles synchronously on the calling thread, like
    ``new WebAssembly.Module(bytes)``; prefer ``await asyncwasm.compile(source)`` in async code,
    which keeps the event loop responsive. ``source`` is any buffer-protocol object; its bytes
    are copied first. Raises ``CompileError`` for bytes that are not a valid module and
    ``TypeError`` for a source that is not a buffer.
    """

    __slots__ = ("__weakref__", "_parts")

    _parts: ModuleParts

    def __init__(self, source: object, *, runtime: RuntimeBase | None = None) -> None:
        context = context_for(runtime)
        wasm = context.prepare(copy_buffer_source(source))
        engine = context.engine
        lookup = context.cached_compilation
        cached = lookup(wasm) if lookup is not None else None
        if cached is not None:  # compiled by validate() or compile() already
            self._parts = ModuleParts(context, *cached)
            return
        info = decode_for_engine(wasm, engine)
        cell = context.store() if engine.module_needs_store else None
        handle = engine.compile(cell.handle if cell is not None else None, wasm)
        self._parts = ModuleParts(context, handle, info, cell)

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


def module_from_parts(parts: ModuleParts) -> Module:
    """A ``Module`` around an engine module compiled (or deserialized) elsewhere."""
    module = Module.__new__(Module)
    module._parts = parts
    return module


def parts_of(module: object) -> ModuleParts:
    """The parts of ``module``; ``TypeError`` when it is not an ``asyncwasm.Module``."""
    check_module(module)
    assert isinstance(module, Module)
    return module._parts


def check_module(module: object) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"expected an asyncwasm.Module, not {type(module).__name__}")
