"""The store lock (``asyncwasm/_engines/_store_lock.py``): a store is used by one thread at a
time, re-entry works, and the home thread's fast path closes and opens again around another
thread's use. The first tests drive the lock directly; the last ones run real wasm calls, in a
child process where a deadlock would otherwise hang the test run."""

from __future__ import annotations

import threading

import pytest
from _child import run_json

from asyncwasm._engines._store_lock import StoreLock


def _in_thread(fn: object) -> threading.Thread:
    thread = threading.Thread(target=fn)  # type: ignore[arg-type]
    thread.start()
    return thread


def _fast(lock: StoreLock) -> int | None:
    """``lock.fast`` (read through a call: mypy would keep a narrowed type across threads)."""
    return lock.fast


def test_the_home_thread_enters_and_reenters_without_closing_the_fast_path() -> None:
    lock = StoreLock()
    with lock:
        assert lock.depth == 1
        with lock:
            assert lock.depth == 2
            assert lock._is_owned()
            assert lock.busy()
        assert lock.fast == lock.home
    assert lock.depth == 0
    assert not lock._is_owned()
    assert not lock.busy()


def test_another_thread_waits_for_the_home_threads_count_and_reopens_after() -> None:
    lock = StoreLock()
    inside = threading.Event()
    seen: list[object] = []

    def other() -> None:
        with lock:
            seen.append(("depth while inside", lock.depth))
            seen.append(("fast while inside", lock.fast))
            seen.append(("owned", lock._is_owned()))
            inside.set()

    with lock:  # a counted call of the home thread
        thread = _in_thread(other)
        thread.join(0.3)
        assert thread.is_alive()  # it waits for the count to drop
        assert not inside.is_set()
        assert _fast(lock) is None  # closed by the waiting thread
        with lock:  # re-entry while the other thread waits: no deadlock
            assert lock.depth == 2
    thread.join(60)
    assert not thread.is_alive()
    assert seen == [("depth while inside", 0), ("fast while inside", None), ("owned", True)]
    assert lock.fast == lock.home  # open again
    assert not lock._is_owned()  # the other thread's ownership is not this thread's


def test_the_home_thread_waits_while_another_thread_is_inside() -> None:
    lock = StoreLock()
    entered, leave = threading.Event(), threading.Event()
    order: list[str] = []

    def other() -> None:
        with lock:
            entered.set()
            leave.wait(60)
            order.append("other left")

    thread = _in_thread(other)
    assert entered.wait(60)
    assert lock.busy()
    releaser = threading.Timer(0.2, leave.set)
    releaser.start()
    with lock:  # the fast path is closed: this takes the RLock, after the other thread
        order.append("home inside")
        assert lock.depth == 0
        assert lock._is_owned()
    thread.join(60)
    assert order == ["other left", "home inside"]
    assert lock.fast == lock.home


def test_closing_the_fast_path_is_for_good() -> None:
    lock = StoreLock()
    with lock:
        lock.close_fast_path()
    assert lock.fast is None

    def other() -> None:
        with lock:
            pass

    thread = _in_thread(other)
    thread.join(60)
    assert lock.fast is None  # the other thread's exit does not reopen it
    with lock:
        assert lock.depth == 0  # the home thread now takes the RLock
        assert lock._is_owned()
    assert not lock.busy()


def test_an_interrupted_wait_gives_the_lock_back(monkeypatch: pytest.MonkeyPatch) -> None:
    lock = StoreLock()
    failed: list[BaseException] = []

    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt  # as a signal handler would, inside the wait

    def other() -> None:
        monkeypatch.setattr("asyncwasm._engines._store_lock.time.sleep", sleep)
        try:
            lock.__enter__()
        except KeyboardInterrupt as error:
            failed.append(error)

    with lock:
        thread = _in_thread(other)
        thread.join(60)
    assert len(failed) == 1
    assert lock.fast == lock.home
    assert not lock.busy()


_CALLS = """
import json, threading
import asyncwasm
from _wat import wat

module = asyncwasm.Module(wat('''(module
  (import "env" "f" (func $f (param i32) (result i32)))
  (func (export "call") (param i32) (result i32) (call $f (local.get 0)))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))'''))
events = []
threads = []

def other():
    events.append(("other result", exports.add(2, 3)))

def f(x):
    thread = threading.Thread(target=other)
    threads.append(thread)
    thread.start()
    thread.join(0.3)
    events.append(("other still waiting", thread.is_alive()))
    events.append(("re-entered", exports.add(x, 1)))  # while the other thread waits
    return x * 10

exports = asyncwasm.Instance(module, {"env": {"f": f}}).exports
events.append(("call", exports.call(4)))
threads[0].join(60)
events.append(("fast path again", exports.add(20, 22)))
print(json.dumps({"events": events}))
"""


def test_calls_from_two_threads_take_turns_and_reentry_works(engine: str) -> None:
    if engine != "wasmtime":
        pytest.skip("wasmer objects belong to their thread: another thread is refused")
    events = run_json(_CALLS, engine=engine, timeout=120)["events"]
    assert isinstance(events, list)
    assert events[:2] == [["other still waiting", True], ["re-entered", 5]]
    # The other thread's call runs once the home thread's has ended (which of the two records
    # its result first is up to the scheduler).
    assert sorted(events[2:4]) == [["call", 40], ["other result", 5]]
    assert events[4:] == [["fast path again", 42]]
