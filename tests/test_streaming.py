"""``compile_streaming``/``instantiate_streaming`` with in-process sources: every source kind, every
error path (with the source closed), progress, limits, and what reaches the compile path.

Every test runs on each engine under test and on both anyio backends (asyncio, trio). The real
HTTP server cases are in ``test_streaming_http.py``.
"""

from __future__ import annotations

import array
import hashlib
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import malformed_modules as mm
import pytest
from _wat import wat
from hypothesis import given, settings
from hypothesis import strategies as st
from malformed_modules import (
    END,
    I32,
    body,
    code,
    custom,
    export,
    exports,
    funcs,
    functype,
    i32_const,
    module,
    section,
    types,
    u32,
    vec,
)

import asyncwasm
from asyncwasm import CompileError, LinkError, Module, _streaming
from asyncwasm._binary import StreamingDecoder, decode_module
from asyncwasm._context import context_for
from asyncwasm._module import parts_of
from asyncwasm._sources import open_stream
from asyncwasm._streaming import _Assembler, _ingest

pytestmark = pytest.mark.anyio


ADD = wat(
    '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
)
WITH_IMPORT = wat(
    '(module (import "env" "twice" (func $t (param i32) (result i32)))'
    ' (func (export "quad") (param i32) (result i32) local.get 0 call $t call $t))'
)


def _big_module(data_size: int = 300_000, fillers: int = 200) -> tuple[bytes, bytes]:
    """A module with many functions, a memory, a large data segment and a trailing custom
    section: ``(wasm, data)``. Exports ``answer`` (42), ``load(i)`` (byte i of data), ``memory``."""
    data = bytes((i * 7 + 3) % 251 for i in range(data_size))
    pages = data_size // 65536 + 1
    load = b"\x20\x00\x2d\x00\x00" + END  # local.get 0; i32.load8_u
    wasm = module(
        types(functype([], [I32]), functype([I32], [I32])),
        funcs(0, 1, *([0] * fillers)),
        section(5, vec([b"\x00" + u32(pages)])),
        exports(export("answer", 0, 0), export("load", 0, 1), export("memory", 2, 0)),
        code(
            body(b"\x41\x2a" + END),
            body(load),
            *[body(b"\x41" + bytes([i % 64]) + END) for i in range(fillers)],
        ),
        section(11, vec([b"\x00" + i32_const(0) + u32(len(data)) + data])),
        custom("trailer", b"the end"),
    )
    return wasm, data


BIG, BIG_DATA = _big_module()

# The third section is malformed (memory limits flags 0x10) at this offset; what follows is valid.
_BAD_PREFIX = module(types(functype([], [I32])), funcs(0))
BAD_THIRD = _BAD_PREFIX + section(5, vec([b"\x10\x01"])) + code(body(b"\x41\x2a" + END))
BAD_THIRD_OFFSET = len(_BAD_PREFIX) + 3
BAD_HEADER = b"\0asm\x02\x00\x00\x00" + ADD[8:]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class Source:
    """An async iterator of chunks that records how many were pulled and whether it was closed.

    ``endless``: after the chunks, keep yielding zero bytes forever (a stream that would never
    end: only an early stop can finish the call). ``hang``: after the chunks, call ``on_hang``
    and wait forever. ``fail``: after the chunks, raise this exception.
    """

    def __init__(
        self,
        chunks: list[Any],
        *,
        endless: bool = False,
        hang: bool = False,
        fail: BaseException | None = None,
    ) -> None:
        self.chunks = chunks
        self.endless = endless
        self.hang = hang
        self.fail = fail
        self.on_hang: Callable[[], object] = lambda: None
        self.pulled = 0
        self.closed = 0

    def __aiter__(self) -> Source:
        return self

    async def __anext__(self) -> Any:
        assert not self.closed, "read after aclose()"
        if self.pulled < len(self.chunks):
            self.pulled += 1
            return self.chunks[self.pulled - 1]
        if self.fail is not None:
            raise self.fail
        if self.hang:
            self.on_hang()
            await anyio.sleep_forever()
        if self.endless:
            self.pulled += 1
            return bytes(65536)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed += 1


class FakeHttpxResponse:
    """Shaped like ``httpx.Response``: ``status_code``, ``headers``, ``aiter_bytes()``, ``aclose()``."""

    def __init__(
        self, source: Source, *, status_code: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.source = source
        self.status_code = status_code
        self.headers = {"Content-Type": "application/wasm"} if headers is None else headers
        self.aclosed = 0
        self.generator_finished = False

    async def aiter_bytes(self) -> AsyncIterator[Any]:
        try:
            async for chunk in self.source:
                yield chunk
        finally:
            self.generator_finished = True

    async def aclose(self) -> None:
        self.aclosed += 1


class _FakeContent:
    def __init__(self, source: Source) -> None:
        self.source = source

    def iter_any(self) -> Source:
        return self.source


class FakeAiohttpResponse:
    """Shaped like ``aiohttp.ClientResponse``: ``status``, ``headers``, ``content.iter_any()``,
    ``close()``, ``release()``."""

    def __init__(
        self, source: Source, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.content = _FakeContent(source)
        self.status = status
        self.headers = {"content-type": "application/wasm"} if headers is None else headers
        self.closed = False
        self.released = False

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:
        self.released = True


async def agen(chunks: list[Any]) -> AsyncIterator[Any]:
    for chunk in chunks:
        yield chunk


def check_big(module: Module) -> None:
    instance = asyncwasm.Instance(module)
    assert instance.exports.answer() == 42
    assert [instance.exports.load(i) for i in (0, 1, 65536, len(BIG_DATA) - 1)] == [
        BIG_DATA[i] for i in (0, 1, 65536, len(BIG_DATA) - 1)
    ]
    assert Module.custom_sections(module, "trailer") == [b"the end"]


# --- The public names --------------------------------------------------------------------------


def test_js_spellings_are_the_same_objects() -> None:
    assert asyncwasm.compileStreaming is asyncwasm.compile_streaming
    assert asyncwasm.instantiateStreaming is asyncwasm.instantiate_streaming
    for name in (
        "compile_streaming",
        "instantiate_streaming",
        "compileStreaming",
        "instantiateStreaming",
    ):
        assert name in asyncwasm.__all__


# --- Source kinds ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 4096, 65536, len(BIG)], ids=lambda s: f"chunks of {s}")
async def test_async_generator_in_any_chunk_size(runtime: asyncwasm.Runtime, size: int) -> None:
    parts = chunked(BIG, size) if size > 1 else [*chunked(BIG[:5000], 1), BIG[5000:]]
    check_big(await asyncwasm.compile_streaming(agen(parts)))


async def test_empty_chunks_are_skipped(runtime: asyncwasm.Runtime) -> None:
    parts = [b"", ADD[:3], b"", b"", ADD[3:20], bytearray(), ADD[20:], b""]
    module = await asyncwasm.compile_streaming(agen(parts))
    assert asyncwasm.Instance(module).exports.add(2, 40) == 42


async def test_async_iterator_and_async_iterable(runtime: asyncwasm.Runtime) -> None:
    class Iterable:  # __aiter__ only, handing out a fresh generator
        def __aiter__(self) -> AsyncIterator[bytes]:
            return agen(chunked(ADD, 10))

    class BareIterator:  # __anext__ only
        def __init__(self) -> None:
            self.parts = iter(chunked(ADD, 9))

        async def __anext__(self) -> bytes:
            try:
                return next(self.parts)
            except StopIteration:
                raise StopAsyncIteration from None

    for source in (Source(chunked(ADD, 4)), Iterable(), BareIterator()):
        module = await asyncwasm.compile_streaming(source)
        assert asyncwasm.Instance(module).exports.add(1, 2) == 3


async def test_any_buffer_chunk_is_accepted_and_copied_at_once(runtime: asyncwasm.Runtime) -> None:
    reused = bytearray(8)

    async def reusing_producer() -> AsyncIterator[object]:
        # One buffer, overwritten after every yield: each chunk must be copied when received.
        for part in chunked(ADD, 8):
            reused[: len(part)] = part
            yield memoryview(reused)[: len(part)]
            reused[:] = b"\xff" * 8

    module = await asyncwasm.compile_streaming(reusing_producer())
    assert asyncwasm.Instance(module).exports.add(3, 4) == 7

    strided = memoryview(bytes(b for c in ADD[:8] for b in (c, 0)))[::2]  # not contiguous
    middle = len(ADD[8:]) // 4 * 4
    words = array.array("I")
    words.frombytes(ADD[8 : 8 + middle])  # 4-byte items: taken as their bytes
    parts: list[object] = [strided, bytearray(b""), words, ADD[8 + middle :]]
    module = await asyncwasm.compile_streaming(agen(parts))
    assert asyncwasm.Instance(module).exports.add(5, 6) == 11


async def test_awaitables_resolving_to_a_source(runtime: asyncwasm.Runtime) -> None:
    async def later() -> AsyncIterator[bytes]:
        return agen(chunked(ADD, 5))

    async def even_later() -> object:
        return later()

    for source in (later(), even_later()):
        module = await asyncwasm.compile_streaming(source)
        assert asyncwasm.Instance(module).exports.add(1, 1) == 2


@pytest.mark.parametrize("shape", ["httpx", "aiohttp"])
@pytest.mark.parametrize(
    "content_type",
    ["application/wasm", "application/wasm; charset=binary", "Application/WASM ;q=1", None],
)
async def test_response_like_objects(
    runtime: asyncwasm.Runtime, shape: str, content_type: str | None
) -> None:
    headers = {"Content-Length": str(len(BIG))}
    if content_type is not None:
        headers["Content-Type"] = content_type
    source = Source(chunked(BIG, 65536))
    response: Any = (
        FakeHttpxResponse(source, headers=headers)
        if shape == "httpx"
        else FakeAiohttpResponse(source, headers=headers)
    )
    progress: list[tuple[int, int | None]] = []
    module = await asyncwasm.compile_streaming(
        response, on_progress=lambda got, total: progress.append((got, total))
    )
    check_big(module)
    assert progress[-1] == (len(BIG), len(BIG))  # the total comes from Content-Length
    assert source.closed == 0  # read to the end: nothing to stop early
    if shape == "httpx":
        assert response.aclosed == 1  # released after the body was read
    else:
        assert response.released
        assert not response.closed


async def test_content_length_is_ignored_under_a_content_coding(runtime: asyncwasm.Runtime) -> None:
    # The client hands out decoded bytes; Content-Length counts the encoded ones.
    headers = {
        "content-type": "application/wasm",
        "content-length": "12",
        "content-encoding": "gzip",
    }
    progress: list[tuple[int, int | None]] = []
    response = FakeHttpxResponse(Source(chunked(ADD, 8)), headers=headers)
    await asyncwasm.compile_streaming(response, on_progress=lambda *a: progress.append(a))
    assert progress[-1] == (len(ADD), None)


@pytest.mark.parametrize(
    "source",
    [ADD, bytearray(ADD), memoryview(ADD), array.array("B", ADD)],
    ids=["bytes", "bytearray", "memoryview", "array"],
)
async def test_buffers_are_type_errors_pointing_at_compile(
    runtime: asyncwasm.Runtime, source: object
) -> None:
    with pytest.raises(TypeError, match=r"asyncwasm\.compile\("):
        await asyncwasm.compile_streaming(source)
    with pytest.raises(TypeError, match=r"asyncwasm\.compile\("):
        await asyncwasm.instantiate_streaming(source)


def _sync_gen() -> Iterator[bytes]:
    yield ADD


@pytest.mark.parametrize(
    "source",
    [[ADD], (ADD,), iter([ADD]), "sync generator"],
    ids=["list", "tuple", "iterator", "generator"],
)
async def test_sync_iterables_are_type_errors_pointing_at_compile(
    runtime: asyncwasm.Runtime, source: object
) -> None:
    if source == "sync generator":
        source = _sync_gen()
    with pytest.raises(TypeError, match=r"sync iterable.*asyncwasm\.compile\("):
        await asyncwasm.compile_streaming(source)


@pytest.mark.parametrize("source", [None, 42, "\0asm", object()], ids=repr)
async def test_other_objects_are_type_errors(runtime: asyncwasm.Runtime, source: object) -> None:
    with pytest.raises(TypeError):
        await asyncwasm.compile_streaming(source)


# --- Response checks (as in JS) ----------------------------------------------------------------


@pytest.mark.parametrize("shape", ["httpx", "aiohttp"])
@pytest.mark.parametrize(
    ("status", "content_type", "match"),
    [
        (404, "application/wasm", "HTTP status 404"),
        (500, "application/wasm", "HTTP status 500"),
        (301, "application/wasm", "HTTP status 301"),
        (200, "text/html", "Content-Type 'text/html'"),
        (200, "application/octet-stream", "Content-Type"),
        (200, "", "Content-Type"),
    ],
)
async def test_bad_status_or_content_type_is_a_type_error_and_closes(
    runtime: asyncwasm.Runtime, shape: str, status: int, content_type: str, match: str
) -> None:
    source = Source(chunked(ADD, 8))
    headers = {"Content-Type": content_type}
    response: Any = (
        FakeHttpxResponse(source, status_code=status, headers=headers)
        if shape == "httpx"
        else FakeAiohttpResponse(source, status=status, headers=headers)
    )
    with pytest.raises(TypeError, match=match):
        await asyncwasm.compile_streaming(response)
    assert source.pulled == 0  # refused before reading the body
    if shape == "httpx":
        assert response.aclosed == 1
    else:
        assert response.closed


@pytest.mark.parametrize("shape", ["httpx", "aiohttp"])
@pytest.mark.parametrize("announced", [len(ADD) + 1, len(ADD) - 1, 10])
async def test_body_length_is_cross_checked_with_content_length(
    runtime: asyncwasm.Runtime, shape: str, announced: int
) -> None:
    source = Source(chunked(ADD, 8))
    headers = {"content-type": "application/wasm", "content-length": str(announced)}
    response: Any = (
        FakeHttpxResponse(source, headers=headers)
        if shape == "httpx"
        else FakeAiohttpResponse(source, headers=headers)
    )
    word = "shorter than|short of" if announced > len(ADD) else "longer than"
    with pytest.raises(TypeError, match=f"Content-Length|{word}"):
        await asyncwasm.compile_streaming(response)
    if shape == "httpx":
        assert response.aclosed == 1
        assert response.generator_finished
    else:
        assert response.closed
        assert source.closed == 1
    if announced < len(ADD):  # stopped at the first chunk that went past the announced size
        assert source.pulled == -(-(announced + 1) // 8)


def test_content_length_allocates_the_buffer_once() -> None:
    store = _Assembler(len(BIG))
    buffer = store.buffer
    assert len(buffer) == len(BIG)
    for part in chunked(BIG, 1000):
        store.add(memoryview(part))
        assert store.buffer is buffer
        assert len(buffer) == len(BIG)
    assert store.take() == BIG


# --- Early stops: the error, and the source closed ---------------------------------------------


@pytest.mark.parametrize(
    ("wasm", "offset"),
    [(BAD_HEADER, 4), (BAD_THIRD, BAD_THIRD_OFFSET)],
    ids=["header", "third section"],
)
@pytest.mark.parametrize("size", [1, 8, 64, 65536])
async def test_malformed_bytes_fail_at_the_chunk_holding_them(
    runtime: asyncwasm.Runtime, wasm: bytes, offset: int, size: int
) -> None:
    source = Source(chunked(wasm, size), endless=True)  # would never end by itself
    with pytest.raises(CompileError) as info:
        await asyncwasm.compile_streaming(source)
    assert info.value.offset == offset
    assert source.pulled == offset // size + 1  # nothing read past the chunk holding the byte
    assert source.closed == 1


async def test_a_truncated_module_is_a_compile_error(runtime: asyncwasm.Runtime) -> None:
    source = Source(chunked(BIG[: len(BIG) // 2], 4096))
    with pytest.raises(CompileError, match="unexpected end"):
        await asyncwasm.compile_streaming(source)
    assert source.closed == 0  # it ended by itself
    with pytest.raises(CompileError):
        await asyncwasm.compile_streaming(agen([]))


async def test_an_invalid_module_is_the_engines_compile_error(runtime: asyncwasm.Runtime) -> None:
    # Well formed; the body is ill-typed (i64 result from an i32 function): the engine refuses it.
    invalid = module(types(functype([], [I32])), funcs(0), code(body(b"\x42\x00" + END)))
    with pytest.raises(CompileError):
        await asyncwasm.compile(invalid)
    with pytest.raises(CompileError):
        await asyncwasm.compile_streaming(agen(chunked(invalid, 3)))


@pytest.mark.parametrize("max_bytes", [0, 100, len(BIG) - 1])
async def test_max_bytes_stops_reading(runtime: asyncwasm.Runtime, max_bytes: int) -> None:
    source = Source(chunked(BIG, 4096), endless=True)
    with pytest.raises(CompileError, match="max_bytes") as info:
        await asyncwasm.compile_streaming(source, max_bytes=max_bytes)
    assert info.value.offset == max_bytes
    assert source.pulled == max_bytes // 4096 + 1
    assert source.closed == 1


async def test_max_bytes_exactly_the_size_is_fine(runtime: asyncwasm.Runtime) -> None:
    check_big(await asyncwasm.compile_streaming(agen(chunked(BIG, 4096)), max_bytes=len(BIG)))


async def test_max_bytes_below_content_length_fails_before_reading(
    runtime: asyncwasm.Runtime,
) -> None:
    source = Source(chunked(BIG, 4096))
    headers = {"content-type": "application/wasm", "content-length": str(len(BIG))}
    response = FakeHttpxResponse(source, headers=headers)
    with pytest.raises(CompileError, match="Content-Length"):
        await asyncwasm.compile_streaming(response, max_bytes=1000)
    assert source.pulled == 0
    assert response.aclosed == 1


async def test_an_exception_from_the_source_propagates_itself(runtime: asyncwasm.Runtime) -> None:
    error = ConnectionResetError("the peer went away")
    source = Source(chunked(BIG[:10000], 1000), fail=error)
    with pytest.raises(ConnectionResetError) as info:
        await asyncwasm.compile_streaming(source)
    assert info.value is error
    assert source.closed == 1

    response = FakeHttpxResponse(Source([BIG[:1000]], fail=error))
    with pytest.raises(ConnectionResetError) as info:
        await asyncwasm.compile_streaming(response)
    assert info.value is error
    assert response.aclosed == 1
    assert response.generator_finished


async def test_an_exception_from_on_progress_propagates_and_closes(
    runtime: asyncwasm.Runtime,
) -> None:
    class Stop(Exception):
        pass

    def progress(received: int, total: int | None) -> None:
        if received >= 3000:
            raise Stop

    source = Source(chunked(BIG, 1000), endless=True)
    with pytest.raises(Stop):
        await asyncwasm.compile_streaming(source, on_progress=progress)
    assert source.pulled == 3
    assert source.closed == 1


@pytest.mark.parametrize("chunk", ["text", 12, None, [1, 2]], ids=repr)
async def test_a_non_buffer_chunk_is_a_type_error_and_closes(
    runtime: asyncwasm.Runtime, chunk: object
) -> None:
    source = Source([ADD[:8], chunk], endless=True)
    with pytest.raises(TypeError, match="bytes-like"):
        await asyncwasm.compile_streaming(source)
    assert source.closed == 1
    assert source.pulled == 2


async def test_cancellation_closes_the_source(runtime: asyncwasm.Runtime) -> None:
    source = Source(chunked(BIG[:20000], 4096), hang=True)
    with anyio.CancelScope() as scope:
        source.on_hang = scope.cancel  # cancelled while waiting for the next chunk
        await asyncwasm.compile_streaming(source)
    assert scope.cancelled_caught
    assert source.closed == 1
    assert source.pulled == 5


async def test_cancellation_closes_a_response(runtime: asyncwasm.Runtime) -> None:
    source = Source(chunked(BIG[:20000], 4096), hang=True)
    response = FakeHttpxResponse(source)
    with anyio.CancelScope() as scope:
        source.on_hang = scope.cancel
        await asyncwasm.instantiate_streaming(response)
    assert scope.cancelled_caught
    assert response.aclosed == 1
    assert response.generator_finished


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_bytes": -1}, "max_bytes"),
        ({"max_bytes": "10"}, "max_bytes"),
        ({"max_bytes": 1.5}, "max_bytes"),
        ({"on_progress": 5}, "on_progress"),
    ],
)
async def test_bad_options_are_type_errors(
    runtime: asyncwasm.Runtime, options: dict[str, Any], match: str
) -> None:
    async def never_awaited() -> object:  # closed by compile_streaming: no "never awaited" warning
        raise AssertionError

    with pytest.raises(TypeError, match=match):
        await asyncwasm.compile_streaming(never_awaited(), **options)
    source = Source([ADD])
    with pytest.raises(TypeError, match=match):
        await asyncwasm.compile_streaming(source, **options)
    assert source.pulled == 0


# --- Progress ----------------------------------------------------------------------------------


async def test_progress_reports_every_chunk(runtime: asyncwasm.Runtime) -> None:
    calls: list[tuple[int, int | None]] = []
    parts = [*chunked(BIG, 50_000), b""]
    check_big(
        await asyncwasm.compile_streaming(agen(parts), on_progress=lambda *a: calls.append(a))
    )
    expected = [(min(i + 50_000, len(BIG)), None) for i in range(0, len(BIG), 50_000)]
    assert calls == expected


async def test_async_progress_callbacks_are_awaited(runtime: asyncwasm.Runtime) -> None:
    seen: list[int] = []

    async def progress(received: int, total: int | None) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(received)

    await asyncwasm.compile_streaming(agen(chunked(ADD, 10)), on_progress=progress)
    assert seen == [10, 20, 30, 40, len(ADD)]


# --- What reaches the compile path -------------------------------------------------------------


async def test_the_compile_path_gets_the_digest_and_the_decoded_module(
    runtime: asyncwasm.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncwasm import _streaming

    calls: list[tuple[bytes, dict[str, Any]]] = []
    original = _streaming.compile_async  # type: ignore[attr-defined]  # patched where it is used

    async def spy(rt: asyncwasm.Runtime, wasm: bytes, **kwargs: Any) -> Module:
        calls.append((wasm, kwargs))
        return await original(rt, wasm, **kwargs)

    monkeypatch.setattr(_streaming, "compile_async", spy)
    check_big(await asyncwasm.compile_streaming(agen(chunked(BIG, 3000))))
    [(wasm, kwargs)] = calls
    assert type(wasm) is bytes
    assert wasm == BIG
    assert kwargs["digest"] == hashlib.sha256(BIG).digest()
    assert kwargs["info"] == decode_module(BIG)


async def test_streaming_and_compile_agree_on_engine_features(runtime: asyncwasm.Runtime) -> None:
    # A tag import: the wasmer engine cannot compile it, wasmtime can. The streaming path reuses
    # the decoder's result and must still refuse what the engine lacks.
    try:
        await asyncwasm.compile(mm.IMPORT_TAG)
    except CompileError as exc:
        with pytest.raises(CompileError, match=str(exc)[:30]):
            await asyncwasm.compile_streaming(agen(chunked(mm.IMPORT_TAG, 5)))
    else:
        module = await asyncwasm.compile_streaming(agen(chunked(mm.IMPORT_TAG, 5)))
        assert [d.kind for d in Module.imports(module)] == ["tag"]


# --- instantiate_streaming and the Runtime methods ---------------------------------------------


async def test_instantiate_streaming(runtime: asyncwasm.Runtime) -> None:
    result = await asyncwasm.instantiate_streaming(
        agen(chunked(WITH_IMPORT, 6)), {"env": {"twice": lambda x: 2 * x}}
    )
    assert isinstance(result, asyncwasm.InstantiatedSource)
    assert isinstance(result.module, Module)
    assert result.instance.exports.quad(5) == 20
    with pytest.raises(LinkError):
        await asyncwasm.instantiateStreaming(agen([WITH_IMPORT]), {"env": {}})


async def test_runtime_methods(engine: str) -> None:
    rt = asyncwasm.Runtime(engine=engine)
    module = await rt.compile_streaming(agen(chunked(ADD, 16)), max_bytes=1000)
    assert parts_of(module).context is context_for(rt)
    _, instance = await rt.instantiate_streaming(agen([ADD]))
    assert instance.exports.add(20, 22) == 42


# --- Any split gives the same result (engine-independent) -------------------------------------


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


async def _ingest_outcome(parts: list[bytes]) -> tuple[bytes, bytes, object] | CompileError:
    stream = await open_stream(agen(parts))
    try:
        store, digest, info = await _ingest(stream, None, None)
    except CompileError as exc:
        return exc
    return store.take(), digest, info


@pytest.fixture
def hash_in_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashing moves to the helper thread after the first 16 KiB, with a backlog of at most
    8 KiB (the defaults wait for 8 MiB streams)."""
    monkeypatch.setattr(_streaming._Hasher, "THREAD_FROM", 16384)
    monkeypatch.setattr(_streaming._Hasher, "MAX_BACKLOG", 8192)


def _hashers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "asyncwasm-sha256"]


@pytest.mark.usefixtures("hash_in_thread")
@pytest.mark.parametrize("length", [False, True], ids=["no-length", "content-length"])
@pytest.mark.parametrize("kind", ["bytes", "bytearray", "reused", "mixed"])
async def test_large_streams_hash_beside_the_loop(kind: str, length: bool) -> None:
    seen: list[int] = []
    source: object = _chunk_source(kind, chunked(BIG, 1000))
    if length:  # the announced size: the thread hashes the final buffer in place, as it fills
        headers = {"Content-Length": str(len(BIG))}
        source = FakeHttpxResponse(source, headers=headers)  # type: ignore[arg-type]
    stream = await open_stream(source)
    store, digest, info = await _ingest(
        stream, None, lambda received, _: seen.append(len(_hashers()))
    )
    assert (store.take(), digest, info) == (BIG, hashlib.sha256(BIG).digest(), decode_module(BIG))
    # The thread reads the storage, not the chunks: whatever they are, it runs (on CPython; a
    # growing bytearray elsewhere is hashed in the calling thread).
    assert max(seen) == (1 if length or _streaming._PrivateBytes.available else 0)
    assert not _hashers()  # it ended with the stream


@pytest.mark.usefixtures("hash_in_thread")
@pytest.mark.parametrize("length", [False, True], ids=["no-length", "content-length"])
async def test_a_stream_stopped_early_ends_its_hashing_thread(length: bool) -> None:
    bad = BIG[: len(BIG) // 2] + b"\xff" * 1000  # the data section is cut: malformed
    source: object = agen(chunked(bad, 1000))
    if length:
        headers = {"Content-Length": str(len(bad))}
        source = FakeHttpxResponse(source, headers=headers)  # type: ignore[arg-type]
    stream = await open_stream(source)
    with pytest.raises(CompileError):
        await _ingest(stream, None, None)
    with anyio.fail_after(10):
        while _hashers():  # noqa: ASYNC110  (a thread ending: nothing to wait on)
            await anyio.sleep(0.01)


# --- Without a Content-Length: the storage grows in place ---------------------------------------


def _exact_target(store: _Assembler, needed: int, hint: int) -> int:
    return needed  # no room ahead: a resize for every chunk


@pytest.fixture
def grow_every_chunk(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """The storage of a stream without a length grows for every chunk (the default grows a few
    times in large steps); returns a log of ``(new capacity, hashing thread alive)`` per
    growth."""
    growths: list[tuple[int, bool]] = []
    renew = _Assembler._renew

    def logged(store: _Assembler, capacity: int) -> None:
        growths.append((capacity, bool(_hashers())))
        renew(store, capacity)

    monkeypatch.setattr(_Assembler, "_target", _exact_target)
    monkeypatch.setattr(_Assembler, "_renew", logged)
    return growths


def _chunk_source(kind: str, parts: list[bytes]) -> AsyncIterator[object]:
    reused = bytearray(max(map(len, parts)))

    async def chunks() -> AsyncIterator[object]:
        for i, part in enumerate(parts):
            if kind == "bytes" or (kind == "mixed" and i % 2):
                yield part
            elif kind in ("reused", "mixed"):  # one buffer, refilled for every chunk
                reused[: len(part)] = part
                yield memoryview(reused)[: len(part)]
            elif kind == "array":  # 4-byte items: stored as their bytes
                whole = len(part) // 4 * 4
                yield array.array("I", part[:whole])
                yield part[whole:]
            else:
                yield bytearray(part)

    return chunks()


@pytest.mark.skipif(not _streaming._PrivateBytes.available, reason="CPython's bytes storage")
@pytest.mark.usefixtures("hash_in_thread")
@pytest.mark.parametrize("size", [997, 65536])
@pytest.mark.parametrize("kind", ["bytes", "bytearray", "reused", "mixed", "array"])
async def test_without_a_length_the_bytes_grow_in_place_while_hashed(
    grow_every_chunk: list[tuple[int, bool]], kind: str, size: int
) -> None:
    stream = await open_stream(_chunk_source(kind, chunked(BIG, size)))
    assert stream.total is None
    store, digest, info = await _ingest(stream, None, None)
    wasm = store.take()
    assert type(wasm) is bytes
    assert wasm == BIG
    assert digest == hashlib.sha256(BIG).digest()
    assert info == decode_module(BIG)
    # It grew for every chunk, and did so while the thread was reading the storage.
    assert len(grow_every_chunk) >= (len(BIG) - _streaming.MIN_ROOM) // size
    assert any(alive for _, alive in grow_every_chunk)
    assert not _hashers()


async def test_without_a_length_the_storage_is_at_most_the_module_size() -> None:
    sizes: list[int] = []
    renew = _Assembler._renew

    def logged(store: _Assembler, capacity: int) -> None:
        sizes.append(capacity)
        renew(store, capacity)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_Assembler, "_renew", logged)
        stream = await open_stream(agen(chunked(BIG, 4096)))
        store, _, _ = await _ingest(stream, None, None)
    assert store.take() == BIG
    # The decoder vouches for the sections' ends: a few large steps, never far past the module
    # (the section after the data section has 1/8 of the bytes received as room).
    assert max(sizes) <= len(BIG) * 9 // 8
    assert len(sizes) <= 4


async def test_without_a_length_the_module_bytes_are_the_only_reference() -> None:
    stream = await open_stream(agen(chunked(BIG, 5000)))
    store, _, _ = await _ingest(stream, None, None)
    wasm = store.take()
    assert sys.getrefcount(wasm) == 2  # ``wasm`` and the call's argument: nothing else holds it
    assert wasm == BIG
    assert hash(wasm) == hash(bytes(BIG))  # no stale cached hash
    assert store.take() == b""  # let go of


@pytest.mark.skipif(not _streaming._PrivateBytes.available, reason="CPython's bytes storage")
async def test_an_old_view_of_a_grown_storage_fails_instead_of_reading_freed_memory() -> None:
    store = _Assembler(None)
    old = store.buffer
    assert isinstance(old, memoryview)
    store.make_room(len(BIG))
    assert store.make_room(len(BIG)) is False  # room enough: nothing moves
    store.add(memoryview(BIG))
    store.make_room(1 << 20)  # grows: the storage moves
    with pytest.raises(ValueError, match="released"):
        old[0]
    assert store.take() == BIG


@pytest.mark.usefixtures("hash_in_thread")
@pytest.mark.parametrize("length", [False, True], ids=["no-length", "content-length"])
async def test_off_cpython_a_bytearray_holds_the_bytes(
    monkeypatch: pytest.MonkeyPatch, length: bool
) -> None:
    monkeypatch.setattr(_streaming._PrivateBytes, "available", False)
    seen: list[int] = []
    source: object = _chunk_source("reused", chunked(BIG, 1000))
    if length:
        headers = {"Content-Length": str(len(BIG))}
        source = FakeHttpxResponse(source, headers=headers)  # type: ignore[arg-type]
    stream = await open_stream(source)
    store, digest, info = await _ingest(
        stream, None, lambda received, _: seen.append(len(_hashers()))
    )
    assert isinstance(store.buffer, bytearray)
    wasm = store.take()
    assert (type(wasm), wasm, digest, info) == (
        bytes,
        BIG,
        hashlib.sha256(BIG).digest(),
        decode_module(BIG),
    )
    # A preallocated bytearray never moves: the thread reads it in place. A growing one is
    # hashed in the calling thread.
    assert max(seen) == (1 if length else 0)


@pytest.mark.skipif(not _streaming._PrivateBytes.available, reason="CPython's bytes storage")
def test_private_bytes() -> None:
    storage = _streaming._PrivateBytes(10)
    view = storage.view()
    assert view is not None
    view[:10] = b"0123456789"
    view.release()
    storage.resize(1 << 20)
    view = storage.view()
    assert view is not None
    assert bytes(view[:10]) == b"0123456789"
    view[10:13] = b"abc"
    view.release()
    data = storage.take(13)
    assert (type(data), data) == (bytes, b"0123456789abc")
    assert storage.view() is None
    storage.discard()  # once only: nothing happens
    for size in (0, 1):
        small = _streaming._PrivateBytes(100)
        v = small.view()
        assert v is not None
        v[0] = 0x41
        v.release()
        assert small.take(size) == b"A"[:size]
    # Dropped without take: its finalizer gives the reference up.
    dropped = _streaming._PrivateBytes(1000)
    release = dropped._release
    del dropped
    assert not release.alive


def test_the_decoder_vouches_for_the_section_being_received() -> None:
    buffer = bytearray(len(BIG))
    decoder = StreamingDecoder(buffer)
    cut = len(BIG) - 1000  # in the data section
    buffer[:cut] = BIG[:cut]
    decoder.advance(cut)
    data_end = len(BIG) - len(custom("trailer", b"the end"))
    assert decoder.size_hint == data_end
    with pytest.raises(ValueError, match="shorter"):
        decoder.rebind(bytearray(10))
    moved = memoryview(bytearray(BIG))
    decoder.rebind(moved)
    decoder.advance(len(BIG) - cut)
    assert decoder.finish() == decode_module(BIG)
    with pytest.raises(ValueError, match="rebind"):
        StreamingDecoder().rebind(bytearray())


async def test_without_a_length_compile_gets_the_bytes_and_the_cache_their_hash(
    runtime: asyncwasm.Runtime,
    monkeypatch: pytest.MonkeyPatch,
    hash_in_thread: None,
    grow_every_chunk: list[tuple[int, bool]],
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = _streaming.compile_async  # type: ignore[attr-defined]  # patched where it is used

    async def spy(rt: asyncwasm.Runtime, wasm: bytes, **kwargs: Any) -> Module:
        calls.append((wasm, kwargs["digest"]))
        return await original(rt, wasm, **kwargs)

    monkeypatch.setattr(_streaming, "compile_async", spy)
    parts = chunked(BIG, 4000)
    check_big(await asyncwasm.compile_streaming(_chunk_source("reused", parts)))
    [(wasm, digest)] = calls
    assert (type(wasm), wasm, digest) == (bytes, BIG, hashlib.sha256(BIG).digest())
    check_big(await asyncwasm.compile(BIG))  # found in the cache under the streamed hash
    info = runtime.cache_info()
    assert (info.compiles, info.memory_hits) == (1, 1)


class _Stop(Exception):
    pass


@pytest.mark.usefixtures("hash_in_thread", "grow_every_chunk")
@pytest.mark.parametrize(
    "stop", ["malformed", "max_bytes", "cancel", "progress", "source error", "truncated"]
)
async def test_without_a_length_an_early_stop_closes_the_source_and_frees_the_bytes(
    runtime: asyncwasm.Runtime, stop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    discarded: list[_Assembler] = []
    discard = _Assembler.discard

    def logged(store: _Assembler) -> None:
        discarded.append(store)
        discard(store)

    monkeypatch.setattr(_Assembler, "discard", logged)
    half = len(BIG) // 2
    parts = chunked(BIG[:half], 1000)
    source = Source(parts, endless=True)
    expected: type[BaseException] = CompileError
    options: dict[str, Any] = {}
    if stop == "malformed":  # a bad section id after a large custom section
        parts = chunked(module(custom("pad", bytes(half))) + b"\x7f\x00", 1000)
        source = Source(parts, endless=True)
    elif stop == "max_bytes":
        options["max_bytes"] = half - 500
    elif stop == "progress":

        def progress(received: int, total: int | None) -> None:
            if received >= half:
                raise _Stop

        options["on_progress"] = progress
        expected = _Stop
    elif stop == "source error":
        source = Source(parts, fail=_Stop())
        expected = _Stop
    elif stop == "truncated":
        source = Source(parts)
    if stop == "cancel":
        source = Source(parts, hang=True)
        with anyio.CancelScope() as scope:
            source.on_hang = scope.cancel
            await asyncwasm.compile_streaming(source)
        assert scope.cancelled_caught
    else:
        with pytest.raises(expected):
            await asyncwasm.compile_streaming(source, **options)
    assert source.closed == (0 if stop == "truncated" else 1)  # read whole: released instead
    assert source.pulled <= len(parts) + 1  # stopped at the chunk that ended it
    [store] = discarded
    assert store.take() == b""  # the bytes were let go of
    with anyio.fail_after(10):
        while _hashers():  # noqa: ASYNC110  (a thread ending: nothing to wait on)
            await anyio.sleep(0.01)


# A synchronous (hypothesis) test that runs the ingest with anyio.run itself: one backend.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@settings(max_examples=60, deadline=None)
@given(
    which=st.sampled_from([w for _, w in (*mm.VALID, *mm.MALFORMED)]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    grow_every_chunk=st.booleans(),
)
def test_any_split_gives_the_whole_module_result(
    anyio_backend: str, which: bytes, cuts: list[int], grow_every_chunk: bool
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        if grow_every_chunk:  # the storage moves for every chunk (from 1 byte on)
            patch.setattr(_streaming, "MIN_ROOM", 1)
            patch.setattr(_Assembler, "_target", _exact_target)
        outcome = anyio.run(_ingest_outcome, _split(which, cuts))
    expected: tuple[bytes, bytes, object] | CompileError
    try:
        expected = (which, hashlib.sha256(which).digest(), decode_module(which))
    except CompileError as exc:
        expected = exc
    if isinstance(expected, CompileError):
        assert isinstance(outcome, CompileError)
        assert (outcome.offset, str(outcome)) == (expected.offset, str(expected))
    else:
        assert outcome == expected
