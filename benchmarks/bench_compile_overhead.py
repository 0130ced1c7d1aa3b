"""Question 2: what does ``await compile`` cost over the engine's own compile?

Wall time of ``await runtime.compile(bytes)`` (caches off, worker pool warm) over a raw,
synchronous engine compile of the same bytes in this process, measured alternately, medians.
On wasmer the await includes the hop to the worker process, serializing there, the transfer
and the deserialize on the loop thread. Targets: <= 1.10 (wasmtime), <= 1.25 (wasmer).
"""

from __future__ import annotations

import time

from _common import Figure, driver_main, generated_module, median, qjs_module

import asyncwasm
from asyncwasm._engines import get_engine

TARGETS = {"wasmtime": 1.10, "wasmer": 1.25}


async def measure(engine: str, quick: bool) -> list[Figure]:
    runs = 2 if quick else 5
    eng = get_engine(engine)
    figures: list[Figure] = []
    async with asyncwasm.Runtime(engine, cache_size=0) as rt:
        await rt.compile(generated_module())  # warm the worker pool
        for label, wasm in (("QuickJS", qjs_module()), ("10k funcs", generated_module())):
            raw: list[float] = []
            ours: list[float] = []
            for _ in range(runs):
                store = eng.new_store() if eng.module_needs_store else None
                t = time.perf_counter()
                eng.compile(store, wasm)
                raw.append(time.perf_counter() - t)
                del store
                t = time.perf_counter()
                await rt.compile(wasm)
                ours.append(time.perf_counter() - t)
            ratio = median(ours) / median(raw)
            figures += [
                Figure(f"{label}: raw engine compile", median(raw), "s"),
                Figure(f"{label}: await compile", median(ours), "s"),
                Figure(
                    f"{label}: await compile / raw",
                    ratio,
                    "x",
                    target=f"<= {TARGETS[engine]:.2f}",
                    ok=ratio <= TARGETS[engine],
                ),
            ]
    return figures


if __name__ == "__main__":
    driver_main(__doc__ or "", "await compile over raw engine compile", measure)
