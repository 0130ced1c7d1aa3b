"""asyncwasm's own decoding of a module, refusing what the engine can't compile at all."""

from __future__ import annotations

from ._binary import MAX_MODULE_SIZE, ModuleInfo, decode_module
from ._engines import Engine, EngineFeatures
from ._exceptions import CompileError
from ._source import check_magic

__all__ = ["MAX_MODULE_SIZE", "check_size", "decode_for_engine"]


def check_size(wasm: bytes) -> None:
    """The magic and the JS API's size limit: ``CompileError`` before any decoding."""
    check_magic(wasm)
    if len(wasm) > MAX_MODULE_SIZE:
        raise CompileError(
            f"the module is {len(wasm)} bytes, over the JS API's limit of {MAX_MODULE_SIZE}"
        )


def decode_for_engine(wasm: bytes, engine: Engine) -> ModuleInfo:
    """Decode ``wasm`` with asyncwasm's own decoder and refuse, with ``CompileError``, what the
    engine cannot compile at all (wasmer panics on tags instead of reporting an error)."""
    check_size(wasm)
    info = decode_module(wasm)
    lacking = lacking_feature(info, engine.features)
    if lacking is not None:
        raise CompileError(
            f"the {engine.name} engine cannot compile this module: it uses {lacking}"
        )
    return info


def lacking_feature(info: ModuleInfo, features: EngineFeatures) -> str | None:
    """The feature ``info`` uses that the engine lacks, or ``None``."""
    if info.tags and not features.exceptions:
        return "exception handling (tags)"
    if not features.memory64 and any(m.memory64 for m in info.memories):
        return "64-bit memories (memory64)"
    if not features.shared_memory and any(m.shared for m in info.memories):
        return "shared memories (threads)"
    return None
