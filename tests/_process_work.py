"""Test helper: functions that worker processes run (importable by spawned interpreters, which
can't see functions defined in a test module under pytest's import mode)."""

from __future__ import annotations

import asyncio
import os
from importlib import metadata
from pathlib import Path

import asyncwasm

# (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
TINY_ADD = bytes.fromhex(
    "0061736d0100000001070160027f7f017f030201000707010361646400000a09010700200020016a0b"
)


def quickjs() -> bytes | None:
    """The QuickJS reactor module of the ``qjs-wasi-reactor.wasm`` test dependency (1.5 MB)."""
    try:
        files = metadata.files("qjs-wasi-reactor.wasm") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == "qjs-wasi-reactor.wasm":
            return Path(str(f.locate())).read_bytes()
    return None


def call_export(module: asyncwasm.Module, name: str, *args: int) -> tuple[int, object]:
    """In a worker: instantiate a module that came pickled, call an export; also the pid."""
    instance = asyncwasm.Instance(module)
    export = instance.exports[name]
    assert callable(export)
    return os.getpid(), export(*args)


def module_summary(module: asyncwasm.Module) -> tuple[object, ...]:
    """In a worker: what the module looks like there."""
    return (
        asyncwasm.Module.exports(module),
        asyncwasm.Module.imports(module),
        asyncwasm.Module.custom_sections(module, "note"),
    )


def compile_into_cache(cache_dir: str, wasm: bytes, start: float) -> tuple[int, int, int]:
    """In a worker: wait until ``start`` (time.time()) so that all workers race, compile ``wasm``
    with a runtime on ``cache_dir``; its counters (compiles, disk_hits, disk_discarded)."""
    import time

    time.sleep(max(0.0, start - time.time()))

    async def main() -> tuple[int, int, int]:
        async with asyncwasm.Runtime(cache_dir=cache_dir, max_workers=1) as rt:
            module = await rt.compile(wasm)
            assert asyncwasm.Module.exports(module)
            info = rt.cache_info()
            return info.compiles, info.disk_hits, info.disk_discarded

    return asyncio.run(main())
