"""Issue 15's figures: how fast hostile or failing inputs are turned away.

    .venvs/wasmtime-py3/bin/python benchmarks/bench_hardening.py --engine wasmtime
    .venvs/wasmer-py310/bin/python benchmarks/bench_hardening.py --engine wasmer

Prints, for the engine of this interpreter:

- the 10M-function module (10 MB): seconds to ``CompileError`` from ``Module()``, ``compile()``
  and ``compile_streaming()``, and this process's peak RSS (targets: < 0.5 s, < 100 MB);
- a 4 GiB custom section streamed: bytes taken from the source before the error;
- 20 failed compiles against 20 valid ones (target: failed <= 2x valid);
- ``validate()`` of QuickJS: first call (compiles), second call, and the ``compile()`` after it;
- ``compile_timeout``: seconds to the error for 100,000 nested blocks (timeout 1 s);
- wasmtime: Ctrl-C latency (SIGINT to ``KeyboardInterrupt``), five samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from _bigmodule import _leb, _name, _section, many_functions  # noqa: E402

import asyncwasm  # noqa: E402

HEADER = b"\0asm\x01\x00\x00\x00"
INVALID = bytes.fromhex("0061736d010000000105016000017f030201000a050103006a0b")


def _seconds(call: object) -> float:
    assert callable(call)
    start = time.perf_counter()
    with contextlib.suppress(asyncwasm.CompileError):
        call()
    return time.perf_counter() - start


async def _chunks(data: bytes, size: int = 1 << 16) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def function_bomb() -> None:
    count = 10_000_000
    wasm = HEADER + _section(1, b"\x01\x60\x00\x00") + _section(3, _leb(count) + bytes(count))
    print(f"10M-function module ({len(wasm) / 1e6:.1f} MB):")
    print(f"  Module():            {_seconds(lambda: asyncwasm.Module(wasm)) * 1000:8.2f} ms")
    print(
        f"  compile():           "
        f"{_seconds(lambda: asyncio.run(asyncwasm.compile(wasm))) * 1000:8.2f} ms"
    )
    print(
        f"  compile_streaming(): "
        f"{_seconds(lambda: asyncio.run(asyncwasm.compile_streaming(_chunks(wasm)))) * 1000:8.2f} ms"
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process so far: {rss:.0f} MiB")


def big_section() -> None:
    taken = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal taken
        head = HEADER + b"\x00" + _leb(2**32 - 1) + _name("x")
        taken += len(head)
        yield head
        while taken < 64 << 20:
            taken += 1 << 16
            yield bytes(1 << 16)

    elapsed = _seconds(lambda: asyncio.run(asyncwasm.compile_streaming(endless())))
    print(f"4 GiB custom section: refused after {taken} bytes, {elapsed * 1000:.2f} ms")


async def failed_vs_valid(engine: str) -> None:
    async with asyncwasm.Runtime(engine, max_workers=1, cache_size=0) as rt:
        await rt.compile(many_functions(3))  # a warm worker
        start = time.perf_counter()
        for i in range(20):
            with contextlib.suppress(asyncwasm.CompileError):
                await rt.compile(INVALID + _section(0, _name("n") + bytes([i])))
        failed = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(20):
            await rt.compile(many_functions(3, nonce=bytes([i])))
        valid = time.perf_counter() - start
    print(
        f"20 failed compiles {failed:.3f} s, 20 valid {valid:.3f} s: "
        f"ratio {failed / valid:.2f} (target <= 2)"
    )


async def validate_cost(engine: str) -> None:
    from importlib import metadata

    dist = metadata.distribution("qjs-wasi-reactor.wasm")
    [file] = [f for f in dist.files or () if f.name == "qjs-wasi-reactor.wasm"]
    wasm = Path(str(dist.locate_file(file))).read_bytes()  # noqa: ASYNC240 - set-up, untimed
    async with asyncwasm.Runtime(engine) as rt:
        first = _seconds(lambda: rt.validate(wasm))
        second = _seconds(lambda: rt.validate(wasm))
        start = time.perf_counter()
        await rt.compile(wasm)
        then = time.perf_counter() - start
    print(
        f"validate(QuickJS): first {first:.3f} s (compiles), second {second * 1000:.2f} ms; "
        f"compile() after it {then * 1000:.2f} ms"
    )


async def compile_timeout(engine: str) -> None:
    depth = 100_000
    body = b"\x00" + b"\x02\x40" * depth + b"\x0b" * depth + b"\x0b"
    wasm = (
        HEADER
        + _section(1, b"\x01\x60\x00\x00")
        + _section(3, b"\x01\x00")
        + _section(10, b"\x01" + _leb(len(body)) + body)
    )
    async with asyncwasm.Runtime(engine, compile_timeout=1.0) as rt:
        await rt.compile(many_functions(3))
        start = time.perf_counter()
        try:
            await rt.compile(wasm)
            outcome = "compiled"
        except asyncwasm.CompileError as error:
            outcome = str(error)[:60]
        print(
            f"100,000 nested blocks, compile_timeout=1: {time.perf_counter() - start:.2f} s "
            f"({outcome})"
        )


def ctrl_c() -> None:
    from _wat import wat

    instance = asyncwasm.Instance(
        asyncwasm.Module(wat('(module (func (export "spin") (loop (br 0))))'))
    )
    samples = []
    sent: list[float] = []

    def interrupt() -> None:
        time.sleep(0.2)
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    for _ in range(5):
        threading.Thread(target=interrupt).start()
        try:
            instance.exports.spin()
        except KeyboardInterrupt:
            samples.append(time.perf_counter() - sent.pop())
    print(
        "Ctrl-C to KeyboardInterrupt: "
        + ", ".join(f"{s * 1000:.1f}" for s in samples)
        + f" ms (median {statistics.median(samples) * 1000:.1f} ms; target < 100 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default=os.environ.get("ASYNCWASM_ENGINE"))
    args = parser.parse_args()
    if args.engine:
        os.environ["ASYNCWASM_ENGINE"] = args.engine
    engine = asyncwasm.Runtime(args.engine).engine
    print(f"engine: {engine}, Python {sys.version.split()[0]}")
    function_bomb()
    big_section()
    asyncio.run(failed_vs_valid(engine))
    asyncio.run(validate_cost(engine))
    asyncio.run(compile_timeout(engine))
    if engine == "wasmtime":
        ctrl_c()


if __name__ == "__main__":
    main()
