"""Streaming compilation benchmarks (issue #5), both engines side by side in one run.

    python benchmarks/bench_streaming.py --python310 .venvs/wasmer-py310/bin/python \\
                                         --python3 .venvs/wasmtime-py3/bin/python

runs one worker per engine (wasmer under CPython 3.10, wasmtime under the newer Python; an
interpreter that is not given, or cannot import its engine, is reported as missing) and prints
every figure with its target. ``--worker --engine NAME --json`` runs the measurements for one
engine in this interpreter and prints them as one JSON object (what a driver such as
``run_all.py`` collects). ``--quick`` makes every stream 8x smaller and repeats less.

Figures:

1. early failure: bytes a 64 MiB stream (64 KiB chunks) had handed out when ``CompileError``
   came, for a bad header and, separately, a bad 3rd section (after a 20 MiB custom section, so
   the bad byte is deep in the stream). Target: no more than the end of the chunk holding the
   bad byte.
2. last byte -> Module over compile of the same bytes (QuickJS, 1.5 MB; caches off; median of
   several runs). Target <= 1.10.
3. ingestion throughput (read + decode + hash + store, then the bytes handed over) of a 64 MiB
   stream in 64 KiB chunks, with and without a Content-Length, and of QuickJS (code-heavy),
   against collecting the chunks with a plain ``b"".join``.
4. peak Python heap (tracemalloc) while ingesting, over the module size: the streaming layer's
   own storage, up to the ``bytes`` handed to the compile path. The compile is outside the
   measured window (wasmtime-py copies the bytes into a ctypes array, wasmer's worker gets them
   pickled, through a pipe), and tracemalloc never sees the engines' own allocations (Rust's
   malloc), nor a copy made inside ``realloc``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 1 << 20
CHUNK = 64 << 10
HEADER = b"\0asm\x01\x00\x00\x00"

TARGET_RATIO = 1.10


# --- Module builders ----------------------------------------------------------------------------


def _u32(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + _u32(len(payload)) + payload


def _section_head(sid: int, size: int) -> bytes:
    return bytes([sid]) + _u32(size)


class VirtualModule:
    """A large stream described as a prefix, a run of zero bytes, and a suffix: chunks are made
    on demand, so a 64 MiB stream costs no 64 MiB up front."""

    def __init__(self, prefix: bytes, zeros: int, suffix: bytes = b"") -> None:
        self.prefix, self.zeros, self.suffix = prefix, zeros, suffix
        self.size = len(prefix) + zeros + len(suffix)

    def materialize(self) -> bytes:
        return self.prefix + bytes(self.zeros) + self.suffix

    def chunks(self, size: int = CHUNK) -> list[bytes]:
        data = self.materialize()
        return [data[i : i + size] for i in range(0, len(data), size)]


def _u32_padded(n: int) -> bytes:
    """``n`` as a 5-byte LEB128 (padding is valid in the binary format): a fixed width."""
    return bytes([*((n >> (7 * i)) & 0x7F | 0x80 for i in range(4)), n >> 28])


def data_module(size: int) -> VirtualModule:
    """A valid module of exactly ``size`` bytes: a memory and one data segment of zeros."""
    memory = _section(5, b"\x01\x00" + _u32(size // 65536 + 1))
    segment_head = b"\x01\x00\x41\x00\x0b"  # one segment: active, memory 0, i32.const 0
    fixed = len(HEADER) + len(memory) + 1 + 5 + len(segment_head) + 5
    zeros = size - fixed
    prefix = (
        HEADER
        + memory
        + b"\x0b"
        + _u32_padded(len(segment_head) + 5 + zeros)
        + segment_head
        + _u32_padded(zeros)
    )
    return VirtualModule(prefix, zeros)


def bad_header_stream(size: int) -> tuple[VirtualModule, int]:
    return VirtualModule(b"\0asm\x02\x00\x00\x00", size - 8), 4


def bad_third_section_stream(size: int, custom: int) -> tuple[VirtualModule, int]:
    """1st section: a ``custom``-byte custom section; 2nd: types; 3rd: an import with kind 0x07
    (malformed); then zeros up to ``size``."""
    name = b"\x04skip"
    first = _section_head(0, custom) + name
    pad = custom - len(name)
    types = _section(1, b"\x01\x60\x00\x00")
    imp_payload = b"\x01\x01m\x01f\x07\x00"
    third = _section(2, imp_payload)
    suffix = types + third
    bad_offset = len(HEADER) + len(first) + pad + len(types) + 2 + 1 + 4
    assert suffix[bad_offset - (len(HEADER) + len(first) + pad)] == 0x07
    tail = size - (len(HEADER) + len(first) + pad + len(suffix))
    return VirtualModule(HEADER + first, pad, suffix + bytes(tail)), bad_offset


def quickjs() -> bytes:
    files = metadata.files("qjs-wasi-reactor.wasm") or []
    [path] = [f for f in files if f.name == "qjs-wasi-reactor.wasm"]
    return Path(str(path.locate())).read_bytes()


# --- Sources ------------------------------------------------------------------------------------


class CountingSource:
    """Hands out chunks and counts the bytes handed out; remembers when the last one left."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.index = 0
        self.handed_out = 0
        self.last_byte_at: float | None = None
        self.closed = False

    def __aiter__(self) -> CountingSource:
        return self

    async def __anext__(self) -> bytes:
        if self.index >= len(self.chunks):
            raise StopAsyncIteration
        chunk = self.chunks[self.index]
        self.index += 1
        self.handed_out += len(chunk)
        if self.index == len(self.chunks):
            self.last_byte_at = time.perf_counter()
        return chunk

    async def aclose(self) -> None:
        self.closed = True


class FakeResponse:
    """An httpx-shaped response with a Content-Length, over in-memory chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.status_code = 200
        self.headers = {
            "content-type": "application/wasm",
            "content-length": str(sum(map(len, chunks))),
        }
        self.source = CountingSource(chunks)

    def aiter_bytes(self) -> CountingSource:
        return self.source

    async def aclose(self) -> None:
        pass


# --- Measurements -------------------------------------------------------------------------------


async def early_failure(engine: str, size: int) -> dict[str, Any]:
    import asyncwasm

    rt = _runtime(engine)
    out: dict[str, Any] = {}
    cases = {
        "bad_header": bad_header_stream(size),
        "bad_third_section": bad_third_section_stream(size, custom=min(20 * MiB, size // 3)),
    }
    for name, (module, bad_offset) in cases.items():
        source = CountingSource(module.chunks())
        try:
            await rt.compile_streaming(source)
        except asyncwasm.CompileError as exc:
            if exc.offset != bad_offset:
                raise AssertionError(f"{name}: error at {exc.offset}, not {bad_offset}") from exc
        else:
            raise AssertionError(f"{name}: no CompileError")
        chunk_end = (bad_offset // CHUNK + 1) * CHUNK
        out[name] = {
            "stream_bytes": module.size,
            "bad_byte_offset": bad_offset,
            "end_of_its_chunk": chunk_end,
            "bytes_read": source.handed_out,
            "source_closed": source.closed,
            "meets_target": source.handed_out <= chunk_end,
        }
    await _close(rt)
    return out


async def last_byte_to_module(engine: str, repeats: int) -> dict[str, Any]:
    from asyncwasm import _streaming as _compile  # the compile_async the streaming layer calls

    wasm = quickjs()
    chunks = [wasm[i : i + CHUNK] for i in range(0, len(wasm), CHUNK)]
    rt = _runtime(engine, cache=False)
    await rt.compile(HEADER)  # start the workers (thread / process pool)

    # When the compile path is entered: the streaming layer's own share of last byte -> Module.
    entered: list[float] = []
    original = _compile.compile_async

    async def timed(*args: Any, **kwargs: Any) -> Any:
        entered.append(time.perf_counter())
        return await original(*args, **kwargs)

    streamed, compiled, whole_streamed, handoff = [], [], [], []

    async def stream_once() -> None:
        source = CountingSource(chunks)
        entered.clear()
        start = time.perf_counter()
        _compile.compile_async = timed  # type: ignore[assignment]
        try:
            await rt.compile_streaming(source)
        finally:
            _compile.compile_async = original  # type: ignore[assignment]
        end = time.perf_counter()
        assert source.last_byte_at is not None
        streamed.append(end - source.last_byte_at)
        whole_streamed.append(end - start)
        handoff.append(entered[0] - source.last_byte_at)

    async def compile_once() -> None:
        start = time.perf_counter()
        await rt.compile(wasm)
        compiled.append(time.perf_counter() - start)

    for i in range(repeats):  # interleaved, alternating which goes first (the machine is shared)
        first, second = (stream_once, compile_once) if i % 2 == 0 else (compile_once, stream_once)
        await first()
        await second()
    await _close(rt)
    # The cache consulted by hash: a second streaming of the same bytes with the cache on.
    cached_rt = _runtime(engine, cache=True)
    await cached_rt.compile(wasm)
    source = CountingSource(chunks)
    await cached_rt.compile_streaming(source)
    assert source.last_byte_at is not None
    cache_hit = time.perf_counter() - source.last_byte_at
    await _close(cached_rt)
    ratio = statistics.median(streamed) / statistics.median(compiled)
    return {
        "module_bytes": len(wasm),
        "runs": repeats,
        "last_byte_to_module_s": statistics.median(streamed),
        "compile_same_bytes_s": statistics.median(compiled),
        "whole_streaming_call_s": statistics.median(whole_streamed),
        "last_byte_to_compile_start_s": statistics.median(handoff),
        "ratio": ratio,
        "meets_target": ratio <= TARGET_RATIO,
        "last_byte_to_module_cache_hit_s": cache_hit,
    }


async def _join_baseline(chunks: list[bytes]) -> float:
    start = time.perf_counter()
    parts = [chunk async for chunk in CountingSource(chunks)]
    data = b"".join(parts)
    elapsed = time.perf_counter() - start
    assert len(data) == sum(map(len, chunks))
    return elapsed


async def _ingest_once(chunks: list[bytes], content_length: bool) -> float:
    from asyncwasm._sources import open_stream
    from asyncwasm._streaming import _ingest

    source: object = FakeResponse(chunks) if content_length else CountingSource(chunks)
    start = time.perf_counter()
    stream = await open_stream(source)
    store, _digest, _info = await _ingest(stream, None, None)
    data = store.take()
    elapsed = time.perf_counter() - start
    assert len(data) == sum(map(len, chunks))
    return elapsed


async def throughput(size: int, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    big = data_module(size).chunks()
    qjs = quickjs()
    qjs_chunks = [qjs[i : i + CHUNK] for i in range(0, len(qjs), CHUNK)]
    for label, chunks in (("data_64MiB", big), ("quickjs", qjs_chunks)):
        total = sum(map(len, chunks)) / 1e6
        join = min([await _join_baseline(chunks) for _ in range(repeats)])
        row: dict[str, Any] = {"stream_bytes": int(total * 1e6), "join_MBps": total / join}
        for variant, content_length in (("no_length", False), ("content_length", True)):
            best = min([await _ingest_once(chunks, content_length) for _ in range(repeats)])
            row[f"ingest_{variant}_MBps"] = total / best
            row[f"ingest_{variant}_vs_join"] = join / best
        out[label] = row
    return out


async def peak_memory(size: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant, content_length in (("no_length", False), ("content_length", True)):
        module = data_module(size)
        gc.collect()
        tracemalloc.start()
        # Chunks are made as they are handed out, so the stream itself holds ~nothing.
        await _ingest_lazy(module, content_length)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out[variant] = {"module_bytes": size, "peak_bytes": peak, "peak_over_size": peak / size}
    return out


async def _ingest_lazy(module: VirtualModule, content_length: bool) -> None:
    from asyncwasm._sources import ChunkStream
    from asyncwasm._streaming import _ingest

    async def chunks() -> AsyncIterator[bytes]:
        data = memoryview(module.prefix + bytes(CHUNK))
        yield bytes(data[: len(module.prefix)])
        left = module.zeros
        zero = bytes(CHUNK)
        while left:
            n = min(left, CHUNK)
            yield zero[:n]
            left -= n

    stream = ChunkStream(chunks(), module.size if content_length else None)
    store, _digest, _info = await _ingest(stream, None, None)
    data = store.take()
    del store
    assert len(data) == module.size


def _runtime(engine: str, cache: bool = False) -> Any:
    import asyncwasm

    try:
        return asyncwasm.Runtime(engine=engine, cache_size=(256 * MiB if cache else 0))
    except TypeError:  # a Runtime without cache options
        return asyncwasm.Runtime(engine=engine)


async def _close(rt: Any) -> None:
    aclose: Callable[[], Any] | None = getattr(rt, "aclose", None)
    if aclose is not None:
        await aclose()


async def worker(engine: str, quick: bool) -> dict[str, Any]:
    size = 8 * MiB if quick else 64 * MiB
    repeats = 2 if quick else 7
    return {
        "engine": engine,
        "python": sys.version.split()[0],
        "stream_size": size,
        "early_failure": await early_failure(engine, size),
        "last_byte_to_module": await last_byte_to_module(engine, repeats),
        "throughput": await throughput(size, 2 if quick else 3),
        "peak_memory": await peak_memory(size),
    }


# --- The side-by-side driver --------------------------------------------------------------------


def _run_worker(python: str, engine: str, quick: bool) -> dict[str, Any] | str:
    cmd = [python, str(Path(__file__).resolve()), "--worker", "--engine", engine, "--json"]
    if quick:
        cmd.append("--quick")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _fmt_bytes(n: float) -> str:
    return f"{n / MiB:.2f} MiB" if n >= MiB else f"{n / 1024:.0f} KiB"


def report(results: dict[str, dict[str, Any] | str]) -> str:
    engines = list(results)
    rows: list[tuple[str, list[str], str]] = []

    def row(label: str, get: Callable[[dict[str, Any]], str], target: str = "") -> None:
        cells = []
        for e in engines:
            r = results[e]
            cells.append(get(r) if isinstance(r, dict) else r)
        rows.append((label, cells, target))

    for case, title in (("bad_header", "bad header"), ("bad_third_section", "bad 3rd section")):
        row(
            f"{title}: bytes read before CompileError",
            lambda r, c=case: (
                f"{_fmt_bytes(r['early_failure'][c]['bytes_read'])} of "
                f"{_fmt_bytes(r['early_failure'][c]['stream_bytes'])} "
                f"(bad byte at {r['early_failure'][c]['bad_byte_offset']}, its chunk ends at "
                f"{_fmt_bytes(r['early_failure'][c]['end_of_its_chunk'])}) "
                f"{'OK' if r['early_failure'][c]['meets_target'] else 'MISSED'}"
            ),
            "<= end of the bad byte's chunk",
        )
    row(
        "QuickJS last byte -> Module",
        lambda r: f"{r['last_byte_to_module']['last_byte_to_module_s'] * 1000:.0f} ms",
    )
    row(
        "QuickJS compile() of the same bytes",
        lambda r: f"{r['last_byte_to_module']['compile_same_bytes_s'] * 1000:.0f} ms",
    )
    row(
        "  ratio",
        lambda r: (
            f"{r['last_byte_to_module']['ratio']:.3f} "
            f"{'OK' if r['last_byte_to_module']['meets_target'] else 'MISSED'}"
        ),
        f"<= {TARGET_RATIO:.2f}",
    )
    row(
        "  of which last byte -> compile path entered",
        lambda r: f"{r['last_byte_to_module']['last_byte_to_compile_start_s'] * 1000:.1f} ms",
    )
    row(
        "QuickJS last byte -> Module, cache hit",
        lambda r: f"{r['last_byte_to_module']['last_byte_to_module_cache_hit_s'] * 1000:.1f} ms",
    )
    for label in ("data_64MiB", "quickjs"):
        name = "64 MiB stream" if label == "data_64MiB" else "QuickJS"
        row(
            f"{name}: plain b''.join",
            lambda r, k=label: f"{r['throughput'][k]['join_MBps']:.0f} MB/s",
        )
        for variant, vname in (("no_length", "no length"), ("content_length", "Content-Length")):
            row(
                f"{name}: ingest ({vname})",
                lambda r, k=label, v=variant: (
                    f"{r['throughput'][k][f'ingest_{v}_MBps']:.0f} MB/s "
                    f"({r['throughput'][k][f'ingest_{v}_vs_join']:.2f}x join)"
                ),
                "report",
            )
    for variant, vname in (("no_length", "no length"), ("content_length", "Content-Length")):
        row(
            f"peak Python heap / module size ({vname})",
            lambda r, v=variant: (
                f"{r['peak_memory'][v]['peak_over_size']:.2f} "
                f"({_fmt_bytes(r['peak_memory'][v]['peak_bytes'])})"
            ),
            "report",
        )
    head = ["figure", *[f"{e}" for e in engines], "target"]
    table = [head, *[[label, *cells, target] for label, cells, target in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--python310", help="CPython 3.10 with wasmer (the wasmer column)")
    parser.add_argument("--python3", help="Python with wasmtime (the wasmtime column)")
    parser.add_argument("--worker", action="store_true", help="measure one engine here")
    parser.add_argument("--engine", choices=["wasmer", "wasmtime"])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="smaller streams, fewer repeats")
    args = parser.parse_args()

    if args.worker:
        if args.engine is None:
            parser.error("--worker needs --engine")
        result = asyncio.run(worker(args.engine, args.quick))
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
        return

    pythons = {"wasmer": args.python310, "wasmtime": args.python3 or sys.executable}
    results: dict[str, dict[str, Any] | str] = {}
    for engine, python in pythons.items():
        results[engine] = (
            _run_worker(python, engine, args.quick) if python else "no interpreter given"
        )
    if args.json:
        print(json.dumps(results))
        return
    size = "8 MiB (quick)" if args.quick else "64 MiB"
    print(f"asyncwasm streaming benchmarks: {size} streams in 64 KiB chunks, QuickJS 1.5 MB\n")
    print(report(results))


if __name__ == "__main__":
    main()
