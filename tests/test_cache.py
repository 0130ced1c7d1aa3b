"""The compile caches: the size-bounded LRU, the on-disk artifact store (private directory,
atomic writes, integrity checks) and ``Runtime(cache_dir=...)`` on each engine."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from _bigmodule import many_functions

import asyncwasm
from asyncwasm._cache import CorruptEntry, DiskCache, MemoryCache


def test_memory_cache_evicts_least_recent_by_size() -> None:
    cache: MemoryCache[str, int] = MemoryCache(10)
    cache.put("a", 1, 4)
    cache.put("b", 2, 4)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3, 4)  # 12 > 10: evicts b
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert (len(cache), cache.size) == (2, 8)
    cache.put("huge", 4, 11)  # bigger than the bound: not kept, nothing evicted
    assert cache.get("huge") is None
    assert len(cache) == 2
    cache.put("a", 5, 2)  # replacing re-charges
    assert (cache.get("a"), cache.size) == (5, 6)
    cache.clear()
    assert (len(cache), cache.size) == (0, 0)


def test_memory_cache_of_size_zero_keeps_nothing() -> None:
    cache: MemoryCache[str, int] = MemoryCache(0)
    cache.put("a", 1, 1)
    assert cache.get("a") is None
    with pytest.raises(ValueError, match="cache_size"):
        MemoryCache(-1)


DIGEST = hashlib.sha256(b"wasm").digest()


def test_disk_cache_directory_is_private(tmp_path: Path) -> None:
    new = tmp_path / "a" / "b"
    DiskCache(new, "key")
    assert stat.S_IMODE(new.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    DiskCache(shared, "key")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700
    not_dir = tmp_path / "file"
    not_dir.write_bytes(b"")
    with pytest.raises((NotADirectoryError, FileExistsError)):
        DiskCache(not_dir, "key")


def test_disk_cache_round_trip_is_atomic_and_private(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, "engine-1")
    assert cache.load(DIGEST) is None
    cache.store(DIGEST, b"artifact" * 1000)
    assert cache.load(DIGEST) == (b"artifact" * 1000, b"")
    cache.store(DIGEST, b"other", b"extra")
    assert cache.load(DIGEST) == (b"other", b"extra")
    files = list(tmp_path.iterdir())
    assert files == [cache.path_for(DIGEST)]  # no temporary file left behind
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    # Another engine key (engine, version, configuration) never sees the entry.
    assert DiskCache(tmp_path, "engine-2").load(DIGEST) is None


def _corruptions(data: bytes) -> dict[str, bytes]:
    return {
        "empty": b"",
        "truncated header": data[:20],
        "truncated artifact": data[:-1],
        "extra byte": data + b"\0",
        "flipped artifact byte": data[:-5] + bytes([data[-5] ^ 1]) + data[-4:],
        "bad magic": b"X" + data[1:],
        "foreign engine key": data.replace(b"engine-1", b"engine-2", 1),
        "other wasm digest": data.replace(DIGEST, hashlib.sha256(b"other").digest(), 1),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "truncated header",
        "truncated artifact",
        "extra byte",
        "flipped artifact byte",
        "bad magic",
        "foreign engine key",
        "other wasm digest",
    ],
)
def test_corrupt_entries_are_discarded(tmp_path: Path, kind: str) -> None:
    cache = DiskCache(tmp_path, "engine-1")
    cache.store(DIGEST, b"artifact" * 1000)
    path = cache.path_for(DIGEST)
    path.write_bytes(_corruptions(path.read_bytes())[kind])
    with pytest.raises(CorruptEntry):
        cache.load(DIGEST)
    assert not path.exists()
    assert cache.load(DIGEST) is None


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the disk cache, not the event loop
async def test_runtime_disk_cache_survives_runtimes(engine: str, tmp_path: Path) -> None:
    wasm = many_functions(300)
    cache_dir = tmp_path / "cache"
    async with asyncwasm.Runtime(engine, cache_dir=cache_dir) as rt:
        assert rt.cache_dir == str(cache_dir)
        await rt.compile(wasm)
        assert rt.cache_info().compiles == 1
    entries = list(cache_dir.iterdir())
    assert len(entries) == 1
    async with asyncwasm.Runtime(engine, cache_dir=cache_dir) as rt:
        module = await rt.compile(wasm)
        info = rt.cache_info()
        assert (info.compiles, info.disk_hits) == (0, 1)
        assert asyncwasm.Instance(module).exports.add(20, 22) == 42
        assert [e.name for e in asyncwasm.Module.exports(module)] == ["f0", "add"]


def _damage(cache_dir: Path, kind: str, key: bytes) -> None:
    (entry,) = cache_dir.iterdir()
    data = entry.read_bytes()
    if kind == "truncated artifact":
        data = data[: len(data) // 2]
    elif kind == "flipped artifact byte":
        data = data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:]
    else:  # an entry from another engine version, renamed into place
        data = data.replace(key, key[:-1] + b"~", 1)
    entry.write_bytes(data)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the disk cache, not the event loop
@pytest.mark.parametrize("kind", ["truncated artifact", "flipped artifact byte", "foreign"])
async def test_runtime_recompiles_over_a_corrupt_entry(
    engine: str, tmp_path: Path, kind: str
) -> None:
    # A truncated wasmer artifact would crash this process if it reached the engine.
    wasm = many_functions(300)
    async with asyncwasm.Runtime(engine, cache_dir=tmp_path) as rt:
        await rt.compile(wasm)
    _damage(tmp_path, kind, rt._engine.cache_key().encode())
    async with asyncwasm.Runtime(engine, cache_dir=tmp_path) as rt:
        module = await rt.compile(wasm)
        info = rt.cache_info()
        assert (info.disk_discarded, info.disk_hits, info.compiles) == (1, 0, 1)
        assert asyncwasm.Instance(module).exports.add(1, 2) == 3
    # The entry was rewritten, valid.
    async with asyncwasm.Runtime(engine, cache_dir=tmp_path) as rt:
        await rt.compile(wasm)
        assert rt.cache_info().disk_hits == 1
