"""Modules across processes: ``pickle`` support for ``asyncwasm.Module``.

What travels is what lets the receiver get the same module fastest, and safely:

* the wasm bytes and their sha256. The receiver checks the digest first, then looks it up in
  its default runtime's in-memory cache: a hit costs a sha256 and a dictionary lookup (a
  process pool that receives the same module with every task compiles it once);
* for modules of ``ARTIFACT_MIN_SIZE`` bytes or more, the engine's compiled artifact (native
  code), with the engine's ``cache_key()`` and a sha256 binding it to the key and the wasm
  digest. On a cache miss, a receiver whose engine has the same key loads it instead of
  compiling (QuickJS, 1.5 MB: milliseconds instead of a second or more; see
  ``benchmarks/bench_processes.py``). Engines load artifacts blindly (a truncated one crashes
  the process), so the checksum is verified before the engine sees a byte of it; a different
  key (another engine, version, configuration or CPU) means the artifact is ignored and the
  module compiled. Small modules travel without one: they compile faster than an artifact
  loads, and the payload stays small.

A payload that fails a check (wrong format, bytes or artifact not matching their digest) raises
``CompileError``: never a crash. The checks catch corruption, not malice: unpickling runs
whatever code a pickle names (see the ``pickle`` documentation), so only unpickle data you
trust.

Unpickling gives a ``Module`` of the receiving process's default runtime (the one
``asyncwasm.compile`` uses), equal to the original: same exports, imports and custom sections.
It compiles synchronously on a cache miss (like ``Module(bytes)``).
"""

from __future__ import annotations

import copyreg
import hashlib
from collections.abc import Callable
from typing import Final

from . import _fork
from ._compile import Compiled, CompileService, service_for
from ._decode import decode_for_engine
from ._exceptions import CompileError, ForkedObjectError, NotSupportedError
from ._module import (
    Module,
    compile_in_worker,
    module_source,
    parts_of,
    source_of,
    with_source,
)
from ._runtime import get_default_runtime

__all__ = ["ARTIFACT_MIN_SIZE", "load_module"]

_FORMAT: Final = 1
ARTIFACT_MIN_SIZE: Final = 64 << 10
"""Modules of at least this many bytes travel with their compiled artifact."""

_Artifact = tuple[str, bytes, bytes]  # (engine cache key, artifact, sha256 binding them)


def _binding(key: str, digest: bytes, artifact: bytes) -> bytes:
    """The checksum of ``artifact``, bound to the engine key and the wasm it was made from."""
    h = hashlib.sha256(key.encode())
    h.update(b"\0")
    h.update(digest)
    h.update(artifact)
    return h.digest()


def _reduce(module: Module) -> tuple[Callable[..., Module], tuple[object, ...]]:
    source = source_of(module)
    if source is None:  # pragma: no cover - every Module is made knowing its bytes
        raise TypeError("this asyncwasm.Module does not know its wasm bytes: it can't be pickled")
    return (_load, (_FORMAT, source.wasm, source.digest, _artifact_of(module, source.digest)))


def _artifact_of(module: Module, digest: bytes) -> _Artifact | None:
    source = source_of(module)
    if source is None or len(source.wasm) < ARTIFACT_MIN_SIZE:
        return None
    parts = parts_of(module)
    if parts.context.prepare(source.wasm) is not source.wasm:
        return None  # compiled from bytes with Limits written in: not the module's own code
    engine = parts.context.engine
    key = engine.cache_key()
    sent = source.artifact
    if isinstance(sent, tuple) and sent[0] == key:
        return sent
    try:
        artifact = engine.serialize(parts.handle)
    except (NotSupportedError, ForkedObjectError, CompileError):
        # Another thread's wasmer module, or a parent's module in a forked child: the bytes
        # alone still make the module.
        return None
    record = (key, artifact, _binding(key, digest, artifact))
    source.artifact = record
    return record


def _load(fmt: object, wasm: object, digest: object, artifact: object) -> Module:
    """Unpickle a module (the callable a pickled ``Module`` names)."""
    if fmt != _FORMAT:
        raise CompileError(
            f"a pickled asyncwasm.Module of format {fmt!r}; this asyncwasm reads format {_FORMAT}"
        )
    if not isinstance(wasm, bytes) or not isinstance(digest, bytes):
        raise CompileError("a corrupt pickled asyncwasm.Module (its bytes are missing)")
    if hashlib.sha256(wasm).digest() != digest:
        raise CompileError(
            "a corrupt pickled asyncwasm.Module: its wasm bytes don't match their sha256"
        )
    service = service_for(get_default_runtime())
    return load_module(service, wasm, digest, lambda: _checked(service, digest, artifact))


def _checked(service: CompileService, digest: bytes, artifact: object) -> bytes | None:
    """The verified artifact, or ``None`` (none sent, or made by another engine key)."""
    if artifact is None:
        return None
    if not (isinstance(artifact, tuple) and len(artifact) == 3):
        raise CompileError("a corrupt pickled asyncwasm.Module (bad artifact record)")
    key, data, checksum = artifact
    if not isinstance(key, str) or not isinstance(data, bytes):
        raise CompileError("a corrupt pickled asyncwasm.Module (bad artifact record)")
    if key != service.context.engine.cache_key():
        return None  # another engine, version, configuration or CPU: compile the bytes
    if checksum != _binding(key, digest, data):
        raise CompileError(
            "a corrupt pickled asyncwasm.Module: its compiled artifact doesn't match its sha256"
        )
    return data


def load_module(
    service: CompileService,
    wasm: bytes,
    digest: bytes,
    get_artifact: Callable[[], bytes | None] = lambda: None,
) -> Module:
    """A module of ``service``'s runtime for ``wasm`` (of sha256 ``digest``, checked): from
    its in-memory cache, else from the verified artifact ``get_artifact()`` gives (checked
    only on a cache miss), else compiled here and now; the result goes into the in-memory
    cache."""
    service.check_open()
    original, original_digest = wasm, digest
    prepared = service.context.prepare(wasm)
    if prepared is not wasm:  # this runtime writes its Limits into the bytes (wasmer)
        wasm, digest = prepared, hashlib.sha256(prepared).digest()
        get_artifact = _no_artifact
    compiled = service.memory_cache.get(digest)
    if compiled is not None:
        service.count("memory_hits")
    else:
        engine = service.context.engine
        info = decode_for_engine(wasm, engine)
        artifact = get_artifact()
        if artifact is not None:
            compiled = service.strategy.from_disk(artifact, info, wasm)
        if compiled is None:
            service.count("compiles")
            if engine.compile_in_process:  # wasmer: the artifact is what the cache keeps
                blob = (
                    compile_in_worker(engine.name, wasm)
                    if _fork.forked()
                    else engine.compile_artifact(wasm)
                )
                compiled = Compiled(info, None, blob, len(blob) + len(wasm))
            else:
                compiled = Compiled(info, engine.compile(None, wasm), None, 3 * len(wasm))
        service.memory_cache.put(digest, compiled, compiled.size)
    module = service.strategy.to_module(digest, compiled)
    return with_source(module, module_source(original, original_digest))


def _no_artifact() -> bytes | None:
    return None


copyreg.pickle(Module, _reduce)
