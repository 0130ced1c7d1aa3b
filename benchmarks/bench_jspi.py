"""JSPI (issue #11): what ``Suspending`` / ``promising`` cost, and how responsive the loop stays.

Figures, per engine:

* worst event-loop lateness (1 ms ticker) while ``await promising(f)()`` runs a ~1 s wasm loop
  (target <= 5 ms where the engine can interrupt wasm: wasmtime; wasmer cannot, n/a);
* cancellation latency, deadline to exception, while the promising call spins (wasmtime) and
  while it is suspended on an import (both engines); target <= 20 ms;
* a promising call whose import awaits ``anyio.sleep(0)``, against the same await in pure
  Python (target <= 2x);
* a promising call that never suspends, against a plain call (target <= 3x);
* an async import that completes without waiting, against a plain import, both through
  ``promising`` (target <= 2x); also a Suspending import returning a plain value;
* resident memory per suspended call (1,000 calls suspended at once on 1,000 instances);
* the per-call figures in microseconds, and the floor under them: what the engine's own
  mechanism costs with the least Python possible (wasmtime: the C API's call futures driven
  through ctypes with minimal callbacks, no asyncwasm; wasmer: raw wasmer calls driven through a
  greenlet, the import switching out and back), and the sleep(0) ratio that floor alone would
  give.

Per-call figures are the median of several rounds of many calls.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
from _common import Figure, LatenessMonitor, driver_main, median

import asyncwasm
from asyncwasm import Instance, Module, Suspending, promising

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from _wat import wat

MODULE = """
(module
  (import "env" "f" (func $f (param i32) (result i32)))
  (func (export "run") (param i32) (result i32) (call $f (local.get 0)))
  (func (export "add1") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "spin") (param i32) (result i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get 0))))
    (local.get $i))
  (func (export "forever") (loop $l (br $l)))
)
"""


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _per_call(fn: Callable[[], Awaitable[object]], n: int, rounds: int) -> float:
    """Median seconds per ``await fn()``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        times.append((time.perf_counter() - start) / n)
    return median(times)


def _per_sync_call(fn: Callable[[], object], n: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n)
    return median(times)


async def _cancel_latency(call: Callable[[], Awaitable[object]], after: float = 0.05) -> float:
    """Milliseconds from the deadline to the cancellation reaching us."""
    deadline = time.perf_counter() + after
    with anyio.move_on_after(after):
        await call()
    return (time.perf_counter() - deadline) * 1000


async def measure(engine: str, quick: bool) -> list[Figure]:
    n = 2000 if quick else 20000
    rounds = 3 if quick else 5
    figures: list[Figure] = []
    async with asyncwasm.Runtime(engine) as rt:
        from asyncwasm._runtime import _set_default_runtime

        _set_default_runtime(rt)
        module = Module(wat(MODULE))
        preemption = rt.features.preemption

        async def sleep0(x: int) -> int:
            await anyio.sleep(0)  # noqa: ASYNC115  (the figure is about sleep(0))
            return x

        async def at_once(x: int) -> int:
            return x

        def ident(x: int) -> int:
            return x

        plain = Instance(module, {"env": {"f": ident}})

        # -- loop lateness while a long promising call runs ------------------------------------
        spin = plain.exports.spin
        start = time.perf_counter()
        spin(20_000_000)
        rate = 20_000_000 / (time.perf_counter() - start)
        iterations = min(int(rate * 1.0), 2**31 - 1)  # ~1 s of wasm
        if preemption:
            lateness = []
            for _ in range(1 if quick else 3):
                async with LatenessMonitor() as monitor:
                    started = time.perf_counter()
                    await promising(spin)(iterations)
                    took = time.perf_counter() - started
                lateness.append(monitor.max_ms)
            value = median(lateness)
            figures.append(
                Figure(
                    "loop lateness during a 1 s promising call",
                    value,
                    "ms",
                    "<= 5 ms",
                    value <= 5,
                    f"call took {took:.2f} s",
                )
            )
        else:
            figures.append(
                Figure(
                    "loop lateness during a 1 s promising call", None, "ms", note="no preemption"
                )
            )

        # -- cancellation latency ----------------------------------------------------------------
        if preemption:
            values = [
                await _cancel_latency(lambda: promising(plain.exports.forever)()) for _ in range(5)
            ]
            value = max(values)
            figures.append(
                Figure(
                    "cancellation latency, spinning (worst of 5)",
                    value,
                    "ms",
                    "<= 20 ms",
                    value <= 20,
                )
            )
            assert plain.exports.add1(1) == 2
        else:
            figures.append(
                Figure(
                    "cancellation latency, spinning (worst of 5)", None, "ms", note="no preemption"
                )
            )

        async def forever(x: int) -> int:
            await anyio.sleep_forever()
            return x

        stuck = Instance(module, {"env": {"f": Suspending(forever)}})
        values = [await _cancel_latency(lambda: promising(stuck.exports.run)(1)) for _ in range(5)]
        value = max(values)
        figures.append(
            Figure(
                "cancellation latency, suspended (worst of 5)", value, "ms", "<= 20 ms", value <= 20
            )
        )

        # -- per-call costs ------------------------------------------------------------------------
        suspending = Instance(module, {"env": {"f": Suspending(sleep0)}})
        run_s = promising(suspending.exports.run)
        t_jspi = await _per_call(lambda: run_s(1), n, rounds)
        t_py = await _per_call(lambda: sleep0(1), n, rounds)
        ratio = t_jspi / t_py
        figures.append(
            Figure(
                "import awaiting sleep(0): promising / pure Python",
                ratio,
                "x",
                "<= 2x",
                ratio <= 2,
                f"{t_jspi * 1e6:.1f} us vs {t_py * 1e6:.1f} us",
            )
        )

        add1 = plain.exports.add1
        p_add1 = promising(add1)
        t_prom = await _per_call(lambda: p_add1(1), n, rounds)
        t_sync = _per_sync_call(lambda: add1(1), n, rounds)
        ratio = t_prom / t_sync
        figures.append(
            Figure(
                "promising call that never suspends / plain call",
                ratio,
                "x",
                "<= 3x",
                ratio <= 3,
                f"{t_prom * 1e6:.1f} us vs {t_sync * 1e6:.1f} us",
            )
        )

        run_plain = promising(plain.exports.run)
        t_plain_import = await _per_call(lambda: run_plain(1), n, rounds)
        at_once_inst = Instance(module, {"env": {"f": Suspending(at_once)}})
        run_at_once = promising(at_once_inst.exports.run)
        t_at_once = await _per_call(lambda: run_at_once(1), n, rounds)
        ratio = t_at_once / t_plain_import
        figures.append(
            Figure(
                "async import done without waiting / plain import",
                ratio,
                "x",
                "<= 2x",
                ratio <= 2,
                f"{t_at_once * 1e6:.1f} us vs {t_plain_import * 1e6:.1f} us",
            )
        )
        figures.append(Figure("  promising call, import awaiting sleep(0)", t_jspi * 1e6, "us"))
        figures.append(Figure("  the same await in pure Python", t_py * 1e6, "us"))
        figures.append(Figure("  promising call that never suspends", t_prom * 1e6, "us"))
        figures.append(Figure("  promising call, async import done at once", t_at_once * 1e6, "us"))
        if engine == "wasmtime":
            floor = _wasmtime_floor(n, rounds)
            names = ("never suspends", "import answering at once", "import suspending once")
            for name, value in zip(names, floor, strict=True):
                figures.append(Figure(f"  C API floor (no asyncwasm): {name}", value * 1e6, "us"))
            suspend_floor = floor[2]
        else:
            floor = _wasmer_floor(n, rounds)
            names = ("never suspends", "import suspending once")
            for name, value in zip(names, floor, strict=True):
                figures.append(
                    Figure(f"  greenlet floor (no asyncwasm): {name}", value * 1e6, "us")
                )
            suspend_floor = floor[1]
        figures.append(
            Figure(
                "  sleep(0) ratio of that floor alone",
                (suspend_floor + t_py) / t_py,
                "x",
                note="the suspension mechanism with no bookkeeping, plus the await itself",
            )
        )
        if engine == "wasmer":  # (a plain call on wasmtime runs in a JSPI store: no floor)
            figures.append(
                Figure(
                    "  never-suspends ratio of that floor alone",
                    floor[0] / t_sync,
                    "x",
                    note="raw wasmer through a greenlet, against our plain call",
                )
            )
        value_inst = Instance(module, {"env": {"f": Suspending(ident)}})
        run_value = promising(value_inst.exports.run)
        t_value = await _per_call(lambda: run_value(1), n, rounds)
        ratio = t_value / t_plain_import
        figures.append(
            Figure(
                "Suspending import returning a value / plain import",
                ratio,
                "x",
                "",
                None,
                f"{t_value * 1e6:.1f} us vs {t_plain_import * 1e6:.1f} us",
            )
        )

        # -- memory per suspended call ----------------------------------------------------------
        count = 1000
        release = anyio.Event()

        async def wait(x: int) -> int:
            await release.wait()
            return x

        instances = [Instance(module, {"env": {"f": Suspending(wait)}}) for _ in range(count)]
        gc.collect()
        before = _rss()
        async with anyio.create_task_group() as tg:
            for inst in instances:
                tg.start_soon(promising(inst.exports.run), 1)
            await anyio.wait_all_tasks_blocked()
            during = _rss()
            release.set()
        figures.append(
            Figure(
                "resident memory per suspended call (1,000 at once)",
                (during - before) / count / 1024,
                "KiB",
            )
        )
    return figures


def _wasmer_floor(n: int, rounds: int) -> tuple[float, float]:
    """Seconds per call of raw wasmer (no asyncwasm) driven through a greenlet with the least
    Python possible: a call that never suspends (switch into the greenlet, call, switch back);
    one whose Python import suspends once (it switches out and is switched back into). Imports
    wasmer itself: it measures below asyncwasm."""
    import wasmer
    import wasmer_compiler_cranelift
    from greenlet import getcurrent, greenlet

    store = wasmer.Store(wasmer.engine.Universal(wasmer_compiler_cranelift.Compiler))
    main = getcurrent()

    def host(x: int) -> int:
        return int(main.switch(None))  # suspended until switched back into, with the result

    i32 = wasmer.FunctionType([wasmer.Type.I32], [wasmer.Type.I32])
    imports = {"env": {"f": wasmer.Function(store, host, i32)}}
    instance = wasmer.Instance(wasmer.Module(store, wat(MODULE)), imports)
    add1, run = instance.exports.add1, instance.exports.run

    def body(call: Callable[[int], int]) -> None:
        while True:
            call = main.switch(call(1))

    worker = greenlet(body)

    def never() -> None:
        worker.switch(add1)

    def suspended() -> None:
        if worker.switch(run) is not None:
            raise RuntimeError("the import did not suspend")
        if worker.switch(7) != 7:
            raise RuntimeError("the suspended import's result did not arrive")

    return _per_sync_call(never, n, rounds), _per_sync_call(suspended, n, rounds)


def _wasmtime_floor(n: int, rounds: int) -> tuple[float, float, float]:
    """Seconds per call of the wasmtime C API's async paths through ctypes, with the least
    Python possible (no asyncwasm): a call that never suspends (create, one poll, delete); one
    whose async import answers at once; one whose async import suspends once (two polls, the
    continuation called twice). Imports wasmtime itself: it measures below asyncwasm."""
    import ctypes
    import struct

    import wasmtime
    from wasmtime import _ffi as ffi

    v = ctypes.c_void_p
    call_async = ctypes.CFUNCTYPE(v, v, v, v, ctypes.c_size_t, v, ctypes.c_size_t, v, v)(
        ("wasmtime_func_call_async", ffi.dll)
    )
    poll = ctypes.CFUNCTYPE(ctypes.c_bool, v)(("wasmtime_call_future_poll", ffi.dll))
    delete = ctypes.CFUNCTYPE(None, v)(("wasmtime_call_future_delete", ffi.dll))
    define = ctypes.CFUNCTYPE(v, v, v, ctypes.c_size_t, v, ctypes.c_size_t, v, v, v, v)(
        ("wasmtime_linker_define_async_func", ffi.dll)
    )
    callback_t = ctypes.CFUNCTYPE(None, v, v, v, ctypes.c_size_t, v, ctypes.c_size_t, v, v)
    continuation_t = ctypes.CFUNCTYPE(ctypes.c_bool, v)
    write = struct.Struct("=B7xi20x")  # a wasmtime_val_t holding an i32
    read = struct.Struct("=8xi20x")
    cont3, val_bytes = v * 3, ctypes.c_char * 32

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    ctx = store._context()
    state = {"suspend": False, "ready": False, "results": 0}

    def done_py(env: int | None) -> bool:
        return True

    def continuation_py(env: int | None) -> bool:
        if not state["ready"]:
            return False
        write.pack_into(val_bytes.from_address(state["results"]), 0, 0, 7)
        return True

    done = continuation_t(done_py)
    continuation = continuation_t(continuation_py)

    def callback_py(
        env: int | None, caller: int, params: int, nparams: int, results: int, nresults: int,
        trap: int, cont: int,
    ) -> None:  # fmt: skip
        c = cont3.from_address(cont)
        c[1] = c[2] = None
        if state["suspend"]:
            state["results"] = results
            c[0] = ctypes.cast(continuation, v).value
        else:
            c[0] = ctypes.cast(done, v).value
            value = read.unpack_from(val_bytes.from_address(params))[0]
            write.pack_into(val_bytes.from_address(results), 0, 0, value)

    callback = callback_t(callback_py)
    linker = ffi.wasmtime_linker_new(engine.ptr())
    functype = wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()])
    if define(linker, b"env", 3, b"f", 1, functype.ptr(), callback, None, None):
        raise RuntimeError("could not define the async import")
    module = wasmtime.Module(engine, wat(MODULE))
    raw = ffi.wasmtime_instance_t()
    traps = (v * 2)()
    t_addr = ctypes.addressof(traps)
    future = ffi.wasmtime_linker_instantiate_async(
        linker,
        ctx,
        module.ptr(),
        ctypes.byref(raw),
        ctypes.cast(t_addr, ctypes.POINTER(ctypes.POINTER(ffi.wasm_trap_t))),
        ctypes.cast(t_addr + 8, ctypes.POINTER(ctypes.POINTER(ffi.wasmtime_error_t))),
    )
    while not ffi.wasmtime_call_future_poll(future):
        pass
    ffi.wasmtime_call_future_delete(future)
    ffi.wasmtime_linker_delete(linker)
    if traps[0] or traps[1]:
        raise RuntimeError("could not instantiate the module")

    def export(name: bytes) -> int:
        item = ffi.wasmtime_extern_t()
        if not ffi.wasmtime_instance_export_get(
            ctx, ctypes.byref(raw), name, len(name), ctypes.byref(item)
        ):
            raise RuntimeError(f"no export {name!r}")
        keep.append(item)
        return ctypes.addressof(item.of.func)

    keep: list[object] = []
    vals = (ffi.wasmtime_val_t * 2)()
    write.pack_into(vals, 0, 0, 1)
    a_ctx = ctypes.cast(ctx, v).value
    a_vals = ctypes.addressof(vals)
    add1, run = export(b"add1"), export(b"run")

    def once(func: int) -> None:
        f = call_async(a_ctx, func, a_vals, 1, a_vals + 32, 1, t_addr, t_addr + 8)
        poll(f)
        delete(f)

    def suspended() -> None:
        state["ready"] = False
        f = call_async(a_ctx, run, a_vals, 1, a_vals + 32, 1, t_addr, t_addr + 8)
        if poll(f):
            raise RuntimeError("the import did not suspend")
        state["ready"] = True
        if not poll(f):
            raise RuntimeError("the call did not finish")
        delete(f)

    never = _per_sync_call(lambda: once(add1), n, rounds)
    at_once = _per_sync_call(lambda: once(run), n, rounds)
    state["suspend"] = True
    suspend = _per_sync_call(suspended, n, rounds)
    if read.unpack_from(vals, 32)[0] != 7:
        raise RuntimeError("the suspended import's result did not arrive")
    del store
    return never, at_once, suspend


if __name__ == "__main__":
    driver_main(__doc__ or "", "JSPI: Suspending and promising", measure)
