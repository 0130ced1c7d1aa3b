"""JSPI fences: every engine rule whose breach aborts the process (see the docstring of
asyncwasm/_engines/_wasmtime_async.py) is exercised from the public API in a child interpreter,
so that a regression kills the child and fails one test instead of the whole run."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from _child import run_python
from _wat import wat

import asyncwasm

TESTS = Path(__file__).parent
ROOT = TESTS.parent

MODULE = wat(
    """
(module
  (import "env" "f" (func $f (param i32) (result i32)))
  (import "env" "g" (func $g (param i32) (result i32)))
  (memory (export "mem") 1)
  (table (export "tab") 1 funcref)
  (global (export "glob") (mut i32) (i32.const 0))
  (func (export "run") (param i32) (result i32) (call $f (local.get 0)))
  (func (export "via_plain") (param i32) (result i32) (call $g (local.get 0)))
  (func (export "add1") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "spin") (param i32) (result i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get 0))))
    (local.get $i))
)
"""
)

PRELUDE = """
import asyncio, gc, sys
import asyncwasm
from asyncwasm import Instance, Module, Suspending, SuspendError, promising
rt = asyncwasm.Runtime(engine={engine!r})
from asyncwasm._runtime import _set_default_runtime
_set_default_runtime(rt)
module = Module({wasm!r})
def make(f, g=lambda x: x):
    return Instance(module, {{"env": {{"f": f, "g": g}}}})
"""

CASES = {
    # A sync call reaching an async host function aborts wasmtime: it must be SuspendError.
    "sync_call_reaches_suspending": """
async def f(x):
    return x
inst = make(Suspending(f))
for _ in range(3):
    try:
        inst.exports.run(1)
    except SuspendError:
        pass
    else:
        raise AssertionError("no SuspendError")
assert inst.exports.add1(1) == 2
""",
    # A store with async functions accepts no sync entry point (wasmtime): every public entry
    # into such a store, before and after promising calls, must work.
    "sync_entries_on_an_async_store": """
mem = asyncwasm.Memory(1)
inst = make(Suspending(lambda x: x))
async def main():
    assert await promising(inst.exports.run)(5) == 5
asyncio.run(main())
plain = make(lambda x: x, lambda x: x + 1)    # the runtime's shared store
asyncio.run(promising(plain.exports.add1)(1)) # turns the shared store async
again = make(lambda x: x, lambda x: x + 2)    # instantiation into an async store
assert again.exports.via_plain(1) == 3
assert plain.exports.via_plain(1) == 2
inst.exports.glob.value = 7
assert inst.exports.glob.value == 7
inst.exports.mem.grow(1)
if rt.features.host_tables:
    inst.exports.tab.set(0, inst.exports.add1)
    assert inst.exports.tab.get(0) is inst.exports.add1
""",
    # One call future per store: concurrent promising calls on one instance, plain calls while
    # one is parked at an import and while it is parked at a time-slice yield, and a promising
    # call from the coroutine a suspended call awaits.
    "one_future_per_store": """
holder = {}
async def f(x):
    e = holder["inst"].exports
    await asyncio.sleep(0)
    assert e.add1(x) == x + 1
    assert await promising(e.add1)(x) == x + 1
    await asyncio.sleep(0)
    return x * 2
inst = make(Suspending(f))
holder["inst"] = inst
async def main():
    results = await asyncio.gather(*(promising(inst.exports.run)(i) for i in range(20)))
    assert results == [2 * i for i in range(20)], results
    spin = asyncio.ensure_future(promising(inst.exports.spin)(30_000_000))
    for _ in range(5):
        await asyncio.sleep(0)
        assert inst.exports.add1(1) == 2
    assert await spin == 30_000_000
    both = await asyncio.gather(promising(inst.exports.spin)(1_000_000), promising(inst.exports.run)(3))
    assert both == [1_000_000, 6]
asyncio.run(main())
""",
    # Nested promising calls (made by the coroutine a suspended call awaits) are polled inside
    # their parent's host call: plain calls from other tasks while both are parked, cancelling
    # the inner one, and abandoning both with the loop.
    "nested_promising_calls": """
holder = {}
gate = asyncio.Event()
async def f(x):
    e = holder["inst"].exports
    if x == 0:
        await gate.wait()
        return 1
    if x == 5:
        try:
            await asyncio.wait_for(promising(e.run)(0), 0.01)
        except asyncio.TimeoutError:
            pass
        return 2
    return await promising(e.run)(x - 1) + 1
inst = make(Suspending(f))
holder["inst"] = inst
async def main():
    task = asyncio.ensure_future(promising(inst.exports.run)(3))
    for _ in range(10):
        await asyncio.sleep(0)
        assert inst.exports.add1(1) == 2
    gate.set()
    assert await task == 4
    assert await promising(inst.exports.run)(5) == 2
    gate.clear()
    asyncio.ensure_future(promising(inst.exports.run)(2))
    await asyncio.sleep(0.01)
asyncio.run(main())   # closes the loop with the nested calls still suspended
gc.collect()
assert inst.exports.add1(2) == 3
""",
    # Deleting a store while a call on it is suspended aborted wasmtime: abandon suspended
    # calls (loop closed with the tasks pending), drop everything, collect, exit.
    "store_dropped_while_suspended": """
async def never(x):
    await asyncio.Event().wait()
    return 0
loop = asyncio.new_event_loop()
tasks = []
for i in range(10):
    inst = make(Suspending(never))
    tasks.append(loop.create_task(promising(inst.exports.run)(i)))
spin_inst = make(lambda x: x)
tasks.append(loop.create_task(promising(spin_inst.exports.spin)(2_000_000_000)))
for _ in range(5):
    loop.run_until_complete(asyncio.sleep(0))
del inst, spin_inst
loop.close()
del loop, tasks
gc.collect()
# And a suspended call still pending at interpreter exit:
inst2 = make(Suspending(never))
loop2 = asyncio.new_event_loop()
t2 = loop2.create_task(promising(inst2.exports.run)(1))
loop2.run_until_complete(asyncio.sleep(0))
""",
    # Python code on a call's fiber stack: deep recursion in a plain import during a promising
    # call, and in a Suspending's own function, must be a RecursionError, not a stack overflow.
    "deep_recursion_on_the_fiber": """
def deep(n):
    nested = []
    for _ in range(n):
        nested = [nested]
    return len(repr(nested))
def g(x):
    deep(100_000)
    return x
def r(x):
    return r(x)
inst = make(Suspending(lambda x: r(x)), g)
async def main():
    for fn in (inst.exports.via_plain, inst.exports.run):
        try:
            await promising(fn)(1)
        except RecursionError:
            pass
        else:
            raise AssertionError("no RecursionError")
    assert await promising(inst.exports.add1)(1) == 2
asyncio.run(main())
""",
}


def _run_child(code: str) -> subprocess.CompletedProcess[str]:
    return run_python(code, timeout=300)


@pytest.mark.parametrize("name", list(CASES))
def test_fence(runtime: asyncwasm.Runtime, name: str) -> None:
    code = PRELUDE.format(engine=runtime.engine, wasm=MODULE) + textwrap.dedent(CASES[name])
    code += "\nprint('RESULT ok', flush=True)\n"
    proc = _run_child(code)
    assert proc.returncode == 0, f"child died ({proc.returncode}): {proc.stderr[-3000:]}"
    assert "RESULT ok" in proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
