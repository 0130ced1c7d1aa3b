"""JSPI under load: 1,000 promising calls suspended at once, on 1,000 instances."""

from __future__ import annotations

import gc
import os

import anyio
import pytest
from _wat import wat

import asyncwasm
from asyncwasm import Instance, Module, Suspending, promising

N = 1000

MODULE = """
(module
  (import "env" "lookup" (func $lookup (param i32) (result i32)))
  (memory (export "mem") 1)
  (func (export "handle") (param i32) (result i32)
    (i32.store (i32.const 0) (local.get 0))
    (i32.add (call $lookup (local.get 0)) (i32.load (i32.const 0))))
)
"""


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.anyio
async def test_thousand_suspended_calls(runtime: asyncwasm.Runtime) -> None:
    module = Module(wat(MODULE))
    arrived = 0
    all_in = anyio.Event()
    release = anyio.Event()

    async def lookup(key: int) -> int:
        nonlocal arrived
        arrived += 1
        if arrived == N:
            all_in.set()
        await release.wait()
        return key * 1000

    instances = [Instance(module, {"env": {"lookup": Suspending(lookup)}}) for _ in range(N)]
    results: dict[int, int] = {}

    async def call(i: int) -> None:
        results[i] = await promising(instances[i].exports.handle)(i)

    gc.collect()
    before = _rss()
    async with anyio.create_task_group() as tg:
        for i in range(N):
            tg.start_soon(call, i)
        await all_in.wait()  # all N calls are suspended at this point
        suspended = _rss()
        assert not results
        release.set()
    assert results == {i: i * 1001 for i in range(N)}
    per_call = (suspended - before) / N
    # Not a timed or sized assertion: the figure is reported (pytest -s), see docs/async.md.
    print(f"\n{runtime.engine}: RSS per suspended call ~{per_call / 1024:.1f} KiB")
    # Every instance is still usable afterwards.
    assert instances[0].exports.mem.buffer[0] == 0
