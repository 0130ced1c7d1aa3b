"""``asyncwasm.Runtime``: options, lifecycle, the default runtime and its shutdown at exit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from _bigmodule import many_functions

import asyncwasm
from asyncwasm._runtime import _set_default_runtime, get_default_runtime

SMALL = many_functions(5, nonce=b"small")
REPO = Path(__file__).resolve().parent.parent


def test_options_are_keyword_only_with_defaults(engine: str) -> None:
    rt = asyncwasm.Runtime(engine)
    assert rt.engine == engine
    assert rt.max_workers == (os.cpu_count() or 2)
    assert rt.cache_info().max_size == 256 << 20
    assert rt.cache_dir is None
    assert not rt.closed
    with pytest.raises(TypeError):
        asyncwasm.Runtime(engine, 2)  # type: ignore[call-arg]
    rt2 = asyncwasm.Runtime(engine=engine, max_workers=3, cache_size=1000)
    assert (rt2.max_workers, rt2.cache_info().max_size) == (3, 1000)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_max_workers(bad: object) -> None:
    with pytest.raises(ValueError, match="max_workers"):
        asyncwasm.Runtime(max_workers=bad)  # type: ignore[arg-type]


def test_bad_cache_size() -> None:
    with pytest.raises(ValueError, match="cache_size"):
        asyncwasm.Runtime(cache_size=-1)


def test_default_engine_still_works() -> None:
    rt = asyncwasm.Runtime()
    assert rt.engine in asyncwasm.Runtime.engines()


def _assert_reaped(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped already: not our child any more


@pytest.mark.anyio
async def test_async_with_closes_and_stops_workers(engine: str) -> None:
    async with asyncwasm.Runtime(engine) as rt:
        module = await rt.compile(SMALL)
        pids = rt._compiler.process_pool().pids() if rt._engine.compile_in_process else []
    assert rt.closed
    if rt._engine.compile_in_process:
        assert len(pids) == 1
        assert rt._compiler.pools == []
        _assert_reaped(pids)
    with pytest.raises(RuntimeError, match="closed") as info:
        await rt.compile(SMALL)
    assert not isinstance(info.value, asyncwasm.WebAssemblyError)
    # What was made before keeps working.
    assert asyncwasm.Instance(module).exports.add(1, 2) == 3
    await rt.aclose()  # idempotent
    rt.close()


@pytest.mark.anyio
async def test_aclose_during_a_compile(engine: str) -> None:
    rt = asyncwasm.Runtime(engine)
    outcome: list[object] = []

    async def go() -> None:
        try:
            outcome.append(await rt.compile(many_functions(8000)))
        except RuntimeError as error:
            outcome.append(error)

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        with anyio.fail_after(30):
            while rt.cache_info().compiles == 0:  # noqa: ASYNC110 (set in a worker thread)
                await anyio.sleep(0.01)
        await rt.aclose()
    if rt._engine.compile_in_process:
        # The worker process was killed: the waiting compile fails with "closed".
        assert isinstance(outcome[0], RuntimeError)
        assert "closed" in str(outcome[0])
    else:
        # A thread's compile can't be stopped: it completes.
        assert isinstance(outcome[0], asyncwasm.Module)


def test_one_runtime_across_event_loops(engine: str) -> None:
    rt = asyncwasm.Runtime(engine)
    try:
        first = asyncio.run(rt.compile(SMALL))
        second = anyio.run(rt.compile, many_functions(5), backend="trio")
        assert asyncwasm.Instance(first).exports.add(1, 1) == 2
        assert asyncwasm.Instance(second).exports.add(2, 2) == 4
        assert rt.cache_info().compiles == 2
    finally:
        rt.close()


def test_default_runtime_is_made_again_after_close() -> None:
    previous = _set_default_runtime(None)
    try:
        rt = get_default_runtime()
        assert get_default_runtime() is rt
        rt.close()
        assert get_default_runtime() is not rt
    finally:
        get_default_runtime().close()
        _set_default_runtime(previous)


def test_forgotten_runtime_stops_its_workers_when_collected(engine: str) -> None:
    import gc

    rt = asyncwasm.Runtime(engine)
    asyncio.run(rt.compile(SMALL))
    procs = [w.proc for w in rt._compiler.pools[0]._idle] if rt._compiler.pools else []
    assert len(procs) == (1 if rt._engine.compile_in_process else 0)
    finalizer = rt._compiler.finalizer
    del rt
    gc.collect()
    assert not finalizer.alive
    # The collection may have happened in another thread, still reaping: wait for it.
    for p in procs:
        p.wait(30)


_EXIT_SCRIPT = """
import asyncio, os, sys
sys.path.insert(0, {tests!r})
import asyncwasm
from asyncwasm._runtime import get_default_runtime
from _bigmodule import many_functions

SLOW = many_functions(8000)

async def main():
    module = await asyncwasm.compile(many_functions(5))
    print(asyncwasm.Instance(module).exports.add(20, 22), flush=True)
    rt = get_default_runtime()
    if rt._engine.compile_in_process:
        print(*rt._compiler.process_pool().pids(), flush=True)
    else:
        print(flush=True)
    if {abandon!r}:
        # Leave a long compile running: asyncio.run cancels it on the way out.
        asyncio.get_running_loop().create_task(asyncwasm.compile(SLOW))
        while rt.cache_info().compiles < 2:
            await asyncio.sleep(0.01)

asyncio.run(main())
"""


@pytest.mark.parametrize("abandon", [False, True], ids=["idle", "compiling"])
def test_default_runtime_shuts_down_cleanly_at_exit(engine: str, abandon: bool) -> None:
    script = _EXIT_SCRIPT.format(tests=str(REPO / "tests"), abandon=abandon)
    env = {
        **os.environ,
        "ASYNCWASM_ENGINE": engine,
        "PYTHONPATH": str(REPO),
        "PYTHONWARNINGS": "error",
    }
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,  # a hang fails here
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0] == "42"
    for pid in map(int, lines[1].split()):
        # The worker processes are gone (orphans would live on, adopted by init).
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
