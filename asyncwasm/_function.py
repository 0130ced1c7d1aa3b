"""Exported WebAssembly functions (callables) and host functions (Python callables made
importable)."""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._engines import UncaughtWasmException
from ._object import StoreObject
from ._types import NUMBER_TYPES, REFERENCE_TYPES, FuncType
from ._values import check_boundary_types, from_engine_value, to_engine_value

if TYPE_CHECKING:
    from ._runtime import Runtime, StoreCell

__all__ = ["Function", "host_function_handle", "note_module_types"]

_PLAIN_TYPES: Final = NUMBER_TYPES | REFERENCE_TYPES

_OPAQUE_STORES: weakref.WeakSet[StoreCell] = weakref.WeakSet()
"""Stores holding an instance of a module that declares a type other than a plain function type
(numbers, externref, funcref): there a function of unknown type may have v128 or GC types, and
asking wasmtime for such a type aborts the process, so it is never asked."""


def note_module_types(cell: StoreCell, types: Iterable[object]) -> None:
    """Record that an instance of a module with these declared ``types`` lives in ``cell``."""
    if cell in _OPAQUE_STORES:
        return
    for t in types:
        if not isinstance(t, FuncType) or not all(v in _PLAIN_TYPES for v in t.params + t.results):
            _OPAQUE_STORES.add(cell)
            return


class Function(StoreObject[FuncType | None]):
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
            # and where a v128 or GC type may be involved asking it could abort the process.
            found = (
                None
                if self._cell in _OPAQUE_STORES
                else self._runtime._engine.func_type(self._cell.handle, self._handle)
            )
            if found is None:
                raise TypeError(
                    f"the {self._runtime.engine} engine cannot tell this function's type safely"
                )
            self._type = found
        return self._type

    def __repr__(self) -> str:
        t = self._type
        return f"<asyncwasm.Function {t if t is not None else '(type unknown)'}>"

    def __call__(self, *args: object) -> Any:
        t = self.type
        if len(args) != len(t.params):
            raise TypeError(
                f"this WebAssembly function takes {len(t.params)} argument"
                f"{'' if len(t.params) == 1 else 's'} ({len(args)} given)"
            )
        engine = self._runtime._engine
        check_boundary_types(t.params, engine, "this function's signature")
        check_boundary_types(t.results, engine, "this function's signature")
        rt = self._runtime
        values = [to_engine_value(a, p, rt) for a, p in zip(args, t.params, strict=True)]
        try:
            results = engine.call(self._cell.handle, self._handle, t, values)
        except UncaughtWasmException as exc:
            from ._tag import exception_from_engine

            raise exception_from_engine(rt, self._cell, exc) from None
        if not t.results:
            return None
        if len(t.results) == 1:
            return from_engine_value(results[0], t.results[0], rt)
        return tuple(from_engine_value(v, r, rt) for v, r in zip(results, t.results, strict=True))


def _results_to_engine(result: object, t: FuncType, runtime: Runtime) -> tuple[object, ...]:
    if not t.results:
        return ()
    if len(t.results) == 1:
        return (to_engine_value(result, t.results[0], runtime),)
    # JS: several results come from an iterable whose length must match.
    if not isinstance(result, Iterable) or isinstance(result, (str, bytes)):
        raise TypeError(
            f"a host function returning {len(t.results)} results must return an iterable"
        )
    values = list(result)
    if len(values) != len(t.results):
        raise TypeError(f"a host function must return {len(t.results)} results, not {len(values)}")
    return tuple(to_engine_value(v, r, runtime) for v, r in zip(values, t.results, strict=True))


def host_function_handle(
    runtime: Runtime, cell: StoreCell, fn: Callable[..., object], t: FuncType
) -> Any:
    """An engine function of type ``t`` that calls the Python callable ``fn``.

    The trampoline holds the runtime and ``fn`` only, never the store, so that a store can be
    freed while the engine still holds the trampoline.
    """

    def trampoline(*engine_args: object) -> Sequence[object]:
        args = [
            from_engine_value(a, p, runtime) for a, p in zip(engine_args, t.params, strict=True)
        ]
        result = fn(*args)
        if inspect.isawaitable(result):  # JSPI: an async function needs Suspending
            from ._jspi import refuse_awaitable

            refuse_awaitable(result)
        return _results_to_engine(result, t, runtime)

    return runtime._engine.func_new(cell.handle, t, trampoline)
