"""Leaving the process: pickled modules, forked children, process pools, a shared cache_dir.

Anything that could hang (a compile in a forked child) runs in a child process with a timeout:
a hang fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import gc
import hashlib
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from _bigmodule import many_functions
from _process_work import TINY_ADD, call_export, compile_into_cache, module_summary, quickjs
from _wat import wat

import asyncwasm
from asyncwasm import _transfer

TIMEOUT = 120.0  # seconds a child may take before it counts as hung


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _custom(name: str, data: bytes) -> bytes:
    payload = bytes([len(name)]) + name.encode() + data
    assert len(payload) < 128
    return b"\x00" + bytes([len(payload)]) + payload


RICH = (
    wat(
        """
    (module
      (import "env" "log" (func $log (param i32)))
      (import "env" "mem" (memory 1))
      (global $g (export "g") (mut i32) (i32.const 7))
      (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
      (func (export "tell") (param i32) local.get 0 call $log))
    """
    )
    + _custom("note", b"first")
    + _custom("note", b"second")
)


def _big() -> bytes:
    """A module over ``ARTIFACT_MIN_SIZE`` (it travels with its artifact)."""
    wasm = many_functions(1500, nonce=b"big")
    assert len(wasm) >= _transfer.ARTIFACT_MIN_SIZE
    return wasm


def _summary(module: asyncwasm.Module) -> tuple[object, ...]:
    return module_summary(module)


# -- pickling -------------------------------------------------------------------------------------


def test_pickle_round_trip_gives_an_equal_module(runtime: asyncwasm.Runtime) -> None:
    module = asyncwasm.Module(RICH)
    again = pickle.loads(pickle.dumps(module))
    assert isinstance(again, asyncwasm.Module)
    assert _summary(again) == _summary(module)
    assert asyncwasm.Module.custom_sections(again, "note") == [b"first", b"second"]
    seen: list[int] = []
    memory = asyncwasm.Memory(1)
    instance = asyncwasm.Instance(again, {"env": {"log": seen.append, "mem": memory}})
    instance.exports.tell(41)
    assert seen == [41]
    assert instance.exports.add(2, 3) == 5


@pytest.mark.anyio
async def test_pickle_of_a_compiled_module_and_memory_cache_hits(
    runtime: asyncwasm.Runtime,
) -> None:
    module = await runtime.compile(RICH)
    payload = pickle.dumps(module)
    before = runtime.cache_info()
    first = pickle.loads(payload)
    second = pickle.loads(payload)
    after = runtime.cache_info()
    assert after.compiles == before.compiles  # compile() left it in the memory cache
    assert after.memory_hits == before.memory_hits + 2
    assert _summary(first) == _summary(second) == _summary(module)


def test_copy_gives_the_module_itself(runtime: asyncwasm.Runtime) -> None:
    import copy

    module = asyncwasm.Module(TINY_ADD)
    assert copy.copy(module) is module
    assert copy.deepcopy([module])[0] is module


def test_small_modules_travel_without_artifact(runtime: asyncwasm.Runtime) -> None:
    assert len(pickle.dumps(asyncwasm.Module(TINY_ADD))) < len(TINY_ADD) + 200


def test_big_module_travels_with_a_verified_artifact(runtime: asyncwasm.Runtime) -> None:
    wasm = _big()
    payload = pickle.dumps(asyncwasm.Module(wasm))
    assert len(payload) > 2 * len(wasm)  # the artifact came along
    runtime.clear_cache()
    before = runtime.cache_info().compiles
    module = pickle.loads(payload)
    assert runtime.cache_info().compiles == before  # loaded, not compiled
    assert asyncwasm.Instance(module).exports.add(3, 4) == 7


def _fields(module: asyncwasm.Module) -> tuple[Any, ...]:
    reduce = _transfer._reduce(module)
    return reduce[1]


def _load(args: tuple[Any, ...]) -> asyncwasm.Module:
    return _transfer._load(*pickle.loads(pickle.dumps(args)))


def test_tampered_payloads_raise_compile_error(runtime: asyncwasm.Runtime) -> None:
    wasm = _big()
    fmt, wasm_, digest, (key, artifact, checksum) = _fields(asyncwasm.Module(wasm))
    runtime.clear_cache()
    flipped = bytearray(artifact)
    flipped[len(flipped) // 2] ^= 0x40
    with pytest.raises(asyncwasm.CompileError, match="artifact"):
        _load((fmt, wasm_, digest, (key, bytes(flipped), checksum)))
    with pytest.raises(asyncwasm.CompileError, match="artifact"):  # truncated
        _load((fmt, wasm_, digest, (key, artifact[:1000], checksum)))
    bad_wasm = bytearray(wasm_)
    bad_wasm[-1] ^= 1
    with pytest.raises(asyncwasm.CompileError, match="sha256"):
        _load((fmt, bytes(bad_wasm), digest, None))
    with pytest.raises(asyncwasm.CompileError, match="format"):
        _load((99, wasm_, digest, None))
    with pytest.raises(asyncwasm.CompileError):
        _load((fmt, "not bytes", digest, None))
    with pytest.raises(asyncwasm.CompileError):
        _load((fmt, wasm_, digest, ("k", b"x")))
    # Another artifact's checksum, or another module's artifact: refused too.
    other = many_functions(1500, nonce=b"other")
    _, _, _, (_, other_artifact, other_checksum) = _fields(asyncwasm.Module(other))
    with pytest.raises(asyncwasm.CompileError, match="artifact"):
        _load((fmt, wasm_, digest, (key, other_artifact, other_checksum)))
    # An artifact of another engine key is ignored: the bytes are compiled.
    before = runtime.cache_info().compiles
    module = _load((fmt, wasm_, digest, ("another-engine-key", artifact, checksum)))
    assert runtime.cache_info().compiles == before + 1
    assert len(asyncwasm.Module.exports(module)) == len(
        asyncwasm.Module.exports(asyncwasm.Module(wasm))
    )


def test_tampered_pickle_bytes_never_crash(runtime: asyncwasm.Runtime) -> None:
    payload = bytearray(pickle.dumps(asyncwasm.Module(_big())))
    runtime.clear_cache()
    # Flip bytes through the payload (the wasm, the artifact, the digests): each load raises
    # or, where the flip hit nothing that matters, gives a working module; never a crash.
    for offset in range(200, len(payload), max(1, len(payload) // 40)):
        tampered = bytearray(payload)
        tampered[offset] ^= 0x10
        try:
            module = pickle.loads(bytes(tampered))
        except asyncwasm.CompileError:
            continue
        except (pickle.UnpicklingError, ValueError, EOFError, UnicodeDecodeError):
            continue  # pickle's own framing noticed
        assert isinstance(module, asyncwasm.Module)


# -- fork ------------------------------------------------------------------------------------------


def _in_fork(fn: Callable[[], object]) -> object:
    """Run ``fn`` in a forked child (multiprocessing's fork); its result, or its exception
    re-raised here. A child that does not finish within TIMEOUT fails the test."""
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)

    def child() -> None:
        try:
            result: tuple[str, object] = ("ok", fn())
        except BaseException as error:  # report anything, the test decides
            result = ("error", f"{type(error).__module__}.{type(error).__qualname__}: {error}")
        writer.send(result)

    process = ctx.Process(target=child)
    process.start()
    writer.close()
    try:
        if not reader.poll(TIMEOUT):
            pytest.fail(f"the forked child hung (no answer within {TIMEOUT} s)")
        kind, value = reader.recv()
    finally:
        if process.is_alive():
            process.kill()
        process.join(10)
    assert process.exitcode in (0, None) or kind, process.exitcode
    if kind == "error":
        raise AssertionError(f"in the child: {value}")
    return value


@pytest.fixture(scope="module")
def big_wasm() -> bytes:
    """A module big enough that compiling it uses the engines' threads (QuickJS if installed)."""
    wasm = quickjs()
    return wasm if wasm is not None else many_functions(4000)


@pytest.mark.anyio
async def test_forked_child_compiles_after_the_parent_did(
    runtime: asyncwasm.Runtime, big_wasm: bytes
) -> None:
    asyncwasm.Module(big_wasm)  # in process (wasmtime: its thread pool is now started)
    await runtime.compile(big_wasm)  # wasmer: the runtime's worker pool is now started

    def child() -> object:
        big = asyncwasm.Module(big_wasm)
        compiled = asyncio.run(asyncwasm.compile(big_wasm))
        instance = asyncwasm.Instance(asyncwasm.Module(TINY_ADD))
        return (
            len(asyncwasm.Module.exports(big)),
            len(asyncwasm.Module.exports(compiled)),
            instance.exports.add(40, 2),
        )

    n = len(asyncwasm.Module.exports(asyncwasm.Module(big_wasm)))
    assert _in_fork(child) == (n, n, 42)


def test_functions_called_in_the_parent_are_refused_in_the_child(
    runtime: asyncwasm.Runtime,
) -> None:
    # A function called before the fork has its prepared call path: that path must refuse too.
    add = asyncwasm.Instance(asyncwasm.Module(TINY_ADD)).exports.add
    assert add(1, 2) == 3

    def child() -> object:
        try:
            add(3, 4)
        except asyncwasm.ForkedObjectError:
            return "refused"
        return "called the parent's store"

    assert _in_fork(child) == "refused"
    assert add(5, 6) == 11  # the parent's own use is untouched


def test_promising_functions_prepared_in_the_parent_are_refused_in_the_child(
    runtime: asyncwasm.Runtime,
) -> None:
    # A promising path prepared before the fork (kept on the function) must refuse too.
    add = asyncwasm.promising(asyncwasm.Instance(asyncwasm.Module(TINY_ADD)).exports.add)
    assert asyncio.run(add(1, 2)) == 3

    def child() -> object:
        try:
            asyncio.run(add(3, 4))
        except asyncwasm.ForkedObjectError:
            return "refused"
        return "called the parent's store"

    assert _in_fork(child) == "refused"
    assert asyncio.run(add(5, 6)) == 11


def test_engines_survive_a_forked_child_clearing_atexit(
    runtime: asyncwasm.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CPython 3.13's multiprocessing clears atexit in a forked child. The parent's wasmtime
    # engine was kept alive only by an atexit callback, so the child freed it while its epoch
    # ticker still advanced it: a segfault in the child (seen in a process pool test).
    if runtime.engine != "wasmtime":
        pytest.skip("wasmtime's process-wide engines")
    ffi = pytest.importorskip("wasmtime._ffi")
    deleted: list[object] = []
    monkeypatch.setattr(ffi, "wasm_engine_delete", deleted.append)  # record, never free
    assert asyncwasm.Instance(asyncwasm.Module(TINY_ADD)).exports.add(1, 2) == 3
    gc.collect()  # no store of the parent keeps its engine alive in the child

    def child() -> object:
        atexit._clear()  # what multiprocessing's fork does on 3.13, on every Python here
        gc.collect()
        instance = asyncwasm.Instance(asyncwasm.Module(TINY_ADD))
        deadline = time.monotonic() + 0.1  # the child's ticker ticks over every engine
        while time.monotonic() < deadline:
            instance.exports.add(1, 1)
        gc.collect()
        return len(deleted)

    assert _in_fork(child) == 0


def test_parent_objects_raise_forked_object_error_in_the_child(
    runtime: asyncwasm.Runtime,
) -> None:
    module = asyncwasm.Module(RICH)
    memory = asyncwasm.Memory(1)
    seen: list[int] = []
    instance = asyncwasm.Instance(module, {"env": {"log": seen.append, "mem": memory}})
    glob = instance.exports.g
    add = instance.exports.add

    def child() -> object:
        uses: dict[str, Callable[[], object]] = {
            "call": lambda: add(1, 2),
            "host call": lambda: instance.exports.tell(1),
            "instantiate": lambda: asyncwasm.Instance(
                module, {"env": {"log": print, "mem": asyncwasm.Memory(1)}}
            ),
            "memory.grow": lambda: memory.grow(1),
            "memory.buffer": lambda: memory.buffer,
            "global": lambda: glob.value,
            "import a parent memory": lambda: asyncwasm.Instance(
                asyncwasm.Module(RICH), {"env": {"log": print, "mem": memory}}
            ),
        }
        outcome: dict[str, object] = {}
        for name, use in uses.items():
            try:
                use()
                outcome[name] = "worked"
            except asyncwasm.ForkedObjectError:
                outcome[name] = "refused"
            except Exception as error:
                outcome[name] = f"{type(error).__name__}: {error}"
        # New objects work, and so does the module once pickled.
        fresh = pickle.loads(pickle.dumps(module))
        new_memory = asyncwasm.Memory(1)
        got: list[int] = []
        inst = asyncwasm.Instance(fresh, {"env": {"log": got.append, "mem": new_memory}})
        inst.exports.tell(5)
        outcome["fresh"] = got
        return outcome

    outcome = _in_fork(child)
    assert outcome == {
        "call": "refused",
        "host call": "refused",
        "instantiate": "refused",
        "memory.grow": "refused",
        "memory.buffer": "refused",
        "global": "refused",
        "import a parent memory": "refused",
        "fresh": [5],
    }
    # The parent's objects are untouched.
    assert add(1, 2) == 3
    instance.exports.tell(9)
    assert seen == [9]
    assert memory.grow(1) == 1


@pytest.mark.anyio
async def test_forked_child_leaves_the_parent_workers_alone(engine: str) -> None:
    async with asyncwasm.Runtime(engine=engine) as rt:
        await rt.compile(_big())
        pools = [pool.pids() for pool in rt._compiler.pools]  # wasmer: one warm worker

        def child() -> object:
            module = asyncio.run(rt.compile(many_functions(1500, nonce=b"child")))
            return (
                [pool.pids() for pool in rt._compiler.pools],
                len(asyncwasm.Module.exports(module)),
                rt.cache_info().entries,
            )

        result = _in_fork(child)
        assert isinstance(result, tuple)
        child_pools, n_exports, entries = result
        assert n_exports == 2
        assert entries == 1  # the parent's cache entry was dropped, the child's own added
        for parent_pids, child_pids in zip(pools, child_pools, strict=True):
            assert not set(parent_pids) & set(child_pids)
        for pids in pools:
            for pid in pids:
                os.kill(pid, 0)  # still alive: the child did not stop them
        # And the parent's pool still serves.
        again = await rt.compile(many_functions(1500, nonce=b"parent"))
        assert len(asyncwasm.Module.exports(again)) == 2
        assert [pool.pids() for pool in rt._compiler.pools] == pools


def test_grandchild_of_a_fork_works_too(runtime: asyncwasm.Runtime) -> None:
    asyncwasm.Module(_big())

    def child() -> object:
        asyncwasm.Module(many_functions(1500, nonce=b"child"))
        return _in_fork(lambda: asyncwasm.Instance(asyncwasm.Module(TINY_ADD)).exports.add(1, 1))

    assert _in_fork(child) == 2


# -- process pools ----------------------------------------------------------------------------------


@contextmanager
def _pool(method: str, workers: int = 2) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    executor = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context(method)
    )
    try:
        yield executor
    finally:
        processes = list((executor._processes or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.join(TIMEOUT)
            if p.is_alive():
                p.kill()


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_process_pool_with_modules_as_arguments(
    runtime: asyncwasm.Runtime, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    monkeypatch.setenv("ASYNCWASM_ENGINE", runtime.engine)  # for spawned workers
    asyncwasm.Module(_big())  # the parent has compiled (fork: the hazard)
    tiny = asyncwasm.Module(TINY_ADD)
    big = asyncwasm.Module(_big())
    with _pool(method) as executor:
        futures = [executor.submit(call_export, tiny, "add", i, 1) for i in range(8)]
        futures += [executor.submit(call_export, big, "f0", i, 5) for i in range(4)]
        results = [f.result(TIMEOUT) for f in futures]
    assert [r for _, r in results[:8]] == [i + 1 for i in range(8)]
    expected = [asyncwasm.Instance(big).exports.f0(i, 5) for i in range(4)]
    assert [r for _, r in results[8:]] == expected
    assert os.getpid() not in {pid for pid, _ in results}


# -- a shared cache_dir ------------------------------------------------------------------------------


def test_processes_sharing_a_cache_dir_compile_once(
    engine: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("ASYNCWASM_ENGINE", engine)
    wasm = many_functions(2500, nonce=b"shared")
    start = time.time() + 3.0  # every worker is up by then (spawned interpreters)
    with _pool("spawn", 3) as executor:
        futures = [
            executor.submit(compile_into_cache, str(tmp_path), wasm, start) for _ in range(3)
        ]
        counters = [f.result(TIMEOUT) for f in futures]
    compiles = sum(c for c, _, _ in counters)
    disk_hits = sum(h for _, h, _ in counters)
    assert sum(d for _, _, d in counters) == 0
    assert (compiles, disk_hits) == (1, 2)
    digest = hashlib.sha256(wasm).digest()
    entries = [p for p in tmp_path.iterdir() if p.suffix == ".artifact"]
    assert len(entries) == 1, entries
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    del digest


def test_concurrent_writers_never_corrupt_the_cache_dir(
    engine: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("ASYNCWASM_ENGINE", engine)
    modules = [many_functions(300, nonce=bytes([i])) for i in range(6)]
    start = time.time() + 3.0
    with _pool("spawn", 3) as executor:
        futures = [
            executor.submit(compile_into_cache, str(tmp_path), wasm, start)
            for wasm in modules
            for _ in range(2)
        ]
        counters = [f.result(TIMEOUT) for f in futures]
    assert sum(d for _, _, d in counters) == 0
    assert sum(c for c, _, _ in counters) == len(modules)
    # Every entry reads back verified.
    with _pool("spawn", 2) as executor:
        again = [
            f.result(TIMEOUT)
            for f in [
                executor.submit(compile_into_cache, str(tmp_path), wasm, 0.0) for wasm in modules
            ]
        ]
    assert again == [(0, 1, 0)] * len(modules)


@pytest.mark.anyio
async def test_pickle_of_a_module_of_a_runtime_with_limits(runtime: asyncwasm.Runtime) -> None:
    # wasmer writes Limits into the bytes it compiles: the pickle carries the module's own bytes
    # (no artifact of the capped code), and the receiver applies its own limits (none here).
    wasm = wat('(module (memory (export "mem") 1) (func (export "one") (result i32) i32.const 1))')
    limits = asyncwasm.Limits(memory=2 << 16)
    async with asyncwasm.Runtime(runtime.engine, limits=limits) as limited:
        module = await limited.compile(wasm)
        capped = asyncwasm.Instance(module).exports.mem
        with pytest.raises(asyncwasm.RangeError):
            capped.grow(4)
        again = pickle.loads(pickle.dumps(module))
    # Equal to the module the receiving runtime makes of those bytes (on wasmer, the limited
    # runtime's module reports its capped maximum).
    assert asyncwasm.Module.exports(again) == asyncwasm.Module.exports(asyncwasm.Module(wasm))
    memory = asyncwasm.Instance(again).exports.mem
    assert memory.grow(4) == 1  # the default runtime has no limits
