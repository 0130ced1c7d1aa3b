"""JSPI (``Suspending``, ``promising``, ``SuspendError``) through the public API, on every engine
under test and on both anyio backends (asyncio, trio)."""

from __future__ import annotations

import gc
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _jspi_common import make, no_unawaited_warnings  # noqa: F401  (autouse)
from _wat import wat

import asyncwasm
from asyncwasm import Instance, Module, SuspendError, Suspending, promising

pytestmark = pytest.mark.anyio

# An import "env.f" (i32) -> i32 called by "run" (which adds 1 and records calls in a global),
# a plain import "env.g" called by "via_plain", exports for re-entry, and a spin loop.
MODULE = """
(module
  (import "env" "f" (func $f (param i32) (result i32)))
  (import "env" "g" (func $g (param i32) (result i32)))
  (memory (export "mem") 1)
  (global $calls (export "calls") (mut i32) (i32.const 0))
  (func (export "run") (param i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.add (call $f (local.get 0)) (i32.const 1)))
  (func (export "via_plain") (param i32) (result i32) (call $g (local.get 0)))
  (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "add1") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "spin") (param i32) (result i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get 0))))
    (local.get $i))
  (func (export "forever") (loop $l (br $l)))
)
"""


@pytest.fixture
def module(runtime: asyncwasm.Runtime) -> Module:
    return Module(wat(MODULE))


async def test_suspending_import_awaits_a_coroutine(module: Module) -> None:
    async def f(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x * 10

    inst = make(module, Suspending(f))
    assert await promising(inst.exports.run)(4) == 41
    assert inst.exports.calls.value == 1


async def test_non_awaitable_result_does_not_suspend(module: Module) -> None:
    inst = make(module, Suspending(lambda x: x + 5))
    assert await promising(inst.exports.run)(1) == 7


async def test_awaitable_that_is_not_a_coroutine(module: Module) -> None:
    class Ready:
        def __await__(self) -> Any:
            yield from ()
            return 3

    inst = make(module, Suspending(lambda x: Ready()))
    assert await promising(inst.exports.run)(0) == 4


@pytest.mark.parametrize("returns_awaitable", [True, False])
async def test_suspend_error_without_promising(module: Module, returns_awaitable: bool) -> None:
    called = []

    async def later(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x

    def f(x: int) -> object:
        called.append(x)
        return later(x) if returns_awaitable else x

    inst = make(module, Suspending(f))
    with pytest.raises(SuspendError):
        inst.exports.run(1)
    assert called == []  # as in Node: the function is not even called
    assert isinstance(SuspendError("x"), asyncwasm.WebAssemblyError)
    # The instance stays usable, by plain and promising calls.
    assert inst.exports.add1(1) == 2
    assert await promising(inst.exports.run)(1) == 2
    assert called == [1]


async def test_suspend_error_with_a_python_frame_in_between(module: Module) -> None:
    """promising -> wasm -> plain import -> wasm -> Suspending: nothing may suspend there."""
    holder: dict[str, Instance] = {}

    async def f(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x

    def g(x: int) -> int:
        return int(holder["inst"].exports.run(x))

    inst = make(module, Suspending(f), g)
    holder["inst"] = inst
    with pytest.raises(SuspendError):
        await promising(inst.exports.via_plain)(1)
    assert await promising(inst.exports.run)(1) == 2


async def test_exception_from_the_coroutine_is_the_same_object(module: Module) -> None:
    boom = LookupError("no such key")

    async def f(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        raise boom

    inst = make(module, Suspending(f))
    with pytest.raises(LookupError) as info:
        await promising(inst.exports.run)(1)
    assert info.value is boom
    assert inst.exports.add1(41) == 42


async def test_reentry_while_suspended(module: Module) -> None:
    """The awaited coroutine calls exports of the very instance that is suspended (the
    'malloc' pattern), and wasm sees what it wrote."""
    holder: dict[str, Instance] = {}

    async def f(x: int) -> int:
        exports = holder["inst"].exports
        await anyio.lowlevel.checkpoint()
        exports.store(64, x * 3)  # a plain call into the suspended instance
        await anyio.lowlevel.checkpoint()
        assert await promising(exports.add1)(1) == 2  # a promising one too (never suspends)
        return int(exports.load(64))

    inst = make(module, Suspending(f))
    holder["inst"] = inst
    assert await promising(inst.exports.run)(5) == 16
    assert inst.exports.load(64) == 15


async def test_plain_calls_elsewhere_while_suspended(module: Module) -> None:
    release = anyio.Event()
    suspended = anyio.Event()

    async def f(x: int) -> int:
        suspended.set()
        await release.wait()
        return x

    a = make(module, Suspending(f))
    b = make(module, Suspending(f))
    c = make(module, lambda x: x)
    async with anyio.create_task_group() as tg:
        result: list[int] = []

        async def call() -> None:
            result.append(await promising(a.exports.run)(1))

        tg.start_soon(call)
        await suspended.wait()
        assert b.exports.add1(1) == 2
        assert c.exports.run(2) == 3
        assert a.exports.add1(3) == 4  # the suspended instance itself
        release.set()
    assert result == [2]


async def test_many_suspended_at_once_on_different_instances(module: Module) -> None:
    n = 20
    arrived = 0
    all_in = anyio.Event()
    release = anyio.Event()

    async def f(x: int) -> int:
        nonlocal arrived
        arrived += 1
        if arrived == n:
            all_in.set()
        await release.wait()
        return x * 2

    instances = [make(module, Suspending(f)) for _ in range(n)]
    results: dict[int, int] = {}

    async def call(i: int) -> None:
        results[i] = await promising(instances[i].exports.run)(i)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(call, i)
        await all_in.wait()  # every call is suspended at the same time
        assert not results
        release.set()
    assert results == {i: 2 * i + 1 for i in range(n)}


async def test_several_promising_calls_on_one_instance(module: Module) -> None:
    async def f(x: int) -> int:
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        return x

    inst = make(module, Suspending(f))
    results: dict[int, int] = {}

    async def call(i: int) -> None:
        results[i] = await promising(inst.exports.run)(i)

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(call, i)
    assert results == {i: i + 1 for i in range(10)}
    assert inst.exports.calls.value == 10


async def test_nested_promising_call_from_the_awaited_coroutine(module: Module) -> None:
    """outer (promising) -> Suspending -> coroutine -> promising call on the same instance,
    which suspends too; meanwhile plain calls reach the instance."""
    holder: dict[str, Instance] = {}
    depth = 0

    async def f(x: int) -> int:
        nonlocal depth
        exports = holder["inst"].exports
        await anyio.lowlevel.checkpoint()
        if x > 0:
            depth += 1
            inner: int = await promising(exports.run)(x - 1)  # suspends again, nested
            assert exports.add1(inner) == inner + 1
            return inner * 10
        return 7

    inst = make(module, Suspending(f))
    holder["inst"] = inst
    # run(3) -> f(3) -> run(2) -> f(2) -> run(1) -> f(1) -> run(0) -> f(0) = 7
    assert await promising(inst.exports.run)(3) == ((((7 + 1) * 10 + 1) * 10 + 1) * 10 + 1)
    assert depth == 3
    assert inst.exports.calls.value == 4


async def test_cancel_a_nested_promising_call(module: Module) -> None:
    holder: dict[str, Instance] = {}
    inner_started = anyio.Event()

    async def f(x: int) -> int:
        if x == 0:
            inner_started.set()
            await anyio.sleep_forever()
        with anyio.move_on_after(0.01):
            await promising(holder["inst"].exports.run)(0)
        return 5

    inst = make(module, Suspending(f))
    holder["inst"] = inst
    assert await promising(inst.exports.run)(1) == 6
    assert inner_started.is_set()
    assert inst.exports.add1(1) == 2
    assert await promising(inst.exports.run)(2) == 6


async def test_cancel_while_suspended(module: Module) -> None:
    started = anyio.Event()

    async def f(x: int) -> int:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("not reached")

    inst = make(module, Suspending(f))
    with anyio.move_on_after(30) as outer:
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await promising(inst.exports.run)(1)

            tg.start_soon(call)
            await started.wait()
            tg.cancel_scope.cancel()
    assert not outer.cancelled_caught
    # The instance stays usable, with the state wasm left (the counter was bumped).
    assert inst.exports.calls.value == 1
    assert inst.exports.add1(1) == 2
    ok = make(module, Suspending(lambda x: x))
    assert await promising(ok.exports.run)(1) == 2
    inst2_result = await promising(inst.exports.add1)(5)
    assert inst2_result == 6


async def test_fail_after_while_suspended(module: Module) -> None:
    async def f(x: int) -> int:
        await anyio.sleep_forever()
        return 0

    inst = make(module, Suspending(f))
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.05):
            await promising(inst.exports.run)(1)
    assert inst.exports.add1(1) == 2


async def test_limits_timeout_stops_a_call_suspended_past_it(engine: str) -> None:
    """Time suspended at an import counts toward ``Limits.timeout``, and the call stops at the
    deadline (not when the import's coroutine would have returned, 60 s later): the coroutine
    is cancelled, the call raises the timeout trap, the instance stays usable."""
    limits = asyncwasm.Limits(timeout=0.2)
    try:
        runtime = asyncwasm.Runtime(engine, limits=limits)
    except asyncwasm.NotSupportedError:
        pytest.skip(f"{engine} has no timeouts")
    cancelled: list[BaseException] = []

    async def slow(x: int) -> int:
        try:
            await anyio.sleep(x)
        except BaseException as error:
            cancelled.append(error)
            raise
        return x

    async with runtime:
        module = await runtime.compile(wat(MODULE))
        imports = {"env": {"f": Suspending(slow), "g": lambda x: x}}
        inst = await runtime.instantiate(module, imports)
        run = promising(inst.exports.run)
        with anyio.fail_after(30):  # without the stop, the call would take 60 s
            with pytest.raises(asyncwasm.RuntimeError) as caught:
                await run(60)
        assert caught.value.trap == "timeout"
        assert len(cancelled) == 1
        assert await run(0) == 1  # usable, with a fresh deadline


async def test_cancel_while_spinning(runtime: asyncwasm.Runtime, module: Module) -> None:
    if not runtime.features.preemption:
        pytest.skip(f"{runtime.engine} cannot interrupt running wasm")
    inst = make(module, Suspending(lambda x: x))
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.05):
            await promising(inst.exports.forever)()
    assert inst.exports.add1(1) == 2
    assert await promising(inst.exports.run)(1) == 2


async def test_long_call_lets_other_tasks_run(runtime: asyncwasm.Runtime, module: Module) -> None:
    if not runtime.features.preemption:
        pytest.skip(f"{runtime.engine} cannot interrupt running wasm")
    inst = make(module, lambda x: x)  # no Suspending import: time slicing needs none
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.lowlevel.checkpoint()
        before = ticks
        assert await promising(inst.exports.spin)(50_000_000) == 50_000_000
        during = ticks - before
        done = True
    assert during > 1


async def test_plain_import_returning_an_awaitable_is_a_type_error(module: Module) -> None:
    async def f(x: int) -> int:
        return x

    inst = make(module, f)
    with pytest.raises(TypeError, match="Suspending"):
        inst.exports.run(1)
    with pytest.raises(TypeError, match="Suspending"):
        await promising(inst.exports.run)(1)
    # No "coroutine was never awaited" warning: the fixture turns it into an error.
    gc.collect()


async def test_misuse_of_the_constructors(module: Module) -> None:
    for bad in (None, 1, "f", object()):
        with pytest.raises(TypeError):
            Suspending(bad)  # type: ignore[arg-type]
    inst = make(module, Suspending(lambda x: x))
    for bad in (None, len, lambda: 0, Suspending(len), inst, inst.exports.mem):
        with pytest.raises(TypeError):
            promising(bad)
    with pytest.raises(asyncwasm.LinkError):
        Instance(
            Module(wat('(module (import "env" "m" (memory 1)))')),
            {"env": {"m": Suspending(lambda: 0)}},
        )


async def test_arguments_are_checked_at_call_time_and_code_runs_when_awaited(
    module: Module,
) -> None:
    inst = make(module, Suspending(lambda x: x))
    run = promising(inst.exports.run)
    with pytest.raises(TypeError):
        run()  # type: ignore[unused-coroutine]  # raises before making one
    with pytest.raises(TypeError):
        run(1.5)  # type: ignore[unused-coroutine]
    pending = run(1)
    assert inst.exports.calls.value == 0  # not started yet
    assert await pending == 2
    assert inst.exports.calls.value == 1


async def test_reexported_suspending_import(runtime: asyncwasm.Runtime) -> None:
    m = Module(
        wat('(module (import "env" "f" (func $f (param i32) (result i32))) (export "f" (func $f)))')
    )

    async def f(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x + 1

    inst = Instance(m, {"env": {"f": Suspending(f)}})
    with pytest.raises(SuspendError):
        inst.exports.f(1)
    assert await promising(inst.exports.f)(1) == 2


async def test_suspending_with_imported_memory(runtime: asyncwasm.Runtime) -> None:
    """An instance importing store objects and a Suspending: it shares its store with them."""
    m = Module(
        wat(
            """(module (import "env" "mem" (memory 1))
                 (import "env" "f" (func $f (param i32) (result i32)))
                 (func (export "run") (param i32) (result i32)
                   (i32.store (i32.const 0) (call $f (local.get 0)))
                   (i32.load (i32.const 0))))"""
        )
    )
    mem = asyncwasm.Memory(1)

    async def f(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x * 7

    inst = Instance(m, {"env": {"mem": mem, "f": Suspending(f)}})
    assert await promising(inst.exports.run)(6) == 42
    assert mem.buffer[0] == 42
    # The runtime's other objects keep working beside it.
    other = Instance(m, {"env": {"mem": mem, "f": Suspending(lambda x: x)}})
    assert await promising(other.exports.run)(3) == 3


async def test_wasm_catches_an_exception_from_the_coroutine(runtime: asyncwasm.Runtime) -> None:
    if not runtime.features.exceptions:
        pytest.skip(f"{runtime.engine} has no exception handling")
    tag = asyncwasm.Tag(["i32"])
    m = Module(
        wat(
            """(module
                 (import "env" "tag" (tag $t (param i32)))
                 (import "env" "f" (func $f (param i32) (result i32)))
                 (func (export "run") (param i32) (result i32)
                   (block $h (result i32)
                     (try_table (result i32) (catch $t $h)
                       (call $f (local.get 0))))))"""
        )
    )

    async def f(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        raise asyncwasm.Exception(tag, [x + 100])

    inst = Instance(m, {"env": {"tag": tag, "f": Suspending(f)}})
    assert await promising(inst.exports.run)(1) == 101


async def test_trap_after_resuming(module: Module) -> None:
    m = Module(
        wat(
            """(module (import "env" "f" (func $f (result i32)))
                 (func (export "run") (result i32) (i32.div_s (i32.const 1) (call $f))))"""
        )
    )

    async def zero() -> int:
        await anyio.lowlevel.checkpoint()
        return 0

    inst = Instance(m, {"env": {"f": Suspending(zero)}})
    with pytest.raises(asyncwasm.RuntimeError) as info:
        await promising(inst.exports.run)()
    assert info.value.trap == "integer_divide_by_zero"


async def test_features(runtime: asyncwasm.Runtime) -> None:
    features = runtime.features
    assert features.jspi is True
    assert features.preemption is (runtime.engine == "wasmtime")
    assert {"jspi", "preemption"} <= set(features.as_dict())


async def test_start_function_reaching_a_suspending_import(runtime: asyncwasm.Runtime) -> None:
    """Instantiation is no promising call: a start function calling a Suspending import raises
    SuspendError (never reaching the engine's sync path, which would abort wasmtime)."""
    m = Module(
        wat(
            """(module (import "env" "f" (func $f (param i32) (result i32)))
                 (func $start (drop (call $f (i32.const 1))))
                 (start $start))"""
        )
    )
    called: list[int] = []

    def record(x: int) -> int:
        called.append(x)
        return x

    with pytest.raises(SuspendError):
        Instance(m, {"env": {"f": Suspending(record)}})
    assert called == []
    with pytest.raises(SuspendError):
        await asyncwasm.instantiate(m, {"env": {"f": Suspending(lambda x: x)}})
