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
* resident memory per suspended call (1,000 calls suspended at once on 1,000 instances).

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


if __name__ == "__main__":
    driver_main(__doc__ or "", "JSPI: Suspending and promising", measure)
