"""Port of js-promise-integration.any.js (WebAssembly/js-promise-integration,
test/js-api/js-promise-integration/): ``Suspending``, ``promising`` and ``SuspendError``.

JS promises become awaitables. One difference runs through the file: in JS, calling a
``promising`` wrapper runs the wasm code at once, up to its first suspension; in Python (the
contract's coroutine convention) the code starts when the result is awaited. Where a subtest
observes that ordering, the port starts the call in a task and lets it run to its first
suspension before looking, which is the JS order.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _wat import wat

import asyncwasm
from asyncwasm import Instance, Module, SuspendError, Suspending, promising

from ._support import subtest

JS_FILE = "js-promise-integration/js-promise-integration.any.js"

ADAPTED = {
    "js-promise-integration": "JS non-function values mapped to Python ones; `Suspending` without "
    "`new` and asm.js functions have no Python equivalent (a plain Python function stands in for "
    "the asm.js one)",
    "js-promise-integration 1": "the wasm code runs when the call is awaited (Python's coroutine "
    "convention), so the global is checked after awaiting (and before, unchanged)",
    "js-promise-integration 2": "a JS function with a mismatching arity -> a Python function with "
    "a defaulted parameter; a Proxy -> a callable object",
    "Make sure we actually suspend": "the call is started in a task and run until it blocks "
    "before setB(), which is the order JS gives; the resolved Promise is an Event set after it",
    "Do not suspend if the import's return value is not a Promise": "the call is started in a task "
    "and run until it blocks before setB(), which is the order JS gives",
    "Rejecting promise": "legacy try/catch replaced by try_table (the standard exception handling "
    "wasmtime implements); the rejected Promise is a coroutine raising asyncwasm.Exception",
    "Call import with an invalid suspender": "suspender objects were removed from JSPI: calling the "
    "export without promising raises SuspendError (Node 26 too); JS values that can't be i32 are "
    "Python TypeErrors before the call",
    "js-promise-integration 5": "legacy try/catch replaced by try_table; the rejected Promise is a "
    "coroutine raising asyncwasm.Exception",
    "js-promise-integration 6": "`instanceof Function` -> callable",
    "js-promise-integration 7": "JS RangeError (Maximum call stack size exceeded) -> "
    "asyncwasm.RuntimeError with trap 'stack_overflow' (the contract)",
    "js-promise-integration 8": "the upstream RuntimeError 'trying to suspend JS frames' is "
    "SuspendError in current JSPI (Node 26 too)",
    "Test nested suspenders with suspension": "the upstream test never awaits its helper (so it "
    "checks nothing); the port awaits it",
    "Test nested suspenders with no suspension": "the upstream test never awaits its helper (so it "
    "checks nothing); the port awaits it",
}

pytestmark = pytest.mark.anyio


def _instance(text: str, imports: dict[str, Any] | None = None) -> Instance:
    return Instance(Module(wat(text)), imports)


async def _resolve(value: object) -> object:
    await anyio.lowlevel.checkpoint()  # Promise.resolve(v): settles on a later turn
    return value


async def _reject(error: BaseException) -> object:
    await anyio.lowlevel.checkpoint()
    raise error


class RecordAbeforeB:
    def __init__(self) -> None:
        self.log: list[str] = []

    def set_a(self) -> None:
        self.log.append("A")

    def set_b(self) -> None:
        self.log.append("B")

    def is_a_before_b(self) -> bool:
        return self.log[:2] == ["A", "B"]


@subtest("js-promise-integration")
def test_invalid_wrappers(subtest: str) -> None:
    with pytest.raises(TypeError):
        promising({})
    with pytest.raises(TypeError):
        promising(lambda: None)
    with pytest.raises(TypeError):
        Suspending({})  # type: ignore[arg-type]

    def asm_module(v: int) -> None:
        pass

    with pytest.raises(TypeError):
        promising(asm_module)


@subtest("js-promise-integration 1")
async def test_promising_runs_the_export(subtest: str) -> None:
    instance = _instance(
        """(module (global (export "g") (mut i32) (i32.const 0))
             (func (export "test") (result i32)
               (global.set 0 (i32.const 42)) (i32.const 0)))"""
    )
    wrapper = promising(instance.exports.test)
    call = wrapper()
    assert instance.exports.g.value == 0
    assert await call == 0
    assert instance.exports.g.value == 42


SUSPEND_ONCE = """(module (import "m" "import" (func $i (param i32) (result i32)))
  (func (export "test") (param i32) (result i32) (call $i (local.get 0))))"""


@subtest("Suspend once")
async def test_suspend_once(subtest: str) -> None:
    js_import = Suspending(lambda x: _resolve(42))
    instance = _instance(SUSPEND_ONCE, {"m": {"import": js_import}})
    export_promise = promising(instance.exports.test)(0)
    assert hasattr(export_promise, "__await__")
    assert await export_promise == 42


@subtest("Suspend/resume in a loop")
async def test_suspend_resume_in_a_loop(subtest: str) -> None:
    counter = 0

    def js_import(x: int) -> object:
        nonlocal counter
        counter += 1
        return _resolve(counter)

    instance = _instance(
        """(module (import "m" "import" (func $i (param i32) (result i32)))
             (global (export "g") (mut i32) (i32.const 0))
             (func (export "test") (param i32) (local i32)
               (local.set 1 (i32.const 5))
               (loop
                 (global.set 0 (i32.add (call $i (local.get 0)) (global.get 0)))
                 (br_if 0 (local.tee 1 (i32.sub (local.get 1) (i32.const 1)))))))""",
        {"m": {"import": Suspending(js_import)}},
    )
    export_promise = promising(instance.exports.test)(0)
    assert instance.exports.g.value == 0
    await export_promise
    assert instance.exports.g.value == 15


@subtest("js-promise-integration 2")
async def test_arity_and_proxy(subtest: str) -> None:
    text = """(module (import "m" "import" (func $i (result i32)))
                (func (export "test") (result i32) (call $i)))"""

    class Proxy:
        def __call__(self) -> object:
            return _resolve(42)

    for fn in (lambda: _resolve(42), lambda unused=None: _resolve(42), Proxy()):
        instance = _instance(text, {"m": {"import": Suspending(fn)}})
        assert await promising(instance.exports.test)() == 42


ORDER = """(module (import "m" "import42" (func $i (param i32) (result i32)))
  (import "m" "setA" (func $a))
  (func (export "test") (param i32) (result i32) (call $i (local.get 0)) (call $a)))"""


async def _start_then_set_b(
    instance: Instance, record: RecordAbeforeB, resolve: anyio.Event | None = None
) -> object:
    result: list[object] = []
    async with anyio.create_task_group() as tg:

        async def call() -> None:
            result.append(await promising(instance.exports.test)(0))

        tg.start_soon(call)
        # Let the call run up to its first suspension, or to its end (JS: the wrapper runs the
        # code synchronously until then), then setB() and let the import's promise resolve.
        await anyio.wait_all_tasks_blocked()
        record.set_b()
        if resolve is not None:
            resolve.set()
    return result[0]


@subtest("Make sure we actually suspend")
async def test_make_sure_we_actually_suspend(subtest: str) -> None:
    record = RecordAbeforeB()
    resolve = anyio.Event()

    async def forty_two(x: int) -> int:
        await resolve.wait()  # Promise.resolve(42) settles only after the current JS job
        return 42

    instance = _instance(ORDER, {"m": {"import42": Suspending(forty_two), "setA": record.set_a}})
    assert await _start_then_set_b(instance, record, resolve) == 42
    assert not record.is_a_before_b()


@subtest("Do not suspend if the import's return value is not a Promise")
async def test_do_not_suspend_without_a_promise(subtest: str) -> None:
    record = RecordAbeforeB()
    instance = _instance(ORDER, {"m": {"import42": Suspending(lambda x: 42), "setA": record.set_a}})
    assert await _start_then_set_b(instance, record) == 42
    assert record.is_a_before_b()


@subtest("Throw after the first suspension")
async def test_throw_after_the_first_suspension(subtest: str) -> None:
    tag = asyncwasm.Tag({"parameters": []})
    instance = _instance(
        """(module (import "m" "import" (func $i (param i32) (result i32)))
             (import "m" "tag" (tag $t))
             (func (export "test") (param i32) (result i32)
               (drop (call $i (local.get 0))) (throw $t)))""",
        {"m": {"import": Suspending(lambda x: _resolve(0)), "tag": tag}},
    )
    with pytest.raises(asyncwasm.Exception) as info:
        await promising(instance.exports.test)(0)
    assert info.value.is_(tag)


REJECT = """(module (import "m" "import" (func $i {params} (result i32)))
  (import "m" "tag" (tag $t (param i32)))
  (func (export "test") {params} (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $t $h) (call $i {args})))))"""


@subtest("Rejecting promise")
async def test_rejecting_promise(subtest: str) -> None:
    tag = asyncwasm.Tag({"parameters": ["i32"]})
    js_import = Suspending(lambda x: _reject(asyncwasm.Exception(tag, [42])))
    instance = _instance(
        REJECT.format(params="(param i32)", args="(local.get 0)"),
        {"m": {"import": js_import, "tag": tag}},
    )
    assert await promising(instance.exports.test)(0) == 42


NESTED = """(module (import "m" "inner" (func $inner (param i32) (result i32)))
  (import "m" "outer" (func $outer (param i32) (result i32)))
  (func (export "outer") (param i32) (result i32) (call $outer (local.get 0)))
  (func (export "inner") (param i32) (result i32) (call $inner (local.get 0))))"""


async def _nested_suspenders(suspend: bool) -> None:
    # outer (wasm) -> outer (Python) -> inner (wasm, promising) -> inner (Python)
    holder: dict[str, Any] = {}
    inner = Suspending(lambda x: _resolve(42) if suspend else 43)
    outer = Suspending(lambda x: holder["export_inner"](x))
    instance = _instance(NESTED, {"m": {"inner": inner, "outer": outer}})
    holder["export_inner"] = promising(instance.exports.inner)
    result = promising(instance.exports.outer)(0)
    assert await result == (42 if suspend else 43)


@subtest("Test nested suspenders with suspension")
async def test_nested_suspenders_with_suspension(subtest: str) -> None:
    await _nested_suspenders(True)


@subtest("Test nested suspenders with no suspension")
async def test_nested_suspenders_without_suspension(subtest: str) -> None:
    await _nested_suspenders(False)


@subtest("Call import with an invalid suspender")
async def test_call_import_without_promising(subtest: str) -> None:
    instance = _instance(
        """(module (import "m" "import" (func $i (param i32) (result i32)))
             (func (export "test") (param i32) (result i32) (call $i (local.get 0)))
             (func (export "return_suspender") (param i32) (result i32) (local.get 0)))""",
        {"m": {"import": Suspending(lambda x: _resolve(42))}},
    )
    suspender = promising(instance.exports.return_suspender)(0)
    with pytest.raises(TypeError):
        instance.exports.test(suspender)
    suspender.close()
    for s in (0, 1, -1):
        with pytest.raises(SuspendError):
            instance.exports.test(s)
    bad: object
    for bad in (None, {}):
        with pytest.raises(TypeError):
            instance.exports.test(bad)


@subtest("js-promise-integration 3")
async def test_throw_before_suspending(subtest: str) -> None:
    tag = asyncwasm.Tag({"parameters": []})
    instance = _instance(
        """(module (import "m" "tag" (tag $t)) (func (export "test") (result i32) (throw $t)))""",
        {"m": {"tag": tag}},
    )
    with pytest.raises(asyncwasm.Exception) as info:
        await promising(instance.exports.test)()
    assert info.value.is_(tag)


@subtest("js-promise-integration 4")
async def test_throw_after_the_first_resume(subtest: str) -> None:
    tag = asyncwasm.Tag({"parameters": []})
    instance = _instance(
        """(module (import "m" "import" (func $i (result i32))) (import "m" "tag" (tag $t))
             (func (export "test") (result i32) (drop (call $i)) (throw $t)))""",
        {"m": {"import": Suspending(lambda: _resolve(42)), "tag": tag}},
    )
    with pytest.raises(asyncwasm.Exception) as info:
        await promising(instance.exports.test)()
    assert info.value.is_(tag)


@subtest("js-promise-integration 5")
async def test_rejection_caught_by_wasm(subtest: str) -> None:
    tag = asyncwasm.Tag({"parameters": ["i32"]})
    js_import = Suspending(lambda: _reject(asyncwasm.Exception(tag, [42])))
    instance = _instance(
        REJECT.format(params="", args=""), {"m": {"import": js_import, "tag": tag}}
    )
    assert await promising(instance.exports.test)() == 42


@subtest("js-promise-integration 6")
def test_no_return_allowed(subtest: str) -> None:
    instance = _instance('(module (func (export "export")))')
    export_wrapper = promising(instance.exports.export)
    assert callable(export_wrapper)


@subtest("js-promise-integration 7")
async def test_stack_overflow(subtest: str) -> None:
    instance = _instance('(module (func $f (export "test") (result i32) (call $f)))')
    with pytest.raises(asyncwasm.RuntimeError) as info:
        await promising(instance.exports.test)()
    assert info.value.trap == "stack_overflow"


@subtest("js-promise-integration 8")
async def test_python_frame_in_between(subtest: str) -> None:
    # export1 (promising) -> import1 (plain) -> export2 -> import2 (Suspending)
    holder: dict[str, Instance] = {}

    def import1() -> int:
        holder["instance"].exports.export2()
        return 0

    instance = _instance(
        """(module (import "m" "import1" (func $i1 (result i32)))
             (import "m" "import2" (func $i2 (result i32)))
             (func (export "export1") (result i32) (call $i1))
             (func (export "export2") (result i32) (call $i2)))""",
        {"m": {"import1": import1, "import2": Suspending(lambda: _resolve(0))}},
    )
    holder["instance"] = instance
    with pytest.raises(SuspendError):
        await promising(instance.exports.export1)()


@subtest("js-promise-integration 9")
async def test_imported_promising_chain(subtest: str) -> None:
    text = """(module (import "m" "import" (func $i (result i32)))
                (func (export "{name}") (result i32) (i32.add (call $i) (i32.const 1))))"""
    instance1 = _instance(text.format(name="f"), {"m": {"import": Suspending(lambda: _resolve(1))}})
    instance2 = _instance(text.format(name="main"), {"m": {"import": instance1.exports.f}})
    assert await promising(instance2.exports.main)() == 3
