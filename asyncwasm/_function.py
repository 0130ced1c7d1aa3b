"""Exported WebAssembly functions (callables) and host functions (Python callables made
importable)."""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from ._context import StoreCell, StoreContext, StoreObject, handle_of
from ._engines import UncaughtWasmException
from ._engines._base import ExternHandle, FuncHandle, close_awaitable
from ._tag import exception_from_engine
from ._types import FuncType
from ._values import (
    CANONICAL_TESTS,
    check_boundary_types,
    converts_from_engine,
    from_engine_converter,
    to_engine_converter,
    to_engine_value,
)

__all__ = ["Function", "host_function_handle", "refuse_awaitable", "results_to_engine"]


class Function(StoreObject[FuncType | None], kind="function"):
    """An exported WebAssembly function (JS "Exported Function").

    Call it like any Python function. It checks the argument count (``TypeError`` for too few
    or too many), converts each argument by the contract's value rules, and returns ``None`` for
    no result, the value for one, and a ``tuple`` for several. A trap raises
    ``asyncwasm.RuntimeError``; an exception raised by a Python host function on the way comes
    out as the very same object; a wasm exception nothing caught comes out as
    ``asyncwasm.Exception``.

    The first call prepares a call path specialised to the signature (``_invoker``), kept for
    every later call: no per-call type checks, no generic conversion.
    """

    __slots__ = ("_invoke",)

    _invoke: Callable[..., Any]
    """What a call runs: first ``_first_call`` (which prepares), then the prepared path."""

    def __init__(self) -> None:
        raise TypeError("Function objects come from instance exports; they can't be constructed")

    def _init(
        self, context: StoreContext, cell: StoreCell, handle: ExternHandle, type: FuncType | None
    ) -> None:
        super()._init(context, cell, handle, type)
        # A weak reference: the object must not keep itself alive (a cycle would leave every
        # function to the cycle collector).
        self._invoke = functools.partial(_first_call, weakref.ref(self))

    # Calling the object runs ``_invoke`` directly: ``__call__`` is the slot's own descriptor
    # (set below the class), so a call costs no Python frame of its own and no getter call
    # (issue 10). What it returns is ``Any``: None, a value, or a tuple of several, depending on
    # the signature.
    if TYPE_CHECKING:

        def __call__(self, *args: object) -> Any: ...

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

    def _prepare(self, nargs: int) -> Callable[..., Any]:
        """Make this function's call path (checking what a call checks, in the same order)."""
        t = self.type
        if nargs != len(t.params):
            raise _count_error(len(t.params), nargs)
        context = self._context
        check_boundary_types(t.params, context.features, "this function's signature")
        check_boundary_types(t.results, context.features, "this function's signature")
        engine, store, func = context.engine, self._cell.handle, handle_of(self, FuncHandle)
        try:
            caller = engine.prepare_call(store, func, t)
        except Exception:
            # What the engine refuses (a value type it can't pass: NotSupportedError) is raised
            # by each call, after the arguments were converted, as an unprepared call did.
            def caller(*args: object) -> object:
                return engine.prepare_call(store, func, t)(*args)

        cell = self._cell

        def uncaught(error: UncaughtWasmException) -> BaseException:
            return exception_from_engine(context, cell, error)

        invoke: Callable[..., Any] = _invoker(t)(
            caller,
            tuple(to_engine_converter(p, context) for p in t.params),
            tuple(from_engine_converter(r, context) for r in t.results),
            lambda given: _count_error(len(t.params), given),
            uncaught,
        )
        self._invoke = invoke
        return invoke


# ``function(*args)`` looks ``__call__`` up on the class and calls what its ``__get__`` gives:
# the member descriptor of the ``_invoke`` slot gives the slot's value, read in C.
setattr(Function, "__call__", Function.__dict__["_invoke"])  # noqa: B010  (mypy: a method)


def _first_call(ref: weakref.ref[Function], *args: object) -> Any:
    """A function's first call: prepare its call path, then run it."""
    function = ref()
    assert function is not None  # it is being called
    return function._prepare(len(args))(*args)


def _count_error(expected: int, given: int) -> TypeError:
    return TypeError(
        f"this WebAssembly function takes {expected} argument"
        f"{'' if expected == 1 else 's'} ({given} given)"
    )


# -- per-signature code ---------------------------------------------------------------------------
# JS engines call wasm through wrappers made once per signature; so does this module. The source
# of a signature's call path is generated once per FuncType (cached) and closed over each
# function's engine caller: argument count and conversions are unrolled, and a value that is
# already canonical (CANONICAL_TESTS: an int in range, a float) costs one inline test.

_Factory: TypeAlias = Callable[..., Any]
_MISSING: Any = object()  # an argument not given (see ``_invoker``)
_INVOKERS: dict[FuncType, _Factory] = {}
_TRAMPOLINES: dict[FuncType, _Factory] = {}
_FACTORY_LOCK = threading.Lock()


def _compile_factory(source: str, name: str) -> _Factory:
    namespace: dict[str, Any] = {
        "UncaughtWasmException": UncaughtWasmException,
        "MISSING": _MISSING,
    }
    exec(compile(source, f"<asyncwasm {name}>", "exec"), namespace)
    factory: _Factory = namespace["factory"]
    return factory


def _convert_lines(types: Sequence[str], names: list[str], table: str, indent: str) -> list[str]:
    """Code converting each ``names[i]`` (a user value) for ``types[i]`` with ``table[i]``."""
    lines = []
    for i, (t, name) in enumerate(zip(types, names, strict=True)):
        test = CANONICAL_TESTS.get(t)
        if test == "True":
            continue
        if test is None:
            lines.append(f"{indent}{name} = {table}[{i}]({name})")
        else:
            lines.append(f"{indent}if not ({test.format(v=name)}): {name} = {table}[{i}]({name})")
    return lines


def _invoker(t: FuncType) -> _Factory:
    """``factory(caller, to_engine, from_engine, count_error, uncaught) -> invoke(*args)`` for
    ``t``: ``to_engine``/``from_engine`` hold one converter per parameter/result (``None`` for
    the identity)."""
    factory = _INVOKERS.get(t)
    if factory is not None:
        return factory
    n = len(t.params)
    names = [f"a{i}" for i in range(n)]
    # Positional-only parameters that default to a marker, and ``*rest``: no tuple to build and
    # unpack per call. Arguments fill them in order, so the last one tells if any is missing.
    lines = [
        "def factory(caller, to_engine, from_engine, count_error, uncaught):",
        f"    def invoke({''.join(f'{a}=MISSING, ' for a in names)}{'/, ' if n else ''}*rest):",
        f"        if {f'{names[-1]} is MISSING or ' if n else ''}rest:",
        "            raise count_error("
        + "".join(f"({a} is not MISSING) + " for a in names)
        + "len(rest))",
    ]
    lines += _convert_lines(t.params, names, "to_engine", "        ")
    lines += ["        try:", f"            r = caller({', '.join(names)})"]
    lines += [
        "        except UncaughtWasmException as error:",
        "            raise uncaught(error) from None",
    ]
    converters = [converts_from_engine(r) for r in t.results]
    if len(t.results) == 0:
        lines.append("        return None")
    elif len(t.results) == 1:
        lines.append("        return from_engine[0](r)" if converters[0] else "        return r")
    elif not any(converters):
        lines.append("        return r")
    else:
        items = [
            f"from_engine[{i}](r[{i}])" if conv else f"r[{i}]" for i, conv in enumerate(converters)
        ]
        lines.append(f"        return ({', '.join(items)},)")
    lines.append("    return invoke")
    factory = _compile_factory("\n".join(lines), f"call {t}")
    with _FACTORY_LOCK:
        return _INVOKERS.setdefault(t, factory)


def _trampoline(t: FuncType) -> _Factory:
    """``factory(fn, from_engine, slow_results, isawaitable, refuse) -> trampoline(*args)`` for a
    host function of type ``t`` (see ``host_function_handle``)."""
    factory = _TRAMPOLINES.get(t)
    if factory is not None:
        return factory
    n = len(t.params)
    names = [f"a{i}" for i in range(n)]
    converters = [converts_from_engine(p) for p in t.params]
    args = [
        f"from_engine[{i}]({a})" if c else a
        for i, (a, c) in enumerate(zip(names, converters, strict=True))
    ]
    lines = [
        "def factory(fn, from_engine, slow_results, isawaitable, refuse):",
        f"    def trampoline({', '.join(names)}):",
        f"        result = fn({', '.join(args)})",
    ]
    if not t.results:
        lines.append("        if result is None: return ()")
    elif len(t.results) == 1:
        test = CANONICAL_TESTS.get(t.results[0])
        if test is not None:
            lines.append(f"        if {test.format(v='result')}: return (result,)")
    lines += [
        "        if isawaitable(result): refuse(result)",
        "        return slow_results(result)",
        "    return trampoline",
    ]
    factory = _compile_factory("\n".join(lines), f"host {t}")
    with _FACTORY_LOCK:
        return _TRAMPOLINES.setdefault(t, factory)


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

    The trampoline (generated per signature, see ``_trampoline``) holds the context and ``fn``
    only, never the store, so that a store can be freed while the engine still holds it.
    """

    def slow_results(result: object) -> tuple[object, ...]:
        return results_to_engine(result, t, context)

    trampoline = _trampoline(t)(
        fn,
        tuple(from_engine_converter(p, context) for p in t.params),
        slow_results,
        inspect.isawaitable,
        refuse_awaitable,
    )
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
