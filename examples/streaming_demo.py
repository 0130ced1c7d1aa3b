"""The streaming demo (``make demo``): a real module streamed in over HTTP, compiled while the
event loop stays responsive, then a module instantiated and run.

1. Serves the QuickJS engine (``qjs-wasi-reactor.wasm`` from PyPI, 1.5 MB) on 127.0.0.1, paced
   like a network download (``--rate`` MB/s).
2. Streams it in with httpx and ``asyncwasm.compile_streaming``, drawing a progress bar: every
   chunk is checked, hashed and stored as it arrives; compilation starts as the last byte lands.
3. Reports the bytes, the time to a ``Module``, and the event loop's worst lateness meanwhile
   (a ticker wakes every 5 ms and records how late it is).
4. Lists the module's imports and exports, then starts QuickJS with ``asyncwasm.WASI`` (a
   WASI reactor: ``initialize``, then its ``qjs_init_argv`` runs ``qjs -e EXPR``) and prints the
   value of a JavaScript expression.
5. Streams a small bundled module (iterative Fibonacci, with a host import) through
   ``instantiate_streaming`` and runs it.

Run: ``python examples/streaming_demo.py [--rate MB/s] [--engine wasmer|wasmtime]``.
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path

import anyio
import httpx
from aiohttp import web

import asyncwasm

# (module (import "env" "report" (func (param i32 i64)))
#   (func (export "fib") (param i32) (result i64) ...iterative Fibonacci...)
#   (func (export "run") (param $upto i32) ...calls report(i, fib(i)) for i = 0..upto...))
FIB_WASM = bytes.fromhex(
    "0061736d01000000010f0360027f7e0060017f017e60017f00020e0103656e76067265706f727400000303020102"
    "070d020366696200010372756e00020a56023101037e4200210142012102024003402000450d01200120027c2103"
    "2002210120032102200041016b21000c000b0b20010b2201017f02400340200120004b0d0120012001100110002001"
    "41016a21010c000b0b0b"
)

CHUNK = 64 << 10


def quickjs_path() -> Path:
    """The QuickJS module inside the installed ``qjs-wasi-reactor.wasm`` package."""
    try:
        files = metadata.files("qjs-wasi-reactor.wasm") or []
    except metadata.PackageNotFoundError:
        sys.exit("the demo needs the 'qjs-wasi-reactor.wasm' package: pip install -e '.[test]'")
    [path] = [f for f in files if f.name == "qjs-wasi-reactor.wasm"]
    return Path(str(path.locate()))


# --- A small local HTTP server ------------------------------------------------------------------


def make_app(modules: dict[str, bytes], rate: float) -> web.Application:
    """Serves ``/<name>`` as ``application/wasm`` with a Content-Length, at ``rate`` bytes/s."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = modules.get(request.match_info["name"])
        if body is None:
            raise web.HTTPNotFound()
        response = web.StreamResponse(headers={"Content-Type": "application/wasm"})
        response.content_length = len(body)
        await response.prepare(request)
        for start in range(0, len(body), CHUNK):
            await response.write(body[start : start + CHUNK])
            if rate > 0:
                await anyio.sleep(CHUNK / rate)  # the pace of a network link
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/{name}", handle)
    return app


# --- Progress and lateness ----------------------------------------------------------------------


class ProgressBar:
    """``on_progress(received, total)``: a bar on a terminal, a few lines otherwise."""

    def __init__(self, width: int = 36) -> None:
        self.width = width
        self.tty = sys.stdout.isatty()
        self.next_mark = 0.25

    def __call__(self, received: int, total: int | None) -> None:
        if total:
            fraction = received / total
            filled = int(self.width * fraction)
            bar = "#" * filled + "." * (self.width - filled)
            text = f"  [{bar}] {fraction:6.1%}  {received / 1e6:6.2f} / {total / 1e6:.2f} MB"
        else:
            fraction = 0.0
            text = f"  {received / 1e6:6.2f} MB received"
        if self.tty:
            print("\r" + text, end="" if received != total else "\n", flush=True)
        elif fraction >= self.next_mark or received == total:
            print(text, flush=True)
            while self.next_mark <= fraction:
                self.next_mark += 0.25


class LatenessMonitor:
    """Wakes every ``interval`` seconds and records the worst delay past its deadline."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            due = time.perf_counter() + self.interval
            await anyio.sleep(self.interval)
            self.worst = max(self.worst, time.perf_counter() - due)


# --- The demo -----------------------------------------------------------------------------------


def type_text(t: object) -> str:
    """A short description of an import's or export's type."""
    limits = getattr(t, "limits", None)
    if limits is not None:  # memory or table
        maximum = "no maximum" if limits.maximum is None else f"max {limits.maximum}"
        unit = "pages" if hasattr(t, "memory64") else "elements"
        return f"{limits.minimum} {unit} min, {maximum}"
    return str(t)


def describe(module: asyncwasm.Module) -> None:
    imports = asyncwasm.Module.imports(module)
    by_module: dict[str, list[str]] = defaultdict(list)
    for imp in imports:
        by_module[imp.module].append(imp.name)
    print(f"\nImports ({len(imports)}):")
    for name, names in by_module.items():
        print(f"  {name}: {', '.join(names)}")
    exports = asyncwasm.Module.exports(module)
    print(f"Exports ({len(exports)}):")
    for exp in exports:
        print(f"  {exp.name:<18} {exp.kind:<8} {type_text(exp.type)}")


JS_EXPRESSION = "[1, 2, 3, 4].map(x => x * x).reduce((a, b) => a + b) + ' (' + typeof BigInt + ')'"


async def evaluate_js(runtime: asyncwasm.Runtime, module: asyncwasm.Module, expression: str) -> str:
    """Start QuickJS under WASI and return what ``print(expression)`` writes to its stdout."""
    out = io.BytesIO()
    wasi = asyncwasm.WASI(stdout=out, stderr=out)
    instance = await runtime.instantiate(module, wasi.get_import_object())
    wasi.initialize(instance)  # a reactor: runs its _initialize
    exports = instance.exports
    # argv for qjs_init_argv, written into the guest's memory with its own malloc.
    args = [b"qjs", b"-e", f"print({expression})".encode()]
    pointers = []
    for arg in args:
        ptr = exports.malloc(len(arg) + 1)
        exports.memory.buffer[ptr : ptr + len(arg) + 1] = arg + b"\0"
        pointers.append(ptr)
    argv = exports.malloc(4 * len(pointers))
    struct.pack_into(f"<{len(pointers)}I", exports.memory.buffer, argv, *pointers)
    status = exports.qjs_init_argv(len(args), argv)
    exports.qjs_destroy()
    if status != 0:
        raise RuntimeError(f"QuickJS failed ({status}): {out.getvalue().decode()}")
    return out.getvalue().decode().strip()


async def main(rate: float, engine: str | None) -> None:
    wasm = quickjs_path().read_bytes()
    runtime = asyncwasm.Runtime(engine=engine)
    print(f"asyncwasm {asyncwasm.__version__} on {runtime.engine}, Python {sys.version.split()[0]}")

    runner = web.AppRunner(make_app({"qjs.wasm": wasm, "fib.wasm": FIB_WASM}, rate))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    try:
        async with anyio.create_task_group() as tg, httpx.AsyncClient() as client:
            monitor = LatenessMonitor()
            tg.start_soon(monitor.run)

            print(f"\nStreaming {base}/qjs.wasm (QuickJS, {len(wasm) / 1e6:.2f} MB) ...")
            last_byte_at = 0.0

            bar = ProgressBar()

            def progress(received: int, total: int | None) -> None:
                nonlocal last_byte_at
                last_byte_at = time.perf_counter()
                bar(received, total)

            start = time.perf_counter()
            async with client.stream("GET", f"{base}/qjs.wasm") as response:
                module = await runtime.compile_streaming(response, on_progress=progress)
            done = time.perf_counter()
            print(f"Module ready: {len(wasm):,} bytes")
            print(f"  time to Module (request to Module): {done - start:8.3f} s")
            print(f"  of which after the last byte:       {done - last_byte_at:8.3f} s")
            print(f"  event loop's worst lateness:        {monitor.worst * 1000:8.1f} ms")
            describe(module)
            print("\nStarting QuickJS with asyncwasm.WASI ...")
            print(f"  JS> {JS_EXPRESSION}")
            print(f"  {await evaluate_js(runtime, module, JS_EXPRESSION)}")

            print(f"\nStreaming {base}/fib.wasm and instantiating it with a host import ...")
            results: list[tuple[int, int]] = []
            _, instance = await runtime.instantiate_streaming(
                client.send(client.build_request("GET", f"{base}/fib.wasm"), stream=True),
                {"env": {"report": lambda n, value: results.append((n, value))}},
            )
            instance.exports.run(12)
            print("  run(12) reported: " + ", ".join(f"fib({n})={v}" for n, v in results))
            print(f"  fib(90) = {instance.exports.fib(90)}")
            tg.cancel_scope.cancel()
    finally:
        await runner.cleanup()
        aclose = getattr(runtime, "aclose", None)
        if aclose is not None:
            await aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=float, default=8.0, help="serving pace in MB/s (0: as fast as possible)"
    )
    parser.add_argument("--engine", choices=["wasmer", "wasmtime"], default=None)
    args = parser.parse_args()
    anyio.run(main, args.rate * 1e6, args.engine)
