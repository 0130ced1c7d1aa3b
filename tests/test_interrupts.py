"""Issue 10: Ctrl-C on wasmtime with the cheap call path (no per-call bookkeeping of running
calls). The epoch ticker runs while calls start and while any store is busy; these cases check
that a long call is still stopped by SIGINT whenever it runs long, and that the ticker does stop
once nothing runs. Each runs in a child process (a SIGINT that nothing stops would kill or hang
the test process). Last, the prepared call path's handling of the store lock on errors."""

from __future__ import annotations

import threading

import pytest
from _child import run_json
from _wat import wat

import asyncwasm

_PRELUDE = """
import json, os, signal, threading, time
import asyncwasm
from _wat import wat
from asyncwasm._engines._wasmtime_interrupts import EpochTicker

def ticker_threads():
    return [t for t in threading.enumerate() if t.name == "asyncwasm-epoch"]

def wait_for_no_ticker():
    # The ticker exits LINGER seconds after the last call; a loaded machine may take longer.
    deadline = time.monotonic() + 30
    while ticker_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not ticker_threads()

def interrupt_after(delay):
    def send():
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=send, daemon=True).start()

def stopped(call):
    try:
        call()
    except KeyboardInterrupt:
        return True
    return False
"""

_LONG_CALL_AFTER_IDLE = (
    _PRELUDE
    + """
instance = asyncwasm.Instance(asyncwasm.Module(wat(
    '(module (func (export "spin") (loop (br 0))) (func (export "two") (result i32) i32.const 2))'
)))
two = instance.exports.two
result = {"short": [two() for _ in range(1000)] == [2] * 1000}
# Nothing runs: the ticker stops. The next call starts from no ticker at all.
result["idle_stopped"] = wait_for_no_ticker()
interrupt_after(0.3)
result["stopped"] = stopped(instance.exports.spin)
result["usable"] = two()
print(json.dumps(result))
"""
)


def test_ctrl_c_stops_a_long_call_made_after_the_ticker_stopped(engine: str) -> None:
    if engine != "wasmtime":
        pytest.skip("wasmer 1.1 has no way to interrupt running wasm")
    result = run_json(_LONG_CALL_AFTER_IDLE, engine=engine, timeout=90)
    assert result == {"short": True, "idle_stopped": True, "stopped": True, "usable": 2}


_SPIN_AFTER_SLOW_HOST = (
    _PRELUDE
    + """
# The host function blocks past the ticker's LINGER (no call starts meanwhile); then wasm spins.
module = asyncwasm.Module(wat(
    '(module (import "env" "wait" (func $wait)) (func (export "run") call $wait (loop (br 0))))'
))
blocked = []
def wait():
    blocked.append(time.monotonic())
    time.sleep(EpochTicker.LINGER * 3)
    interrupt_after(0.3)  # sent while wasm spins
instance = asyncwasm.Instance(module, {"env": {"wait": wait}})
result = {"stopped": stopped(instance.exports.run), "host_called": len(blocked)}
print(json.dumps(result))
"""
)


def test_ctrl_c_stops_wasm_that_spins_after_a_long_host_call(engine: str) -> None:
    if engine != "wasmtime":
        pytest.skip("wasmer 1.1 has no way to interrupt running wasm")
    result = run_json(_SPIN_AFTER_SLOW_HOST, engine=engine, timeout=90)
    assert result == {"stopped": True, "host_called": 1}


_SPIN_IN_A_THREAD = (
    _PRELUDE
    + """
# A long call in another thread keeps the ticker running, though no call starts for a while;
# Ctrl-C then stops a long call made on the main thread (a second store) later on.
spin_module = asyncwasm.Module(wat('(module (func (export "spin") (param i32) (result i32)'
    ' (loop (br_if 0 (local.tee 0 (i32.sub (local.get 0) (i32.const 1))))) (local.get 0)))'))
background = asyncwasm.Instance(spin_module)
started = threading.Event()
def run_background():
    started.set()
    background.exports.spin(-1)  # about 2**32 iterations: seconds
thread = threading.Thread(target=run_background, daemon=True)
thread.start()
started.wait()
time.sleep(EpochTicker.LINGER * 3)
result = {"ticker_running": bool(ticker_threads())}
from asyncwasm._runtime import _set_default_runtime
_set_default_runtime(asyncwasm.Runtime("wasmtime"))  # another runtime: another store
main = asyncwasm.Instance(asyncwasm.Module(wat('(module (func (export "spin") (loop (br 0))))')))
interrupt_after(0.3)
result["stopped"] = stopped(main.exports.spin)
print(json.dumps(result))
"""
)


def test_a_long_call_in_another_thread_keeps_the_ticker_running(engine: str) -> None:
    if engine != "wasmtime":
        pytest.skip("wasmer 1.1 has no way to interrupt running wasm")
    result = run_json(_SPIN_IN_A_THREAD, engine=engine, timeout=90)
    assert result == {"ticker_running": True, "stopped": True}


def test_an_exception_out_of_a_prepared_call_leaves_the_store_usable(
    runtime: asyncwasm.Runtime,
) -> None:
    """The prepared call path counts itself on the store lock's fast path (not ``with``): an
    exception coming out of it, ``KeyboardInterrupt`` included, must take the count back, so
    that the store stays usable for this thread and another thread isn't kept waiting."""
    module = asyncwasm.Module(
        wat(
            '(module (import "env" "f" (func $f (param i32) (result i32)))'
            ' (func (export "call") (param i32) (result i32) (call $f (local.get 0)))'
            ' (func (export "add") (param i32 i32) (result i32)'
            " (i32.add (local.get 0) (local.get 1))))"
        )
    )
    raised: list[BaseException] = []

    def f(x: int) -> int:
        if x == 1:
            error: BaseException = KeyboardInterrupt()
        elif x == 2:
            error = ValueError("from the host")
        else:
            return x
        raised.append(error)
        raise error

    exports = asyncwasm.Instance(module, {"env": {"f": f}}).exports
    for x in (1, 2):
        with pytest.raises((KeyboardInterrupt, ValueError)) as info:
            exports.call(x)
        assert info.value is raised[-1]
    with pytest.raises(TypeError):
        exports.add(1.5, 2)  # refused before the call takes the lock
    assert exports.call(7) == 7
    results: list[object] = []

    def other() -> None:
        try:
            results.append(exports.add(2, 3))
        except asyncwasm.NotSupportedError as error:
            results.append(error)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(60)  # a lock left held would block it for good
    assert not thread.is_alive()
    if runtime.engine == "wasmtime":
        assert results == [5]
    else:  # wasmer objects belong to their thread: the other thread is refused, not blocked
        assert isinstance(results[0], asyncwasm.NotSupportedError)
