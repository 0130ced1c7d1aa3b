"""JSPI on wasmer: promising calls run in a greenlet, which a suspending import switches out of.

wasmer 1.1 has no async calls, fuel or interrupts. A greenlet gives the wasm call a stack of its
own: a promising call starts the wasm call inside a new :class:`_PromisingGreenlet`; a suspending
import called there hands its awaitable to the driver by switching to the greenlet's parent (the
event loop's greenlet, where the driver coroutine runs), and the driver switches back with the
value (or throws the exception into the greenlet, where it propagates out of the host function
as from any host function). Any number of calls, on the same instance or not, can be suspended at
once; each keeps its slice of the C stack on the heap while switched out.

SuspendError: a suspending import may switch out only when the current greenlet is a promising
call's and no Python host frame sits between it and the wasm call that greenlet started
(``blocked`` counts those: plain host functions running, and the suspending import's own
``start``); otherwise it raises ``SuspendError`` without calling ``start``.

Cancellation: the cancellation exception raised where the driver awaits is thrown into the
greenlet, unwinds the wasm frames like any host exception, and propagates out of the driver. No
preemption: running wasm cannot be interrupted (``features.preemption`` is False).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Final

from greenlet import getcurrent, greenlet

from .._exceptions import SuspendError
from ._base import EngineValue, SuspendingStart, close_awaitable

__all__ = ["PromisingGreenlet", "call_promising", "plain_host", "suspending_host"]


class _PromisingGreenlet(greenlet):  # type: ignore[misc,unused-ignore]
    """The greenlet running one promising call."""

    blocked: int = 0


PromisingGreenlet: Final = _PromisingGreenlet
"""The class of a promising call's greenlet (the wasmer engine tests for it on host calls)."""


class _Suspend:
    """What a suspending import hands the driver: the awaitable to wait for."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Any) -> None:
        self.awaitable = awaitable


_MESSAGE: Final = (
    "a Suspending import was called with no promising call below it "
    "(call the export through asyncwasm.promising)"
)


def plain_host(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a plain host function: while it runs, nothing it calls may suspend the promising
    call below it (there is a Python frame in between)."""

    def run(*args: Any) -> Any:
        g = getcurrent()
        if g.__class__ is not _PromisingGreenlet:
            return fn(*args)
        g.blocked += 1
        try:
            return fn(*args)
        finally:
            g.blocked -= 1

    return run


def suspending_host(
    start: SuspendingStart, *, blocking: bool = False
) -> Callable[..., Sequence[EngineValue]]:
    """The host function body of a suspending import (see ``Engine.func_new_suspending``)."""

    def run(*args: Any) -> Sequence[EngineValue]:
        g = getcurrent()
        if g.__class__ is not _PromisingGreenlet or g.blocked:
            if blocking:
                return _blocking_result(start(*args))
            raise SuspendError(_MESSAGE)
        g.blocked += 1
        try:
            out = start(*args)
        finally:
            g.blocked -= 1
        if _awaitable(out):
            # Suspend: the driver awaits it on the loop and switches back with its value.
            result: Sequence[EngineValue] = g.parent.switch(_Suspend(out))
            return result
        return out  # type: ignore[return-value,unused-ignore]

    return run


def _awaitable(out: object) -> bool:
    """``inspect.isawaitable``, quicker for the usual results (a list or tuple of values) and
    for awaitables of a class with ``__await__`` (what the ABC check would find)."""
    cls = out.__class__
    if cls is list or cls is tuple:
        return False
    return getattr(cls, "__await__", None) is not None or inspect.isawaitable(out)


def _blocking_result(out: object) -> Sequence[EngineValue]:
    """The results of a ``blocking`` suspending import reached outside a promising call."""
    if inspect.isawaitable(out):
        close_awaitable(out)
        raise TypeError("a blocking Suspending import returned an awaitable outside promising")
    return out  # type: ignore[return-value]


async def call_promising(call: Callable[..., Any], args: Sequence[EngineValue]) -> Any:
    """Run ``call(*args)`` (a wasm call) as a promising call, driving its greenlet; what it
    returns."""
    g = _PromisingGreenlet(call)
    value: Any = None
    error: BaseException | None = None
    pending: Any = None
    try:
        while True:
            if error is not None:
                thrown, error = error, None
                out = g.throw(thrown)
            else:
                out = g.switch(value) if g else g.switch(*args)
            if g.dead:
                return out
            if not isinstance(out, _Suspend):  # pragma: no cover - nothing else switches here
                raise RuntimeError("asyncwasm: unexpected switch out of a promising call")
            pending = out.awaitable
            try:
                value = await pending
            except BaseException as exc:  # cancellation too: unwind the wasm, then re-raise
                value, error = None, exc
            pending = None
    finally:
        if pending is not None:
            close_awaitable(pending)
        if not g.dead and g:
            # The driver itself was closed (GeneratorExit) while the greenlet was switched
            # out: unwind the wasm frames so the greenlet doesn't linger.
            with contextlib.suppress(BaseException):
                g.throw()
