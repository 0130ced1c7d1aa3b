"""The namespace functions (JS ``WebAssembly.validate/compile/instantiate``), on the process-wide
default runtime."""

from __future__ import annotations

from typing import overload

from ._instance import Instance
from ._module import Module
from ._module import validate as validate
from ._runtime import InstantiatedSource, get_default_runtime

__all__ = ["compile", "instantiate", "validate"]


async def compile(source: object) -> Module:
    """Compile a module from a buffer-protocol object without blocking the event loop
    (JS ``WebAssembly.compile``). Raises ``CompileError`` or ``TypeError``."""
    return await get_default_runtime().compile(source)


@overload
async def instantiate(  # type: ignore[overload-overlap]  # Module first wins
    source: Module, imports: object = None
) -> Instance: ...


@overload
async def instantiate(source: object, imports: object = None) -> InstantiatedSource: ...


async def instantiate(source: object, imports: object = None) -> Instance | InstantiatedSource:
    """JS ``WebAssembly.instantiate``: given a ``Module``, its ``Instance``; given bytes, an
    ``InstantiatedSource(module, instance)``. Compilation never runs on the event loop thread."""
    return await get_default_runtime().instantiate(source, imports)
