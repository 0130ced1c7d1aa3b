"""``await compile`` / ``await instantiate``: off the loop thread, single-flight, cancellation,
errors across the pool. Every test runs on each engine under test and on both anyio backends."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import anyio
import anyio.lowlevel
import pytest
from _bigmodule import many_functions
from _wat import wat

import asyncwasm
from asyncwasm._context import context_for
from asyncwasm._engines import get_engine
from asyncwasm._module import parts_of

pytestmark = pytest.mark.anyio


ADD = wat(
    """(module
      (import "env" "log" (func $log (param i32)))
      (func (export "add") (param i32 i32) (result i32)
        (call $log (local.get 0))
        (i32.add (local.get 0) (local.get 1))))"""
)
# Well-formed (asyncwasm's decoder reads it) but invalid: i32.add without operands.
INVALID = bytes.fromhex("0061736d010000000105016000017f030201000a050103006a0b")


@pytest.fixture
def rt(engine: str) -> Iterator[asyncwasm.Runtime]:
    runtime = asyncwasm.Runtime(engine)
    yield runtime
    runtime.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes only once reaped: /proc shows its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _eventually(predicate: object, what: str, limit: float = 30.0) -> None:
    """Poll ``predicate`` until true (background work settling in other threads or processes,
    which can't set an anyio event); fail after ``limit`` seconds."""
    assert callable(predicate)
    with anyio.move_on_after(limit):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.01)
        return
    pytest.fail(f"never happened: {what}")


async def test_compile_gives_working_distinct_modules(rt: asyncwasm.Runtime) -> None:
    m1 = await rt.compile(ADD)
    m2 = await rt.compile(bytearray(ADD))
    assert isinstance(m1, asyncwasm.Module)
    assert m1 is not m2
    assert [e.name for e in asyncwasm.Module.exports(m2)] == ["add"]
    logged: list[int] = []
    inst = await rt.instantiate(m2, {"env": {"log": logged.append}})
    assert isinstance(inst, asyncwasm.Instance)
    assert inst.exports.add(2, 3) == 5
    assert logged == [2]


async def test_instantiate_bytes_gives_module_and_instance(runtime: asyncwasm.Runtime) -> None:
    result = await asyncwasm.instantiate(ADD, {"env": {"log": lambda x: None}})
    assert isinstance(result, asyncwasm.InstantiatedSource)
    module, instance = result
    assert parts_of(module).context is context_for(runtime)
    assert instance.exports.add(40, 2) == 42


async def test_module_level_compile_uses_default_runtime(runtime: asyncwasm.Runtime) -> None:
    module = await asyncwasm.compile(ADD)
    assert parts_of(module).context is context_for(runtime)
    assert runtime.cache_info().compiles == 1


async def test_compile_never_runs_on_the_loop_thread(
    rt: asyncwasm.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = get_engine(rt.engine)
    loop_thread = threading.get_ident()
    threads: list[int] = []
    original = type(engine).compile

    def spy(self: object, store: object, wasm: bytes) -> object:
        threads.append(threading.get_ident())
        return original(self, store, wasm)  # type: ignore[arg-type]

    monkeypatch.setattr(type(engine), "compile", spy)
    module = await rt.compile(many_functions(50))
    assert asyncwasm.Module.exports(module)[0].name == "f0"
    if engine.compile_in_process:
        # wasmer: compiled in a worker process; nothing compiled in this process at all.
        assert threads == []
        assert len(rt._compiler.process_pool().pids()) == 1
    else:
        assert threads
        assert loop_thread not in threads


async def test_bytes_are_copied_before_the_first_suspension(rt: asyncwasm.Runtime) -> None:
    buf = bytearray(ADD)
    async with anyio.create_task_group() as tg:
        results: list[asyncwasm.Module] = []

        async def go() -> None:
            results.append(await rt.compile(buf))

        tg.start_soon(go)
        # Until go() is parked inside compile(): one checkpoint is not enough on trio, which
        # may run a batch of ready tasks in either order.
        await anyio.wait_all_tasks_blocked()
        buf[:] = b"\0" * len(buf)
    assert [e.name for e in asyncwasm.Module.exports(results[0])] == ["add"]


@pytest.mark.parametrize("source", ["text", [0, 97, 115, 109], 42, None])
async def test_non_buffer_source_is_type_error(rt: asyncwasm.Runtime, source: object) -> None:
    with pytest.raises(TypeError):
        await rt.compile(source)


@pytest.mark.parametrize(
    "bad", [b"", b"\0as", b"(module)", b"\0asm\x01\x00\x00\x00\x01\xff", INVALID]
)
async def test_bad_bytes_raise_compile_error_across_the_pool(
    rt: asyncwasm.Runtime, bad: bytes
) -> None:
    with pytest.raises(asyncwasm.CompileError):
        await rt.compile(bad)
    # Errors are not cached: the same bytes fail the same way again.
    with pytest.raises(asyncwasm.CompileError):
        await rt.compile(bad)


async def test_invalid_module_error_comes_from_the_engine(rt: asyncwasm.Runtime) -> None:
    with pytest.raises(asyncwasm.CompileError) as info:
        await rt.compile(INVALID)
    assert type(info.value) is asyncwasm.CompileError
    assert str(info.value)
    assert rt.cache_info().compiles == 1


async def test_concurrent_compiles_of_the_same_bytes_share_one(rt: asyncwasm.Runtime) -> None:
    wasm = many_functions(300)
    modules: list[asyncwasm.Module] = []

    async def go() -> None:
        modules.append(await rt.compile(wasm))

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(go)
    info = rt.cache_info()
    assert info.compiles == 1
    assert info.joined == 5
    assert len({id(m) for m in modules}) == 6
    for m in modules:
        assert asyncwasm.Instance(m).exports.add(1, 2) == 3


async def test_repeated_compile_is_a_memory_hit(rt: asyncwasm.Runtime) -> None:
    wasm = many_functions(20)
    first = await rt.compile(wasm)
    second = await rt.compile(memoryview(wasm))
    assert first is not second
    info = rt.cache_info()
    assert (info.compiles, info.memory_hits, info.entries) == (1, 1, 1)
    assert 0 < info.size <= info.max_size
    assert asyncwasm.Instance(second).exports.add(5, 6) == 11


async def test_memory_cache_is_bounded_by_size(engine: str) -> None:
    rt = asyncwasm.Runtime(engine, cache_size=0)
    try:
        wasm = many_functions(10)
        await rt.compile(wasm)
        await rt.compile(wasm)
        assert rt.cache_info().compiles == 2
        assert rt.cache_info().entries == 0
    finally:
        rt.close()
    wasms = [many_functions(200) for _ in range(4)]  # same size, different bytes
    async with asyncwasm.Runtime(engine) as probe:
        await probe.compile(wasms[0])
        one = probe.cache_info().size
    async with asyncwasm.Runtime(engine, cache_size=int(2.5 * one)) as rt:
        for w in wasms:
            await rt.compile(w)
        info = rt.cache_info()
        assert (info.entries, info.size) == (2, 2 * one)
        await rt.compile(wasms[-1])  # most recent: still there
        assert rt.cache_info().memory_hits == 1
        await rt.compile(wasms[0])  # least recent: evicted
        assert rt.cache_info().compiles == 5


@pytest.fixture
def hold(engine: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Makes compilations long and their timing deterministic: on wasmtime every in-process
    compile waits for the returned event (set at teardown at the latest); on wasmer (compiles in
    a worker process, out of reach) tests use a module that takes ~1 s to compile."""
    release = threading.Event()
    eng = get_engine(engine)
    if not eng.compile_in_process:
        original = type(eng).compile

        def held(self: object, store: object, wasm: bytes) -> object:
            release.wait(60)
            return original(self, store, wasm)  # type: ignore[arg-type]

        monkeypatch.setattr(type(eng), "compile", held)
    yield release
    release.set()


SLOW = many_functions(8000, nonce=b"slow")


async def _started(rt: asyncwasm.Runtime, n: int = 1) -> None:
    await _eventually(
        lambda: rt.cache_info().compiles == n and rt._compiler.active_work > 0, "started"
    )


async def test_cancelling_compile_raises_promptly_and_leaks_nothing(
    engine: str, hold: threading.Event
) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    threads_before = {t.ident for t in threading.enumerate()}
    rt = asyncwasm.Runtime(engine)
    pids: list[int] = []
    with anyio.CancelScope() as scope:

        async def cancel_when_running() -> None:
            await _started(rt)
            if rt._engine.compile_in_process:
                pids.extend(rt._compiler.process_pool().pids())
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_when_running)
            await rt.compile(SLOW)
            pytest.fail("compile was not cancelled")
    assert scope.cancelled_caught
    # Cancelled while the compilation was still running (wasmtime: held; wasmer: killed).
    assert rt._compiler.flights == {}
    hold.set()
    await _eventually(lambda: rt._compiler.active_work == 0, "the worker thread is done")
    if rt._engine.compile_in_process:
        assert pids
        assert rt._compiler.process_pool().pids() == []  # killed, reaped
        assert not any(_pid_alive(p) for p in pids)
    assert rt.cache_info().entries == 0  # the background result was discarded
    rt.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before
    # Threads: whatever is left is anyio's idle pool (no thread still runs our work).
    leftover = [t for t in threading.enumerate() if t.ident not in threads_before]
    assert all(t.name == "AnyIO worker thread" for t in leftover)


async def test_fail_after_around_compile(engine: str, hold: threading.Event) -> None:
    async with asyncwasm.Runtime(engine) as rt:
        with pytest.raises(TimeoutError), anyio.fail_after(0.2):
            await rt.compile(SLOW)
        assert rt._compiler.flights == {}
        hold.set()
        await _eventually(lambda: rt._compiler.active_work == 0, "the worker thread is done")
        assert rt.cache_info().entries == 0


async def test_cancelling_the_leader_keeps_the_other_waiters(
    engine: str, hold: threading.Event
) -> None:
    async with asyncwasm.Runtime(engine) as rt:
        results: list[asyncwasm.Module] = []

        async def follower() -> None:
            results.append(await rt.compile(SLOW))

        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as leader_scope:

                async def cancel_leader() -> None:
                    await _started(rt)
                    tg.start_soon(follower)
                    tg.start_soon(follower)
                    await _eventually(lambda: rt.cache_info().joined == 2, "followers joined")
                    leader_scope.cancel()
                    hold.set()

                tg.start_soon(cancel_leader)
                await rt.compile(SLOW)  # the leader: first to call
            assert leader_scope.cancelled_caught
        assert len(results) == 2
        assert rt.cache_info().compiles == 1
        assert asyncwasm.Instance(results[0]).exports.add(1, 1) == 2


async def test_cancelling_every_waiter_abandons_the_flight(
    engine: str, hold: threading.Event
) -> None:
    async with asyncwasm.Runtime(engine) as rt:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(rt.compile, SLOW)
            await _started(rt)
            await _eventually(lambda: rt.cache_info().joined == 2, "followers joined")
            tg.cancel_scope.cancel()
        assert rt._compiler.flights == {}
        hold.set()
        await _eventually(lambda: rt._compiler.active_work == 0, "the worker thread is done")
        assert rt.cache_info().entries == 0
        module = await rt.compile(SLOW)  # compiles afresh
        assert rt.cache_info().compiles == 2
        assert asyncwasm.Instance(module).exports.add(3, 4) == 7


async def test_max_workers_bounds_concurrent_compiles(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = get_engine(engine)
    active = [0, 0]  # now, peak
    lock = threading.Lock()
    original = type(eng).compile

    def spy(self: object, store: object, wasm: bytes) -> object:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        try:
            return original(self, store, wasm)  # type: ignore[arg-type]
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(type(eng), "compile", spy)
    async with asyncwasm.Runtime(engine, max_workers=1) as rt:
        pids: set[int] = set()

        async def go() -> None:
            await rt.compile(many_functions(300))
            if eng.compile_in_process:
                pids.update(rt._compiler.process_pool().pids())

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(go)
        assert rt.cache_info().compiles == 3
        if eng.compile_in_process:
            assert len(pids) == 1  # one warm worker served all three
        else:
            assert active[1] == 1


async def test_namespace_functions_work_on_the_backend(
    runtime: asyncwasm.Runtime, hold: threading.Event, anyio_backend: str
) -> None:
    import sniffio

    assert sniffio.current_async_library() == anyio_backend
    hold.set()
    module = await asyncwasm.compile(ADD)
    seen: list[int] = []
    instance = await asyncwasm.instantiate(module, {"env": {"log": seen.append}})
    assert instance.exports.add(1, 2) == 3
    _, instance2 = await asyncwasm.instantiate(ADD, {"env": {"log": seen.append}})
    assert instance2.exports.add(3, 4) == 7
    assert seen == [1, 3]
    hold.clear()  # from here on, compiles are held (wasmtime) or slow (wasmer)
    with anyio.move_on_after(0.2) as scope:
        await asyncwasm.compile(SLOW)
    assert scope.cancelled_caught
    hold.set()
    await _eventually(lambda: runtime._compiler.active_work == 0, "the worker thread is done")
    assert runtime.cache_info().compiles == 2
    assert runtime.cache_info().entries == 1
    runtime.close()


_FIRST_COMPILE_PRIORITIES = """
import json, os, threading
import wasmtime
from _bigmodule import many_functions
import asyncwasm
from asyncwasm._engines import _wasmtime as engine_module

real_module = wasmtime.Module
seen = []

def pool_priorities():
    python = {t.native_id for t in threading.enumerate()}
    tasks = {int(t) for t in os.listdir("/proc/self/task")} - python
    return sorted(os.getpriority(os.PRIO_PROCESS, t) for t in tasks)

def recording_module(engine, wasm):
    if len(wasm) > 1000:  # the real module, not the pool's warm-up
        seen.append(pool_priorities())
    return real_module(engine, wasm)

engine_module.wasmtime.Module = recording_module
asyncwasm.Module(many_functions(200))
print(json.dumps({"priorities": seen}))
"""


def test_the_first_compile_already_runs_below_the_loop(engine: str) -> None:
    # wasmtime's compile pool is made by the first parallel compile; its threads used to get
    # their lower priority only after that compile (a service's first, often biggest, one).
    if engine != "wasmtime":
        pytest.skip("wasmtime's compile pool")
    from _child import run_json

    priorities = run_json(_FIRST_COMPILE_PRIORITIES, engine=engine, timeout=60)["priorities"]
    assert isinstance(priorities, list)
    assert len(priorities) == 1
    (at_first_compile,) = priorities
    assert at_first_compile, "no compile pool threads before the first compile"
    assert min(at_first_compile) >= 10
