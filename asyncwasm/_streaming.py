"""Streaming compilation (JS ``WebAssembly.compileStreaming``/``instantiateStreaming``).

Neither engine compiles a module piece by piece, so streaming means: every chunk is decoded by
our incremental decoder as it arrives (header, section ids, order and sizes, the sections before
the code section in full), hashed as it arrives and stored once, in the very ``bytes`` object
the compile path gets (:class:`_Assembler`: no final copy, with or without a length).
Malformed bytes fail at the chunk that holds the first bad byte, before the rest is read; when
the last byte has arrived, the runtime's compile path starts at once with the bytes, their
sha256 (for the cache: nothing is hashed twice) and the decoder's :class:`ModuleInfo` (nothing
decoded twice).

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
import sys
import threading
import weakref
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
# How far past the bytes received a section's announced size may grow the storage at once
# (or as far as the bytes received, if more): large sections arrive in one or two steps.
HINT_AHEAD: Final = 64 << 20
# The most room added past the bytes received when nothing is known about what follows (else
# 1/8 of them).
UNKNOWN_ROOM: Final = 1 << 20
# The least room a growing buffer gets (tiny chunks must not make many small reallocations).
MIN_ROOM: Final = 4096


def _capi(name: str, restype: Any, *argtypes: Any) -> Any:
    """A private handle on a function of CPython's C API (``pythonapi[name]`` is a new function
    object each time: the restype set here is seen by nobody else)."""
    function = ctypes.pythonapi[name]
    function.restype = restype
    function.argtypes = argtypes
    return function


try:
    if sys.implementation.name != "cpython":
        raise AttributeError("not CPython")
    # Every one of them keeps the GIL (``pythonapi`` is a PyDLL) and raises what it sets.
    _new_bytes = _capi(
        "PyBytes_FromStringAndSize", ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ssize_t
    )
    _resize_bytes = _capi(
        "_PyBytes_Resize", ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.c_ssize_t
    )
    _bytes_data = _capi("PyBytes_AsString", ctypes.c_void_p, ctypes.c_void_p)
    _decref = _capi("Py_DecRef", None, ctypes.c_void_p)
    _memory_view = _capi(
        "PyMemoryView_FromMemory", ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int
    )
except (AttributeError, OSError):  # not CPython: the bytearray fallback of ``_Assembler``
    _new_bytes = None


_READ: Final = 0x100  # PyBUF_READ
_WRITE: Final = 0x200  # PyBUF_WRITE


def _drop_reference(cell: ctypes.c_void_p) -> None:
    """Give up the reference held in ``cell`` (once: the cell is emptied)."""
    address, cell.value = cell.value, None
    if address is not None:
        _decref(address)


class _PrivateBytes:
    """A ``bytes`` object that only this object knows of, filled through a writable view and
    grown in place, then handed out once by :meth:`take` (what C code does with
    ``PyBytes_FromStringAndSize(NULL, n)`` and ``_PyBytes_Resize``).

    ``_PyBytes_Resize`` needs the object's only reference, and that is what this holds: the
    object's address, as a raw reference no Python code can reach (no ``bytes`` exists on the
    Python side until ``take``), so nothing can see its contents change or its size move. It
    reallocates the object (for a large one, glibc's ``realloc`` moves pages with ``mremap``:
    nothing is copied), so every view of the storage dies with a resize: :meth:`view` gives a
    new one, and whoever reads from another thread takes the owner's lock (``_Assembler``).
    The reference is given up exactly once: by ``take``, by ``discard`` or when this object is
    collected.
    """

    __slots__ = ("__weakref__", "_cell", "_release", "capacity")

    available: Final = _new_bytes is not None

    def __init__(self, capacity: int) -> None:
        # At least 2 bytes: CPython shares its empty and 1-byte objects (a fresh object is
        # what the only-reference rule needs).
        capacity = max(capacity, 2)
        self._cell = ctypes.c_void_p(_new_bytes(None, capacity))  # a new reference: ours
        self._release = weakref.finalize(self, _drop_reference, self._cell)
        self.capacity = capacity

    def view(
        self, start: int = 0, end: int | None = None, *, writable: bool = True
    ) -> memoryview | None:
        """A view of the storage (``start`` to ``end``, by default all of it), valid until the
        next resize, ``take`` or ``discard``: the caller releases it before. None once the
        storage was let go of."""
        if self._cell.value is None:
            return None
        end = self.capacity if end is None else end
        address = _bytes_data(self._cell) + start
        view: memoryview = _memory_view(address, end - start, _WRITE if writable else _READ)
        return view

    def resize(self, capacity: int) -> None:
        """Make the storage ``capacity`` bytes long (at least 2), keeping its contents up to
        there. Every view of it is invalid afterwards."""
        capacity = max(capacity, 2)
        # On failure (MemoryError) the C API freed the object and emptied the cell itself.
        _resize_bytes(ctypes.byref(self._cell), capacity)
        self.capacity = capacity

    def take(self, size: int) -> bytes:
        """The first ``size`` bytes, as the ``bytes`` object itself; this lets go of it."""
        if size != self.capacity:  # 0 and 1 give CPython's shared objects (refcounted)
            _resize_bytes(ctypes.byref(self._cell), size)
        data: bytes = ctypes.cast(self._cell, ctypes.py_object).value  # a new reference...
        self._release()  # ...and ours given up: ``data`` is now the only one
        return data

    def discard(self) -> None:
        """Free the storage now (its views must be dead)."""
        self._release()


class _Hasher:
    """The stream's sha256, computed beside the event loop once the stream is large.

    hashlib releases the GIL while it hashes more than 2 KiB, so a helper thread hashes on the
    second core while the loop copies and decodes the next chunk: ingest time is about the
    larger of the two, not their sum (sha256 and the copy run at about the same speed).

    The thread hashes the stored bytes in place (``_Assembler.readable``, holding the
    assembler's lock, so the storage can't move or be freed meanwhile), as far as they are
    stored, in as large pieces as it can: the thread gets the GIL back only when the loop lets
    go of it (every switch interval while the loop is busy), so one ``update`` per chunk would
    leave it waiting most of the time. It starts as soon as the module is known to have
    ``THREAD_FROM`` bytes or more (announced, vouched for by the decoder, or received): a
    smaller stream is hashed in the calling thread (a thread costs more than it saves), and
    so is any stream whose storage another thread can't read (a growing ``bytearray``, off
    CPython). A backlog over ``MAX_BACKLOG`` makes the loop yield until the thread catches up.
    """

    THREAD_FROM: Final = 8 << 20
    MAX_BACKLOG: Final = 16 << 20

    __slots__ = ("_consumed", "_done", "_queue", "_queued", "_sha", "_store")

    def __init__(self, store: _Assembler) -> None:
        self._sha = hashlib.sha256()
        self._store = store
        self._queue: queue.SimpleQueue[int | None] | None = None
        # Bytes handed over (written by the calling thread only) and hashed by the thread
        # (written by it only): each counter has one writer, so their difference is a safe
        # backlog.
        self._queued = 0
        self._consumed = 0
        self._done = threading.Event()

    async def update(self, view: memoryview, end: int, hint: int) -> None:
        """Hash ``view``: the bytes just stored, up to ``end``, of a module of at least
        ``hint`` bytes."""
        if self._queue is None:
            if max(end, hint) < self.THREAD_FROM or not self._store.shared_reads:
                self._sha.update(view)  # before the next await: the producer may reuse it
                return
            self._consumed = self._queued = end - view.nbytes  # hashed here so far
            self._queue = queue.SimpleQueue()
            threading.Thread(target=self._run, name="asyncwasm-sha256", daemon=True).start()
        self._queue.put(end)  # stored up to ``end``: the thread reads it from the storage
        self._queued = end
        # Polled: the condition is set by another thread, and an anyio.Event can only be set
        # from its loop (a thread hop per chunk would cost more than this rare wait).
        while self._queued - self._consumed > self.MAX_BACKLOG:  # noqa: ASYNC110
            await anyio.sleep(0.001)

    def _run(self) -> None:
        work = self._queue
        store = self._store
        assert work is not None
        try:
            finished = False
            while not finished:
                # Everything handed over meanwhile, at once: one update.
                batch = [work.get()]
                while not work.empty():
                    batch.append(work.get_nowait())
                if batch[-1] is None:  # the last thing ever put (``digest``, ``stop``)
                    finished = True
                    batch.pop()
                if not batch:
                    continue
                end = batch[-1]
                assert end is not None
                with store.lock:
                    piece = store.readable(self._consumed, end)
                    if piece is None:  # let go of: the stream stopped
                        return
                    try:
                        self._sha.update(piece)
                    finally:
                        piece.release()
                self._consumed = end
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
    """The module's bytes as they arrive, stored once, in the ``bytes`` object handed on.

    With an announced size, that object is allocated at once and never moves. Without one, it
    grows in place (:class:`_PrivateBytes`), to sizes the decoder vouches for (``hint``: the
    end of the section being received, so the storage is mostly exactly the module's size and
    grows a few times, in large steps), else by 1/8 of what is needed (at most ``UNKNOWN_ROOM``);
    ``take`` trims it to the bytes received. Either way the module's bytes exist once: peak
    memory ~1x the module, no final copy. Not CPython: a ``bytearray`` (preallocated, or grown
    by ``+=``), copied once by ``take``.

    ``buffer`` is what the decoder reads; it changes when the storage moves (``make_room``
    returns True: ``StreamingDecoder.rebind``). A thread may read the stored bytes in place
    (``readable``) while it holds ``lock`` if ``shared_reads``: the storage neither moves nor
    is freed while the lock is held.
    """

    __slots__ = ("_array", "_bytes", "_limit", "_view", "fixed", "lock", "received")

    def __init__(self, total: int | None, limit: int = MAX_MODULE_SIZE) -> None:
        # Whether the storage never moves (an announced size, preallocated).
        self.fixed = total is not None and 0 < total <= PREALLOCATE_LIMIT
        self._limit = limit  # no more bytes than this will be stored (max_bytes, the JS limit)
        self.lock = threading.Lock()
        self.received = 0
        self._bytes: _PrivateBytes | None = None
        self._view: memoryview | None = None
        self._array: bytearray | None = None
        if not _PrivateBytes.available:
            self._array = bytearray(total if self.fixed and total else 0)
        elif self.fixed and total:
            self._renew(total)

    @property
    def buffer(self) -> memoryview | bytearray:
        """The storage, as the decoder reads it (may be longer than the bytes received)."""
        if self._array is not None:
            return self._array
        if self._view is None:
            self._renew(MIN_ROOM)
        assert self._view is not None
        return self._view

    @property
    def shared_reads(self) -> bool:
        """Whether ``readable`` may be called from another thread (under ``lock``)."""
        return self._array is None or self.fixed

    def make_room(self, size: int, hint: int = 0) -> bool:
        """Room for ``size`` more bytes (the decoder says the module has at least ``hint``);
        True when the storage moved (``buffer`` changed)."""
        if self._array is not None:
            return False  # grown by ``add`` itself
        needed = self.received + size
        capacity = self._bytes.capacity if self._bytes is not None else 0
        if needed <= capacity:
            # Grow ahead of need when the decoder vouches for more and the room left is under
            # 1/8, but only if no thread is reading (the loop must not wait for it now).
            if self.fixed or hint <= capacity or capacity - needed >= capacity >> 3:
                return False
            target = self._target(needed, hint)
            if target <= capacity or not self.lock.acquire(blocking=False):
                return False
            try:
                self._renew(target)
            finally:
                self.lock.release()
            return True
        with self.lock:  # waits for a thread's read in progress (one hashing step)
            self._renew(self._target(needed, hint))
        return True

    def _target(self, needed: int, hint: int) -> int:
        if hint > needed:
            # What the decoder vouches for, within bounds: a section header (a few bytes) is
            # not trusted with more than ``HINT_AHEAD`` bytes, or as many as arrived, beyond
            # what arrived.
            target = min(hint, needed + max(needed, HINT_AHEAD))
        else:
            # Nothing known past these bytes (a section header is arriving, or the module ends):
            # a little room, the next chunk usually brings a section size.
            target = max(needed + min(needed >> 3, UNKNOWN_ROOM), MIN_ROOM)
        return max(needed, min(target, self._limit))

    def _renew(self, capacity: int) -> None:
        """Make the storage ``capacity`` bytes long (with ``lock`` held, or no thread)."""
        if self._view is not None:
            self._view.release()  # a view kept by mistake fails loudly, never reads freed memory
            self._view = None
        if self._bytes is None:
            self._bytes = _PrivateBytes(capacity)
        else:
            self._bytes.resize(capacity)
        self._view = self._bytes.view()
        assert self._view is not None

    def add(self, view: memoryview) -> None:
        """Store the next bytes (after ``make_room`` for them)."""
        start = self.received
        end = start + view.nbytes
        if self._view is not None:
            self._view[start:end] = view
        else:
            array = self._array
            assert array is not None
            if start == len(array):
                array += view
            else:
                array[start:end] = view
        self.received = end

    def readable(self, start: int, end: int) -> memoryview | None:
        """A read-only view of stored bytes, valid while ``lock`` is held (the caller holds it
        and releases the view first); None once the storage was let go of."""
        if self._array is not None:
            return memoryview(self._array)[start:end].toreadonly()
        return self._bytes.view(start, end, writable=False) if self._bytes is not None else None

    def take(self) -> bytes:
        """The bytes received, as ``bytes``; the assembler lets go of them."""
        with self.lock:  # no thread reads any more (the digest was awaited): never waits
            self._drop_view()
            storage, self._bytes = self._bytes, None
            array, self._array = self._array, None
            n = self.received
            if storage is not None:
                return storage.take(n)  # filled in place: no copy
            if array is None:
                return b""
            with memoryview(array) as whole:
                return bytes(whole[:n])  # not CPython: one copy (peak ~2x)

    def discard(self) -> None:
        """Free the bytes (the stream stopped early), once a thread reading them is done with
        its current piece."""
        self._drop_view()
        self._array = None
        with self.lock:
            storage, self._bytes = self._bytes, None
            if storage is not None:
                storage.discard()

    def _drop_view(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None


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
    store: _Assembler | None = None
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
        limit = MAX_MODULE_SIZE if max_bytes is None else min(max_bytes, MAX_MODULE_SIZE)
        store = _Assembler(total, limit)
        hasher = _Hasher(store)
        # The decoder reads the assembler's storage in place (no copy of its own), wherever
        # the storage moves as it grows.
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
            hint = decoder.size_hint
            if store.make_room(size, hint):
                decoder.rebind(store.buffer)
            store.add(view)  # copied now: the producer may reuse its buffer
            await hasher.update(view, store.received, max(hint, total or 0))
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
        if store is not None:
            store.discard()
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
