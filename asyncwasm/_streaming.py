"""Streaming compilation (JS ``WebAssembly.compileStreaming``/``instantiateStreaming``).

Neither engine compiles a module piece by piece, so streaming means: every chunk is decoded by
our incremental decoder as it arrives (header, section ids, order and sizes, the sections before
the code section in full), hashed as it arrives and stored without quadratic copying. Malformed
bytes fail at the chunk that holds the first bad byte, before the rest is read; when the last
byte has arrived, the runtime's compile path starts at once with the bytes, their sha256 (for
the cache: nothing is hashed twice) and the decoder's :class:`ModuleInfo` (nothing decoded
twice).

Everything runs in the calling task: nothing is left reading in the background (a large
stream's hashing moves to a helper thread, see :class:`_Hasher`, which ends with it). Whenever
consumption stops early (malformed bytes, ``max_bytes``, cancellation, an error from the source
or from ``on_progress``), the source is closed before the error propagates.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import inspect
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

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


def _fresh_bytes(size: int) -> tuple[bytes, memoryview] | None:
    """A new ``bytes`` object of ``size`` bytes (contents undefined) and a writable view of its
    storage, or ``None`` where that is not available (not CPython, or ``size`` < 2, where
    CPython may share objects).

    This is what C code does with ``PyBytes_FromStringAndSize(NULL, size)``: fill a ``bytes``
    object nobody else has seen yet, so that the module's bytes are stored once and handed on
    as ``bytes`` without a final copy (peak memory ~1x the module, not 2x). The view must not be
    written once the object was handed out; ``_Assembler`` drops it first.
    """
    if size < 2 or _PyBytes_FromStringAndSize is None:
        return None
    data: bytes = _PyBytes_FromStringAndSize(None, size)
    address = _PyBytes_AsString(data)
    view = memoryview((ctypes.c_ubyte * size).from_address(address)).cast("B")
    return data, view


try:
    _PyBytes_FromStringAndSize: Any = ctypes.pythonapi.PyBytes_FromStringAndSize
    _PyBytes_FromStringAndSize.restype = ctypes.py_object
    _PyBytes_FromStringAndSize.argtypes = (ctypes.c_char_p, ctypes.c_ssize_t)
    _PyBytes_AsString: Any = ctypes.pythonapi.PyBytes_AsString
    _PyBytes_AsString.restype = ctypes.c_void_p
    _PyBytes_AsString.argtypes = (ctypes.py_object,)
except (AttributeError, OSError):  # not CPython
    _PyBytes_FromStringAndSize = None


class _Hasher:
    """The stream's sha256, computed beside the event loop once the stream is large.

    hashlib releases the GIL while it hashes more than 2 KiB, so a helper thread hashes on the
    second core while the loop copies and decodes the next chunk: ingest time is about the
    larger of the two, not their sum (sha256 and the copy run at about the same speed).

    With a buffer that never moves (``fixed``: the announced size, preallocated), the thread
    hashes it in place, as far as it is filled, in as large pieces as it can: the thread gets
    the GIL back only when the loop lets go of it (every switch interval while the loop is
    busy), so one ``update`` per chunk would leave it waiting most of the time. Else only
    ``bytes`` chunks start the thread (immutable: the producer cannot change them meanwhile;
    others are copied for it once it runs). A stream under ``THREAD_FROM`` bytes is hashed in
    the calling thread (a thread costs more than it saves). A backlog over ``MAX_BACKLOG``
    makes the loop yield until the thread catches up, so held chunks stay bounded.
    """

    THREAD_FROM: Final = 8 << 20
    MAX_BACKLOG: Final = 16 << 20

    __slots__ = ("_consumed", "_done", "_fixed", "_hashed", "_queue", "_queued", "_sha")

    def __init__(self, fixed: bytes | bytearray | None = None, total: int | None = None) -> None:
        self._sha = hashlib.sha256()
        self._hashed = 0  # bytes hashed in the calling thread
        self._queue: queue.SimpleQueue[bytes | int | None] | None = None
        # Bytes handed over (written by the calling thread only) and hashed by the thread
        # (written by it only): each counter has one writer, so their difference is a safe
        # backlog.
        self._queued = 0
        self._consumed = 0
        self._done = threading.Event()
        self._fixed: memoryview | None = None
        if fixed is not None and total is not None and total >= self.THREAD_FROM:
            self._fixed = memoryview(fixed)
            self._start()

    def _start(self) -> None:
        self._queue = queue.SimpleQueue()
        threading.Thread(target=self._run, name="asyncwasm-sha256", daemon=True).start()

    async def update(self, chunk: object, view: memoryview, end: int) -> None:
        """Hash ``view`` (the bytes of ``chunk``), now stored up to ``end``."""
        if self._queue is None:
            if self._hashed < self.THREAD_FROM or not isinstance(chunk, bytes):
                self._sha.update(view)
                self._hashed += view.nbytes
                return
            self._start()
            assert self._queue is not None
        if self._fixed is not None:
            self._queue.put(end)  # the fixed buffer is final up to ``end``
            self._queued = end
        else:
            if not isinstance(chunk, bytes):
                chunk = bytes(view)  # the producer may reuse its buffer before the thread hashes
            self._queued += len(chunk)
            self._queue.put(chunk)
        # Polled: the condition is set by another thread, and an anyio.Event can only be set
        # from its loop (a thread hop per chunk would cost more than this rare wait).
        while self._queued - self._consumed > self.MAX_BACKLOG:  # noqa: ASYNC110
            await anyio.sleep(0.001)

    def _run(self) -> None:
        work = self._queue
        assert work is not None
        try:
            finished = False
            while not finished:
                # Everything handed over meanwhile, at once: with a fixed buffer, one update.
                batch = [work.get()]
                while not work.empty():
                    batch.append(work.get_nowait())
                if batch[-1] is None:  # the last thing ever put (``digest``, ``stop``)
                    finished = True
                    batch.pop()
                if self._fixed is not None:
                    if batch:
                        end = batch[-1]
                        assert isinstance(end, int)
                        self._sha.update(self._fixed[self._consumed : end])
                        self._consumed = end
                    continue
                for chunk in batch:
                    assert isinstance(chunk, bytes)
                    self._sha.update(chunk)
                    self._consumed += len(chunk)
        finally:
            self._done.set()

    async def digest(self) -> bytes:
        """The sha256 of everything updated (waits for the thread without blocking the loop)."""
        if self._queue is not None:
            self._queue.put(None)
            while not self._done.is_set():  # noqa: ASYNC110  (set by the thread: see update)
                await anyio.sleep(0.0005)
            self._queue = None
        return self._sha.digest()

    def stop(self) -> None:
        """Let the thread end without waiting for it (the stream stopped early)."""
        if self._queue is not None:
            self._queue.put(None)
            self._queue = None


class _Assembler:
    """The module's bytes as they arrive, stored once.

    With an announced size: written straight into the final ``bytes`` object (``_fresh_bytes``),
    else into one preallocated ``bytearray``. Without: a ``bytearray`` that grows in place (it
    over-allocates by 1/8; chunks are never re-joined), copied once into ``bytes`` by ``take``
    (a bytearray gives its memory back only once under half used, so moving it piecewise would
    not lower the peak). ``buffer`` is what the decoder reads; ``received`` counts the bytes
    stored."""

    __slots__ = ("_view", "buffer", "fixed", "received")

    def __init__(self, total: int | None) -> None:
        preallocate = total is not None and total <= PREALLOCATE_LIMIT and total > 0
        # Whether ``buffer`` is never resized or moved (readable while it fills, as it fills).
        self.fixed = preallocate
        fresh = _fresh_bytes(total) if preallocate and total else None
        self.buffer: bytes | bytearray
        self._view: memoryview | None
        if fresh is not None:
            self.buffer, self._view = fresh
        else:
            self.buffer = bytearray(total) if preallocate and total else bytearray()
            self._view = None
        self.received = 0

    def add(self, view: memoryview) -> None:
        start = self.received
        end = start + view.nbytes
        if self._view is not None:
            self._view[start:end] = view
        elif start == len(self.buffer):
            assert isinstance(self.buffer, bytearray)
            self.buffer += view
        else:
            assert isinstance(self.buffer, bytearray)
            self.buffer[start:end] = view
        self.received = end

    def take(self) -> bytes:
        """The bytes received, as ``bytes``; the assembler lets go of them."""
        buffer, self.buffer = self.buffer, bytearray()
        view, self._view = self._view, None
        n = self.received
        if view is not None:
            view.release()
            if n == len(buffer):
                assert isinstance(buffer, bytes)
                return buffer  # filled in place: no copy
            return bytes(memoryview(buffer)[:n])
        with memoryview(buffer) as whole:
            return bytes(whole[:n])  # no announced size: one copy (peak ~2x)


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
    hasher: _Hasher | None = None
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
        hasher = _Hasher(store.buffer if store.fixed else None, total)
        # The decoder reads the assembler's buffer (one bytearray, grown in place): no copy.
        decoder = StreamingDecoder(store.buffer)
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
            await hasher.update(chunk, view, store.received)
            if size <= DECODE_SLICE:
                decoder.advance(size)
            else:
                for start in range(0, size, DECODE_SLICE):
                    decoder.advance(min(DECODE_SLICE, size - start))
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
        digest = await hasher.digest()
    except BaseException:
        if hasher is not None:
            hasher.stop()
        # Stopped early (or the bytes are bad): close the source, or release it if its body was
        # read whole. The error that stopped us is what the caller needs; a failure to close on
        # top of it is dropped.
        with contextlib.suppress(Exception):
            await (stream.release() if complete else stream.aclose())
        raise
    await stream.release()
    return store, digest, info


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
