"""Question 3: how cheap is a repeated compile of the same bytes?

Cold compile (fresh runtime, caches empty) over a repeated ``await compile`` answered by the
in-memory cache (same store; and, on wasmer, a new store, which deserializes the cached
artifact), and by the on-disk cache (a new runtime on the same ``cache_dir``: read, verify,
load; in a warm runtime, and for scale in a runtime just started, whose first worker process
is still importing wasmer on the other core). Medians. Target: every hit >= 50x faster than
the cold compile.
"""

from __future__ import annotations

import gc
import tempfile
import time

from _common import Figure, driver_main, generated_module, median, qjs_module

import asyncwasm

TARGET = 50.0


async def measure(engine: str, quick: bool) -> list[Figure]:
    runs = 3 if quick else 7
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as cache_dir:
        for label, wasm in (("QuickJS", qjs_module()), ("10k funcs", generated_module())):
            async with asyncwasm.Runtime(engine, cache_dir=cache_dir) as rt:
                await rt.compile(generated_module())  # warm pool
                t = time.perf_counter()
                keep = await rt.compile(wasm)
                cold = time.perf_counter() - t
                same_store = []
                for _ in range(runs):
                    t = time.perf_counter()
                    await rt.compile(wasm)
                    same_store.append(time.perf_counter() - t)
                new_store = []
                if rt._engine.module_needs_store:
                    for _ in range(runs):
                        del keep
                        gc.collect()  # nothing holds the store: the next module starts a new one
                        t = time.perf_counter()
                        keep = await rt.compile(wasm)
                        new_store.append(time.perf_counter() - t)
                del keep
            disk = []  # a warm runtime whose memory cache is off: every compile reads disk
            async with asyncwasm.Runtime(engine, cache_dir=cache_dir, cache_size=0) as rt2:
                await rt2.compile(generated_module())  # warm pool
                for _ in range(runs):
                    t = time.perf_counter()
                    await rt2.compile(wasm)
                    disk.append(time.perf_counter() - t)
                assert rt2.cache_info().disk_hits == runs
            fresh = []  # a new runtime each time (a restarted service): includes its start-up
            for _ in range(runs):
                async with asyncwasm.Runtime(engine, cache_dir=cache_dir) as rt3:
                    t = time.perf_counter()
                    await rt3.compile(wasm)
                    fresh.append(time.perf_counter() - t)
            figures.append(
                Figure(f"{label}: disk hit in a new runtime (time)", median(fresh) * 1000, "ms")
            )
            figures.append(Figure(f"{label}: cold compile", cold, "s"))
            hits = [("memory hit", same_store), ("memory hit, new store", new_store)]
            for name, values in [*hits, ("disk hit", disk)]:
                if not values:
                    figures.append(Figure(f"{label}: {name}", None, "x", note="n/a"))
                    continue
                hit = median(values)
                figures.append(Figure(f"{label}: {name} (time)", hit * 1000, "ms"))
                figures.append(
                    Figure(
                        f"{label}: cold / {name}",
                        cold / hit,
                        "x",
                        target=f">= {TARGET:.0f}x",
                        ok=cold / hit >= TARGET,
                    )
                )
    return figures


if __name__ == "__main__":
    driver_main(__doc__ or "", "Repeated compile: caches over cold compile", measure)
