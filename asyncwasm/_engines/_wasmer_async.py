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
call is on top (``_wake_top``). The record of our own (``entered``) is kept lazily, so that a call
that never suspends pays nothing for it: a worker in wasm that has not suspended is on the
running greenlet's parent chain (the only way out of a worker's wasm is a suspension, or a nested
promising call's worker, a child), so each suspension (and each check) first records that chain,
in entry order, above what is recorded (``_record_chain``).

Cancellation: the cancellation exception the loop throws at the driver's yield is thrown into the
awaitable inside the worker; if it propagates, it unwinds the wasm frames like any host exception
and comes out of the driver. Closing the driver closes the awaitable and unwinds the wasm the same
way. The worker is then idle and reusable. No preemption: running wasm cannot be interrupted
(``features.preemption`` is False).
"""

from __future__ import annotations

import functools
import inspect
import threading
import types
from collections.abc import Callable, Generator, Sequence
from threading import get_ident
from types import CoroutineType, GeneratorType
from typing import Any, Final

import anyio
import anyio.lowlevel
from greenlet import getcurrent, greenlet

from .._exceptions import SuspendError
from ._base import EngineValue, PendingResults, SuspendingStart, close_awaitable

__all__ = ["PromisingGreenlet", "plain_host", "promising_caller", "suspending_host"]


class _PromisingGreenlet(greenlet):  # type: ignore[misc,unused-ignore]
    """A worker greenlet running promising calls, one at a time."""

    blocked: int = 0


PromisingGreenlet: Final = _PromisingGreenlet
"""The class of a promising call's greenlet (the wasmer engine tests for it on host calls)."""

# What a worker switches to its driver with: a call's result itself (the usual case, no wrapper to
# build and take apart), or a ``_Signal`` of one of these kinds.
_RAISED: Final = 1  # the call raised payload
_YIELD: Final = 2  # a suspending import's awaitable yielded payload to the event loop
_WAIT: Final = 3  # the import is done, but wasm calls entered after this one are still running


class _Signal(tuple[int, Any]):
    """``(kind, payload)``: anything but a result, from a worker to its driver (a wasm call's
    result, a value, a tuple or ``None``, is never one). A tuple: made in C, no ``__init__``."""

    __slots__ = ()


_MAX_IDLE: Final = 16
"""Idle workers kept per thread besides the spare one (more are made while many calls are
suspended at once)."""


class _Idle(threading.local):
    """This thread's workers (greenlets belong to their thread): the idle ones, and the order
    in which the others entered their wasm calls (see "Resuming in order" above)."""

    def __init__(self) -> None:
        # The idle workers: one kept apart (a call that never suspends takes it and puts it back,
        # the cheapest way), and others.
        self.spare: _PromisingGreenlet | None = None
        self.workers: list[_PromisingGreenlet] = []
        # Workers inside a wasm call, in the order they entered it: wasmer's own per-thread
        # record of the wasm calls running, which it keeps as a stack. Kept lazily: a worker
        # is recorded once it (or a call nested in it) suspends (see ``_record_chain``).
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


def _work(
    call: Callable[..., Any], args: Sequence[Any], check: Callable[[BaseException], None]
) -> None:
    """A worker's body: run the calls its drivers switch in, report each one's outcome."""
    this = getcurrent()
    state = _idle
    entered = state.entered
    while True:
        try:
            out = call(*args)
        except BaseException as exc:  # the driver re-raises it, whatever it is
            # Mapped here and now, before other calls unwind below (``_wake_top``): the engine
            # maps a host exception through its per-thread record of the last one.
            try:
                check(exc)
            except BaseException as mapped:
                exc = mapped
            out = _Signal((_RAISED, exc))
        if entered:  # some call is recorded (this one, if it suspended)
            if entered[-1] is this:  # on top, as _until_top makes sure
                entered.pop()
            if state.waiting or state.closing:
                _wake_top(state)
        del call, args, check
        # Idle from here until the next call switches in (a GreenletExit thrown here when an
        # idle worker is dropped ends the greenlet, as it should).
        call, args, check = this.parent.switch(out)


async def _drive(
    call: Callable[..., Any],
    thread: int,
    wrong_thread: Callable[[int], BaseException],
    finish: Callable[[Any], Any] | None,
    check: Callable[[BaseException], None],
    *args: Any,
) -> Any:
    """A promising call of ``call(*args)`` (see ``prepare_promising``). Written for a call that
    never suspends, the usual case: no frame but this coroutine's between the awaiting task and
    the switch into the worker (``_suspended`` takes over at the first suspension). A coroutine,
    not a generator: what it gives the user must be one (``create_task``, trio's tasks)."""
    # wasmer objects are thread-affine; ``get_ident`` is salted in a forked child (the wasmer
    # engine replaces it in this module's globals), so the parent's objects fail this test there.
    if get_ident() != thread:
        raise wrong_thread(thread)
    here = getcurrent()
    state = _idle
    worker = state.spare
    if worker is not None:
        state.spare = None
    else:
        worker = _another_worker(state, here)
    if worker.parent is not here:
        worker.parent = here
    # The awaiting task's context itself, not a copy: what an awaited coroutine would see.
    context = here.gr_context
    if worker.gr_context is not context:
        worker.gr_context = context
    out = worker.switch(call, args, check)
    if out.__class__ is _Signal:
        if out[0] != _RAISED:
            out = await _suspended(worker, out)
        if out.__class__ is _Signal:  # raised
            _idle_again(state, worker)
            raise out[1]  # (mapped by the worker)
    # Idle again (it keeps the last task's context until its next call; the pool is small).
    if state.spare is None:
        state.spare = worker
    else:
        _idle_again(state, worker)
    return out if finish is None else finish(out)


def _another_worker(state: _Idle, here: Any) -> _PromisingGreenlet:
    """An idle worker other than ``state.spare``: one of the others, or a new one (started, so
    that it waits for calls in ``_work``)."""
    if state.workers:
        return state.workers.pop()
    worker = _PromisingGreenlet(_work)
    worker.gr_context = here.gr_context
    if here.__class__ is _PromisingGreenlet:
        # Nested (an import's coroutine making a promising call): already below every top-level
        # caller, and padding each level would eat the recursion limit.
        worker.switch(_nothing, (), _nothing)
    else:
        _below(_PADDING, worker.switch, _nothing, (), _nothing)
    return worker


def _nothing(*args: object) -> None:
    """The call a new worker starts with (and its ``check``)."""


def _idle_again(state: _Idle, worker: _PromisingGreenlet) -> None:
    """Keep ``worker`` for a later call (as ``state.spare``, or one of at most ``_MAX_IDLE``
    others)."""
    if state.spare is None:
        state.spare = worker
    elif len(state.workers) < _MAX_IDLE:
        state.workers.append(worker)


@types.coroutine
def _suspended(worker: _PromisingGreenlet, signal: _Signal) -> Generator[Any, Any, Any]:
    """Drive ``worker``'s call from its first suspension (``signal`` of kind ``_YIELD`` or
    ``_WAIT``) until it is done: what the worker switched out with last (a result, or a
    ``_Signal`` of kind ``_RAISED``)."""
    out: Any = signal
    closed = False
    while out.__class__ is _Signal and out[0] != _RAISED:
        if out[0] == _YIELD:
            # Suspended: yield to the loop what the awaitable yielded, hand back its answer.
            try:
                sent = yield out[1]
            except GeneratorExit:
                if not _may_unwind(worker):
                    _idle.closing.add(worker)  # unwound once on top (see _wake_top)
                    raise
                out = worker.throw(GeneratorExit)
                closed = True
            except BaseException as exc:  # cancellation
                out = worker.throw(exc)
            else:
                out = worker.switch(sent)
        else:
            # The import is done but must not return into wasm yet (see _until_top).
            try:
                yield from _wait_top(worker)
            except GeneratorExit:
                _idle.closing.add(worker)
                raise
            except BaseException as exc:  # kept by the worker until it may go on
                out = worker.throw(exc)
            else:
                out = worker.switch(None)
    if closed:
        # The driver is being closed: whatever the call ended with, closing goes on (the
        # worker's wasm frames are unwound, it is idle again).
        _idle_again(_idle, worker)
        raise GeneratorExit
    return out


def _record_chain() -> None:
    """Record in ``entered`` the workers on the running greenlet's parent chain that are not
    recorded yet, outermost first: wasm calls that have not suspended (see "Resuming in order"),
    entered after every recorded one."""
    entered = _idle.entered
    g: Any = getcurrent()
    if not entered and g.__class__ is _PromisingGreenlet and g.parent.parent is None:
        entered.append(g)  # the usual case: one worker, its driver in the thread's main greenlet
        return
    chain = []
    while g is not None:
        if g.__class__ is _PromisingGreenlet:
            if g in entered:  # and so is every worker below it
                break
            chain.append(g)
        g = g.parent
    entered.extend(reversed(chain))


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
    _record_chain()  # wasm calls running on the chain closing the driver are above it
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
    if g not in entered:
        # Never suspended: no call entered after its own can still be in wasm (it would have
        # run on this call's stack, and suspending it would have suspended this one).
        return None
    while entered[-1] is not g:
        try:
            g.parent.switch(_Signal((_WAIT, None)))
        except BaseException as exc:
            if error is None:
                error = exc
    return error


def promising_caller(
    call: Callable[..., Any],
    thread: int,
    wrong_thread: Callable[[int], BaseException],
    finish: Callable[[Any], Any] | None,
    check: Callable[[BaseException], None],
) -> Callable[..., Any]:
    """``caller(*args)``: the awaitable of a promising call of ``call(*args)`` (a wasmer
    function of thread ``thread``: ``wrong_thread(thread)`` is raised from any other) in a
    worker greenlet. It gives ``finish(result)`` (``result`` when ``finish`` is ``None``), or
    raises what the call raised after ``check(exc)`` (which raises the exception to report
    instead, if any). A ``partial`` of ``_drive``: no frame of its own per call."""
    return functools.partial(_drive, call, thread, wrong_thread, finish, check)


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
            out: Any = start(*args)
            cls = out.__class__
            if cls is tuple or cls is list:  # the results, at once (checked first: the usual case)
                return out  # type: ignore[no-any-return]
            finish = None
            if cls is PendingResults:  # stepped here, ``finish`` called here: no layer between
                finish = out.finish
                out = out.awaitable
                cls = out.__class__
            elif getattr(cls, "__await__", None) is None and not inspect.isawaitable(out):
                return out  # type: ignore[no-any-return]
            # ``await out``, stepped in this worker: its first step runs here and now (an
            # awaitable that completes without waiting never leaves the worker).
            if cls is CoroutineType or cls is GeneratorType:  # (a @types.coroutine generator)
                it = out
                send = out.send
            else:
                it = out.__await__()
                send = getattr(it, "send", None) or _sender(it)
            try:
                yielded = send(None)
            except StopIteration as stop:
                # Never suspended: nothing entered after this call can be in wasm now (it would
                # have run on this stack, and suspending would have suspended this call too).
                value = stop.value
            else:
                value = _suspend(g, it, send, yielded)
            return value if finish is None else finish(value)  # type: ignore[no-any-return]
        finally:
            g.blocked -= 1

    return run


def _suspend(g: _PromisingGreenlet, it: Any, send: Callable[[Any], Any], yielded: Any) -> Any:
    """The rest of ``await`` of the iterator ``it`` in the worker ``g``, from its first yield
    (as ``yield from`` does): the wasm call is suspended (``g`` switches to its driver) at each
    value it yields to the event loop. What it returns (or raises) goes back into the wasm once
    every call entered after this one has left (``_until_top``)."""
    # Other wasm calls may run from here (see "Resuming in order"): record this one.
    entered = _idle.entered
    if not entered and g.parent.parent is None:
        entered.append(g)  # the usual case (``_record_chain``'s, inline)
    else:
        _record_chain()
    switch = g.parent.switch  # the driver's greenlet, fixed for the call
    try:
        while True:
            try:
                sent = switch(_Signal((_YIELD, yielded)))
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
        value = stop.value
    except BaseException:
        error = _until_top(g)
        if error is not None:  # a cancellation that came meanwhile goes first
            raise error from None
        raise
    if entered[-1] is not g:  # (``_until_top``'s own test, inline: the usual case is on top)
        error = _until_top(g)
        if error is not None:
            raise error
    return value


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
