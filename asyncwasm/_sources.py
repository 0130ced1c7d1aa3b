"""Streaming sources: turn what ``compile_streaming`` is given into an async stream of chunks.

Accepted, by duck typing (no HTTP client is imported here):

- an async iterable or async iterator of buffer-protocol chunks;
- an awaitable resolving to any accepted source (JS ``Promise<Response>``), awaited as many
  times as it takes;
- an httpx-like response (``aiter_bytes()``, ``status_code``, ``headers``, ``aclose()``);
- an aiohttp-like response (``content.iter_any()``, ``status``, ``headers``, ``close()``).

Responses are checked as JS checks a ``Response``: a non-2xx status and a ``Content-Type`` that is
not ``application/wasm`` (parameters ignored) raise ``TypeError``. A ``Content-Length`` (when the
body is not content-encoded) becomes the stream's announced ``total``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final

import anyio

__all__ = ["ChunkStream", "is_incomplete_body", "open_stream"]

# How long closing a source may take once consumption stopped early (shielded from cancellation).
CLOSE_TIMEOUT: Final = 5.0

_COMPILE_HINT: Final = (
    "; for a module already in memory use `await asyncwasm.compile(source)` "
    "(or `asyncwasm.instantiate`)"
)


class ChunkStream:
    """An async stream of chunks with what is known about it, and how to close it.

    ``total`` is the announced size (``Content-Length``) or ``None``. :meth:`aclose` stops the
    source early (closing the iterator and the response behind it); :meth:`release` is called
    after the body was read to the end.
    """

    __slots__ = ("_closers", "_releasers", "chunks", "total")

    def __init__(
        self,
        chunks: AsyncIterator[object],
        total: int | None = None,
        closers: tuple[Callable[[], object], ...] = (),
        releasers: tuple[Callable[[], object], ...] = (),
    ) -> None:
        self.chunks = chunks
        self.total = total
        self._closers = closers
        self._releasers = releasers

    async def aclose(self) -> None:
        """Close the source after an early stop; shielded so that cancellation can't skip it.

        Every closer runs even if an earlier one raises; the first error is re-raised."""
        await _run_all(self._closers)

    async def release(self) -> None:
        """Hand back what the source holds once its body has been read to the end."""
        await _run_all(self._releasers)


async def _run_all(calls: tuple[Callable[[], object], ...]) -> None:
    if not calls:
        return
    error: BaseException | None = None
    with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
        for call in calls:
            try:
                result = call()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                if error is None:
                    error = exc
    if error is not None:
        raise error


# The HTTP clients' errors for a body cut short (by module and class name: nothing is imported):
# httpx.RemoteProtocolError ("peer closed connection without sending complete message body"),
# aiohttp.ClientPayloadError ("Response payload is not completed") and what it wraps.
_INCOMPLETE_BODY_ERRORS: Final = frozenset(
    {
        ("httpx", "RemoteProtocolError"),
        ("httpcore", "RemoteProtocolError"),
        ("aiohttp", "ClientPayloadError"),
        ("aiohttp", "ContentLengthError"),
    }
)


def is_incomplete_body(error: BaseException) -> bool:
    """Whether ``error``, raised while reading a response body, says the body was cut short."""
    for cls in type(error).__mro__:
        package = cls.__module__.partition(".")[0]
        if (package, cls.__name__) in _INCOMPLETE_BODY_ERRORS:
            return True
    return False


def _is_buffer(obj: object) -> bool:
    try:
        memoryview(obj)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def _header(headers: object, name: str) -> str | None:
    """A header's value from a case-insensitive (httpx, multidict) or plain mapping."""
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    value = getter(name) if callable(getter) else None
    if value is None and isinstance(headers, Mapping):
        for key, item in headers.items():
            if isinstance(key, str) and key.lower() == name:
                value = item
                break
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if isinstance(value, str) else None


def _mime_essence(content_type: str) -> str:
    """``type/subtype`` of a ``Content-Type`` value, lowercased, parameters dropped."""
    return content_type.split(";", 1)[0].strip(" \t").lower()


def _announced_length(headers: object) -> int | None:
    """``Content-Length`` as the size of the body the client will hand out, if it says so.

    With a content coding (gzip, br...) the client hands out decoded bytes, which the header
    does not count, so it is ignored then."""
    coding = _header(headers, "content-encoding")
    if coding is not None and coding.strip().lower() not in ("", "identity"):
        return None
    value = _header(headers, "content-length")
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def _status(response: object) -> int | None:
    for name in ("status_code", "status"):
        status = getattr(response, name, None)
        if isinstance(status, int) and not isinstance(status, bool):
            return status
    return None


def _aiohttp_content(source: object) -> Any:
    """The ``content`` stream of an aiohttp-like response, or None."""
    try:
        content = getattr(source, "content", None)
    except Exception:  # e.g. a property that refuses to run before the body is read
        return None
    if content is not None and (
        callable(getattr(content, "iter_any", None))
        or callable(getattr(content, "iter_chunked", None))
    ):
        return content
    return None


def _method(obj: object, name: str) -> Callable[[], object] | None:
    method = getattr(obj, name, None)
    return method if callable(method) else None


async def _response_stream(response: object, chunks: AsyncIterator[object]) -> ChunkStream:
    """Check a response as JS checks one, then stream its body."""
    closers = tuple(
        m
        for m in (
            _method(chunks, "aclose"),
            _method(response, "aclose") or _method(response, "close"),
        )
        if m is not None
    )
    status = _status(response)
    headers = getattr(response, "headers", None)
    problem: str | None = None
    if status is not None and not 200 <= status <= 299:
        problem = f"HTTP status {status}: compile_streaming needs a successful (2xx) response"
    else:
        content_type = _header(headers, "content-type")
        if content_type is not None and _mime_essence(content_type) != "application/wasm":
            problem = f"Content-Type {content_type!r}: compile_streaming needs 'application/wasm'"
    if problem is not None:
        await ChunkStream(chunks, closers=closers).aclose()
        raise TypeError(problem)
    release = _method(response, "aclose") or _method(response, "release")
    return ChunkStream(
        chunks,
        _announced_length(headers),
        closers,
        (release,) if release is not None else (),
    )


async def open_stream(source: object) -> ChunkStream:
    """Resolve ``source`` (awaiting it as needed) into a :class:`ChunkStream`.

    Raises ``TypeError`` for what is not a streaming source (buffers and sync iterables point at
    ``compile()``) and for responses that JS would refuse (status, Content-Type).
    """
    while True:
        if isinstance(source, str) or _is_buffer(source):
            raise TypeError(
                f"compile_streaming() takes an async source (async iterable of chunks, HTTP "
                f"response or an awaitable of one), not {type(source).__name__}{_COMPILE_HINT}"
            )
        aiter_bytes = _method(source, "aiter_bytes")
        chunks: Any
        if aiter_bytes is not None:  # httpx.Response and look-alikes
            chunks = aiter_bytes()
            if not hasattr(chunks, "__anext__"):
                raise TypeError(f"{type(source).__name__}.aiter_bytes() is not an async iterator")
            return await _response_stream(source, chunks)
        content = _aiohttp_content(source)
        if content is not None:  # aiohttp.ClientResponse and look-alikes
            iter_any = _method(content, "iter_any")
            chunks = iter_any() if iter_any is not None else content.iter_chunked(1 << 16)
            return await _response_stream(source, chunks.__aiter__())
        make_iterator = _method(source, "__aiter__")
        if make_iterator is not None:
            iterator: Any = make_iterator()
            if not hasattr(iterator, "__anext__"):
                raise TypeError(f"{type(source).__name__}.__aiter__() is not an async iterator")
            closer = _method(iterator, "aclose")
            return ChunkStream(iterator, closers=(closer,) if closer is not None else ())
        if hasattr(source, "__anext__"):  # an async iterator without __aiter__
            closer = _method(source, "aclose")
            stream: Any = source
            return ChunkStream(stream, closers=(closer,) if closer is not None else ())
        if inspect.isawaitable(source):
            source = await _await(source)
            continue
        if hasattr(source, "__iter__"):
            raise TypeError(
                f"compile_streaming() takes an async source, not the sync iterable "
                f"{type(source).__name__}: join its chunks{_COMPILE_HINT}"
            )
        raise TypeError(
            f"compile_streaming() takes an async iterable of buffer chunks, an HTTP response "
            f"(httpx, aiohttp) or an awaitable of one, not {type(source).__name__}"
        )


async def _await(awaitable: Awaitable[object]) -> object:
    return await awaitable


def discard(source: object) -> None:
    """Close an awaitable we refuse before awaiting it (a coroutine, or a client's request
    object wrapping one, such as aiohttp's), so that it does not warn it was never awaited."""
    if not inspect.isawaitable(source):
        return
    close = _method(source, "close")
    if close is None:
        return
    with contextlib.suppress(Exception):
        result = close()
        if inspect.iscoroutine(result):
            result.close()
