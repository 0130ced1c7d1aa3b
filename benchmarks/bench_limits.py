"""Limits for untrusted modules (issue 12): what each limit costs on a tight wasm loop.

All figures come from one run, side by side: the time of one export call running a counting
loop (``N`` iterations, no memory access, the worst case for per-loop-head instrumentation)
under each ``Limits`` setting, as a ratio to the same call in a runtime without limits.

* wasmtime: ``timeout`` (epoch deadline; target <= 1.3x), ``fuel`` (fuel engine; target
  <= 2.5x), both, and the size limits (store limiter: no per-instruction cost). Since the epoch
  is always on (Ctrl-C, JSPI time slicing), ``timeout`` itself should cost ~nothing over no
  limits; what the epoch costs is in the next figures.
* wasmtime, the default configuration before and after issue 12, measured with raw wasmtime
  engines (no asyncwasm in the loop), against an engine with neither instrumentation: epoch
  only (asyncwasm's default now), fuel + epoch (asyncwasm's default before, and the fuel
  engine now).
* wasmer: the size limits (caps written into the module: no per-instruction cost); fuel and
  timeout are not supported there (``NotSupportedError``).

Each figure is the fastest of several calls (the machine is shared and noisy).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from _common import Figure, driver_main

import asyncwasm

# (module (func (export "count") (param $n i32) (result i32) (local $i i32)
#   (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
#            (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
#   (local.get $i)))
# as bytes: the wasmer worker's Python has no wasm-tools.
COUNT = bytes.fromhex(
    "0061736d0100000001060160017f017f0302010007090105636f756e7400000a19011701017f0340200141"
    "016a210120012000490d000b20010b"
)


def _asyncwasm_count(engine: str, limits: asyncwasm.Limits | None) -> Callable[[int], object]:
    rt = asyncwasm.Runtime(engine, limits=limits)
    count: Callable[[int], object] = asyncwasm.Instance(
        asyncwasm.Module(COUNT, runtime=rt)
    ).exports.count
    count(1000)  # warm up
    return count


def _raw_wasmtime_count(fuel: bool, epoch: bool) -> Callable[[int], object]:
    import wasmtime  # only for the reference figures: raw engines, no asyncwasm

    config = wasmtime.Config()
    config.consume_fuel = fuel
    config.epoch_interruption = epoch
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    if fuel:
        store.set_fuel(2**63)
    if epoch:
        store.set_epoch_deadline(1 << 62)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, COUNT), [])
    func = instance.exports(store)["count"]
    assert isinstance(func, wasmtime.Func)
    return lambda k: func(store, k)


def _fastest(calls: dict[str, Callable[[int], object]], n: int, rounds: int) -> dict[str, float]:
    """The fastest call of each, measured round-robin (so that noise hits all alike)."""
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call(n)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _ratio(name: str, seconds: float, base: float, target: float | None) -> Figure:
    ratio = seconds / base
    return Figure(
        name,
        round(ratio, 2),
        "x",
        target=f"<= {target}x" if target is not None else "",
        ok=None if target is None else ratio <= target,
        note=f"{seconds * 1e3:.0f} ms",
    )


async def measure(engine: str, quick: bool) -> list[Figure]:
    n = 20_000_000 if quick else 200_000_000
    rounds = 3 if quick else 7
    calls: dict[str, Callable[[int], object]] = {
        "no limits": _asyncwasm_count(engine, None),
        "memory + tables + instances": _asyncwasm_count(
            engine, asyncwasm.Limits(memory=64 << 20, table_elements=10_000, instances=1000)
        ),
    }
    unsupported: list[Figure] = []
    for name, limits in (
        ("timeout", asyncwasm.Limits(timeout=60.0)),
        ("fuel", asyncwasm.Limits(fuel=2**62)),
        ("fuel + timeout", asyncwasm.Limits(fuel=2**62, timeout=60.0)),
    ):
        try:
            calls[name] = _asyncwasm_count(engine, limits)
        except asyncwasm.NotSupportedError:
            unsupported.append(Figure(name, None, "x", note="NotSupportedError"))
    if engine == "wasmtime":
        calls["raw wasmtime, no instrumentation"] = _raw_wasmtime_count(False, False)
        calls["raw: epoch only (default now)"] = _raw_wasmtime_count(False, True)
        calls["raw: fuel + epoch (default before)"] = _raw_wasmtime_count(True, True)
        calls["raw: fuel only"] = _raw_wasmtime_count(True, False)
    best = _fastest(calls, n, rounds)
    base = best["no limits"]
    figures = [Figure("no limits", round(base * 1e3, 1), "ms", note=f"{n:,} iterations")]
    targets = {"memory + tables + instances": 1.1, "timeout": 1.3, "fuel": 2.5}
    for name in ("memory + tables + instances", "timeout", "fuel", "fuel + timeout"):
        if name in best:
            figures.append(_ratio(name, best[name], base, targets.get(name)))
    figures += unsupported
    raw_name = "raw wasmtime, no instrumentation"
    if raw_name in best:
        raw = best[raw_name]
        figures.append(Figure(raw_name, round(raw * 1e3, 1), "ms", note="reference"))
        for name in (
            "raw: epoch only (default now)",
            "raw: fuel + epoch (default before)",
            "raw: fuel only",
        ):
            figures.append(_ratio(name, best[name], raw, None))
        figures.append(_ratio("asyncwasm, no limits / raw", base, raw, None))
    return figures


if __name__ == "__main__":
    driver_main(__doc__ or "", "Limits: the cost of each limit on a tight loop", measure)
