"""A small HTTP service that runs a WebAssembly plugin per request (aiohttp).

At start-up it compiles and instantiates a tiny plugin (``score(x) = x * x + 1``, hand-assembled
below). ``POST /large`` starts compiling a second, large module in the background (the file
given with ``--large``); the service keeps answering ``/score`` meanwhile, because
``await runtime.compile(...)`` never compiles on the event loop thread (wasmtime: a worker
thread; wasmer: a worker process).

    pip install 'asyncwasm[examples]'
    python examples/plugin_service.py --port 8080 --large big.wasm
    curl 'http://127.0.0.1:8080/score?x=7'      # {"x": 7, "score": 50}
    curl -X POST http://127.0.0.1:8080/large    # starts the compile
    curl http://127.0.0.1:8080/status           # {"large": "compiling" | "ready", ...}
    curl 'http://127.0.0.1:8080/large/add?a=1&b=2'  # calls export "add" of the large module
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

import asyncwasm

# (module (func (export "score") (param i32) (result i32)
#   local.get 0  local.get 0  i32.mul  i32.const 1  i32.add))
PLUGIN = bytes.fromhex(
    "0061736d01000000"  # magic, version
    "01060160017f017f"  # type section: (i32) -> i32
    "03020100"  # function section: one function of type 0
    "0709010573636f72650000"  # export section: "score" = function 0
    "0a0c010a00200020006c41016a0b"  # code section: x * x + 1
)

RUNTIME = web.AppKey("runtime", asyncwasm.Runtime)
STATE = web.AppKey("state", dict)


async def score(request: web.Request) -> web.Response:
    x = int(request.query.get("x", "0"))
    plugin = request.app[STATE]["plugin"]
    return web.json_response({"x": x, "score": plugin.exports.score(x)})


async def start_large(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state["large"] == "idle":
        state["large"] = "compiling"
        state["task"] = asyncio.get_running_loop().create_task(_compile_large(request.app))
    return web.json_response({"large": state["large"]}, status=202)


async def _compile_large(app: web.Application) -> None:
    state = app[STATE]
    started = time.perf_counter()
    try:
        module = await app[RUNTIME].compile(state["large_path"].read_bytes())
        state["large_instance"] = await app[RUNTIME].instantiate(module, {})
        state["large"] = "ready"
    except asyncwasm.WebAssemblyError as error:
        state["large"] = f"failed: {error}"
    state["large_seconds"] = round(time.perf_counter() - started, 3)


async def status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "engine": request.app[RUNTIME].engine,
            "large": state["large"],
            "large_seconds": state.get("large_seconds"),
        }
    )


async def large_add(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state["large"] != "ready":
        raise web.HTTPConflict(text=f"the large module is {state['large']}")
    a, b = int(request.query["a"]), int(request.query["b"])
    return web.json_response({"sum": state["large_instance"].exports.add(a, b)})


def make_app(large_path: Path | None) -> web.Application:
    app = web.Application()
    app[STATE] = {"large": "idle", "large_path": large_path}

    async def runtime_context(app: web.Application) -> AsyncIterator[None]:
        async with asyncwasm.Runtime() as runtime:
            app[RUNTIME] = runtime
            module = await runtime.compile(PLUGIN)
            app[STATE]["plugin"] = await runtime.instantiate(module)
            yield
            task = app[STATE].get("task")
            if task is not None:
                task.cancel()

    app.cleanup_ctx.append(runtime_context)
    app.router.add_get("/score", score)
    app.router.add_post("/large", start_large)
    app.router.add_get("/status", status)
    app.router.add_get("/large/add", large_add)
    return app


async def serve(host: str, port: int, large_path: Path | None) -> None:
    runner = web.AppRunner(make_app(large_path))
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
    parser.add_argument("--large", type=Path, help="a large .wasm to compile on POST /large")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.large))


if __name__ == "__main__":
    main()
