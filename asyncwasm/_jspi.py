"""JS Promise Integration (JSPI): ``Suspending``, ``promising`` and ``SuspendError``.

``Suspending(fn)`` marks a callable (usually an ``async def``) as an import that may suspend the
wasm computation; ``promising(export)`` gives an async callable whose calls may be suspended.
How the engine suspends (wasmtime's call futures, greenlets on wasmer) stays behind the engine
interface (``Engine.func_new_suspending``, ``Engine.prepare_promising``); this module only converts
values and checks what the user passed.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import CoroutineType
from typing import TYPE_CHECKING, Any, TypeAlias

from ._context import StoreCell, StoreContext, StoreObject, cell_of, handle_of
from ._engines._base import FuncHandle, PendingResults
from ._exceptions import SuspendError
from ._function import Function, forwarder, refuse_awaitable, results_to_engine
from ._values import (
    CANONICAL_TESTS,
    from_engine_converter,
)

if TYPE_CHECKING:
    from ._types import FuncType, ValType

__all__ = [
    "Promising",
    "SuspendError",
    "Suspending",
    "blocking_suspending",
    "isolated_store",
    "promising",
    "refuse_awaitable",
    "suspending_function_handle",
]


class Suspending:
    """``Suspending(fn)`` (JS ``new WebAssembly.Suspending(fn)``): use ``fn`` as a function
    import that may suspend the wasm computation.

    When wasm calls the import inside a promising call (see :func:`promising`), ``fn(*args)``
    runs on the event-loop thread; if it returns an awaitable, the wasm computation is suspended
    (the event loop keeps running) until the awaitable completes, and its value becomes the
    import's result. A non-awaitable result does not suspend. Reached with no promising call
    below it, the import raises :class:`SuspendError`.
    """

    __slots__ = ("_blocking", "_fn")

    def __init__(self, fn: Callable[..., object]) -> None:
        if not callable(fn):
            raise TypeError(f"Suspending() needs a callable, not {type(fn).__name__}")
        self._fn = fn
        self._blocking = False

    def __repr__(self) -> str:
        return f"<asyncwasm.Suspending {self._fn!r}>"


class Promising:
    """The async callable ``promising(func)`` returns: ``await promising(func)(*args)``.

    Arguments are checked and converted when it is called; the wasm code runs when the result is
    awaited. Results are as for a plain call of ``func``.
    """

    __slots__ = ("__weakref__", "_func", "_invoke")

    _invoke: Callable[..., Awaitable[Any]]
    """What a call runs: ``_first_call`` (which prepares), or the function's prepared path."""

    def __init__(self, func: Function) -> None:
        self._func = func
        prepared = func._promising
        # A weak reference: the object must not keep itself alive (see ``Function``).
        self._invoke = (
            prepared if prepared is not None else functools.partial(_first_call, weakref.ref(self))
        )

    # As for ``Function``: calling the object runs ``_invoke`` directly (the slot's descriptor is
    # ``__call__``), no Python frame of its own per call (issue 11).
    if TYPE_CHECKING:

        def __call__(self, *args: object) -> Coroutine[Any, Any, Any]: ...

    def __repr__(self) -> str:
        return f"<asyncwasm.promising {self._func!r}>"


setattr(Promising, "__call__", Promising.__dict__["_invoke"])  # noqa: B010  (mypy: a method)


def _first_call(ref: weakref.ref[Promising], *args: object) -> Any:
    """The first call of a ``promising()`` object whose function had no prepared path."""
    self = ref()
    assert self is not None  # it is being called
    invoke = self._invoke = _prepare(self._func, len(args))
    return invoke(*args)


def _prepare(func: Function, nargs: int) -> Callable[..., Awaitable[Any]]:
    """``func``'s promising call path, made once per function (checking what a call checks, in
    the same order: the argument count, then the signature's value types): the public layer's
    argument conversions (``forwarder``) in front of the engine's prepared call, which converts
    the results."""
    prepared = func._promising
    if prepared is not None:
        return prepared
    t, context, store, handle, to_engine, given_error, uncaught = func.call_parts(nargs)
    engine = context.engine
    finish = _finisher(t, context)
    try:
        caller = engine.prepare_promising(store, handle, t, finish, uncaught)
    except Exception:
        # What the engine refuses (a value type it can't pass: NotSupportedError) is raised by
        # each call, after the arguments were converted, as an unprepared call does.
        def caller(*args: object) -> Awaitable[object]:
            return engine.prepare_promising(store, handle, t, finish, uncaught)(*args)

    invoke: Callable[..., Awaitable[Any]] = forwarder(t)(caller, to_engine, given_error)
    func._promising = invoke
    return invoke


def _finisher(t: FuncType, context: StoreContext) -> Callable[[object], object] | None:
    """What turns the engine's raw results of a call of type ``t`` (as ``prepare_call``'s
    caller returns them) into the public ones, or ``None`` where they are the same."""
    converters = tuple(from_engine_converter(r, context) for r in t.results)
    if not any(converters):
        return None
    if len(converters) == 1:
        return converters[0]

    def finish(raw: Any) -> tuple[object, ...]:
        return tuple(
            v if convert is None else convert(v) for v, convert in zip(raw, converters, strict=True)
        )

    return finish


_ResultsMaker: TypeAlias = Callable[
    [Callable[[object], Sequence[object]]], Callable[[object], Sequence[object]]
]
_RESULTS_MAKERS: dict[ValType | None, _ResultsMaker] = {}


def _results_maker(t: ValType | None) -> _ResultsMaker:
    """``maker(slow) -> results(value)`` for a Suspending import with the one result type ``t``
    (``None``: none or several): ``(value,)`` when the value passes ``t``'s canonical test
    (``CANONICAL_TESTS``: already an engine value), inline in one frame; else ``slow(value)``.
    Generated once per type."""
    maker = _RESULTS_MAKERS.get(t)
    if maker is None:
        source = CANONICAL_TESTS.get(t) if t is not None else None
        lines = ["def maker(slow):", "    def results(v):"]
        if source is not None:
            lines.append(f"        if {source.format(v='v')}: return (v,)")
        lines += ["        return slow(v)", "    return results"]
        namespace: dict[str, Any] = {}
        exec("\n".join(lines), namespace)
        maker = _RESULTS_MAKERS.setdefault(t, namespace["maker"])
    return maker


def promising(func: object) -> Promising:
    """``promising(func)`` (JS ``WebAssembly.promising``): an async callable that calls the
    exported wasm function ``func`` so that ``Suspending`` imports it reaches may suspend it.

    ``TypeError`` unless ``func`` is an exported WebAssembly function.
    """
    if not isinstance(func, Function) or not _initialised(func):
        raise TypeError(
            f"promising() needs an exported WebAssembly function, not {type(func).__name__}"
        )
    return Promising(func)


def _initialised(func: Function) -> bool:
    try:
        handle_of(func, FuncHandle)
    except TypeError:
        return False
    return True


def blocking_suspending(fn: Callable[..., object]) -> Suspending:
    """A ``Suspending(fn)`` that, reached outside a promising call, calls ``fn`` as a plain
    import instead of raising ``SuspendError`` (``fn`` must then return a value, not an
    awaitable). asyncwasm's WASI uses it so that one import object serves both ``start``, where
    waiting blocks the thread as in ``node:wasi``, and ``start_async``, where it suspends."""
    suspending = Suspending(fn)
    suspending._blocking = True
    return suspending


def suspending_function_handle(
    context: StoreContext, cell: StoreCell, suspending: Suspending, t: FuncType
) -> FuncHandle:
    """The engine function for a ``Suspending`` import of type ``t``."""
    fn = suspending._fn
    converters = tuple(from_engine_converter(p, context) for p in t.params)
    nparams = len(converters)
    # Worked out once, not per call: whether every argument crosses as it is, and the test
    # that a single result is already an engine value (an int in range, a float: see
    # ``CANONICAL_TESTS``), to be passed as it is.
    unchanged = all(convert is None for convert in converters)

    def slow_results(result: object) -> Sequence[object]:
        return results_to_engine(result, t, context)

    results = _results_maker(t.results[0] if len(t.results) == 1 else None)(slow_results)

    def start(*engine_args: object) -> Sequence[object] | Awaitable[Sequence[object]]:
        if len(engine_args) != nparams:
            raise TypeError(f"expected {nparams} arguments, got {len(engine_args)}")
        if unchanged:
            result = fn(*engine_args)
        else:
            result = fn(
                *[
                    a if convert is None else convert(a)
                    for a, convert in zip(engine_args, converters, strict=True)
                ]
            )
        cls = result.__class__
        if cls is CoroutineType or (cls is not int and inspect.isawaitable(result)):
            return PendingResults(result, results)
        return results(result)

    return context.engine.func_new_suspending(cell.handle, t, start, blocking=suspending._blocking)


def isolated_store(context: StoreContext, values: Sequence[object]) -> StoreCell | None:
    """Where the engine isolates instances with ``Suspending`` imports (see
    ``Engine.isolate_suspending_instances``): the store a new instance with these import values
    must live in when it is not the runtime's current one, else ``None``.

    An instance importing objects of one isolated store joins that store (e.g. it imports an
    export of an instance with Suspending imports); one importing a ``Suspending`` and no store
    objects gets a fresh store; anything else stays in the runtime's current store.
    """
    if not context.engine.isolate_suspending_instances:
        return None
    cells: dict[int, StoreCell] = {}
    for v in values:
        if isinstance(v, StoreObject):
            try:
                cell = cell_of(v)
            except AttributeError:  # never initialised: the import check reports it
                continue
            cells[id(cell)] = cell
    if len(cells) == 1:
        (cell,) = cells.values()
        return cell if cell is not context.store() else None
    if not cells and any(isinstance(v, Suspending) for v in values):
        return StoreCell(context.engine.new_store(context.limits))
    return None
