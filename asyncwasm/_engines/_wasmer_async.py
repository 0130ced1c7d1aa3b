"""JSPI on wasmer: promising calls run in a worker greenlet, which a suspending import switches
out of.

wasmer 1.1 has no async calls, fuel or interrupts. A greenlet gives the wasm call a stack of its
own. A promising call takes an idle worker greenlet of this thread (or makes one), makes the
greenlet awaiting the call (the driver's) its parent, and switches into it with the wasm call to
make; the worker runs it and switches back with the outcome, then waits for the next call. Workers
are reused: creating a greenlet per call cost more than the rest of a call that never suspends.

A suspending import called in a worker drives the awaitable ``start`` returned right there, step
by step: it runs to its first suspension point in the worker (an awaitable that completes at once
never leaves the worker), and every value it yields to the event loop is handed to the driver by
switching to the worker's parent; the driver yields it to the loop as an ``await`` would and
switches back with what the loop sends (or throws in what it throws: cancellation). So one switch
out and back per suspension, with no awaitable layers of our own between the loop and the user's
coroutine. Any number of calls, on the same instance or not, can be suspended at once, one worker
each; a worker keeps its slice of the C stack on the heap while switched out.

The worker runs with the driver's ``contextvars`` context (the same object, as a coroutine awaited
by the driver would), so imports see and set the awaiting task's context variables.

SuspendError: a suspending import may switch out only when the current greenlet is a worker and no
Python host frame sits between it and the wasm call that worker runs (``blocked`` counts those:
plain host functions running, and a suspending import's ``start`` and awaitable); otherwise it
raises ``SuspendError`` without calling ``start``.

Cancellation: the cancellation exception the loop throws at the driver's yield is thrown into the
awaitable inside the worker; if it propagates, it unwinds the wasm frames like any host exception
and comes out of the driver. Closing the driver closes the awaitable and unwinds the wasm the same
way. The worker is then idle and reusable. No preemption: running wasm cannot be interrupted
(``features.preemption`` is False).
"""

from __future__ import annotations

import inspect
import threading
import types
from collections.abc import Callable, Generator, Sequence
from typing import Any, Final

from greenlet import getcurrent, greenlet

from .._exceptions import SuspendError
from ._base import EngineValue, SuspendingStart, close_awaitable

__all__ = ["PromisingGreenlet", "call_promising", "plain_host", "suspending_host"]


class _PromisingGreenlet(greenlet):  # type: ignore[misc,unused-ignore]
    """A worker greenlet running promising calls, one at a time."""

    blocked: int = 0


PromisingGreenlet: Final = _PromisingGreenlet
"""The class of a promising call's greenlet (the wasmer engine tests for it on host calls)."""

# What a worker switches to its driver with: (kind, payload).
_DONE: Final = 0  # the call returned payload
_RAISED: Final = 1  # the call raised payload
_YIELD: Final = 2  # a suspending import's awaitable yielded payload to the event loop

_MAX_IDLE: Final = 16
"""Idle workers kept per thread (more are made while many calls are suspended at once)."""


class _Idle(threading.local):
    """This thread's idle workers (greenlets belong to their thread)."""

    def __init__(self) -> None:
        self.workers: list[_PromisingGreenlet] = []


_idle: Final = _Idle()

_MESSAGE: Final = (
    "a Suspending import was called with no promising call below it "
    "(call the export through asyncwasm.promising)"
)


_PADDING: Final = 32
"""Python frames a new worker is started below its first caller's stack (see ``_below``)."""


def _below(depth: int, switch: Callable[..., Any], *args: Any) -> Any:
    """``switch(*args)``, called ``depth`` Python frames deeper on the C stack.

    A greenlet's stack starts where it is first switched into, and a switch saves and restores
    whatever part of the current greenlet's stack lies below that start. A worker is reused by
    calls awaited at different depths: started this far below its first caller, a later caller
    up to that much deeper shares no stack with it, and a switch copies none of the caller's
    stack (started level with its first caller, each switch from a caller 50 frames deeper
    copied enough to triple the cost of a round trip). The price: code the worker runs (the
    wasm call's host functions) has this many frames less of the recursion limit, which a
    greenlet inherits from where it starts.
    """
    if depth:
        return _below(depth - 1, switch, *args)
    return switch(*args)


def _work(call: Callable[..., Any], args: Sequence[Any]) -> None:
    """A worker's body: run the calls its drivers switch in, report each one's outcome."""
    this = getcurrent()
    while True:
        try:
            message: tuple[int, Any] = (_DONE, call(*args))
        except BaseException as exc:  # the driver re-raises it, whatever it is
            message = (_RAISED, exc)
        del call, args
        # Idle from here until the next call switches in (a GreenletExit thrown here when an
        # idle worker is dropped ends the greenlet, as it should).
        call, args = this.parent.switch(message)


@types.coroutine
def _drive(
    call: Callable[..., Any],
    args: Sequence[Any],
    nresults: int,
    check: Callable[[BaseException], None],
) -> Generator[Any, Any, tuple[EngineValue, ...]]:
    here = getcurrent()
    idle = _idle.workers
    if idle:
        worker = idle.pop()
        if worker.parent is not here:
            worker.parent = here
        # The awaiting task's context itself, not a copy: what an awaited coroutine would see.
        context = here.gr_context
        if worker.gr_context is not context:
            worker.gr_context = context
        kind, payload = worker.switch(call, args)
    else:
        worker = _PromisingGreenlet(_work)
        worker.gr_context = here.gr_context
        if here.__class__ is _PromisingGreenlet:
            # Nested (an import's coroutine making a promising call): already below every
            # top-level caller, and padding each level would eat the recursion limit.
            kind, payload = worker.switch(call, args)
        else:
            kind, payload = _below(_PADDING, worker.switch, call, args)
    while kind == _YIELD:
        # Suspended: yield to the loop what the awaitable yielded, hand back what it answers.
        try:
            sent = yield payload
        except BaseException as exc:  # cancellation, or the driver closed (GeneratorExit)
            kind, payload = worker.throw(exc)
        else:
            kind, payload = worker.switch(sent)
    # Idle again (it keeps the last task's context until its next call; the pool is small).
    if len(idle) < _MAX_IDLE:
        idle.append(worker)
    if kind == _RAISED:
        check(payload)
        raise payload
    if nresults == 1:
        return (payload,)
    return () if nresults == 0 else tuple(payload)


call_promising: Final = _drive
"""``call_promising(call, args, nresults, check)``: an awaitable running ``call(*args)`` (a wasm
function with ``nresults`` results) as a promising call in a worker greenlet. It returns the
results as a tuple, or raises what the call raised after ``check(exc)`` (which raises the
exception to report instead, if any)."""


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
        # Blocked while ``start`` and its awaitable run: a Suspending import they reach through
        # a plain call has this host frame in between.
        g.blocked += 1
        try:
            out = start(*args)
            cls = out.__class__
            if cls is tuple or cls is list:  # the results, at once (checked first: the usual case)
                return out  # type: ignore[return-value,unused-ignore]
            if getattr(cls, "__await__", None) is not None or inspect.isawaitable(out):
                return _await(g, out)
            return out  # type: ignore[return-value,unused-ignore]
        finally:
            g.blocked -= 1

    return run


def _await(g: _PromisingGreenlet, awaitable: Any) -> Sequence[EngineValue]:
    """``await awaitable`` in the worker ``g``: step it here, suspending the wasm call (switching
    to the driver) at each value it yields to the event loop. As ``yield from`` does."""
    it = awaitable.__await__()
    send = getattr(it, "send", None) or _sender(it)
    switch = g.parent.switch  # the driver's greenlet, fixed for the call
    try:
        yielded = send(None)
        while True:
            try:
                sent = switch(_YIELD, yielded)
            except GeneratorExit:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
                raise
            except BaseException as exc:
                throw = getattr(it, "throw", None)
                if throw is None:
                    raise
                yielded = throw(exc)
            else:
                yielded = send(sent)
    except StopIteration as stop:
        result: Sequence[EngineValue] = stop.value
        return result


def _sender(it: Any) -> Callable[[Any], Any]:
    """``send`` for an iterator without one: ``next`` when sent ``None``, as ``yield from``."""

    def send(value: Any) -> Any:
        if value is None:
            return next(it)
        return it.send(value)  # AttributeError, as from ``yield from``

    return send


def _blocking_result(out: object) -> Sequence[EngineValue]:
    """The results of a ``blocking`` suspending import reached outside a promising call."""
    if inspect.isawaitable(out):
        close_awaitable(out)
        raise TypeError("a blocking Suspending import returned an awaitable outside promising")
    return out  # type: ignore[return-value]
