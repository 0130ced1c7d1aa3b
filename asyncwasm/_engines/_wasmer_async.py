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

Resuming in order: wasmer keeps a per-thread record of the wasm calls running, as a stack that
each call restores when it leaves. A suspended call that went back into wasm while a call
entered after it was still suspended left that record pointing at the wrong call: its next trap
or host exception crashed the process (wasmer's trap handler panicked, or the process
segfaulted). So a suspending import whose awaitable is done returns into wasm only once every
wasm call entered after its own has left (``_until_top``; meanwhile its driver waits, see
``_wait_top``): suspended calls finish in the reverse order of their start, a call whose
awaitable completed waiting for the later ones. A driver closed meanwhile is unwound once its
call is on top (``_wake_top``).

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

import anyio
import anyio.lowlevel
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
_WAIT: Final = 3  # the import is done, but wasm calls entered after this one are still running

_MAX_IDLE: Final = 16
"""Idle workers kept per thread (more are made while many calls are suspended at once)."""


class _Idle(threading.local):
    """This thread's workers (greenlets belong to their thread): the idle ones, and the order
    in which the others entered their wasm calls (see "Resuming in order" above)."""

    def __init__(self) -> None:
        self.workers: list[_PromisingGreenlet] = []
        # Workers inside a wasm call, in the order they entered it: wasmer's own per-thread
        # record of the wasm calls running, which it keeps as a stack.
        self.entered: list[_PromisingGreenlet] = []
        # Workers waiting to be on top of ``entered`` before returning into wasm, and the event
        # their driver waits on.
        self.waiting: dict[_PromisingGreenlet, Any] = {}
        # Workers whose driver was closed while others above them in ``entered`` were not theirs:
        # unwound once they are on top.
        self.closing: set[_PromisingGreenlet] = set()


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
    state = _idle
    entered = state.entered
    while True:
        try:
            entered.append(this)
            message: tuple[int, Any] = (_DONE, call(*args))
        except BaseException as exc:  # the driver re-raises it, whatever it is
            message = (_RAISED, exc)
        if entered and entered[-1] is this:  # on top, as _until_top makes sure (unless a
            entered.pop()  # signal handler raised before ``append``)
        if entered:
            _wake_top(state)
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
    while kind >= _YIELD:  # _YIELD or _WAIT
        if kind == _YIELD:
            # Suspended: yield to the loop what the awaitable yielded, hand back its answer.
            try:
                sent = yield payload
            except GeneratorExit:
                if not _may_unwind(worker):
                    _idle.closing.add(worker)  # unwound once on top (see _wake_top)
                    raise
                kind, payload = worker.throw(GeneratorExit)
            except BaseException as exc:  # cancellation
                kind, payload = worker.throw(exc)
            else:
                kind, payload = worker.switch(sent)
        else:
            # The import is done but must not return into wasm yet (see _until_top).
            try:
                yield from _wait_top(worker)
            except GeneratorExit:
                _idle.closing.add(worker)
                raise
            except BaseException as exc:  # kept by the worker until it may go on
                kind, payload = worker.throw(exc)
            else:
                kind, payload = worker.switch(None)
    # Idle again (it keeps the last task's context until its next call; the pool is small).
    if len(idle) < _MAX_IDLE:
        idle.append(worker)
    if kind == _RAISED:
        check(payload)
        raise payload
    if nresults == 1:
        return (payload,)
    return () if nresults == 0 else tuple(payload)


def _wait_top(worker: _PromisingGreenlet) -> Generator[Any, Any, None]:
    """Wait (in the driver's task) until ``worker`` is on top of this thread's ``entered``.
    Shielded: a cancellation can't be acted on before then anyway (the worker keeps it)."""
    state = _idle
    if state.entered and state.entered[-1] is worker:
        return
    event = anyio.Event()
    state.waiting[worker] = event
    try:
        # (ASYNC100: the ``yield from`` is this generator-based coroutine's await.)
        with anyio.CancelScope(shield=True):  # noqa: ASYNC100
            yield from event.wait().__await__()
    finally:
        state.waiting.pop(worker, None)
    # A cancellation that came meanwhile: now the worker can act on it.
    yield from anyio.lowlevel.checkpoint_if_cancelled().__await__()


def _may_unwind(worker: _PromisingGreenlet) -> bool:
    """Whether ``worker``'s wasm frames may be unwound now: every wasm call entered after its
    own runs inside it (nested calls, which unwinding it closes first)."""
    entered = _idle.entered
    if worker not in entered:
        return True
    for above in entered[entered.index(worker) + 1 :]:
        g: Any = above.parent
        while g is not None and g is not worker:
            g = g.parent
        if g is None:
            return False
    return True


def _wake_top(state: _Idle) -> None:
    """After a wasm call left ``state.entered``: unwind the worker now on top if its driver was
    closed, else let it go on if it waits for that (``_wait_top``)."""
    entered = state.entered
    while entered:
        top = entered[-1]
        if top in state.closing:
            state.closing.discard(top)
            top.parent = getcurrent()
            top.throw(GeneratorExit)  # it leaves ``entered`` (and wakes the next) on the way
            continue
        event = state.waiting.get(top)
        if event is not None:
            event.set()
        return


def _until_top(g: _PromisingGreenlet) -> BaseException | None:
    """Before a suspending import returns (or raises) into the wasm of worker ``g``: wait until
    every wasm call entered after ``g``'s has left. wasmer keeps its per-thread record of running
    wasm calls as a stack, restored when each call leaves; a call that went back into wasm with
    that record pointing elsewhere crashed the process at its next trap or host exception
    (measured: wasmer's trap handler panicking, or a segfault). What the driver throws in
    meanwhile (cancellation) is kept and returned, to be raised into the wasm then."""
    entered = _idle.entered
    error: BaseException | None = None
    while entered[-1] is not g:
        try:
            g.parent.switch(_WAIT, None)
        except BaseException as exc:
            if error is None:
                error = exc
    return error


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
                try:
                    result = _await(g, out)
                except BaseException:
                    error = _until_top(g)
                    if error is not None:  # a cancellation that came meanwhile goes first
                        raise error from None
                    raise
                error = _until_top(g)
                if error is not None:
                    raise error
                return result
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
