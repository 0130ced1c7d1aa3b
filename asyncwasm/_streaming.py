"""Streaming compilation (JS ``WebAssembly.compileStreaming``/``instantiateStreaming``).

Neither engine compiles a module piece by piece, so streaming means: every chunk is decoded by
our incremental decoder as it arrives (header, section ids, order and sizes, the sections before
the code section in full), hashed as it arrives and stored without quadratic copying. Malformed
bytes fail at the chunk that holds the first bad byte, before the rest is read; when the last
byte has arrived, the runtime's compile path starts at once with the bytes, their sha256 (for
the cache: nothing is hashed twice) and the decoder's :class:`ModuleInfo` (nothing decoded
twice).

Everything runs in the calling task: nothing is left reading in the background. Whenever
consumption stops early (malformed bytes, ``max_bytes``, cancellation, an error from the source
or from ``on_progress``), the source is closed before the error propagates.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import anyio.lowlevel

from ._binary import MAX_MODULE_SIZE, ModuleInfo, StreamingDecoder
from ._compile import compile_async
from ._exceptions import CompileError
from ._instance import Instance, InstantiatedSource
from ._sources import ChunkStream, discard, is_incomplete_body, open_stream

if TYPE_CHECKING:
    from ._context import RuntimeBase as Runtime
    from ._module import Module

__all__ = ["ProgressCallback", "compile_streaming", "instantiate_streaming"]

ProgressCallback = Callable[[int, "int | None"], object]
"""``on_progress(received, total)``: bytes received so far, and the announced size or None. It
may return an awaitable, which is awaited."""

# A Content-Length up to this size is allocated at once; beyond it (a server could announce
# anything) the buffer grows as bytes actually arrive.
PREALLOCATE_LIMIT: Final = 1 << 30
# Chunks larger than this are decoded in slices, with a checkpoint between slices, so that one
# huge chunk neither blocks the event loop nor delays a cancellation for long.
DECODE_SLICE: Final = 1 << 20


class _Assembler:
    """The module's bytes as they arrive. With an announced size, one allocation; else a buffer
    whose capacity doubles when full (each byte is moved at most once on average; chunks are
    never re-joined). ``received`` counts the bytes stored."""

    __slots__ = ("buffer", "received")

    def __init__(self, total: int | None) -> None:
        preallocate = total is not None and total <= PREALLOCATE_LIMIT
        self.buffer = bytearray(total) if preallocate and total else bytearray()
        self.received = 0

    def add(self, view: memoryview) -> None:
        start = self.received
        end = start + view.nbytes
        if end > len(self.buffer):
            # Grow the capacity geometrically (x2): a bytearray left to grow by itself does so
            # by 1/8 at a time, copying the whole buffer each time it cannot grow in place.
            self.buffer += bytes(max(end, 2 * len(self.buffer), 1 << 16) - len(self.buffer))
        self.buffer[start:end] = view
        self.received = end

    def take(self) -> bytes:
        """The bytes received, as ``bytes`` (one copy); the buffer is released."""
        buffer, self.buffer = self.buffer, bytearray()
        with memoryview(buffer) as view:
            return bytes(view[: self.received])


def _chunk_view(chunk: object) -> memoryview:
    """A flat byte view of a chunk (any buffer-protocol object)."""
    if isinstance(chunk, str):
        raise TypeError("streamed chunks must be bytes-like objects, not str")
    try:
        view = memoryview(chunk)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"streamed chunks must be bytes-like objects, not {type(chunk).__name__}"
        ) from None
    if view.ndim == 1 and view.itemsize == 1 and view.c_contiguous:
        return view if view.format == "B" else view.cast("B")
    if view.c_contiguous:
        return view.cast("B")
    return memoryview(view.tobytes())


def _check_options(max_bytes: object, on_progress: object) -> None:
    if max_bytes is not None and (
        not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0
    ):
        raise TypeError(f"max_bytes must be a non-negative int or None, not {max_bytes!r}")
    if on_progress is not None and not callable(on_progress):
        raise TypeError(f"on_progress must be callable or None, not {type(on_progress).__name__}")


async def _ingest(
    stream: ChunkStream, max_bytes: int | None, on_progress: ProgressCallback | None
) -> tuple[_Assembler, bytes, ModuleInfo]:
    """Read, decode, hash and store every chunk; return the stored bytes, their sha256 and the
    module's description. Closes the source on any early stop."""
    total = stream.total
    complete = False  # the source ended, at the announced size if there was one
    try:
        if max_bytes is not None and total is not None and total > max_bytes:
            raise CompileError(
                f"module too large: Content-Length announces {total} bytes, max_bytes is "
                f"{max_bytes}",
                offset=max_bytes,
            )
        if total is not None and total > MAX_MODULE_SIZE:
            raise CompileError(
                f"module too large: Content-Length announces {total} bytes, over the JS API's "
                f"module size limit of {MAX_MODULE_SIZE}",
                offset=MAX_MODULE_SIZE,
            )
        store = _Assembler(total)
        decoder = StreamingDecoder()
        hasher = hashlib.sha256()
        chunks = stream.chunks
        while True:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except Exception as error:
                if total is not None and store.received < total and is_incomplete_body(error):
                    # The HTTP client saw the connection end early: to the caller, as in JS,
                    # that is a body shorter than its Content-Length.
                    raise TypeError(
                        f"the body ended after {store.received} bytes, short of its "
                        f"Content-Length of {total} bytes ({type(error).__name__}: {error})"
                    ) from error
                raise
            view = _chunk_view(chunk)
            size = view.nbytes
            if not size:
                continue
            received = store.received
            if max_bytes is not None and received + size > max_bytes:
                raise CompileError(
                    f"module too large: more than max_bytes={max_bytes} bytes received",
                    offset=max_bytes,
                )
            if total is not None and received + size > total:
                raise TypeError(
                    f"the body is longer than its Content-Length of {total} bytes "
                    f"(at least {received + size} bytes received)"
                )
            store.add(view)  # copied now: the producer may reuse its buffer
            hasher.update(view)
            if size <= DECODE_SLICE:
                decoder.feed(view)
            else:
                for start in range(0, size, DECODE_SLICE):
                    decoder.feed(view[start : start + DECODE_SLICE])
                    await anyio.lowlevel.checkpoint()
            if on_progress is not None:
                result = on_progress(store.received, total)
                if inspect.isawaitable(result):
                    await result
        if total is not None and store.received != total:
            raise TypeError(
                f"the body ended after {store.received} bytes, short of its Content-Length of "
                f"{total} bytes"
            )
        complete = True
        info = decoder.finish()
    except BaseException:
        # Stopped early (or the bytes are bad): close the source, or release it if its body was
        # read whole. The error that stopped us is what the caller needs; a failure to close on
        # top of it is dropped.
        with contextlib.suppress(Exception):
            await (stream.release() if complete else stream.aclose())
        raise
    await stream.release()
    return store, hasher.digest(), info


async def compile_streaming(
    runtime: Runtime,
    source: object,
    *,
    max_bytes: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> Module:
    """``Runtime.compile_streaming``: consume ``source`` chunk by chunk, then compile."""
    try:
        _check_options(max_bytes, on_progress)
    except TypeError:
        discard(source)
        raise
    stream = await open_stream(source)
    store, digest, info = await _ingest(stream, max_bytes, on_progress)
    wasm = store.take()
    del store
    return await compile_async(runtime, wasm, digest=digest, info=info)


async def instantiate_streaming(
    runtime: Runtime,
    source: object,
    imports: object = None,
    *,
    max_bytes: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> InstantiatedSource:
    """``Runtime.instantiate_streaming``: ``compile_streaming``, then instantiate."""
    module = await compile_streaming(runtime, source, max_bytes=max_bytes, on_progress=on_progress)
    return InstantiatedSource(module, Instance(module, imports))
