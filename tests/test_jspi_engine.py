"""JSPI at the engine interface (``Engine.func_new_suspending``, ``Engine.call_promising``), on
every engine under test: what the public layer relies on, independent of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _wat import wat

from asyncwasm._engines import Engine, get_engine
from asyncwasm._exceptions import RuntimeError, SuspendError
from asyncwasm._types import FuncType

I_I = FuncType(("i32",), ("i32",))
MODULE = """(module
  (import "env" "f" (func $f (param i32) (result i32)))
  (import "env" "g" (func $g (param i32) (result i32)))
  (func (export "run") (param i32) (result i32) (i32.add (call $f (local.get 0)) (i32.const 1)))
  (func (export "via_g") (param i32) (result i32) (call $g (local.get 0)))
  (func (export "add1") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "trap") (result i32) unreachable))"""


pytestmark = pytest.mark.anyio


@pytest.fixture
def eng(engine: str) -> Engine:
    return get_engine(engine)


def _setup(e: Engine, start: Any, plain: Any = None) -> tuple[Any, list[Any]]:
    store = e.new_store()
    module = e.compile(store if e.module_needs_store else None, wat(MODULE))
    f = e.func_new_suspending(store, I_I, start)
    g = e.func_new(store, I_I, plain or (lambda x: (x,)))
    inst = e.instantiate(store, module, [f, g])
    return store, e.instance_exports(store, inst)


async def test_suspend_and_resume(eng: Engine) -> None:
    async def later(x: int) -> Sequence[object]:
        await anyio.lowlevel.checkpoint()
        return (x * 2,)

    store, (run, _via_g, add1, _trap) = _setup(eng, lambda x: later(x))
    assert await eng.call_promising(store, run, I_I, [5]) == (11,)
    assert await eng.call_promising(store, add1, I_I, [5]) == (6,)
    assert eng.call(store, add1, I_I, [1]) == (2,)


async def test_immediate_results_do_not_suspend(eng: Engine) -> None:
    store, (run, *_rest) = _setup(eng, lambda x: (x + 3,))
    assert await eng.call_promising(store, run, I_I, [1]) == (5,)


async def test_plain_call_reaching_suspending_is_suspend_error(eng: Engine) -> None:
    started: list[int] = []

    def record(x: int) -> tuple[int]:
        started.append(x)
        return (x,)

    store, (run, _via_g, add1, _trap) = _setup(eng, record)
    with pytest.raises(SuspendError):
        eng.call(store, run, I_I, [1])
    assert started == []
    assert eng.call(store, add1, I_I, [1]) == (2,)


async def test_host_frame_in_between_is_suspend_error(eng: Engine) -> None:
    box: dict[str, Any] = {}

    def plain(x: int) -> Sequence[object]:
        return eng.call(box["store"], box["run"], I_I, [x])

    store, exports = _setup(eng, lambda x: (x,), plain)
    box["store"], box["run"] = store, exports[0]
    with pytest.raises(SuspendError):
        await eng.call_promising(store, exports[1], I_I, [1])


async def test_errors_from_the_awaitable_and_traps(eng: Engine) -> None:
    boom = KeyError("boom")

    async def fail(x: int) -> Sequence[object]:
        await anyio.lowlevel.checkpoint()
        raise boom

    store, (run, _via_g, _add1, trap) = _setup(eng, lambda x: fail(x))
    with pytest.raises(KeyError) as info:
        await eng.call_promising(store, run, I_I, [1])
    assert info.value is boom
    with pytest.raises(RuntimeError) as trapped:
        await eng.call_promising(store, trap, FuncType((), ("i32",)), [])
    assert trapped.value.trap == "unreachable"


async def test_cancellation_at_a_pending_import(eng: Engine) -> None:
    async def never(x: int) -> Sequence[object]:
        await anyio.sleep_forever()
        return (0,)

    store, (run, _via_g, add1, _trap) = _setup(eng, lambda x: never(x))
    with anyio.move_on_after(0.01) as scope:
        await eng.call_promising(store, run, I_I, [1])
    assert scope.cancelled_caught
    assert eng.call(store, add1, I_I, [1]) == (2,)


def test_features(eng: Engine) -> None:
    assert eng.features.jspi
    assert eng.features.preemption == (eng.name == "wasmtime")
    assert eng.isolate_suspending_instances == (eng.name == "wasmtime")
