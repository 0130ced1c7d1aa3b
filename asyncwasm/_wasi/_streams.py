"""The standard streams, and the one interface behind which every blocking operation of WASI
sits: reading stdin, writing stdout/stderr, sleeping.

The syscalls are generators that *yield* a :class:`Blocking` request where they would block
and receive its result; a driver runs them. :func:`run_blocking` answers the requests by
blocking the thread (``WASI.start``, like ``node:wasi``); :func:`run_suspending` answers them
with awaitables (``WASI.start_async``), so that the wasm program is suspended instead. All the
rest of each syscall (checking arguments, reading and writing guest memory) is shared.
"""

from __future__ import annotations

import inspect
import io
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import IO, Any, TypeAlias

import anyio

from ._constants import WasiError

__all__ = [
    "Blocking",
    "Read",
    "Sink",
    "Sleep",
    "Stdin",
    "Syscall",
    "Write",
    "run_blocking",
    "run_suspending",
]


@dataclass(frozen=True)
class Read:
    """Read up to ``size`` bytes from stdin (``b""`` at its end)."""

    size: int


@dataclass(frozen=True)
class Write:
    """Write all of ``data`` to stdout (``stream == 1``) or stderr (``2``)."""

    stream: int
    data: bytes


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds``."""

    seconds: float


Blocking: TypeAlias = Read | Write | Sleep
Syscall: TypeAlias = Generator[Blocking, Any, int]
"""A syscall that may block: yields requests, returns its errno."""


class Stdin:
    """The guest's stdin: bytes, a binary file, or (async only) an async iterable of bytes."""

    def __init__(self, source: object) -> None:
        self._buffer = b""
        self._file: IO[bytes] | None = None
        self._aiter: AsyncIterator[Any] | None = None
        self._source = source
        if source is None:
            pass  # the interpreter's own stdin, looked up when read
        elif isinstance(source, (bytes, bytearray, memoryview)):
            self._buffer = bytes(source)
            self._source = b""
        elif isinstance(source, AsyncIterable):
            self._aiter = None  # made when first read, in start_async
        elif callable(getattr(source, "read", None)):
            self._file = source  # type: ignore[assignment]
        else:
            raise TypeError(
                "stdin must be bytes, a binary file or an async iterable of bytes, "
                f"not {type(source).__name__}"
            )

    @property
    def is_async(self) -> bool:
        return isinstance(self._source, AsyncIterable)

    @property
    def buffered(self) -> int:
        """Bytes readable without blocking (for ``poll_oneoff``)."""
        return len(self._buffer)

    def take(self, size: int) -> bytes | None:
        """Bytes available without blocking, or ``None`` when a read would block."""
        if self._buffer:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        if self._source == b"":
            return b""
        return None

    def read_blocking(self, size: int) -> bytes:
        data = self.take(size)
        if data is not None:
            return data
        if self.is_async:
            raise TypeError("an async iterable stdin needs WASI.start_async()")
        file = self._file if self._file is not None else sys.stdin.buffer
        read1 = getattr(file, "read1", None)
        # read1: what is there now (a pipe, a terminal line), not ``size`` bytes at all costs.
        chunk = read1(size) if read1 is not None else file.read(size)
        return bytes(chunk or b"")

    async def read_async(self, size: int) -> bytes:
        data = self.take(size)
        if data is not None:
            return data
        if not self.is_async:
            return await anyio.to_thread.run_sync(self.read_blocking, size, abandon_on_cancel=True)
        if self._aiter is None:
            self._aiter = aiter(self._source)  # type: ignore[arg-type]
        while True:
            try:
                chunk = bytes(await anext(self._aiter))
            except StopAsyncIteration:
                self._source = b""
                return b""
            if chunk:
                self._buffer = chunk[size:]
                return chunk[:size]


class Sink:
    """stdout or stderr: a binary file, a callable taking bytes, or ``None`` (the interpreter's
    own stream, looked up at each write so that redirections of ``sys.stdout`` are honoured)."""

    def __init__(self, target: object, stream: int) -> None:
        if (
            target is not None
            and not callable(target)
            and not callable(getattr(target, "write", None))
        ):
            raise TypeError(
                f"{'stdout' if stream == 1 else 'stderr'} must be a binary file, a callable "
                f"taking bytes, or None, not {type(target).__name__}"
            )
        self._target = target
        self._stream = stream

    def _write_fn(self) -> Callable[[bytes], object]:
        target = self._target
        if target is None:
            std = sys.stdout if self._stream == 1 else sys.stderr
            target = getattr(std, "buffer", None)
            if target is None:  # a text stream (e.g. io.StringIO under capture)
                return lambda data: std.write(data.decode("utf-8", "replace"))
        if callable(getattr(target, "write", None)):
            file = target
            flush = getattr(file, "flush", None)

            def write(data: bytes) -> None:
                file.write(data)  # type: ignore[attr-defined]
                if flush is not None and not isinstance(file, io.BytesIO):
                    flush()

            return write
        return target  # type: ignore[return-value]

    def write_blocking(self, data: bytes) -> None:
        result = self._write_fn()(data)
        if inspect.isawaitable(result):
            _close(result)
            raise TypeError("an async stdout/stderr callable needs WASI.start_async()")

    def write_started(self, data: bytes) -> Awaitable[Any] | None:
        """Write, or start writing: an awaitable to finish when the callable returned one."""
        result = self._write_fn()(data)
        return result if inspect.isawaitable(result) else None


def _close(awaitable: Awaitable[Any]) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


def run_blocking(call: Syscall, stdin: Stdin, sinks: tuple[Sink, Sink]) -> int:
    """Run a syscall to its end, blocking the thread where it blocks."""
    try:
        request = next(call)
        while True:
            if isinstance(request, Read):
                value: object = stdin.read_blocking(request.size)
            elif isinstance(request, Write):
                sinks[request.stream - 1].write_blocking(request.data)
                value = None
            else:
                time.sleep(request.seconds)
                value = None
            request = call.send(value)
    except StopIteration as done:
        return int(done.value)
    except WasiError as error:
        return int(error.errno)


def run_suspending(call: Syscall, stdin: Stdin, sinks: tuple[Sink, Sink]) -> int | Awaitable[int]:
    """Run a syscall up to its first request that would block: its errno if there is none, else
    an awaitable finishing it (a ``Suspending`` import then suspends the wasm program).

    Reads of buffered stdin and writes to files or plain callables are done at once: only real
    waiting (an async source or sink, a sleep) suspends the program."""
    try:
        request = next(call)
        while True:
            if isinstance(request, Read):
                value = stdin.take(request.size)
                if value is None:
                    return _finish(call, request, None, stdin, sinks)
            elif isinstance(request, Write):
                pending = sinks[request.stream - 1].write_started(request.data)
                if pending is not None:
                    return _finish(call, None, pending, stdin, sinks)
                value = None
            else:
                return _finish(call, request, None, stdin, sinks)
            request = call.send(value)
    except StopIteration as done:
        return int(done.value)
    except WasiError as error:
        return int(error.errno)


async def _finish(
    call: Syscall,
    request: Blocking | None,
    pending: Awaitable[Any] | None,
    stdin: Stdin,
    sinks: tuple[Sink, Sink],
) -> int:
    try:
        if pending is not None:  # a write that had started
            await pending
            request = call.send(None)
        while True:
            if isinstance(request, Read):
                value: object = await stdin.read_async(request.size)
            elif isinstance(request, Write):
                started = sinks[request.stream - 1].write_started(request.data)
                if started is not None:
                    await started
                value = None
            else:
                assert request is not None
                await anyio.sleep(request.seconds)
                value = None
            request = call.send(value)
    except StopIteration as done:
        return int(done.value)
    except WasiError as error:
        return int(error.errno)
