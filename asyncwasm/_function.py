"""Exported WebAssembly functions (callables) and host functions (Python callables made
importable)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._context import StoreCell, StoreContext, StoreObject, handle_of
from ._engines import UncaughtWasmException
from ._engines._base import FuncHandle, close_awaitable
from ._tag import exception_from_engine
from ._types import FuncType
from ._values import check_boundary_types, from_engine_value, to_engine_value

__all__ = ["Function", "host_function_handle", "refuse_awaitable", "results_to_engine"]


class Function(StoreObject[FuncType | None], kind="function"):
    """An exported WebAssembly function (JS "Exported Function").

    Call it like any Python function. It checks the argument count (``TypeError`` for too few
    or too many), converts each argument by the contract's value rules, and returns ``None`` for
    no result, the value for one, and a ``tuple`` for several. A trap raises
    ``asyncwasm.RuntimeError``; an exception raised by a Python host function on the way comes
    out as the very same object; a wasm exception nothing caught comes out as
    ``asyncwasm.Exception``.
    """

    __slots__ = ()

    def __init__(self) -> None:
        raise TypeError("Function objects come from instance exports; they can't be constructed")

    @property
    def type(self) -> FuncType:
        """The function's parameter and result types."""
        if self._type is None:
            # A funcref that came out of a table, global or call: only the engine knows its type,
            # and it says None where asking could be unsafe (see Engine.func_type).
            found = self._context.engine.func_type(self._cell.handle, handle_of(self, FuncHandle))
            if found is None:
                raise TypeError(
                    f"the {self._context.engine_name} engine cannot tell this function's type "
                    "safely"
                )
            self._type = found
        return self._type

    def __repr__(self) -> str:
        t = self._type
        return f"<asyncwasm.Function {t if t is not None else '(type unknown)'}>"

    def __call__(self, *args: object) -> Any:
        # ``Any``: what a wasm function returns depends on its signature, which only the module
        # knows (None, a number, an object, or a tuple of several).
        t = self.type
        if len(args) != len(t.params):
            raise TypeError(
                f"this WebAssembly function takes {len(t.params)} argument"
                f"{'' if len(t.params) == 1 else 's'} ({len(args)} given)"
            )
        context = self._context
        check_boundary_types(t.params, context.features, "this function's signature")
        check_boundary_types(t.results, context.features, "this function's signature")
        values = [to_engine_value(a, p, context) for a, p in zip(args, t.params, strict=True)]
        try:
            results = context.engine.call(self._cell.handle, handle_of(self, FuncHandle), t, values)
        except UncaughtWasmException as exc:
            raise exception_from_engine(context, self._cell, exc) from None
        if not t.results:
            return None
        if len(t.results) == 1:
            return from_engine_value(results[0], t.results[0], context)
        return tuple(
            from_engine_value(v, r, context) for v, r in zip(results, t.results, strict=True)
        )


def results_to_engine(result: object, t: FuncType, context: StoreContext) -> tuple[object, ...]:
    """A host function's ``result`` as engine values of ``t``'s result types."""
    if not t.results:
        return ()
    if len(t.results) == 1:
        return (to_engine_value(result, t.results[0], context),)
    # JS: several results come from an iterable whose length must match.
    if not isinstance(result, Iterable) or isinstance(result, (str, bytes)):
        raise TypeError(
            f"a host function returning {len(t.results)} results must return an iterable"
        )
    values = list(result)
    if len(values) != len(t.results):
        raise TypeError(f"a host function must return {len(t.results)} results, not {len(values)}")
    return tuple(to_engine_value(v, r, context) for v, r in zip(values, t.results, strict=True))


def host_function_handle(
    context: StoreContext, cell: StoreCell, fn: Callable[..., object], t: FuncType
) -> FuncHandle:
    """An engine function of type ``t`` that calls the Python callable ``fn``.

    The trampoline holds the context and ``fn`` only, never the store, so that a store can be
    freed while the engine still holds the trampoline.
    """

    def trampoline(*engine_args: object) -> Sequence[object]:
        args = [
            from_engine_value(a, p, context) for a, p in zip(engine_args, t.params, strict=True)
        ]
        result = fn(*args)
        if inspect.isawaitable(result):
            refuse_awaitable(result)
        return results_to_engine(result, t, context)

    return context.engine.func_new(cell.handle, t, trampoline)


def refuse_awaitable(result: object) -> None:
    """A plain import returned the awaitable ``result``: close it and raise the contract's
    ``TypeError`` (an ``async def`` used as a plain import would otherwise be silently dropped,
    or fail converting a coroutine to a number)."""
    close_awaitable(result)
    raise TypeError(
        "a plain function import returned an awaitable; wrap the function in "
        "asyncwasm.Suspending(...) and call the export through asyncwasm.promising(...)"
    )
