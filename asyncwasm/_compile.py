"""Compiling off the event loop thread.

wasmtime releases the GIL while it compiles, so a worker thread keeps the loop responsive.
wasmer holds the GIL for the whole compile and its objects can't leave their thread, so it
compiles in a spawned worker process, which sends back a serialized artifact that is loaded on
the calling (event loop) thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.to_process
import anyio.to_thread

if TYPE_CHECKING:
    from ._module import Module
    from ._runtime import Runtime


async def compile_async(runtime: Runtime, wasm: bytes) -> Module:
    """Compile ``wasm`` (already copied) without blocking the event loop."""
    from ._module import Module, decode_for_engine

    engine = runtime._engine
    info = decode_for_engine(wasm, engine)
    if engine.compile_in_process:
        artifact = await anyio.to_process.run_sync(engine.compile_artifact, wasm)
        cell = runtime._store()
        handle = engine.deserialize(cell.handle, artifact)
        return Module._from_parts(runtime, handle, info, cell)
    handle = await anyio.to_thread.run_sync(engine.compile, None, wasm)
    return Module._from_parts(runtime, handle, info, None)
