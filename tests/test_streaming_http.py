"""``compile_streaming`` against a real HTTP server (aiohttp's web server on 127.0.0.1, started
here) with real clients: httpx (on asyncio and trio) and aiohttp (asyncio).

Covered: Content-Length and chunked transfer, a slowly trickled body, gzip content coding, a
wrong Content-Type, 404, the connection cut mid-body (must raise, never hang), a malformed module
that must stop the download early, ``max_bytes``, and the real QuickJS module.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
from _http_server import WasmServer, serve
from test_streaming import ADD, BIG, check_big

import asyncwasm
from asyncwasm import CompileError, Module

pytestmark = pytest.mark.anyio

# Every case is bounded: a stream that hangs fails the test instead of stalling the run.
CASE_TIMEOUT = 60

# httpx's nested async generators are not closed when a streamed response is dropped half-read,
# and trio reports each of them with a ResourceWarning (plain httpx does it too, without
# asyncwasm). Only those, and only where a download is stopped early on purpose, are ignored.
HTTPX_TRIO_ASYNCGEN = pytest.mark.filterwarnings(
    r"ignore:Async generator 'http(x|core)\..*was garbage collected:ResourceWarning"
)

MALFORMED_SIZE = 4 << 20
MALFORMED = b"\0asm\x02\x00\x00\x00" + bytes(MALFORMED_SIZE - 8)  # bad version, then 4 MiB


@pytest.fixture(scope="module")
def server() -> Iterator[WasmServer]:
    with serve({"add": ADD, "big": BIG, "malformed": MALFORMED}) as running:
        yield running


@pytest.fixture(params=["httpx/asyncio", "httpx/trio", "aiohttp/asyncio"])
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param).split("/")[0]


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["client"]).split("/")[1]


@asynccontextmanager
async def get(client: str, url: str) -> AsyncIterator[Any]:
    """A streamed GET with a fresh client, closed afterwards: yields the response unread."""
    if client == "httpx":
        async with httpx.AsyncClient() as http, http.stream("GET", url) as response:
            yield response
    else:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            yield response


def is_closed(response: Any) -> bool:
    return bool(response.is_closed if isinstance(response, httpx.Response) else response.closed)


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_served_module_compiles(
    runtime: asyncwasm.Runtime, server: WasmServer, client: str, framing: str
) -> None:
    progress: list[tuple[int, int | None]] = []
    with anyio.fail_after(CASE_TIMEOUT):
        async with get(client, server.url("big", framing=framing, chunk=32768)) as response:
            module = await asyncwasm.compile_streaming(
                response, on_progress=lambda *a: progress.append(a)
            )
    check_big(module)
    total = len(BIG) if framing == "length" else None
    assert progress[-1] == (len(BIG), total)
    assert all(t == total for _, t in progress)


async def test_trickled_module(runtime: asyncwasm.Runtime, server: WasmServer, client: str) -> None:
    progress: list[int] = []
    url = server.url("big", framing="chunked", chunk=8192, delay=0.001)
    with anyio.fail_after(CASE_TIMEOUT):
        async with get(client, url) as response:
            module, instance = await asyncwasm.instantiate_streaming(
                response, on_progress=lambda got, _: progress.append(got)
            )
    check_big(module)
    assert instance.exports.answer() == 42
    assert len(progress) >= 10  # the body arrived in many pieces, each reported
    assert progress == sorted(progress)
    assert progress[-1] == len(BIG)


async def test_gzip_content_coding(
    runtime: asyncwasm.Runtime, server: WasmServer, client: str
) -> None:
    progress: list[tuple[int, int | None]] = []
    with anyio.fail_after(CASE_TIMEOUT):
        async with get(client, server.url("big", gzip=1, chunk=16384)) as response:
            assert response.headers["content-encoding"] == "gzip"
            module = await asyncwasm.compile_streaming(
                response, on_progress=lambda *a: progress.append(a)
            )
    check_big(module)
    assert progress[-1] == (len(BIG), None)  # Content-Length counts gzip bytes: not a total


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"type": "text/html"}, "Content-Type 'text/html'"),
        ({"type": "application/octet-stream"}, "Content-Type"),
        ({"status": 404}, "HTTP status 404"),
        ({"status": 500}, "HTTP status 500"),
    ],
    ids=["text/html", "octet-stream", "404", "500"],
)
async def test_refused_responses(
    runtime: asyncwasm.Runtime,
    server: WasmServer,
    client: str,
    params: dict[str, object],
    match: str,
) -> None:
    with anyio.fail_after(CASE_TIMEOUT):
        async with get(client, server.url("big", **params)) as response:
            with pytest.raises(TypeError, match=match):
                await asyncwasm.compile_streaming(response)
            assert is_closed(response)


async def test_unknown_path_is_404(
    runtime: asyncwasm.Runtime, server: WasmServer, client: str
) -> None:
    with anyio.fail_after(CASE_TIMEOUT):
        async with get(client, server.url("nothing-here")) as response:
            with pytest.raises(TypeError, match="404"):
                await asyncwasm.instantiate_streaming(response)


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_connection_cut_mid_body_raises(
    runtime: asyncwasm.Runtime, server: WasmServer, client: str, framing: str
) -> None:
    client_error = httpx.RemoteProtocolError if client == "httpx" else aiohttp.ClientPayloadError
    url = server.url("big", framing=framing, chunk=16384, cut=len(BIG) // 2)
    with anyio.fail_after(CASE_TIMEOUT):
        async with get(client, url) as response:
            if framing == "length":
                # Shorter than its Content-Length: the contract's TypeError, the client's error
                # chained (issue 9 item 6).
                with pytest.raises(TypeError, match="short of its Content-Length") as caught:
                    await asyncwasm.compile_streaming(response)
                assert isinstance(caught.value.__cause__, client_error)
            else:
                # No length announced: a network failure, left as the client's own error.
                with pytest.raises(client_error):
                    await asyncwasm.compile_streaming(response)
            assert is_closed(response)


@HTTPX_TRIO_ASYNCGEN
async def test_malformed_module_stops_the_download(
    runtime: asyncwasm.Runtime, server: WasmServer, client: str
) -> None:
    key = uuid.uuid4().hex
    url = server.url("malformed", chunk=16384, delay=0.002, id=key)  # ~0.5 s to send it all
    with anyio.fail_after(CASE_TIMEOUT):
        async with get(client, url) as response:
            with pytest.raises(CompileError, match="version") as info:
                await asyncwasm.compile_streaming(response)
            assert info.value.offset == 4
            assert is_closed(response)
        record = server.record(key)
        assert await anyio.to_thread.run_sync(record.finished.wait, CASE_TIMEOUT)
    assert record.client_gone  # the client hung up on the server...
    assert record.sent < record.total // 4  # ...long before the body was sent


@HTTPX_TRIO_ASYNCGEN
async def test_max_bytes_over_http(
    runtime: asyncwasm.Runtime, server: WasmServer, client: str
) -> None:
    with anyio.fail_after(CASE_TIMEOUT):
        async with get(client, server.url("big")) as response:  # Content-Length: known early
            with pytest.raises(CompileError, match="Content-Length"):
                await asyncwasm.compile_streaming(response, max_bytes=100_000)
            assert is_closed(response)
        async with get(client, server.url("big", framing="chunked", chunk=8192)) as response:
            progress: list[int] = []
            with pytest.raises(CompileError, match="max_bytes"):
                await asyncwasm.compile_streaming(
                    response, max_bytes=100_000, on_progress=lambda got, _: progress.append(got)
                )
            assert all(got <= 100_000 for got in progress)  # never beyond the cap
            assert is_closed(response)


async def test_awaitable_responses(
    runtime: asyncwasm.Runtime, server: WasmServer, client: str
) -> None:
    """JS takes a ``Promise<Response>``; here an awaitable of a response."""
    url = server.url("add", framing="chunked", chunk=7)
    with anyio.fail_after(CASE_TIMEOUT):
        if client == "httpx":
            async with httpx.AsyncClient() as http:
                pending = http.send(http.build_request("GET", url), stream=True)
                _, instance = await asyncwasm.instantiate_streaming(pending)
        else:
            async with aiohttp.ClientSession() as session:
                _, instance = await asyncwasm.instantiate_streaming(session.get(url))
                # Refused before it is awaited: closed, so no "never awaited" warning.
                with pytest.raises(TypeError, match="max_bytes"):
                    await asyncwasm.compile_streaming(session.get(url), max_bytes=-1)
    assert instance.exports.add(40, 2) == 42


def _quickjs() -> bytes:
    files = metadata.files("qjs-wasi-reactor.wasm") or []
    [path] = [f for f in files if f.name == "qjs-wasi-reactor.wasm"]
    return Path(str(path.locate())).read_bytes()


@pytest.mark.slow
async def test_quickjs_over_http(runtime: asyncwasm.Runtime, client: str) -> None:
    wasm = _quickjs()
    with serve({"qjs": wasm}) as qjs_server:
        with anyio.fail_after(CASE_TIMEOUT * 3):
            url = qjs_server.url("qjs", framing="chunked", chunk=65536)
            async with get(client, url) as response:
                module = await asyncwasm.compile_streaming(response)
    imports = Module.imports(module)
    assert imports
    assert {i.module for i in imports} == {"wasi_snapshot_preview1"}
    assert any(e.kind == "memory" for e in Module.exports(module))
