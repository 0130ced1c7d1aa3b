"""A small user program that must pass ``mypy --strict`` with no casts (issue 9, item 5).

It is type-checked by ``tests/test_typing.py``, and run by it too (so it can't rot).
"""

from __future__ import annotations

import asyncio

import asyncwasm
from asyncwasm import (
    CacheInfo,
    EngineFeatures,
    FuncType,
    GlobalType,
    MemoryType,
    ModuleExportDescriptor,
    ModuleImportDescriptor,
    TableType,
    TagType,
    TrapKind,
)

# (module (memory (export "memory") 1)
#   (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
#   (func (export "boom") unreachable))
WASM = bytes.fromhex(
    "0061736d01000000010a0260027f7f017f600000030302000105030100010717"
    "03066d656d6f7279020003616464000004626f6f6d00010a0d020700200020016a0b0300000b"
)


def describe(t: FuncType | TableType | MemoryType | GlobalType | TagType) -> str:
    return type(t).__name__


async def main() -> int:
    module, instance = await asyncwasm.instantiate(WASM)
    total: int = instance.exports.add(1, 2)
    memory: asyncwasm.Memory = instance.exports.memory
    buffer: memoryview = memory.buffer
    buffer[0] = 1
    instance.exports.memory.buffer[1] = 2
    exports: list[ModuleExportDescriptor] = asyncwasm.Module.exports(module)
    imports: list[ModuleImportDescriptor] = asyncwasm.Module.imports(module)
    kinds = [describe(e.type) for e in exports]
    add = instance.exports["add"]
    assert isinstance(add, asyncwasm.Function)
    signature: FuncType = add.type
    runtime = asyncwasm.Runtime()
    features: EngineFeatures = runtime.features
    info: CacheInfo = runtime.cache_info()
    runtime.close()
    kind: TrapKind | None = None
    try:
        instance.exports.boom()
    except asyncwasm.RuntimeError as error:
        kind = error.trap
    assert kind == "unreachable"
    print(total, buffer[0], kinds, len(imports), signature, features.v128, info.compiles, kind)
    return total


if __name__ == "__main__":
    asyncio.run(main())
