"""A real HTTP server for streaming tests, benchmarks and the demo: aiohttp's web server on
127.0.0.1 (an ephemeral port), in a thread with its own asyncio loop, so that clients on any
event loop (asyncio or trio) can talk to it.

Bodies are registered by name; the query string of ``/wasm/<name>`` chooses how it is served:

- ``framing=length`` (default: a ``Content-Length``) or ``framing=chunked`` (chunked transfer);
- ``chunk=<bytes>``: write the body in pieces of this size, ``delay=<seconds>`` between pieces
  (a slow, trickled response);
- ``type=<Content-Type>`` (default ``application/wasm``), ``status=<code>``;
- ``cut=<bytes>``: close the connection after sending this many bytes of the body;
- ``gzip=1``: send the body gzip-compressed with ``Content-Encoding: gzip``;
- ``id=<key>``: record what happened in ``server.records[key]`` (bytes sent, whether the client
  went away early), with an event set once the handler has finished.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

__all__ = ["RequestRecord", "WasmServer", "serve"]

START_TIMEOUT = 30.0


@dataclass
class RequestRecord:
    """What the server did for one request (tagged with ``id=``)."""

    total: int = 0
    sent: int = 0
    client_gone: bool = False
    finished: threading.Event = field(default_factory=threading.Event)


class WasmServer:
    """See the module docstring. Use :func:`serve` to run one."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.records: dict[str, RequestRecord] = {}
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wasm-http-server", daemon=True)

    def add(self, name: str, body: bytes) -> str:
        """Register ``body`` under ``name``; returns its URL path."""
        self.bodies[name] = body
        return f"/wasm/{name}"

    def url(self, name: str, **params: object) -> str:
        """The URL of a registered body, served as ``params`` say (see the module docstring)."""
        query = urlencode({k: str(v) for k, v in params.items()})
        return f"http://127.0.0.1:{self.port}/wasm/{name}" + (f"?{query}" if query else "")

    def record(self, key: str) -> RequestRecord:
        """The record of the request tagged ``id=key`` (created on first use)."""
        return self.records.setdefault(key, RequestRecord())

    # -- running --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise TimeoutError("the test HTTP server did not start")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(START_TIMEOUT)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); never escapes the thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/wasm/{name}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        body = self.bodies.get(request.match_info["name"])
        if body is None:
            return web.Response(status=404, text="no such module")
        record = self.record(q["id"]) if "id" in q else RequestRecord()
        try:
            return await self._send(request, body, record)
        finally:
            record.finished.set()

    async def _send(
        self, request: web.Request, body: bytes, record: RequestRecord
    ) -> web.StreamResponse:
        q = request.query
        headers = {"Content-Type": q.get("type", "application/wasm")}
        if q.get("gzip") == "1":
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        record.total = len(body)
        response = web.StreamResponse(status=int(q.get("status", "200")), headers=headers)
        if q.get("framing", "length") == "chunked":
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        chunk = int(q.get("chunk", str(max(len(body), 1))))
        delay = float(q.get("delay", "0"))
        cut = int(q["cut"]) if "cut" in q else None
        end = len(body) if cut is None else min(cut, len(body))
        try:
            for start in range(0, end, chunk):
                piece = body[start : min(start + chunk, end)]
                await response.write(piece)
                record.sent += len(piece)
                if delay:
                    await asyncio.sleep(delay)  # a slow network, not a test waiting
        except ConnectionError:
            record.client_gone = True
            return response
        transport = request.transport
        if cut is not None:
            if transport is not None:
                transport.close()  # mid-body: the client must see an incomplete response
            return response
        await response.write_eof()
        return response


@contextmanager
def serve(bodies: dict[str, bytes] | None = None) -> Iterator[WasmServer]:
    """Run a :class:`WasmServer` for the duration of the ``with`` block."""
    server = WasmServer()
    for name, body in (bodies or {}).items():
        server.add(name, body)
    server.start()
    try:
        yield server
    finally:
        server.stop()
