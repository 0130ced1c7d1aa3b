"""Question 4: 100 concurrent ``instantiate`` of a small module.

Throughput and the event loop's worst lateness for 100 concurrent ``await
runtime.instantiate(module, imports)`` (the runtime instantiates on the loop thread) and for
``instantiate(bytes, imports)`` (compiled once, then cache hits). On wasmtime, the same 100
instantiations hopping to worker threads (``anyio.to_thread``) show what a hop would cost;
wasmer objects can't leave their thread, so it has no hop variant.
"""

from __future__ import annotations

import time

import anyio
import anyio.to_thread
from _common import Figure, LatenessMonitor, driver_main, many_functions, median

import asyncwasm

N = 100


def small_module() -> bytes:
    return many_functions(20)


async def measure(engine: str, quick: bool) -> list[Figure]:
    runs = 3 if quick else 7
    wasm = small_module()
    imports: dict[str, dict[str, object]] = {}
    async with asyncwasm.Runtime(engine) as rt:
        module = await rt.compile(wasm)

        async def on_loop() -> None:
            await rt.instantiate(module, imports)

        async def from_bytes() -> None:
            await rt.instantiate(wasm, imports)

        async def hop() -> None:
            await anyio.to_thread.run_sync(asyncwasm.Instance, module, imports)

        designs = [("on loop", on_loop), ("from bytes", from_bytes)]
        if not rt._engine.module_needs_store:
            designs.append(("hop to thread", hop))
        figures: list[Figure] = []
        for name, one in designs:
            rates, lates = [], []
            for _ in range(runs):
                async with LatenessMonitor() as monitor:
                    t = time.perf_counter()
                    async with anyio.create_task_group() as tg:
                        for _ in range(N):
                            tg.start_soon(one)
                    elapsed = time.perf_counter() - t
                rates.append(N / elapsed)
                lates.append(monitor.max_ms)
            figures.append(Figure(f"{N} x instantiate, {name}: throughput", median(rates), "/s"))
            figures.append(Figure(f"{N} x instantiate, {name}: max lateness", median(lates), "ms"))
        if rt._engine.module_needs_store:
            figures.append(
                Figure(
                    f"{N} x instantiate, hop to thread: throughput",
                    None,
                    "/s",
                    note="wasmer objects are thread-affine",
                )
            )
        # One instantiation, sync, for scale.
        times = []
        for _ in range(200):
            t = time.perf_counter()
            asyncwasm.Instance(module, imports)
            times.append(time.perf_counter() - t)
        figures.append(Figure("one Instance(), synchronous", median(times) * 1e6, "us"))
    return figures


if __name__ == "__main__":
    driver_main(__doc__ or "", f"{N} concurrent instantiate of a small module", measure)
