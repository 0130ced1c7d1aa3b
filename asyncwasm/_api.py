"""The namespace functions (JS ``WebAssembly.validate/compile/instantiate``), on the process-wide
default runtime."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, overload

from ._instance import Instance, InstantiatedSource
from ._module import Module
from ._runtime import get_default_runtime
from ._source import copy_buffer_source

__all__ = [
    "compile",
    "compileStreaming",
    "compile_streaming",
    "instantiate",
    "instantiateStreaming",
    "instantiate_streaming",
    "validate",
]


def validate(source: object) -> bool:
    """Whether ``source`` holds a valid WebAssembly module (JS ``WebAssembly.validate``): true
    exactly when compiling it would succeed. ``source`` is any buffer-protocol object
    (``TypeError`` otherwise). Synchronous: a module the engine's validator accepts is compiled
    (and cached, so the ``compile()`` or ``Module()`` that usually follows is free)."""
    return get_default_runtime().validate(source)


# compile() and instantiate() are plain functions returning a coroutine, not ``async def``:
# JS copies the BufferSource when the function is called, so ``aw = compile(buf); buf[0] = 1;
# await aw`` compiles the original bytes. A coroutine body would only run at the first await.


def compile(source: object) -> Coroutine[Any, Any, Module]:
    """Compile a module from a buffer-protocol object without blocking the event loop
    (JS ``WebAssembly.compile``); await the result. The bytes are copied at once, so changing
    the buffer afterwards has no effect. Raises ``CompileError`` or ``TypeError``."""
    return get_default_runtime().compile(copy_buffer_source(source))


@overload
def instantiate(  # type: ignore[overload-overlap]  # Module first wins
    source: Module, imports: object = None
) -> Coroutine[Any, Any, Instance]: ...


@overload
def instantiate(
    source: object, imports: object = None
) -> Coroutine[Any, Any, InstantiatedSource]: ...


def instantiate(
    source: object, imports: object = None
) -> Coroutine[Any, Any, Instance | InstantiatedSource]:
    """JS ``WebAssembly.instantiate``; await the result. Given a ``Module``, its ``Instance``;
    given bytes (copied at once), an ``InstantiatedSource(module, instance)``. Compilation
    never runs on the event loop thread."""
    if not isinstance(source, Module):
        source = copy_buffer_source(source)
    return get_default_runtime().instantiate(source, imports)


async def compile_streaming(
    source: object,
    *,
    max_bytes: int | None = None,
    on_progress: Callable[[int, int | None], object] | None = None,
) -> Module:
    """Compile a module from a stream, decoding each chunk as it arrives (JS
    ``WebAssembly.compileStreaming``).

    ``source`` is an async iterable (or iterator) of buffer chunks, an HTTP response (httpx,
    aiohttp: a non-2xx status or a ``Content-Type`` other than ``application/wasm`` raises
    ``TypeError``), or an awaitable resolving to one of these. Malformed bytes raise
    ``CompileError`` as soon as the chunk holding the first bad byte arrives, without reading
    the rest. ``max_bytes`` caps the size (``CompileError`` past it); ``on_progress(received,
    total)`` is called as chunks arrive (``total`` from ``Content-Length``, else ``None``).
    Whenever reading stops early, the source is closed. A ``bytes`` source raises
    ``TypeError``: use :func:`compile`.
    """
    return await get_default_runtime().compile_streaming(
        source, max_bytes=max_bytes, on_progress=on_progress
    )


async def instantiate_streaming(
    source: object,
    imports: object = None,
    *,
    max_bytes: int | None = None,
    on_progress: Callable[[int, int | None], object] | None = None,
) -> InstantiatedSource:
    """:func:`compile_streaming`, then instantiate with ``imports`` (JS
    ``WebAssembly.instantiateStreaming``); returns ``InstantiatedSource(module, instance)``."""
    return await get_default_runtime().instantiate_streaming(
        source, imports, max_bytes=max_bytes, on_progress=on_progress
    )


compileStreaming = compile_streaming
instantiateStreaming = instantiate_streaming
