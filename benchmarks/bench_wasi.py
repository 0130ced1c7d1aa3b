"""WASI file throughput: a C program (tests/wasi/wasitest.c, ``copy``) copies a 64 MiB file
through ``fd_read``/``fd_write`` in 64 KiB blocks, under ``asyncwasm.WASI`` and, in the same
run and process, under wasmtime-py's own built-in WASI (``wasmtime.WasiConfig``, implemented in
Rust). Target: asyncwasm within 2x of it, through ``start`` and ``start_async``.

Also the event loop's worst lateness (a 1 ms ticker) while a program run by ``start_async``
sleeps 1 s (``poll_oneoff``) and while it waits 1 s for stdin from an async iterable: the
median of 3 runs (the worst also shown), next to the same loop idle for 1 s: a loaded machine
adds stalls of its own. Target: <= 5 ms. The module is compiled once; each timed run is
instantiate + ``_start``.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from _common import REPO, Figure, LatenessMonitor, driver_main, median

import asyncwasm

sys.path.insert(0, str(REPO / "tests" / "wasi"))
import build  # tests/wasi/build.py: ziglang, cached under .cache/wasi

SIZE = 64 << 20


def _check(out: bytes) -> None:
    if out.strip() != f"copied {SIZE}".encode():
        raise SystemExit(f"the copy failed: {out!r}")


async def run_asyncwasm(module: asyncwasm.Module, data: Path, mode: str) -> float:
    out = io.BytesIO()
    wasi = asyncwasm.WASI(
        args=["wasitest", "copy", "/data/in", "/data/out"],
        preopens={"/data": str(data)},
        stdout=out,
    )
    t = time.perf_counter()
    instance = asyncwasm.Instance(module, wasi.get_import_object())
    code = wasi.start(instance) if mode == "start" else await wasi.start_async(instance)
    elapsed = time.perf_counter() - t
    assert code == 0, code
    _check(out.getvalue())
    return elapsed


def run_wasmtime(wasm: bytes, data: Path) -> float:
    import wasmtime

    engine = getattr(run_wasmtime, "engine", None) or wasmtime.Engine()
    run_wasmtime.engine = engine  # type: ignore[attr-defined]
    module = getattr(run_wasmtime, "module", None) or wasmtime.Module(engine, wasm)
    run_wasmtime.module = module  # type: ignore[attr-defined]
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    config = wasmtime.WasiConfig()
    config.argv = ["wasitest", "copy", "/data/in", "/data/out"]
    config.preopen_dir(str(data), "/data")
    config.stdout_file = str(data / "stdout")
    t = time.perf_counter()
    store = wasmtime.Store(engine)
    store.set_wasi(config)
    instance = linker.instantiate(store, module)
    instance.exports(store)["_start"](store)
    elapsed = time.perf_counter() - t
    _check((data / "stdout").read_bytes())
    return elapsed


async def lateness(module: asyncwasm.Module, what: str) -> float:
    """Worst loop lateness (ms) while ``start_async`` runs a program that waits 1 s."""

    async def late_stdin() -> AsyncIterator[bytes]:
        await anyio.sleep(1.0)
        yield b"after a second\n"

    if what == "idle":  # the machine's own noise: the loop with nothing else to do
        async with LatenessMonitor() as monitor:
            await anyio.sleep(1.0)
        return monitor.max_ms
    if what == "sleep":
        wasi = asyncwasm.WASI(args=["wasitest", "sleep", "1000"], stdout=io.BytesIO())
    else:
        wasi = asyncwasm.WASI(args=["wasitest", "cat"], stdin=late_stdin(), stdout=io.BytesIO())
    instance = asyncwasm.Instance(module, wasi.get_import_object())
    async with LatenessMonitor() as monitor:
        assert await wasi.start_async(instance) == 0
    return monitor.max_ms


async def measure(engine: str, quick: bool) -> list[Figure]:
    runs = 3 if quick else 7
    wasm = build.build(REPO / "tests" / "wasi" / "wasitest.c").read_bytes()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        (data / "in").write_bytes(bytes(range(256)) * (SIZE // 256))
        async with asyncwasm.Runtime(engine) as rt:
            module = await rt.compile(wasm)
            from asyncwasm._runtime import _set_default_runtime

            previous = _set_default_runtime(rt)
            try:
                times = {}
                for mode in ("start", "start_async"):
                    samples = [await run_asyncwasm(module, data, mode) for _ in range(runs)]
                    times[mode] = median(samples)
                waits: dict[str, list[float]] = {"idle": [], "sleep": [], "stdin": []}
                for _ in range(1 if quick else 3):
                    for what, samples in waits.items():
                        samples.append(await lateness(module, what))
            finally:
                _set_default_runtime(previous)
        theirs = median([run_wasmtime(wasm, data) for _ in range(runs)])
    mib_s = SIZE / (1 << 20)
    figures.append(Figure("64 MiB copy, wasmtime-py built-in WASI", theirs * 1e3, "ms"))
    for mode, ours in times.items():
        ratio = ours / theirs
        figures.append(Figure(f"64 MiB copy, asyncwasm WASI.{mode}", ours * 1e3, "ms"))
        figures.append(Figure(f"  throughput, {mode}", mib_s / ours, "MiB/s"))
        figures.append(Figure(f"  {mode} / wasmtime-py WASI", ratio, "x", "<= 2x", ratio <= 2))
    idle = median(waits["idle"])
    figures.append(Figure("loop lateness, idle loop for 1 s (noise floor)", idle, "ms"))
    for what, text in (("sleep", "sleeps 1 s"), ("stdin", "waits 1 s for stdin")):
        late = median(waits[what])
        figures.append(
            Figure(f"loop lateness while it {text}", late, "ms", "<= 5 ms", late <= 5, "median")
        )
        figures.append(Figure("  worst of the runs", max(waits[what]), "ms"))
    return figures


if __name__ == "__main__":
    driver_main(__doc__ or "", "WASI: 64 MiB file copy in 64 KiB blocks", measure)
