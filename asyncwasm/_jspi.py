"""JS Promise Integration (JSPI): ``Suspending``, ``promising`` and ``SuspendError``.

``Suspending(fn)`` marks a callable (usually an ``async def``) as an import that may suspend the
wasm computation; ``promising(export)`` gives an async callable whose calls may be suspended.
How the engine suspends (wasmtime's call futures, greenlets on wasmer) stays behind the engine
interface (``Engine.func_new_suspending``, ``Engine.call_promising``); this module only converts
values and checks what the user passed.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from types import CoroutineType, GeneratorType
from typing import TYPE_CHECKING, Any

from ._context import StoreCell, StoreContext, StoreObject, cell_of, context_of, handle_of
from ._engines import UncaughtWasmException
from ._engines._base import FuncHandle, close_awaitable
from ._exceptions import SuspendError
from ._function import Function, refuse_awaitable, results_to_engine
from ._tag import exception_from_engine
from ._values import (
    CANONICAL_TESTS,
    check_boundary_types,
    from_engine_converter,
    to_engine_value,
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

    __slots__ = ("_func", "_path")

    def __init__(self, func: Function) -> None:
        self._func = func
        self._path: _CallPath | None = None

    def __call__(self, *args: object) -> Coroutine[Any, Any, Any]:
        path = self._path
        if path is None or len(args) != path.nparams:
            path = self._path = _CallPath(self._func, len(args))
        values = list(args)
        for i, test, t in path.params:
            value = values[i]
            if test is None or not test(value):
                values[i] = to_engine_value(value, t, path.context)
        return _run(path, values)

    def __repr__(self) -> str:
        return f"<asyncwasm.promising {self._func!r}>"


class _CallPath:
    """What every promising call of one function needs, worked out (and checked) once, in the
    order a call checks: the argument count, then the signature's value types."""

    __slots__ = (
        "call_promising",
        "cell",
        "context",
        "func",
        "handle",
        "nparams",
        "params",
        "results",
        "type",
    )

    def __init__(self, func: Function, nargs: int) -> None:
        t = func.type
        if nargs != len(t.params):
            raise TypeError(
                f"this WebAssembly function takes {len(t.params)} argument"
                f"{'' if len(t.params) == 1 else 's'} ({nargs} given)"
            )
        context = context_of(func)
        check_boundary_types(t.params, context.features, "this function's signature")
        check_boundary_types(t.results, context.features, "this function's signature")
        self.func = func
        self.type = t
        self.nparams = len(t.params)
        self.context = context
        self.call_promising = context.engine.call_promising
        self.cell = cell_of(func)
        self.handle = handle_of(func, FuncHandle)
        # Per parameter: a test true when to_engine_value would return the value unchanged.
        self.params = tuple((i, _canonical_test(p), p) for i, p in enumerate(t.params))
        self.results = tuple(from_engine_converter(r, context) for r in t.results)


_TESTS: dict[str, Callable[[object], bool]] = {}


def _canonical_test(t: ValType) -> Callable[[object], bool] | None:
    """``CANONICAL_TESTS[t]`` as a function (made once per type), or ``None``."""
    test = _TESTS.get(t)
    if test is None:
        source = CANONICAL_TESTS.get(t)
        if source is None:
            return None
        test = _TESTS[t] = eval(f"lambda v: {source.format(v='v')}")
    return test


async def _run(path: _CallPath, values: Sequence[object]) -> Any:
    try:
        results = await path.call_promising(path.cell.handle, path.handle, path.type, values)
    except UncaughtWasmException as exc:
        raise exception_from_engine(path.context, path.cell, exc) from None
    converters = path.results
    if len(converters) == 1:
        convert = converters[0]
        return results[0] if convert is None else convert(results[0])
    if not converters:
        return None
    return tuple(
        v if convert is None else convert(v) for v, convert in zip(results, converters, strict=True)
    )


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
    test = _canonical_test(t.results[0]) if len(t.results) == 1 else None

    def results(result: object) -> Sequence[object]:
        if test is not None and test(result):
            return (result,)
        return results_to_engine(result, t, context)

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
            return _Finishing(result, results)
        return results(result)

    return context.engine.func_new_suspending(cell.handle, t, start, blocking=suspending._blocking)


class _Finishing:
    """The awaitable a suspending import hands the engine: ``fn``'s awaitable, then its results
    converted. Closing it (never awaited: cancelled, or refused outside a promising call)
    closes ``fn``'s awaitable, so that no coroutine is left "never awaited"."""

    __slots__ = ("_awaitable", "_results")

    def __init__(self, awaitable: object, results: Callable[[object], Sequence[object]]) -> None:
        self._awaitable = awaitable
        self._results = results

    def __await__(self) -> Generator[Any, Any, Sequence[object]]:
        # Delegates to ``fn``'s awaitable directly (no coroutine of our own in between).
        awaitable: Any = self._awaitable
        if isinstance(awaitable, GeneratorType):  # a @types.coroutine generator
            result = yield from awaitable
        else:
            result = yield from awaitable.__await__()
        return self._results(result)

    def close(self) -> None:
        close_awaitable(self._awaitable)


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
