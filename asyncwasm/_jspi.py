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
from typing import TYPE_CHECKING, Any

from ._context import StoreCell, StoreContext, StoreObject, cell_of, context_of, handle_of
from ._engines import UncaughtWasmException
from ._engines._base import FuncHandle, close_awaitable
from ._exceptions import SuspendError
from ._function import Function, refuse_awaitable, results_to_engine
from ._tag import exception_from_engine
from ._values import check_boundary_types, from_engine_value, to_engine_value

if TYPE_CHECKING:
    from ._types import FuncType

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

    __slots__ = ("_func",)

    def __init__(self, func: Function) -> None:
        self._func = func

    def __call__(self, *args: object) -> Coroutine[Any, Any, Any]:
        func = self._func
        t = func.type
        if len(args) != len(t.params):
            raise TypeError(
                f"this WebAssembly function takes {len(t.params)} argument"
                f"{'' if len(t.params) == 1 else 's'} ({len(args)} given)"
            )
        context = context_of(func)
        check_boundary_types(t.params, context.features, "this function's signature")
        check_boundary_types(t.results, context.features, "this function's signature")
        values = [to_engine_value(a, p, context) for a, p in zip(args, t.params, strict=True)]
        return _run(func, t, values)

    def __repr__(self) -> str:
        return f"<asyncwasm.promising {self._func!r}>"


async def _run(func: Function, t: FuncType, values: Sequence[object]) -> Any:
    context = context_of(func)
    cell = cell_of(func)
    try:
        results = await context.engine.call_promising(
            cell.handle, handle_of(func, FuncHandle), t, values
        )
    except UncaughtWasmException as exc:
        raise exception_from_engine(context, cell, exc) from None
    if not t.results:
        return None
    if len(t.results) == 1:
        return from_engine_value(results[0], t.results[0], context)
    return tuple(from_engine_value(v, r, context) for v, r in zip(results, t.results, strict=True))


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

    def start(*engine_args: object) -> Sequence[object] | Awaitable[Sequence[object]]:
        args = [
            from_engine_value(a, p, context) for a, p in zip(engine_args, t.params, strict=True)
        ]
        result = fn(*args)
        if inspect.isawaitable(result):
            return _Finishing(result, t, context)
        return results_to_engine(result, t, context)

    return context.engine.func_new_suspending(cell.handle, t, start, blocking=suspending._blocking)


class _Finishing:
    """The awaitable a suspending import hands the engine: ``fn``'s awaitable, then its results
    converted. Closing it (never awaited: cancelled, or refused outside a promising call)
    closes ``fn``'s awaitable, so that no coroutine is left "never awaited"."""

    __slots__ = ("_awaitable", "_context", "_type")

    def __init__(self, awaitable: Awaitable[object], t: FuncType, context: StoreContext) -> None:
        self._awaitable = awaitable
        self._type = t
        self._context = context

    def __await__(self) -> Generator[Any, None, Sequence[object]]:
        return _finish(self._awaitable, self._type, self._context).__await__()

    def close(self) -> None:
        close_awaitable(self._awaitable)


async def _finish(
    awaitable: Awaitable[object], t: FuncType, context: StoreContext
) -> Sequence[object]:
    return results_to_engine(await awaitable, t, context)


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
