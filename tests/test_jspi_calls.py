"""JSPI: what one promising call may leave behind for the next, and where its code runs.

On every engine under test and both anyio backends. The wasmer engine runs promising calls in
worker greenlets it reuses, and steps a suspending import's awaitable inside the worker; these
tests pin what that must never change: a call that traps, raises, is cancelled or is closed while
suspended leaves nothing behind for the next call; calls nest and overlap in any order; imports
see the awaiting task's context variables; two event loops in two threads don't interfere.
"""

from __future__ import annotations

import contextvars
import inspect
import threading
import types
from collections.abc import Generator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _child import run_json
from _jspi_common import make, no_unawaited_warnings  # noqa: F401  (autouse)
from _wat import wat

import asyncwasm
from asyncwasm import Instance, Module, SuspendError, Suspending, promising

pytestmark = pytest.mark.anyio

# "run" calls the Suspending import f and adds 1; "via_plain" calls the plain import g; "trap"
# traps; "add1" is a plain export.
MODULE = """
(module
  (import "env" "f" (func $f (param i32) (result i32)))
  (import "env" "g" (func $g (param i32) (result i32)))
  (func (export "run") (param i32) (result i32) (i32.add (call $f (local.get 0)) (i32.const 1)))
  (func (export "via_plain") (param i32) (result i32) (call $g (local.get 0)))
  (func (export "add1") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "trap") (result i32) unreachable)
)
"""


class Boom(Exception):
    pass


var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture
def module(runtime: asyncwasm.Runtime) -> Module:
    return Module(wat(MODULE))


async def later(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x * 2


@types.coroutine
def _pause(marker: object) -> Generator[object, object, None]:
    """Suspend once, yielding ``marker`` to whoever drives the awaiting coroutine."""
    yield marker


async def _healthy(inst: Instance) -> None:
    """The instance and the promising machinery work as new: a call that suspends, one that
    doesn't, a plain call, and the SuspendError rules."""
    assert await promising(inst.exports.run)(5) == 11
    assert await promising(inst.exports.add1)(5) == 6
    assert inst.exports.add1(1) == 2
    with pytest.raises(SuspendError):
        inst.exports.run(1)


async def test_nothing_left_behind_by_a_call_that_failed(module: Module) -> None:
    boom = Boom("boom")
    mode: dict[str, str] = {"f": "ok", "g": "ok"}

    def f(x: int) -> Any:
        if mode["f"] == "raise now":
            raise boom
        if mode["f"] == "raise later":

            async def fail() -> int:
                await anyio.lowlevel.checkpoint()
                raise boom

            return fail()
        return later(x)

    def g(x: int) -> int:
        if mode["g"] == "raise":
            raise boom
        return x

    inst = make(module, Suspending(f), g)
    await _healthy(inst)
    with pytest.raises(asyncwasm.RuntimeError):
        await promising(inst.exports.trap)()
    await _healthy(inst)
    for mode["f"] in ("raise now", "raise later"):
        with pytest.raises(Boom) as info:
            await promising(inst.exports.run)(1)
        assert info.value is boom
        mode["f"] = "ok"
        await _healthy(inst)
    mode["g"] = "raise"  # a plain host function raising inside a promising call
    with pytest.raises(Boom):
        await promising(inst.exports.via_plain)(1)
    mode["g"] = "ok"
    await _healthy(inst)
    stuck = make(module, Suspending(lambda x: anyio.sleep_forever()))
    with anyio.move_on_after(0.01) as scope:  # cancelled while suspended
        await promising(stuck.exports.run)(1)
    assert scope.cancelled_caught
    await _healthy(inst)


async def test_a_coroutine_may_not_suspend_through_a_plain_call(module: Module) -> None:
    """The awaited coroutine calling, synchronously, an export that reaches a Suspending import:
    that plain call has no promising call below it (SuspendError), and the outer call goes on."""
    holder: dict[str, Instance] = {}
    seen: list[str] = []

    async def f(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        if x == 1:
            try:
                holder["inst"].exports.run(0)
            except SuspendError:
                seen.append("SuspendError")
        await anyio.lowlevel.checkpoint()
        return x * 10

    inst = make(module, Suspending(f))
    holder["inst"] = inst
    assert await promising(inst.exports.run)(1) == 11
    assert seen == ["SuspendError"]
    assert await promising(inst.exports.run)(2) == 21


async def test_closed_while_suspended(runtime: asyncwasm.Runtime, module: Module) -> None:
    """The call's coroutine closed while suspended (never resumed): the import's coroutine is
    closed (its ``finally`` runs), and the instance stays usable."""
    events: list[str] = []
    marker = object()

    async def f(x: int) -> int:
        try:
            await _pause(marker)
        finally:
            events.append("closed")
        return x

    inst = make(module, Suspending(f))
    call = promising(inst.exports.run)(1)
    yielded = call.send(None)
    call.close()
    if yielded is marker:
        assert events == ["closed"]
    else:
        # A time slice's yield to the loop came first (engines with preemption, under load):
        # closed there, before the import ran.
        assert runtime.features.preemption
        assert events == []
    inst2 = make(module, Suspending(later))
    await _healthy(inst2)
    assert inst.exports.add1(1) == 2
    assert await promising(inst.exports.add1)(1) == 2


async def test_overlapping_calls_finish_in_any_order(module: Module) -> None:
    """Many calls suspended at once on one instance and on several, released in reverse order,
    one of them failing and one cancelled: every other result is right, then all works anew."""
    count = 12
    gates = [anyio.Event() for _ in range(count)]
    results: dict[int, object] = {}

    async def f(x: int) -> int:
        await gates[x].wait()
        if x == 3:
            raise KeyError(x)
        return x * 100

    shared = make(module, Suspending(f))
    others = [make(module, Suspending(f)) for _ in range(3)]

    async def call(i: int) -> None:
        inst = shared if i % 2 else others[i % 3]
        try:
            results[i] = await promising(inst.exports.run)(i)
        except KeyError as exc:
            results[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(call, i)
        await anyio.wait_all_tasks_blocked()
        async with anyio.create_task_group() as cancelled:
            cancelled.start_soon(call, 5)  # a second call with gate 5, cancelled
            await anyio.wait_all_tasks_blocked()
            cancelled.cancel_scope.cancel()
        for gate in reversed(gates):
            gate.set()
            await anyio.wait_all_tasks_blocked()
    for i in range(count):
        if i == 3:
            assert isinstance(results[i], KeyError)
        else:
            assert results[i] == i * 100 + 1
    await _healthy(make(module, Suspending(later)))


async def test_nested_call_failing_inside_an_import(module: Module) -> None:
    """A promising call made by an import's coroutine fails; the import catches it and the
    outer call goes on, suspending again afterwards."""
    holder: dict[str, Instance] = {}

    async def f(x: int) -> int:
        if x == 0:
            await anyio.lowlevel.checkpoint()
            raise LookupError("inner")
        with pytest.raises(LookupError, match="inner"):
            await promising(holder["inst"].exports.run)(0)
        with pytest.raises(asyncwasm.RuntimeError):
            await promising(holder["inst"].exports.trap)()
        await anyio.lowlevel.checkpoint()
        return x + 40

    inst = make(module, Suspending(f))
    holder["inst"] = inst
    assert await promising(inst.exports.run)(2) == 43
    await _healthy(make(module, Suspending(later)))


async def test_imports_see_the_awaiting_tasks_context(module: Module) -> None:
    """A Suspending import (before and after suspending) and a plain import reached inside a
    promising call see the context variables of the task awaiting the call, each task its own;
    what an import's coroutine sets is seen by that task afterwards, as with any await."""
    seen: dict[str, list[str]] = {}

    def g(x: int) -> int:
        seen.setdefault(var.get(), []).append("plain")
        return x

    def f(x: int) -> Any:
        label = var.get()
        seen.setdefault(label, []).append("start")

        async def body() -> int:
            await anyio.lowlevel.checkpoint()
            seen[label].append(var.get())
            holder["inst"].exports.via_plain(0)
            var.set(label + " set by the import")
            return x

        return body()

    holder: dict[str, Instance] = {}
    inst = make(module, Suspending(f), g)
    holder["inst"] = inst
    after: dict[str, str] = {}

    async def task(label: str) -> None:
        var.set(label)
        await anyio.lowlevel.checkpoint()
        assert await promising(inst.exports.run)(1) == 2
        assert await promising(inst.exports.via_plain)(1) == 1
        after[label] = var.get()

    async with anyio.create_task_group() as tg:
        tg.start_soon(task, "a")
        tg.start_soon(task, "b")
    assert var.get() == "unset"
    assert seen["a"] == ["start", "a", "plain"]
    assert seen["b"] == ["start", "b", "plain"]
    assert seen["a set by the import"] == ["plain"]
    assert seen["b set by the import"] == ["plain"]
    assert after == {"a": "a set by the import", "b": "b set by the import"}


def test_two_event_loops_in_two_threads(engine: str) -> None:
    """Two threads, each with its own runtime and event loop, making promising calls that
    suspend at the same time: every result is right."""
    barrier = threading.Barrier(2, timeout=60)
    errors: list[BaseException] = []
    totals: list[int] = []

    def thread_main(backend: str) -> None:
        try:
            rt = asyncwasm.Runtime(engine=engine)
            try:
                module = Module(wat(MODULE), runtime=rt)

                async def f(x: int) -> int:
                    await anyio.lowlevel.checkpoint()
                    return x

                async def main() -> int:
                    inst = Instance(module, {"env": {"f": Suspending(f), "g": lambda x: x}})
                    run = promising(inst.exports.run)
                    barrier.wait()
                    results: list[int] = []
                    async with anyio.create_task_group() as tg:

                        async def calls() -> None:
                            for i in range(200):
                                results.append(await run(i))

                        for _ in range(3):
                            tg.start_soon(calls)
                    return sum(results)

                totals.append(anyio.run(main, backend=backend))
            finally:
                rt.close()
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=thread_main, args=(b,)) for b in ("asyncio", "trio")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert totals == [3 * sum(i + 1 for i in range(200))] * 2


async def test_wasmer_workers_are_reused_clean(runtime: asyncwasm.Runtime, module: Module) -> None:
    """wasmer: the worker greenlet that ran a call that trapped, raised, was cancelled or was
    closed while suspended runs the next call, with nothing of the last one left on it; calls
    suspended at once each have their own worker; the idle workers kept are bounded."""
    if runtime.engine != "wasmer":
        pytest.skip("wasmer's worker greenlets")
    from greenlet import getcurrent

    from asyncwasm._engines import _wasmer_async

    ran_in: list[Any] = []
    gates: list[anyio.Event] = []
    marker = object()

    def g(x: int) -> int:
        ran_in.append(getcurrent())
        if x == 13:
            raise Boom
        return x

    async def f(x: int) -> int:
        ran_in.append(getcurrent())
        if x == 1:
            await _pause(marker)
        elif x == 2:
            await anyio.sleep_forever()
        elif x == 3:
            gate = anyio.Event()
            gates.append(gate)
            await gate.wait()
        return x

    inst = make(module, Suspending(f), g)

    async def worker_of_next_call() -> Any:
        assert await promising(inst.exports.via_plain)(7) == 7
        worker = ran_in[-1]
        assert isinstance(worker, _wasmer_async.PromisingGreenlet)
        assert worker.blocked == 0
        assert worker.gr_context is not None  # the awaiting task's, kept until the next call
        return worker

    worker = await worker_of_next_call()
    with pytest.raises(asyncwasm.RuntimeError):
        await promising(inst.exports.trap)()
    assert await worker_of_next_call() is worker
    with pytest.raises(Boom):  # raised by a plain host function (blocked was raised)
        await promising(inst.exports.via_plain)(13)
    assert await worker_of_next_call() is worker
    with anyio.move_on_after(0.01):
        await promising(inst.exports.run)(2)
    assert ran_in[-1] is worker
    assert await worker_of_next_call() is worker
    call = promising(inst.exports.run)(1)
    assert call.send(None) is marker  # no time slicing on wasmer
    call.close()
    assert ran_in[-1] is worker
    assert await worker_of_next_call() is worker

    count = _wasmer_async._MAX_IDLE + 4
    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(promising(inst.exports.run), 3)
        await anyio.wait_all_tasks_blocked()
        assert len({id(w) for w in ran_in[-count:]}) == count
        for gate in gates:
            gate.set()
    assert len(_wasmer_async._idle.workers) == _wasmer_async._MAX_IDLE
    assert await worker_of_next_call() in ran_in[-count - 1 : -1]


async def test_deeply_nested_promising_calls(module: Module) -> None:
    """Promising calls nested 40 deep (each import's coroutine making the next call), each
    suspending: the recursion limit is not exhausted by the nesting itself."""
    holder: dict[str, Instance] = {}

    async def f(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        if x == 0:
            return 0
        inner: int = await promising(holder["inst"].exports.run)(x - 1)
        return inner

    inst = make(module, Suspending(f))
    holder["inst"] = inst
    assert await promising(inst.exports.run)(40) == 41


# --- suspended calls resumed out of order (wasmer's per-thread record of running wasm calls) ---

_OUT_OF_ORDER = """
import json, random, anyio, asyncwasm
from asyncwasm import Module, Instance, Suspending, promising
from _wat import wat
NESTED = False
module = Module(wat('''(module (import "env" "f" (func $f (param i32) (result i32)))
  (func (export "run") (param i32) (result i32) (i32.add (call $f (local.get 0)) (i32.const 1)))
  (func (export "trap") (result i32) unreachable))'''))

async def main(seed):
    rnd = random.Random(seed)
    gates = [anyio.Event() for _ in range(12)]

    async def f(x):
        await gates[x].wait()
        if x % 4 == 3:
            raise KeyError(x)  # through the wasm frames, as wasmer raises host errors: a trap
        return x * 100

    instances = [Instance(module, {"env": {"f": Suspending(f)}}) for _ in range(12)]
    if NESTED:
        inner = instances

        async def outer(x):
            # No suspension of its own: it suspends when the nested call does.
            return await promising(inner[x].exports.run)(x) + 10

        instances = [Instance(module, {"env": {"f": Suspending(outer)}}) for _ in range(12)]
    else:
        instances = instances[:4]
    results = {}

    async def call(i):
        try:
            results[i] = await promising(instances[i % len(instances)].exports.run)(i)
        except KeyError as error:
            results[i] = repr(error)

    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(call, i)
        await anyio.wait_all_tasks_blocked()
        order = list(range(12))
        rnd.shuffle(order)
        for i in order:
            gates[i].set()
            await anyio.wait_all_tasks_blocked()
            try:
                instances[0].exports.trap()
            except asyncwasm.RuntimeError:
                pass
    return [results[i] for i in range(12)]

runs = [anyio.run(main, seed, backend="trio" if seed % 2 else "asyncio") for seed in range(40)]
print(json.dumps({"runs": runs}))
"""


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_calls_released_out_of_order_then_failing_keep_the_process_alive(
    engine: str, nested: bool
) -> None:
    """Twelve calls suspended at once, released in a random order, some failing through their
    wasm frames, a trap in a plain call after each release: wasmer aborted the process ("failed
    to initiate panic") or segfaulted within a few rounds before calls were made to leave in the
    reverse order of their start. Flat: on four instances. Nested: each through a promising
    call made by its import (which suspends only because that call does), so on wasmer the
    outer call must be recorded as entered before the inner one when the inner one suspends."""
    script = _OUT_OF_ORDER.replace("NESTED = False", f"NESTED = {nested}")
    runs = run_json(script, engine=engine, timeout=300)["runs"]
    plus = 1 + 10 if nested else 0
    expected = [f"KeyError({i})" if i % 4 == 3 else i * 100 + 1 + plus for i in range(12)]
    assert runs == [expected] * 40


async def test_a_finished_import_waits_for_calls_started_after_it(
    runtime: asyncwasm.Runtime, module: Module
) -> None:
    """On wasmer a call whose import is done goes back into wasm only after the calls started
    after it have finished (elsewhere it goes on at once); either way every result is right."""
    gates = {1: anyio.Event(), 2: anyio.Event()}
    finished: list[int] = []

    async def f(x: int) -> int:
        await gates[x].wait()
        return x * 10

    first, second = make(module, Suspending(f)), make(module, Suspending(f))

    async def call(inst: Instance, x: int) -> None:
        assert await promising(inst.exports.run)(x) == x * 10 + 1
        finished.append(x)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, first, 1)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(call, second, 2)
        await anyio.wait_all_tasks_blocked()
        gates[1].set()
        await anyio.wait_all_tasks_blocked()
        assert finished == ([] if runtime.engine == "wasmer" else [1])
        gates[2].set()
    assert sorted(finished) == [1, 2]
    if runtime.engine == "wasmer":
        assert finished == [2, 1]
    await _usable(module, first)


async def test_a_call_cancelled_while_waiting_for_later_calls(
    runtime: asyncwasm.Runtime, module: Module
) -> None:
    """Cancelled while its import is done but a call started after it is still suspended
    (wasmer): the cancellation takes effect once that call has finished, and the instances stay
    usable."""
    ready, gate = anyio.Event(), anyio.Event()

    async def soon(x: int) -> int:
        await ready.wait()
        return x

    async def later_gate(x: int) -> int:
        await gate.wait()
        return x

    first, second = make(module, Suspending(soon)), make(module, Suspending(later_gate))
    outcome: list[str] = []
    scopes: list[anyio.CancelScope] = []

    async def call_first() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await promising(first.exports.run)(1)
            outcome.append("returned")
        if scope.cancelled_caught:
            outcome.append("cancelled")

    async with anyio.create_task_group() as tg:
        tg.start_soon(call_first)  # suspended first
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(promising(second.exports.run), 2)  # then this one, at its gate
        await anyio.wait_all_tasks_blocked()
        ready.set()  # the first call's import is done
        await anyio.wait_all_tasks_blocked()
        if runtime.engine == "wasmer":
            assert outcome == []  # it waits for the second call
        scopes[0].cancel()
        await anyio.wait_all_tasks_blocked()
        gate.set()
    if runtime.engine == "wasmer":
        assert outcome == ["cancelled"]
    else:
        assert outcome == ["returned"]  # it went on at once
    await _usable(module, first, second)


async def test_a_call_closed_below_a_later_one_is_unwound_after_it(
    runtime: asyncwasm.Runtime, module: Module
) -> None:
    """A promising call's coroutine closed while a call started after it is still suspended:
    on wasmer its wasm is unwound (its import's ``finally`` runs) once that later call has
    finished; the instances stay usable."""
    events: list[str] = []

    async def f(x: int) -> int:
        try:
            await _pause(x)
        finally:
            events.append(f"closed {x}")
        return x

    first, second = make(module, Suspending(f)), make(module, Suspending(f))
    a = promising(first.exports.run)(1)
    b = promising(second.exports.run)(2)
    if a.send(None) != 1 or b.send(None) != 2:  # a time slice's yield came first (wasmtime)
        assert runtime.features.preemption
        a.close()
        b.close()
        return
    a.close()
    assert events == ([] if runtime.engine == "wasmer" else ["closed 1"])
    with pytest.raises(StopIteration) as done:
        b.send(None)  # ``_pause`` returns: the call finishes
    assert done.value.value == 3
    assert (
        events == ["closed 2", "closed 1"]
        if runtime.engine == "wasmer"
        else ["closed 1", "closed 2"]
    )
    await _usable(module, first, second)


async def _usable(module: Module, *instances: Instance) -> None:
    """Plain and promising calls on ``instances`` work, and so does a new instance."""
    for inst in instances:
        assert inst.exports.add1(1) == 2
        assert await promising(inst.exports.add1)(1) == 2
    await _healthy(make(module, Suspending(later)))


_CLOSED_FROM_A_RUNNING_CALL = """
import json, types, anyio, asyncwasm
from asyncwasm import Module, Instance, Suspending, promising
from _wat import wat
module = Module(wat('''(module (import "env" "f" (func $f (param i32) (result i32)))
  (func (export "run") (param i32) (result i32) (i32.add (call $f (local.get 0)) (i32.const 1)))
  (func (export "trap") (result i32) unreachable))'''))

@types.coroutine
def pause():
    yield "paused"

async def main():
    events = []

    async def waits(x):
        try:
            await pause()
        finally:
            events.append("unwound first")
        return x

    first = Instance(module, {"env": {"f": Suspending(waits)}})
    suspended = promising(first.exports.run)(1)
    while suspended.send(None) != "paused":  # (a time slice's yield first, on wasmtime)
        pass

    async def closes(x):
        # Runs at once inside the second call's wasm, which has never suspended.
        suspended.close()
        events.append("closed")
        if x == 13:
            raise KeyError(x)  # a host exception through the second call's wasm frames
        return x

    second = Instance(module, {"env": {"f": Suspending(closes)}})
    try:
        await promising(second.exports.run)(13)
    except KeyError:
        events.append("second failed")
    for _ in range(20):
        try:
            first.exports.trap()
        except asyncwasm.RuntimeError:
            pass
    seen = list(events)
    assert await promising(second.exports.run)(5) == 6
    return seen

print(json.dumps({"events": anyio.run(main)}))
"""


def test_a_call_closed_from_inside_a_later_running_call(engine: str) -> None:
    """A suspended call's coroutine closed by the import of a later call that has never
    suspended (so it was not yet recorded as entered, on wasmer): the earlier call's wasm is
    unwound only after the later call has left its wasm, which then fails through its frames
    without harm; traps afterwards keep the process alive."""
    events = run_json(_CLOSED_FROM_A_RUNNING_CALL, engine=engine, timeout=120)["events"]
    if engine == "wasmer":
        assert events == ["closed", "unwound first", "second failed"]
    else:
        assert events == ["unwound first", "closed", "second failed"]


async def test_promising_objects_of_one_function_share_its_prepared_path(module: Module) -> None:
    """``await promising(f)(x)`` written inline prepares ``f``'s path once, not per object; the
    call returns a coroutine (for ``create_task`` and trio), its arguments checked when called."""
    inst = make(module, Suspending(later))
    first = promising(inst.exports.run)
    with pytest.raises(TypeError):  # the count, checked when called: nothing to await
        first()  # type: ignore[unused-coroutine]
    call = first(5)
    assert inspect.iscoroutine(call)
    assert await call == 11
    again = promising(inst.exports.run)
    assert again._invoke is first._invoke
    with pytest.raises(TypeError):
        again(1.5)  # type: ignore[unused-coroutine]  # a float for an i32: refused when called
    assert await again(5) == 11
    assert await promising(inst.exports.add1)(1) == 2  # another function: its own path
    assert promising(inst.exports.add1)._invoke is not first._invoke


def test_a_promising_call_awaited_on_another_thread_is_refused(engine: str) -> None:
    """wasmer objects belong to the thread that made them (used from another, wasmer can crash
    the process): a promising call of a function made on another thread raises
    ``NotSupportedError`` when awaited there, as a plain call does, and nothing is left behind."""
    if engine != "wasmer":
        pytest.skip("wasmer's thread affinity")
    rt = asyncwasm.Runtime(engine=engine)
    try:
        inst = Instance(Module(wat(MODULE), runtime=rt), {"env": {"f": later, "g": lambda x: x}})
        add1 = promising(inst.exports.add1)
        assert anyio.run(add1, 1) == 2
        outcome: list[object] = []

        def elsewhere() -> None:
            try:
                outcome.append(anyio.run(add1, 1))
            except BaseException as exc:  # asserted below
                outcome.append(exc)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join(60)
        assert len(outcome) == 1
        assert isinstance(outcome[0], asyncwasm.NotSupportedError)
        assert anyio.run(add1, 1) == 2  # and on its own thread it still works
    finally:
        rt.close()
